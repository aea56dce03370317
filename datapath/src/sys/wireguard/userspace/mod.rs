//! ward's userspace WireGuard device, for kernels without the WireGuard module: a TUN
//! interface and a pair of UDP sockets on the WireGuard port, with the protocol from gotatun
//! (`peers`).
//!
//! Each direction has two lanes (`lanes`), so a sparse flow (a ping-pong, a request, a
//! stream's ACKs) does not wait behind a bulk stream in the device's queues (up to the fast
//! lane's budget); a flow's packets stay in order. Five threads:
//! - **TUN reader** (`wg-tun`, real-time priority): reads the TUN with `IFF_VNET_HDR` and TSO
//!   on, so one read returns up to 64 KB of one TCP flow, split into segments (tun-rs, as
//!   wireguard-go does), as soon as there is something to read. A sparse flow's read is
//!   encrypted and sent at once from the fast socket (marked DSCP EF); a bulk read goes to
//!   the encrypting thread through a short backlog.
//! - **encrypting** (`wg-encrypt`): encrypts the bulk reads for their peers and sends them
//!   with UDP segmentation offload: one system call for the 64 KB (`udp`).
//! - **bulk receiver** (`wg-udp`): receives up to 32 batches of datagrams per `recvmmsg`,
//!   each batch coalesced by the kernel (UDP GRO); answers handshakes, decrypts data and
//!   writes it to the TUN, TCP segments (and same-size UDP datagrams) of one flow coalesced
//!   into one write (tun-rs's GRO).
//! - **fast receiver** (`wg-fast`, real-time priority): the same for the datagrams that
//!   arrived marked, which the socket pair steers to the fast socket. The two real-time
//!   threads each do at most a budget of work per 10 ms, then sleep to the window's end.
//! - **timers**: the protocol's retries, rekeying and keepalives, every 250 ms.
//!
//! The device installs no signal handlers and starts a handshake only as `peers` decides.
//! Dropping it stops the threads and closes the TUN, which removes the interface.
//!
//! It runs in a process of its own, so that it outlives the agent ([`process`], the device
//! side of the [`control`] socket; [`Remote`], the agent's): an agent that restarts attaches to
//! the running device and its sessions.

pub mod control;
mod lanes;
mod peers;
pub mod process;
mod remote;
mod udp;

pub use process::serve;
pub use remote::Remote;

use anyhow::{Context, Result};
use bytes::BytesMut;
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use lanes::{Budget, Classifier, Lane};
use peers::{NetOut, Peers};
use rustix::event::PollFlags;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tun_rs::{DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};
use udp::{RECV_BATCH, Udp};

use super::PeerSpec;

/// How often the loops look at the stop flag, and the timers run.
const TICK: Duration = Duration::from_millis(250);
/// The TUN interface's queue, in packets (the kernel's default is 500). With TSO each may be
/// a 64 KB segment, and the queue never pushes back on the sender (the TUN driver detaches
/// packets from their socket), so a long one is a standing delay for everything behind a bulk
/// stream; a short one drops instead, and the stream's TCP backs off.
const TUN_QUEUE: u32 = 64;
/// A receive buffer: up to 64 datagrams coalesced by UDP GRO.
const RECV_BUFFER: usize = 65536;
/// Receive buffers of the fast lane's socket (sparse flows: a few datagrams at a time).
const FAST_RECV_BATCH: usize = 4;
/// How many decrypted packets one coalescing pass over the TUN takes (wireguard-go's batch):
/// enough for a 64 KB segment of one flow twice over.
const TUN_WRITE_BATCH: usize = 128;
/// A TUN write buffer's capacity: a packet coalesced up to 64 KB and twice the vnet header's
/// room, as tun-rs's GRO table asks before it coalesces into a buffer (wireguard-go's rule).
const TUN_WRITE_CAPACITY: usize = 2 * VIRTIO_NET_HDR_LEN + 65535;

/// The TUN interface and UDP socket of a device, opened in its network namespace.
pub struct Sockets {
    tun: SyncDevice,
    udp: Udp,
    fast: Udp,
}

impl Sockets {
    /// Opens TUN `ifname` (vnet header, TCP segmentation offload) and a UDP socket on `port`,
    /// in the calling thread's network namespace.
    pub fn open(ifname: &str, port: u16) -> Result<Sockets> {
        let tun = DeviceBuilder::new()
            .name(ifname)
            .offload(true)
            .tx_queue_len(TUN_QUEUE)
            .build_sync()
            .with_context(|| {
                format!("cannot create TUN interface {ifname} (is /dev/net/tun there?)")
            })?;
        tun.set_nonblocking(true)
            .with_context(|| format!("cannot make TUN interface {ifname} non-blocking"))?;
        let (udp, fast) = udp::pair(port)
            .with_context(|| format!("cannot listen on UDP port {port} for {ifname}"))?;
        let udp = Udp::new(udp).context("cannot set up the WireGuard UDP socket")?;
        let fast = Udp::new(fast).context("cannot set up the WireGuard UDP socket")?;
        Ok(Sockets { tun, udp, fast })
    }
}

