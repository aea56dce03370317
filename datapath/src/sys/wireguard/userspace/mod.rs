//! ward's userspace WireGuard device, for kernels without the WireGuard module: a TUN
//! interface and a UDP socket, with the protocol from gotatun ([`peers`]).
//!
//! Three threads, so each direction keeps its packets in order:
//! - **TUN → network**: reads the TUN with `IFF_VNET_HDR` and TSO on, so one read returns up
//!   to 64 KB of one TCP flow, split into segments (tun-rs, as wireguard-go does); encrypts
//!   each for its peer and sends them.
//! - **network → TUN**: receives datagrams, answers handshakes, decrypts data and writes it
//!   to the TUN, coalescing TCP segments of one flow into one write (GRO).
//! - **timers**: the protocol's retries, rekeying and keepalives, every 250 ms.
//!
//! The device installs no signal handlers and starts a handshake only as [`peers`] decides.
//! Dropping it stops the threads and closes the TUN, which removes the interface.

mod peers;

use anyhow::{Context, Result};
use bytes::BytesMut;
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use peers::{NetOut, Peers};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tun_rs::{DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

use super::PeerSpec;

/// How often the loops look at the stop flag, and the timers run.
const TICK: Duration = Duration::from_millis(250);
/// The largest datagram the device receives.
const MAX_DATAGRAM: usize = 65536;

/// The TUN interface and UDP socket of a device, opened in its network namespace.
pub struct Sockets {
    tun: SyncDevice,
    udp: UdpSocket,
}

impl Sockets {
    /// Opens TUN `ifname` (vnet header, TCP segmentation offload) and a UDP socket on `port`,
    /// in the calling thread's network namespace.
    pub fn open(ifname: &str, port: u16) -> Result<Sockets> {
        let tun = DeviceBuilder::new()
            .name(ifname)
            .offload(true)
            .build_sync()
            .with_context(|| {
                format!("cannot create TUN interface {ifname} (is /dev/net/tun there?)")
            })?;
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
            .with_context(|| format!("cannot listen on UDP port {port} for {ifname}"))?;
        udp.set_read_timeout(Some(TICK))?;
        Ok(Sockets { tun, udp })
    }
}

struct Shared {
    peers: RwLock<Peers>,
    tun: SyncDevice,
    udp: UdpSocket,
    mtu: usize,
    stop: AtomicBool,
}

impl Shared {
    fn peers(&self) -> RwLockReadGuard<'_, Peers> {
        self.peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn peers_mut(&self) -> RwLockWriteGuard<'_, Peers> {
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn send(&self, out: &mut NetOut) {
        for (to, msg) in out.drain(..) {
            if let Err(e) = self.udp.send_to(msg.as_ref(), to) {
                tracing::trace!("WireGuard send to {to}: {e}");
            }
        }
    }
}

/// One of the device's threads.
type Loop = fn(&Shared);

/// A running userspace WireGuard device.
pub struct Userspace {
    shared: Arc<Shared>,
    port: u16,
    threads: Vec<JoinHandle<()>>,
}

impl Userspace {
    /// Starts the device on `sockets` with private key `secret`, for packets up to `mtu`.
    pub fn start(sockets: Sockets, port: u16, secret: [u8; 32], mtu: u32) -> Result<Userspace> {
        let shared = Arc::new(Shared {
            peers: RwLock::new(Peers::new(secret)),
            tun: sockets.tun,
            udp: sockets.udp,
            mtu: usize::try_from(mtu).unwrap_or(1500).max(1280),
            stop: AtomicBool::new(false),
        });
        let loops: [(&str, Loop); 3] = [
            ("wg-tun", tun_loop),
            ("wg-udp", udp_loop),
            ("wg-timers", timer_loop),
        ];
        let mut threads = Vec::new();
        for (name, f) in loops {
            let s = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn(move || f(&s))
                    .context("cannot start the WireGuard device's threads")?,
            );
        }
        Ok(Userspace {
            shared,
            port,
            threads,
        })
    }

    /// Switches to `secret`; sessions and handshakes in progress end, peers stay.
    pub fn set_private_key(&self, secret: [u8; 32]) {
        self.shared.peers_mut().set_private_key(secret);
    }

    /// Adds a peer the device does not have.
    pub fn add_peer(&self, spec: &PeerSpec) -> Result<()> {
        self.shared.peers_mut().add(spec)
    }

    /// Removes a peer (nothing when it is not there).
    pub fn remove_peer(&self, key: &Key) {
        self.shared.peers_mut().remove(key);
    }

    /// Peers with handshakes and byte counts.
    pub fn read(&self) -> Host {
        self.shared.peers().host(self.port)
    }

    /// Starts handshakes now towards the peers of `targets` that have no session.
    pub fn initiate(&self, targets: &[Ipv4Addr]) {
        let mut out = NetOut::new();
        self.shared.peers().initiate(targets, &mut out);
        self.shared.send(&mut out);
    }
}

impl Drop for Userspace {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Whether the TUN has something to read within [`TICK`].
fn tun_readable(tun: &SyncDevice) -> bool {
    let mut fds = [PollFd::new(tun, PollFlags::IN)];
    let timeout = Timespec::try_from(TICK).ok();
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

fn tun_loop(s: &Shared) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65535];
    let mut bufs = vec![vec![0u8; s.mtu + 64]; IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut out = NetOut::new();
    while !s.stopped() {
        if !tun_readable(&s.tun) {
            continue;
        }
        let n = match s.tun.recv_multiple(&mut original, &mut bufs, &mut sizes, 0) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                continue;
            }
            Err(e) => {
                tracing::debug!("WireGuard TUN read: {e}");
                continue;
            }
        };
        {
            let peers = s.peers();
            for (buf, size) in bufs.iter().zip(&sizes).take(n) {
                peers.outgoing(&buf[..*size], &mut out);
            }
        }
        s.send(&mut out);
    }
}

fn udp_loop(s: &Shared) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = NetOut::new();
    let mut decrypted = Vec::new();
    let mut writes: Vec<BytesMut> = Vec::new();
    let mut gro = GROTable::default();
    while !s.stopped() {
        let (n, from): (usize, SocketAddr) = match s.udp.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!("WireGuard UDP receive: {e}");
                continue;
            }
        };
        s.peers()
            .incoming(from, &buf[..n], &mut out, &mut decrypted);
        s.send(&mut out);
        write_tun(s, &mut decrypted, &mut writes, &mut gro);
    }
}

/// Writes decrypted packets to the TUN, each behind room for the vnet header, coalescing
/// what can be coalesced.
fn write_tun(
    s: &Shared,
    decrypted: &mut Vec<gotatun::packet::Packet>,
    writes: &mut Vec<BytesMut>,
    gro: &mut GROTable,
) {
    if decrypted.is_empty() {
        return;
    }
    writes.clear();
    for p in decrypted.drain(..) {
        let mut b = BytesMut::with_capacity(VIRTIO_NET_HDR_LEN + p.as_ref().len() + 64);
        b.resize(VIRTIO_NET_HDR_LEN, 0);
        b.extend_from_slice(p.as_ref());
        writes.push(b);
    }
    if let Err(e) = s.tun.send_multiple(gro, writes, VIRTIO_NET_HDR_LEN) {
        tracing::debug!("WireGuard TUN write: {e}");
    }
}

fn timer_loop(s: &Shared) {
    let mut out = NetOut::new();
    while !s.stopped() {
        std::thread::sleep(TICK);
        s.peers().tick(&mut out);
        s.send(&mut out);
    }
}
