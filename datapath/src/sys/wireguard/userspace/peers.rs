//! The peers of ward's userspace WireGuard device: which peer a packet from the TUN goes to,
//! which peer a datagram belongs to, and when the device starts a handshake. The protocol
//! itself (handshakes, sessions, timers, cookies) is gotatun's `Tunn`; this module has no
//! sockets, so the behaviours key rotation depends on are unit-tested here:
//!
//! - **Queued packets go out as soon as the session is confirmed.** A packet for a peer with
//!   no usable session waits in ward's queue (in order); after every datagram from that peer
//!   the queue is flushed as far as the session allows. A responder's session becomes usable
//!   with the initiator's first data packet, which produces nothing for the network, so this
//!   is the only moment its queue can go.
//! - **A responder sends nothing before the initiator confirms the session.** Data that
//!   overtook our handshake response (another thread, a busy core) would reach a peer that
//!   has no session for it yet; until the peer's first data packet it waits in the queue.
//! - **Crossing initiations settle.** Only a packet that finds no session starts a handshake,
//!   and not while an initiation of ours awaits its response ([`REKEY_TIMEOUT`]); answering
//!   the peer's initiation, or flushing the queue, never starts another. The retries after
//!   [`REKEY_TIMEOUT`] are the protocol's timers.
//! - **A key change forgets handshakes begun with the old key**, and the device initiates again
//!   with the next packet.

use crate::sys::wireguard::PeerSpec;
use anyhow::{Result, bail};
use bytes::BytesMut;
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer as HostPeer;
use gotatun::noise::handshake::parse_handshake_anon;
use gotatun::noise::index_table::IndexTable;
use gotatun::noise::rate_limiter::RateLimiter;
use gotatun::noise::{Tunn, TunnResult};
use gotatun::packet::{Packet, WgKind};
use gotatun::x25519::{PublicKey, StaticSecret};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long an initiation of ours waits for its response before another may start
/// (WireGuard's REKEY_TIMEOUT).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets kept per peer while it has no session; more are dropped.
pub const MAX_QUEUE: usize = 1024;
/// Handshakes per second the device answers before it asks for cookies.
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// Datagrams to send: (endpoint, WireGuard message).
pub type NetOut = Vec<(SocketAddr, Packet)>;

/// The device's own key pair and the cookie/rate limiter that goes with it.
struct Keypair {
    secret: StaticSecret,
    public: PublicKey,
    limiter: Arc<RateLimiter>,
}

impl Keypair {
    fn new(secret: [u8; 32]) -> Keypair {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        Keypair {
            secret,
            public,
            limiter,
        }
    }
}

/// One peer: its configuration (fixed: peers are added and removed, never changed) and its
/// state.
struct Entry {
    key: Key,
    allowed: Vec<IpAddrMask>,
    keepalive: Option<u16>,
    state: Mutex<Peer>,
}

impl Entry {
    /// Whether this peer may send from `src` (its own allowed IPs, not the routing table: a
    /// node's old and new key both carry its addresses during a rotation).
    fn allows(&self, src: IpAddr) -> bool {
        self.allowed.iter().any(|m| contains(m, src))
    }

    fn host_peer(&self) -> HostPeer {
        let p = lock(self);
        let (since, tx, rx, _, _) = p.tunn.stats();
        let mut h = HostPeer::new(self.key.clone());
        h.endpoint = Some(p.endpoint);
        h.allowed_ips.clone_from(&self.allowed);
        h.persistent_keepalive_interval = self.keepalive;
        h.last_handshake = since.and_then(|d| SystemTime::now().checked_sub(d));
        h.tx_bytes = tx as u64;
        h.rx_bytes = rx as u64;
        h
    }
}

/// A peer's protocol state (gotatun's `Tunn`), endpoint and ward's queue.
struct Peer {
    endpoint: SocketAddr,
    tunn: Tunn,
    queue: VecDeque<Packet>,
    /// When an initiation of ours was sent that has no session yet.
    initiated: Option<Instant>,
    /// When we answered an initiation whose session the peer has not confirmed yet (with
    /// its first data packet). Until then nothing is sent on it: the peer cannot decrypt
    /// data that overtakes our response.
    answered: Option<Instant>,
}

