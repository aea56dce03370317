//! Verdict events: the `ward_events` ring buffer, read from its pin by any process
//! (`ward observe`, tests) while the agent keeps running or not.
//!
//! A BPF ring buffer has one consumer position: run one reader per node at a time.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aya::maps::{Map, MapData, RingBuf};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::maps::{EVENTS_MAP, Verdict, addr16_from_wire, direction_from_byte, port_from_wire};
use super::pin_dir;
use ward_engine::Direction;

/// One `struct verdict_event`: a drop, or the first packet of a newly allowed connection
/// (per direction). Addresses and ports are kept as the datapath wrote them (network
/// order); the accessors convert.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VerdictEvent {
    ts_ns: u64,
    ep_id: u32,
    src_identity: u32,
    dst_identity: u32,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    direction: u8,
    verdict: u8,
    family: u8,
    rule_id: u32,
}

impl VerdictEvent {
    /// Size of the record in the ring buffer.
    pub const SIZE: usize = 64;

    /// Decodes one ring-buffer record; `None` when it is too short.
    pub fn from_bytes(b: &[u8]) -> Option<VerdictEvent> {
        if b.len() < Self::SIZE {
            return None;
        }
        let u64_at = |o: usize| {
            b.get(o..o + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        let u32_at = |o: usize| {
            b.get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let addr_at = |o: usize| b.get(o..o + 16).and_then(|s| s.try_into().ok());
        let u16_at = |o: usize| {
            b.get(o..o + 2)
                .and_then(|s| s.try_into().ok())
                .map(u16::from_ne_bytes)
        };
        Some(VerdictEvent {
            ts_ns: u64_at(0)?,
            ep_id: u32_at(8)?,
            src_identity: u32_at(12)?,
            dst_identity: u32_at(16)?,
            saddr: addr_at(20)?,
            daddr: addr_at(36)?,
            sport: u16_at(52)?,
            dport: u16_at(54)?,
            proto: *b.get(56)?,
            direction: *b.get(57)?,
            verdict: *b.get(58)?,
            family: *b.get(59)?,
            rule_id: u32_at(60)?,
        })
    }

    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the packet was seen.
    pub fn ts_ns(&self) -> u64 {
        self.ts_ns
    }

    /// The local endpoint (0: an interface without endpoint entry).
    pub fn ep_id(&self) -> u32 {
        self.ep_id
    }

    /// Identity of the sender (the endpoint's own for egress, the ipcache's for ingress).
    pub fn src_identity(&self) -> u32 {
        self.src_identity
    }

    /// Identity of the receiver (the ipcache's for egress, the endpoint's own for ingress).
    pub fn dst_identity(&self) -> u32 {
        self.dst_identity
    }

    /// Identity of the remote side (what the policy was looked up with).
    pub fn remote_identity(&self) -> u32 {
        match self.direction() {
            Direction::Egress => self.dst_identity,
            Direction::Ingress => self.src_identity,
        }
    }

    /// Source address.
    pub fn saddr(&self) -> IpAddr {
        addr16_from_wire(self.saddr, self.family)
    }

    /// Destination address.
    pub fn daddr(&self) -> IpAddr {
        addr16_from_wire(self.daddr, self.family)
    }

    /// Source port (ICMP and ICMPv6: the echo identifier, or 0).
    pub fn sport(&self) -> u16 {
        port_from_wire(self.sport)
    }

    /// Destination port (ICMP and ICMPv6: the type), what the policy was looked up with.
    pub fn dport(&self) -> u16 {
        port_from_wire(self.dport)
    }

    /// IP protocol.
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// Direction from the endpoint's point of view.
    pub fn direction(&self) -> Direction {
        direction_from_byte(self.direction)
    }

    /// The verdict (`None` for a byte this build does not know).
    pub fn verdict(&self) -> Option<Verdict> {
        Verdict::from_u8(self.verdict)
    }

    /// The deciding rule: the deny for `Denied`, the allow for `Allowed`, 0 for default deny.
    pub fn rule_id(&self) -> u32 {
        self.rule_id
    }
}

impl fmt::Display for VerdictEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            1 => "ICMP".to_owned(),
            6 => "TCP".to_owned(),
            17 => "UDP".to_owned(),
            58 => "ICMPv6".to_owned(),
            p => format!("proto {p}"),
        };
        let verdict = self
            .verdict()
            .map_or_else(|| format!("verdict {}", self.verdict), |v| v.to_string());
        write!(
            f,
            "ep {} {} {} (id {}) -> {} (id {}) {proto} {verdict}",
            self.ep_id,
            self.direction(),
            SocketAddr::new(self.saddr(), self.sport()),
            self.src_identity,
            SocketAddr::new(self.daddr(), self.dport()),
            self.dst_identity,
        )?;
        if self.rule_id != 0 {
            write!(f, " rule {}", self.rule_id)?;
        }
        Ok(())
    }
}

