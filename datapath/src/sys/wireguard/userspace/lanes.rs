//! The device's two lanes, so a sparse flow (a ping-pong, a request, DNS, a bulk stream's
//! ACKs) does not wait behind a bulk stream in the device's queues:
//!
//! - **Sending**: the TUN is read as soon as it has something (its ring stays near empty), and
//!   each read is classified by its flow ([`Classifier`]). A read of a sparse flow is
//!   encrypted and sent at once, from the fast socket; a bulk read waits in a short backlog
//!   ([`BACKLOG`]; what overflows it is dropped, as a full ring would, and the stream's TCP
//!   backs off).
//! - **Receiving**: the fast socket sends with DSCP EF, and the receiving device's socket pair
//!   (two sockets on the WireGuard port, `SO_REUSEPORT`) steers data messages marked EF to its
//!   own fast socket, which a thread of its own decrypts at once ([`super::udp::pair`]).
//!   Without the lanes, a ping decrypted behind a bulk stream's whole socket buffer.
//!
//! Order is kept per flow, not per peer: every read that goes to the bulk lane holds its flow
//! there for [`BULK_HOLD`], so a flow switches from bulk to fast only after that long with
//! nothing in the bulk lane, long after its last bulk packet left both devices' queues.
//!
//! The two threads that pick up sparse flows run at real-time priority ([`run_urgent`]), so
//! their work is bounded: the fast lane carries at most [`FAST_BUDGET`] per [`WINDOW`] (more
//! goes to the bulk lane), and each thread does at most a window's budget of work before it
//! sleeps to the window's end ([`Budget`]).
//!
//! The wire stays plain WireGuard on the one port; a receiver that does not steer (kernel
//! WireGuard) reads both lanes from its one socket. An underlay that clears or rewrites DSCP
//! only turns the receiving side's lane off (the datagrams then arrive on the bulk socket).

use std::time::{Duration, Instant};

/// A flow that sent more than this in one [`WINDOW`] is bulk (about 26 Mbit/s).
const BULK_BYTES: usize = 32 << 10;
/// The window in which a flow's bytes are counted.
const WINDOW: Duration = Duration::from_millis(10);
/// How long a flow stays bulk after its last bulk read: longer than any queue a bulk packet
/// can wait in (this backlog, the receiving device's socket buffer), so no packet of a flow
/// that turns sparse overtakes one of its own.
const BULK_HOLD: Duration = Duration::from_millis(50);
/// Buckets of the flow table (flows hashed into them with a key of the classifier's own;
/// flows sharing a bucket share a class, which can only make a sparse flow bulk, never the
/// other way round).
const BUCKETS: usize = 1024;
/// What the fast lane carries in one [`WINDOW`] at most, all flows together (about
/// 100 Mbit/s); beyond it reads go to the bulk lane. A fast-lane thread does no more than
/// this per window.
pub const FAST_BUDGET: usize = 128 << 10;
/// TUN reads a reader does per [`WINDOW`] at most (at 64 KB each, about 50 Gbit/s: far more
/// than the device encrypts), before it sleeps to the window's end.
pub const READ_BUDGET: usize = 1024;
/// TUN reads (each up to 64 KB of one flow) waiting to be encrypted; about 1 ms of a
/// 4 Gbit/s stream.
pub const BACKLOG: usize = 8;

/// Which lane a read takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Encrypted now, sent marked from the fast socket.
    Fast,
    /// Through the backlog, sent from the bulk socket.
    Bulk,
}

#[derive(Clone)]
struct Bucket {
    /// The flows' bytes in the current window, up to [`BULK_BYTES`].
    bytes: Budget,
    bulk_until: Option<Instant>,
}

/// Sorts TUN reads into lanes by their flow's recent traffic.
pub struct Classifier {
    buckets: Vec<Bucket>,
    /// The flow hash's key, random per classifier, so a pod cannot aim its flows at another
    /// flow's bucket.
    hasher: std::hash::RandomState,
    /// The fast lane's bytes in the current window.
    fast: Budget,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            buckets: vec![
                Bucket {
                    bytes: Budget::new(BULK_BYTES),
                    bulk_until: None,
                };
                BUCKETS
            ],
            hasher: std::hash::RandomState::new(),
            fast: Budget::new(FAST_BUDGET),
        }
    }
}