type PeerRef = Arc<Entry>;

fn lock(p: &Entry) -> MutexGuard<'_, Peer> {
    p.state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Peer {
    /// Sends `packet` on the session, or queues it (behind what is queued already) and starts
    /// a handshake when none of ours is pending.
    fn send(&mut self, packet: Packet, out: &mut NetOut, index: &Indexes, me: &PeerRef) {
        if self.awaits_confirmation() {
            self.enqueue(packet);
            return;
        }
        if self.queue.is_empty() {
            match self.tunn.encapsulate_with_session(packet) {
                Ok(data) => {
                    self.initiated = None;
                    out.push((self.endpoint, data.into()));
                    return;
                }
                Err(packet) => self.enqueue(packet),
            }
        } else {
            self.enqueue(packet);
            self.flush(out);
        }
        if !self.queue.is_empty() {
            self.initiate(out, index, me);
        }
    }

    fn enqueue(&mut self, packet: Packet) {
        if self.queue.len() < MAX_QUEUE {
            self.queue.push_back(packet);
        }
    }

    /// Whether a session we answered for awaits the peer's confirmation (for at most
    /// [`REKEY_TIMEOUT`]).
    fn awaits_confirmation(&self) -> bool {
        self.answered.is_some_and(|t| t.elapsed() < REKEY_TIMEOUT)
    }

    /// Sends queued packets, in order, as far as the current session allows.
    fn flush(&mut self, out: &mut NetOut) {
        if self.awaits_confirmation() {
            return;
        }
        while let Some(packet) = self.queue.pop_front() {
            match self.tunn.encapsulate_with_session(packet) {
                Ok(data) => {
                    self.initiated = None;
                    out.push((self.endpoint, data.into()));
                }
                Err(packet) => {
                    self.queue.push_front(packet);
                    return;
                }
            }
        }
    }

    /// Starts a handshake unless one of ours awaits its response.
    fn initiate(&mut self, out: &mut NetOut, index: &Indexes, me: &PeerRef) {
        if self.initiated.is_some_and(|t| t.elapsed() < REKEY_TIMEOUT) {
            return;
        }
        if let Some(init) = self.tunn.format_handshake_initiation(false) {
            self.initiated = Some(Instant::now());
            self.emit(init.into(), out, index, me);
        }
    }

    /// Queues a message for the network, remembering the index of a handshake of ours.
    fn emit(&mut self, msg: WgKind, out: &mut NetOut, index: &Indexes, me: &PeerRef) {
        let local = match &msg {
            WgKind::HandshakeInit(p) => Some(p.sender_idx.get()),
            WgKind::HandshakeResp(p) => Some(p.sender_idx.get()),
            _ => None,
        };
        if let Some(i) = local {
            index.insert(i, me);
        }
        out.push((self.endpoint, msg.into()));
    }
}

/// Our session indices (sent in our handshake messages) → the peer they belong to.
#[derive(Default)]
struct Indexes(Mutex<HashMap<u32, PeerRef>>);

impl Indexes {
    fn map(&self) -> MutexGuard<'_, HashMap<u32, PeerRef>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn insert(&self, i: u32, peer: &PeerRef) {
        self.map().insert(i, Arc::clone(peer));
    }
    fn get(&self, i: u32) -> Option<PeerRef> {
        self.map().get(&i).cloned()
    }
}

/// The peers of one device. Packet paths take `&self`; configuration takes `&mut self`.
pub struct Peers {
    keys: Keypair,
    index_table: IndexTable,
    /// In the order they were added: for equal prefixes, the later peer takes the traffic.
    list: Vec<PeerRef>,
    index: Indexes,
}

impl Peers {
    /// No peers yet, private key `secret`.
    pub fn new(secret: [u8; 32]) -> Peers {
        Peers {
            keys: Keypair::new(secret),
            index_table: IndexTable::from_os_rng(),
            list: Vec::new(),
            index: Indexes::default(),
        }
    }