struct Shared {
    peers: RwLock<Peers>,
    tun: SyncDevice,
    udp: Udp,
    /// The fast lane's socket ([`lanes`]).
    fast: Udp,
    backlog: Mutex<Backlog>,
    bulk_ready: Condvar,
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
    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        self.backlog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn send(&self, out: &mut NetOut, scratch: &mut Vec<u8>) {
        self.udp.send(out, scratch);
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
            fast: sockets.fast,
            backlog: Mutex::default(),
            bulk_ready: Condvar::new(),
            mtu: usize::try_from(mtu).unwrap_or(1500).max(1280),
            stop: AtomicBool::new(false),
        });
        let loops: [(&str, Loop); 5] = [
            ("wg-tun", tun_loop),
            ("wg-encrypt", encrypt_loop),
            ("wg-udp", udp_loop),
            ("wg-fast", fast_loop),
            ("wg-timers", timer_loop),
        ];
        let mut threads = Vec::new();
        for (name, f) in loops {
            let s = Arc::clone(&shared);
            match std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || f(&s))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // The threads already started would keep the TUN and sockets open.
                    shared.stop.store(true, Ordering::Relaxed);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e).context("cannot start the WireGuard device's threads");
                }
            }
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
        self.shared.send(&mut out, &mut Vec::new());
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

/// One TUN read: up to 64 KB of one flow, split into packets.
struct Read {
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    n: usize,
    flow: u64,
}

impl Read {
    fn new(mtu: usize) -> Read {
        Read {
            bufs: vec![vec![0u8; mtu + 64]; IDEAL_BATCH_SIZE],
            sizes: vec![0; IDEAL_BATCH_SIZE],
            n: 0,
            flow: 0,
        }
    }

    fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.sizes)
            .take(self.n)
            .map(|(b, n)| &b[..*n])
    }
}

/// Bulk reads handed from the TUN reader to the encrypting thread.
#[derive(Default)]
struct Backlog {
    waiting: VecDeque<Read>,
    /// The flow of the read being encrypted (its packets are not sent yet).
    encrypting: Option<u64>,
    /// Reads done with, for the reader to fill again (no allocation per read).
    free: Vec<Read>,
}

/// TUN → network, the reader of the two lanes ([`lanes`]): reads the TUN as soon as it has
/// something, encrypts and sends a sparse flow's read at once from the fast socket, and
/// hands bulk reads to [`encrypt_loop`] through a backlog of [`lanes::BACKLOG`] reads
/// (dropping what overflows it, as the TUN's ring would). It does little work per read, so
/// it keeps the ring empty and is quick to wake.
fn tun_loop(s: &Shared) {
    lanes::run_urgent("wg-tun");
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65535];
    let mut classifier = Classifier::default();
    let mut out = NetOut::new();
    let mut spare: Option<Read> = None;
    let mut reads = Budget::new(lanes::READ_BUDGET);
    let mut scratch = Vec::new();
    while !s.stopped() {
        if !udp::wait(&s.tun, PollFlags::IN, TICK) {
            continue;
        }
        while !s.stopped() {
            if !reads.take_or_sleep(1) {
                // The window's reads are spent (the ring holds what comes meanwhile).
                break;
            }
            let mut read = spare
                .take()
                .or_else(|| s.backlog().free.pop())
                .unwrap_or_else(|| Read::new(s.mtu));
            match s
                .tun
                .recv_multiple(&mut original, &mut read.bufs, &mut read.sizes, 0)
            {
                Ok(n) => read.n = n,
                Err(e) => {
                    spare = Some(read);
                    if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                        // No busy loop when the TUN keeps failing (its interface deleted).
                        tracing::debug!("WireGuard TUN read: {e}");
                        std::thread::sleep(TICK);
                    }
                    break;
                }
            }
            let Some(first) = read.packets().next() else {
                spare = Some(read);
                continue;
            };
            let bytes = read.sizes[..read.n].iter().sum();
            let now = Instant::now();
            let mut backlog = s.backlog();
            let (lane, flow) = classifier.classify(first, read.n, bytes, now, |f| {
                backlog.encrypting == Some(f) || backlog.waiting.iter().any(|r| r.flow == f)
            });
            read.flow = flow;
            match lane {
                Lane::Fast => {
                    drop(backlog);
                    encrypt(s, &read, &mut out);
                    if out.len() > read.n {
                        // The peer's queue came with it (a session just became usable):
                        // packets of any flow, in order, so all of them through the bulk lane.
                        s.send(&mut out, &mut scratch);
                    } else {
                        s.fast.send_each(&mut out);
                    }
                    spare = Some(read);
                }
                Lane::Bulk if backlog.waiting.len() < lanes::BACKLOG => {
                    backlog.waiting.push_back(read);
                    drop(backlog);
                    s.bulk_ready.notify_one();
                }
                // Full: dropped, as the TUN's ring drops when the device falls behind.
                Lane::Bulk => spare = Some(read),
            }
        }
    }
    s.bulk_ready.notify_all();
}