/// Reads verdict events from a node's pinned `ward_events` ring buffer.
///
/// A reader sees the events that happen while it is open, and none from before: the ring is
/// shared by every reader the node ever had, and what an earlier reader left unread (or what
/// happened while nobody read) belongs to no one watching now.
pub struct EventReader {
    ring: RingBuf<MapData>,
    poll_fd: OwnedFd,
    path: PathBuf,
    /// `CLOCK_MONOTONIC` (the programs' `bpf_ktime_get_ns`) when the reader was opened.
    opened_ns: u64,
}

impl fmt::Debug for EventReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// Opens `<PIN_ROOT>/<node>/ward_events`.
    pub fn open(node: &str) -> Result<EventReader> {
        EventReader::open_path(&pin_dir(node)?.join(EVENTS_MAP))
    }

    /// Opens a pinned ring buffer at `path`.
    pub fn open_path(path: &Path) -> Result<EventReader> {
        let data = MapData::from_pin(path).with_context(|| {
            format!("opening the event ring buffer {} (is the node's datapath loaded, and are you root?)", path.display())
        })?;
        // Readiness is a property of the ring, not of the descriptor: a second descriptor
        // of the same map can be polled while aya owns the first.
        let poll_fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the ring buffer descriptor")?;
        let ring = RingBuf::try_from(Map::RingBuf(data))
            .with_context(|| format!("{} is not a BPF ring buffer", path.display()))?;
        Ok(EventReader {
            ring,
            poll_fd,
            path: path.to_owned(),
            opened_ns: monotonic_ns(),
        })
    }

    /// The next event already in the ring, without waiting. Records that do not decode, and
    /// events from before the reader was opened, are skipped.
    pub fn try_next(&mut self) -> Option<VerdictEvent> {
        loop {
            let item = self.ring.next()?;
            if let Some(event) = VerdictEvent::from_bytes(&item)
                && event.ts_ns() >= self.opened_ns
            {
                return Some(event);
            }
        }
    }

    /// The next event, waiting up to `timeout` for one; `Ok(None)` on timeout.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<VerdictEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.try_next() {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ts = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.poll_fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("polling {}", self.path.display()));
                }
            }
        }
    }

    /// Every event already in the ring.
    pub fn drain(&mut self) -> Vec<VerdictEvent> {
        std::iter::from_fn(|| self.try_next()).collect()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of the programs' `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn decodes_a_record() {
        let mut b = vec![0u8; VerdictEvent::SIZE];
        b[0..8].copy_from_slice(&123u64.to_ne_bytes());
        b[8..12].copy_from_slice(&7u32.to_ne_bytes());
        b[12..16].copy_from_slice(&256u32.to_ne_bytes());
        b[16..20].copy_from_slice(&257u32.to_ne_bytes());
        b[20..24].copy_from_slice(&[10, 0, 0, 1]);
        b[36..40].copy_from_slice(&[10, 0, 0, 2]);
        b[52..54].copy_from_slice(&40000u16.to_be_bytes());
        b[54..56].copy_from_slice(&80u16.to_be_bytes());
        b[56] = 6;
        b[57] = 1;
        b[58] = 1;
        b[59] = 4;
        b[60..64].copy_from_slice(&99u32.to_ne_bytes());
        let e = VerdictEvent::from_bytes(&b).expect("64 bytes decode");
        assert_eq!(e.ts_ns(), 123);
        assert_eq!(e.ep_id(), 7);
        assert_eq!(
            (e.src_identity(), e.dst_identity(), e.remote_identity()),
            (256, 257, 257)
        );
        assert_eq!(e.saddr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(e.daddr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((e.sport(), e.dport(), e.proto()), (40000, 80, 6));
        assert_eq!(e.direction(), Direction::Egress);
        assert_eq!(e.verdict(), Some(Verdict::Denied));
        assert_eq!(e.rule_id(), 99);
        assert_eq!(
            e.to_string(),
            "ep 7 egress 10.0.0.1:40000 (id 256) -> 10.0.0.2:80 (id 257) TCP denied rule 99"
        );
        assert!(VerdictEvent::from_bytes(&b[..63]).is_none());
        assert_eq!(size_of::<VerdictEvent>(), VerdictEvent::SIZE);
    }

    #[test]
    fn decodes_an_ipv6_record() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) = (
            "fd00:10::2".parse().expect("an address"),
            "2001:db8::1".parse().expect("an address"),
        );
        let mut b = vec![0u8; VerdictEvent::SIZE];
        b[20..36].copy_from_slice(&src.octets());
        b[36..52].copy_from_slice(&dst.octets());
        b[52..54].copy_from_slice(&7u16.to_be_bytes());
        b[54..56].copy_from_slice(&128u16.to_be_bytes());
        b[56] = 58;
        b[57] = 1;
        b[58] = 2;
        b[59] = 6;
        let e = VerdictEvent::from_bytes(&b).expect("64 bytes decode");
        assert_eq!((e.saddr(), e.daddr()), (IpAddr::V6(src), IpAddr::V6(dst)));
        assert_eq!(
            e.to_string(),
            "ep 0 egress [fd00:10::2]:7 (id 0) -> [2001:db8::1]:128 (id 0) ICMPv6 default-deny"
        );
    }
}