    /// Switches to `secret`: every session and every handshake in progress ends (peers and
    /// their queues are kept; the next packet starts a handshake with the new key).
    pub fn set_private_key(&mut self, secret: [u8; 32]) {
        self.keys = Keypair::new(secret);
        for p in &self.list {
            let mut p = lock(p);
            p.tunn.set_static_private(
                self.keys.secret.clone(),
                self.keys.public,
                Arc::clone(&self.keys.limiter),
            );
            p.initiated = None;
            p.answered = None;
        }
        self.index.map().clear();
    }

    /// Adds a peer the device does not have.
    pub fn add(&mut self, spec: &PeerSpec) -> Result<()> {
        if self.find(&spec.key).is_some() {
            bail!("peer {} is configured already", spec.key);
        }
        let tunn = Tunn::new(
            self.keys.secret.clone(),
            PublicKey::from(spec.key.as_array()),
            None,
            spec.keepalive,
            self.index_table.clone(),
            Arc::clone(&self.keys.limiter),
        );
        self.list.push(Arc::new(Entry {
            key: spec.key.clone(),
            allowed: spec.allowed.clone(),
            keepalive: spec.keepalive,
            state: Mutex::new(Peer {
                endpoint: spec.endpoint,
                tunn,
                queue: VecDeque::new(),
                initiated: None,
                answered: None,
            }),
        }));
        Ok(())
    }

    /// Removes the peer with `key` (nothing when it is not there).
    pub fn remove(&mut self, key: &Key) {
        self.list.retain(|p| &p.key != key);
        self.index.map().retain(|_, p| &p.key != key);
    }

    fn find(&self, key: &Key) -> Option<&PeerRef> {
        self.list.iter().find(|p| &p.key == key)
    }

    fn find_public(&self, public: &[u8; 32]) -> Option<&PeerRef> {
        self.list.iter().find(|p| p.key.as_array() == *public)
    }

    /// The peer whose allowed IPs hold `dst` most specifically (the later-added on a tie).
    fn route(&self, dst: IpAddr) -> Option<&PeerRef> {
        let mut best: Option<(u8, &PeerRef)> = None;
        for p in &self.list {
            let cidr = p
                .allowed
                .iter()
                .filter(|m| contains(m, dst))
                .map(|m| m.cidr)
                .max();
            if let Some(c) = cidr
                && best.is_none_or(|(b, _)| c >= b)
            {
                best = Some((c, p));
            }
        }
        best.map(|(_, p)| p)
    }

    /// An IP packet from the TUN: encrypted for its peer, or queued; dropped when no peer's
    /// allowed IPs hold its destination.
    pub fn outgoing(&self, packet: &[u8], out: &mut NetOut) {
        let Some(dst) = ip_addrs(packet).map(|(_, d)| d) else {
            return;
        };
        let Some(peer) = self.route(dst) else {
            return;
        };
        let packet = Packet::from_bytes(BytesMut::from(packet));
        lock(peer).send(packet, out, &self.index, peer);
    }

    /// A datagram from `from`: handshake messages answered, data decrypted into `tun` when its
    /// source is one of the peer's allowed IPs; then the peer's queue is flushed.
    pub fn incoming(
        &self,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut NetOut,
        tun: &mut Vec<Packet>,
    ) {
        let datagram = Packet::from_bytes(BytesMut::from(datagram));
        let msg = match self.keys.limiter.verify_packet(from, datagram) {
            Ok(msg) => msg,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                out.push((from, cookie.into()));
                return;
            }
            Err(e) => {
                tracing::debug!(%from, "WireGuard datagram refused: {e:?}");
                return;
            }
        };
        let kind = match &msg {
            WgKind::HandshakeInit(_) => "initiation",
            WgKind::HandshakeResp(_) => "response",
            WgKind::CookieReply(_) => "cookie",
            WgKind::Data(_) => "data",
        };
        let peer = match &msg {
            WgKind::HandshakeInit(p) => {
                parse_handshake_anon(&self.keys.secret, &self.keys.public, p)
                    .ok()
                    .and_then(|h| self.find_public(&h.peer_static_public).cloned())
            }
            WgKind::HandshakeResp(p) => self.index.get(p.receiver_idx.get()),
            WgKind::CookieReply(p) => self.index.get(p.receiver_idx.get()),
            WgKind::Data(p) => self.index.get(p.header.receiver_idx.get()),
        };