impl Classifier {
    /// The lane of a TUN read of `segments` packets and `bytes` bytes whose first packet is
    /// `first`, at `now`. `waiting` tells whether a read of the same flow (same
    /// [`flow_key`]) is still in the backlog: then it goes behind that one.
    pub fn classify(
        &mut self,
        first: &[u8],
        segments: usize,
        bytes: usize,
        now: Instant,
        waiting: impl Fn(u64) -> bool,
    ) -> (Lane, u64) {
        let key = flow_key(&self.hasher, first);
        let b = &mut self.buckets[bucket(key)];
        let over = !b.bytes.take(bytes, now);
        let bulk = segments > 1
            || over
            || b.bulk_until.is_some_and(|u| now < u)
            || waiting(key)
            || !self.fast.take(bytes, now);
        if bulk {
            // Every read in the bulk lane holds its flow there: a later packet of the flow must
            // not overtake it through the fast lane.
            b.bulk_until = Some(now + BULK_HOLD);
        }
        (if bulk { Lane::Bulk } else { Lane::Fast }, key)
    }
}

fn bucket(key: u64) -> usize {
    // The key is a hash already; its low bits pick the bucket.
    (key as usize) % BUCKETS
}

/// A hash (keyed by `hasher`) of an IP packet's flow: addresses, protocol and (TCP, UDP,
/// SCTP) ports; an IPv4 fragment's without ports (only the first carries them). Anything
/// that does not parse is one flow of its own.
pub fn flow_key(hasher: &impl std::hash::BuildHasher, packet: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = hasher.build_hasher();
    let (proto, l4) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            packet[12..20].hash(&mut h);
            let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
            (packet[9], packet.get(ihl..).filter(|_| !fragment))
        }
        Some(6) if packet.len() >= 40 => {
            packet[8..40].hash(&mut h);
            (packet[6], packet.get(40..))
        }
        _ => return 0,
    };
    proto.hash(&mut h);
    if matches!(proto, 6 | 17 | 132)
        && let Some(ports) = l4.and_then(|l| l.get(..4))
    {
        ports.hash(&mut h);
    }
    h.finish()
}

/// A budget of work per [`WINDOW`] (bytes, or reads), starting afresh each window.
#[derive(Clone)]
pub struct Budget {
    limit: usize,
    window: Option<Instant>,
    used: usize,
}

impl Budget {
    /// A budget of `limit` per window.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            window: None,
            used: 0,
        }
    }

    /// Takes `amount` at `now`; whether it fitted in this window's budget.
    pub fn take(&mut self, amount: usize, now: Instant) -> bool {
        if self.window.is_none_or(|w| now.duration_since(w) >= WINDOW) {
            self.window = Some(now);
            self.used = 0;
        }
        if self.used.saturating_add(amount) > self.limit {
            return false;
        }
        self.used += amount;
        true
    }

    /// Takes `amount` now; when it does not fit, sleeps to the end of the window (a
    /// real-time thread giving the cores back) and says so.
    pub fn take_or_sleep(&mut self, amount: usize) -> bool {
        let now = Instant::now();
        let fits = self.take(amount, now);
        if !fits {
            std::thread::sleep(self.rest(now));
        }
        fits
    }

    /// How long until the current window ends (zero when it has).
    pub fn rest(&self, now: Instant) -> Duration {
        self.window.map_or(Duration::ZERO, |w| {
            (w + WINDOW).saturating_duration_since(now)
        })
    }
}

/// Runs the calling thread (one that picks up sparse flows) at the lowest real-time priority
/// (SCHED_FIFO 1), so it runs as soon as its packet is there instead of waiting for a core
/// that bulk traffic keeps busy (measured: without it the wake-ups alone cost about 1 ms at
/// the p99 under a bulk stream). Such a thread must bound its own work, since it runs before
/// every normal task: the callers do at most a [`Budget`] per window and then sleep to the
/// window's end. Where the kernel refuses (no CAP_SYS_NICE, or a cgroup without a real-time
/// budget), the thread stays as it is, with a warning.
pub fn run_urgent(name: &str) {
    use thread_priority::unix::{
        RealtimeThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        fifo,
    ) {
        tracing::warn!(
            "WireGuard device thread {name}: cannot run it at real-time priority ({e:?}); sparse flows may wait longer under load"
        );
    }
}

#[cfg(test)]
mod tests;