/// TUN → network, the bulk lane: encrypts the reads [`tun_loop`] handed over, in order, and
/// sends them with UDP segmentation offload from the bulk socket.
fn encrypt_loop(s: &Shared) {
    let mut out = NetOut::new();
    let mut scratch = Vec::new();
    let mut done: Option<Read> = None;
    while !s.stopped() {
        let read = {
            let mut backlog = s.backlog();
            backlog.encrypting = None;
            backlog.free.extend(done.take());
            while backlog.waiting.is_empty() && !s.stopped() {
                backlog = s
                    .bulk_ready
                    .wait_timeout(backlog, TICK)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            let Some(read) = backlog.waiting.pop_front() else {
                continue;
            };
            backlog.encrypting = Some(read.flow);
            read
        };
        encrypt(s, &read, &mut out);
        s.send(&mut out, &mut scratch);
        done = Some(read);
    }
}

/// Encrypts a TUN read's packets for their peers into `out`.
fn encrypt(s: &Shared, read: &Read, out: &mut NetOut) {
    let peers = s.peers();
    for p in read.packets() {
        peers.outgoing(p, out);
    }
}

/// Network → TUN for the bulk socket (everything not marked for the fast lane).
fn udp_loop(s: &Shared) {
    receive_loop(s, &s.udp, RECV_BATCH, None);
}

/// Receives from `udp` in batches of `batch` buffers, answers handshakes, decrypts data and
/// writes it to the TUN; with a `budget` (bytes per window), sleeps to the window's end once
/// it is spent.
fn receive_loop(s: &Shared, udp: &Udp, batch: usize, mut budget: Option<Budget>) {
    let mut bufs = vec![vec![0u8; RECV_BUFFER]; batch];
    let mut meta = vec![quinn_udp::RecvMeta::default(); batch];
    let mut out = NetOut::new();
    let mut scratch = Vec::new();
    let mut decrypted = Vec::new();
    let mut writes: Vec<BytesMut> = Vec::new();
    let mut gro = GROTable::default();
    while !s.stopped() {
        if !udp.readable(TICK) {
            continue;
        }
        let n = match udp.recv(&mut bufs, &mut meta) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                continue;
            }
            Err(e) => {
                tracing::debug!("WireGuard UDP receive: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        };
        {
            let peers = s.peers();
            for (buf, m) in bufs.iter().zip(&meta).take(n) {
                for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                    peers.incoming(m.addr, datagram, &mut out, &mut decrypted);
                    // Written as each pass fills, not after the whole receive: a packet
                    // waits for at most one pass's decryption, not for megabytes of it.
                    if decrypted.len() >= TUN_WRITE_BATCH {
                        write_tun(s, &mut decrypted, &mut writes, &mut gro);
                    }
                }
            }
        }
        s.send(&mut out, &mut scratch);
        write_tun(s, &mut decrypted, &mut writes, &mut gro);
        if let Some(b) = budget.as_mut() {
            b.take_or_sleep(meta.iter().take(n).map(|m| m.len).sum());
        }
    }
}

/// Writes decrypted packets to the TUN, each behind room for the vnet header, coalescing
/// what can be coalesced (TCP segments, and same-size UDP datagrams, of one flow into one
/// write of up to 64 KB), in passes of [`TUN_WRITE_BATCH`] packets through `pool`'s buffers
/// (kept across calls: the device allocates none per packet).
fn write_tun(
    s: &Shared,
    decrypted: &mut Vec<gotatun::packet::Packet>,
    pool: &mut Vec<BytesMut>,
    gro: &mut GROTable,
) {
    for chunk in decrypted.chunks(TUN_WRITE_BATCH) {
        while pool.len() < chunk.len() {
            pool.push(BytesMut::with_capacity(TUN_WRITE_CAPACITY));
        }
        let writes = &mut pool[..chunk.len()];
        for (b, p) in writes.iter_mut().zip(chunk) {
            b.clear();
            b.resize(VIRTIO_NET_HDR_LEN, 0);
            b.extend_from_slice(p.as_ref());
        }
        if let Err(e) = s.tun.send_multiple(gro, writes, VIRTIO_NET_HDR_LEN) {
            tracing::debug!("WireGuard TUN write: {e}");
        }
    }
    decrypted.clear();
}

/// Network → TUN for the fast lane: the datagrams that arrived marked (a sparse flow's),
/// decrypted and written as soon as they are there, not behind the bulk socket's buffer.
fn fast_loop(s: &Shared) {
    lanes::run_urgent("wg-fast");
    // The sending devices' fast lanes carry no more than their budget: more is a flood.
    receive_loop(
        s,
        &s.fast,
        FAST_RECV_BATCH,
        Some(Budget::new(2 * lanes::FAST_BUDGET)),
    );
}

fn timer_loop(s: &Shared) {
    let (mut out, mut scratch) = (NetOut::new(), Vec::new());
    while !s.stopped() {
        std::thread::sleep(TICK);
        s.peers().tick(&mut out);
        s.send(&mut out, &mut scratch);
    }
}