        let Some(peer) = peer else {
            tracing::debug!(%from, kind, "WireGuard datagram of no peer");
            return;
        };
        let mut p = lock(&peer);
        match p.tunn.handle_incoming_packet(msg) {
            TunnResult::WriteToNetwork(reply) => {
                p.endpoint = from;
                match &reply {
                    // Our answer to the peer's initiation: its session waits for the peer.
                    WgKind::HandshakeResp(_) => p.answered = Some(Instant::now()),
                    // The answer to ours (this keepalive confirms the session to the peer).
                    _ => {
                        p.initiated = None;
                        p.answered = None;
                    }
                }
                p.emit(reply, out, &self.index, &peer);
            }
            TunnResult::WriteToTunnel(packet) => {
                p.endpoint = from;
                p.answered = None;
                let src = ip_addrs(&packet).map(|(s, _)| s);
                if src.is_some_and(|s| peer.allows(s)) {
                    tun.push(packet);
                }
            }
            TunnResult::Done => {}
            TunnResult::Err(e) => tracing::debug!(%from, kind, "WireGuard datagram dropped: {e:?}"),
        }
        p.flush(out);
    }

    /// The protocol's timers (retries, rekeying, keepalives); every 250 ms or so.
    pub fn tick(&self, out: &mut NetOut) {
        self.keys.limiter.try_reset_count();
        for peer in &self.list {
            let mut p = lock(peer);
            match p.tunn.update_timers() {
                Ok(Some(msg)) => {
                    if matches!(msg, WgKind::HandshakeInit(_)) {
                        p.initiated = Some(Instant::now());
                    }
                    p.emit(msg, out, &self.index, peer);
                }
                Ok(None) => {}
                Err(_) => p.queue.clear(),
            }
        }
        self.index.map().retain(|i, _| self.index_table.in_use(*i));
    }

    /// Starts the handshake towards the peer of each of `targets` that has no session now,
    /// rather than with its next packet.
    pub fn initiate(&self, targets: &[Ipv4Addr], out: &mut NetOut) {
        for t in targets {
            if let Some(peer) = self.route(IpAddr::V4(*t)) {
                lock(peer).initiate(out, &self.index, peer);
            }
        }
    }

    /// The device as WireGuard's `get` reports it (no private key).
    pub fn host(&self, port: u16) -> Host {
        let mut host = Host::new(port, Key::new([0; 32]));
        host.private_key = None;
        for p in &self.list {
            host.peers.insert(p.key.clone(), p.host_peer());
        }
        host
    }
}

/// Whether `ip` is inside `net`.
fn contains(net: &IpAddrMask, ip: IpAddr) -> bool {
    match (net.address, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            prefix_eq(u32::from(n).into(), u32::from(a).into(), net.cidr, 32)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), net.cidr, 128),
        _ => false,
    }
}

fn prefix_eq(n: u128, a: u128, cidr: u8, bits: u32) -> bool {
    let cidr = u32::from(cidr).min(bits);
    let shift = bits - cidr;
    shift >= bits || (n >> shift) == (a >> shift)
}

/// An IP packet's source and destination (none for what is not IPv4 or IPv6).
pub fn ip_addrs(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let a =
                |o: usize| Ipv4Addr::new(packet[o], packet[o + 1], packet[o + 2], packet[o + 3]);
            Some((a(12).into(), a(16).into()))
        }
        6 if packet.len() >= 40 => {
            let a = |o: usize| {
                let b: [u8; 16] = packet[o..o + 16].try_into().unwrap_or([0; 16]);
                Ipv6Addr::from(b)
            };
            Some((a(8).into(), a(24).into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
