//! Two devices' peer tables exchanging datagrams in memory: the protocol is gotatun's, the
//! routing, queueing and handshake timing are ward's.

#![allow(clippy::unwrap_used)]

use super::*;

const PORT: u16 = 51871;

struct Node {
    secret: Key,
    addr: SocketAddr,
    pods: IpAddrMask,
    peers: Peers,
}

impl Node {
    fn new(n: u8) -> Node {
        let secret = Key::generate();
        Node {
            peers: Peers::new(secret.as_array()),
            secret,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 0, n)), PORT),
            pods: IpAddrMask::new(IpAddr::V4(Ipv4Addr::new(10, 0, n, 0)), 24),
        }
    }

    fn public(&self) -> Key {
        self.secret.public_key()
    }

    fn pod(&self) -> Ipv4Addr {
        match self.pods.address {
            IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) + 5),
            IpAddr::V6(_) => unreachable!(),
        }
    }

    /// `other` as a peer of this node, under `key`.
    fn add(&mut self, other: &Node, key: Key) {
        self.peers
            .add(&PeerSpec {
                key,
                endpoint: other.addr,
                allowed: vec![other.pods.clone()],
                keepalive: None,
            })
            .unwrap();
    }

    fn rotate(&mut self) -> Key {
        self.secret = Key::generate();
        self.peers.set_private_key(self.secret.as_array());
        self.public()
    }
}

/// An IPv4 packet from `src` to `dst` carrying `seq`.
fn packet(src: Ipv4Addr, dst: Ipv4Addr, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&24u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..24].copy_from_slice(&seq.to_be_bytes());
    p
}

fn seq(p: &Packet) -> u32 {
    u32::from_be_bytes(p.as_ref()[20..24].try_into().unwrap())
}

fn send(from: &Node, to: &Node, seq: u32, out: &mut NetOut) {
    from.peers.outgoing(&packet(from.pod(), to.pod(), seq), out);
}

fn inits(out: &NetOut) -> usize {
    out.iter()
        .filter(|(_, m)| m.as_ref().first() == Some(&1))
        .count()
}

/// What reached each node's TUN, and how many initiations were sent, once both are quiet.
#[derive(Default)]
struct Delivered {
    a: Vec<u32>,
    b: Vec<u32>,
    inits: usize,
}

/// Delivers `msgs` from `from` to `to`: what `to` answers, and the sequence numbers that
/// reached its TUN.
fn deliver(from: &Node, to: &Node, msgs: NetOut) -> (NetOut, Vec<u32>) {
    let (mut out, mut tun) = (NetOut::new(), Vec::new());
    for (dst, m) in msgs {
        assert_eq!(dst, to.addr);
        to.peers.incoming(from.addr, m.as_ref(), &mut out, &mut tun);
    }
    (out, tun.iter().map(seq).collect())
}

/// Delivers `a_out` (from a) and `b_out` (from b) and everything they cause.
fn exchange(a: &Node, b: &Node, mut a_out: NetOut, mut b_out: NetOut) -> Delivered {
    let mut d = Delivered::default();
    for _ in 0..20 {
        if a_out.is_empty() && b_out.is_empty() {
            return d;
        }
        d.inits += inits(&a_out) + inits(&b_out);
        let (next_b, at_b) = deliver(a, b, a_out);
        let (next_a, at_a) = deliver(b, a, b_out);
        d.b.extend(at_b);
        d.a.extend(at_a);
        (a_out, b_out) = (next_a, next_b);
    }
    panic!("the two nodes never settled");
}

fn pair() -> (Node, Node) {
    let (mut a, mut b) = (Node::new(1), Node::new(2));
    a.add(&b, b.public());
    b.add(&a, a.public());
    (a, b)
}

#[test]
fn the_first_packets_wait_for_the_handshake_and_arrive_in_order() {
    let (a, b) = pair();
    let mut out = NetOut::new();
    for s in 0..5 {
        send(&a, &b, s, &mut out);
    }
    assert_eq!(inits(&out), 1, "one initiation for five packets");
    assert_eq!(out.len(), 1, "the packets wait for the session");
    let d = exchange(&a, &b, out, NetOut::new());
    assert_eq!(d.b, vec![0, 1, 2, 3, 4]);
    assert_eq!(d.inits, 1);
}

#[test]
fn a_responder_sends_its_queue_as_soon_as_the_session_is_confirmed() {
    let (a, b) = pair();
    let mut lost = NetOut::new();
    for s in 0..3 {
        send(&b, &a, s, &mut lost);
    }
    assert_eq!(inits(&lost), 1, "b's initiation (lost on the way)");
    let mut out = NetOut::new();
    send(&a, &b, 100, &mut out);
    let d = exchange(&a, &b, out, NetOut::new());
    assert_eq!(d.b, vec![100]);
    assert_eq!(
        d.a,
        vec![0, 1, 2],
        "b's queued packets go out with the confirmation, not with some later handshake"
    );
    assert_eq!(d.inits, 1, "b did not initiate again");
}

#[test]
fn a_responder_sends_nothing_before_the_initiator_confirms_the_session() {
    let (a, b) = pair();
    let (mut init, mut response, mut tun) = (NetOut::new(), NetOut::new(), Vec::new());
    send(&a, &b, 0, &mut init);
    for (_, m) in init.drain(..) {
        b.peers
            .incoming(a.addr, m.as_ref(), &mut response, &mut tun);
    }
    assert_eq!(response.len(), 1, "b answers");
    let mut early = NetOut::new();
    send(&b, &a, 10, &mut early);
    assert!(
        early.is_empty(),
        "b's packet waits: it could overtake the response and find a without the session"
    );
    let d = exchange(&a, &b, NetOut::new(), response);
    assert_eq!((d.a, d.b), (vec![10], vec![0]), "a's confirmation sends it");
}

#[test]
fn crossing_initiations_settle_and_lose_nothing() {
    let (mut a, mut b) = pair();
    // A first session, then both ends drop theirs (as a key change does): the next sessions
    // are new slots, as in a rotation.
    let mut out = NetOut::new();
    send(&a, &b, 100, &mut out);
    assert_eq!(exchange(&a, &b, out, NetOut::new()).b, vec![100]);
    a.peers.set_private_key(a.secret.as_array());
    b.peers.set_private_key(b.secret.as_array());
    let (mut a_out, mut b_out) = (NetOut::new(), NetOut::new());
    send(&a, &b, 0, &mut a_out);
    send(&b, &a, 10, &mut b_out);
    // The initiations cross: each end answers the other's...
    let (mut b_next, _) = deliver(&a, &b, a_out);
    let (mut a_next, _) = deliver(&b, &a, b_out);
    // ...and more packets come from the TUN before the responses arrive: they wait for the
    // sessions instead of starting initiations that would replace the ones in flight.
    for s in 1..4 {
        send(&a, &b, s, &mut a_next);
        send(&b, &a, 10 + s, &mut b_next);
    }
    assert_eq!(
        inits(&a_next) + inits(&b_next),
        0,
        "no initiation while ours awaits its response"
    );
    let d = exchange(&a, &b, a_next, b_next);
    assert_eq!(d.inits, 0, "and none later: the crossing settled");
    assert_eq!(d.b, vec![0, 1, 2, 3]);
    assert_eq!(d.a, vec![10, 11, 12, 13]);
    let (mut a_out, mut b_out) = (NetOut::new(), NetOut::new());
    send(&a, &b, 4, &mut a_out);
    send(&b, &a, 14, &mut b_out);
    assert_eq!(inits(&a_out) + inits(&b_out), 0, "both have a session now");
    let d = exchange(&a, &b, a_out, b_out);
    assert_eq!((d.b, d.a), (vec![4], vec![14]));
}

#[test]
fn a_key_change_forgets_the_handshake_begun_with_the_old_key() {
    let (mut a, mut b) = pair();
    let mut lost = NetOut::new();
    send(&a, &b, 0, &mut lost);
    assert_eq!(inits(&lost), 1);
    let new = a.rotate();
    b.add(&a, new);
    let mut out = NetOut::new();
    send(&a, &b, 1, &mut out);
    assert_eq!(
        inits(&out),
        1,
        "a new initiation at once, not after the old one's REKEY_TIMEOUT"
    );
    let d = exchange(&a, &b, out, NetOut::new());
    assert_eq!(d.b, vec![0, 1], "the queue survives the key change");
}

#[test]
fn a_rotation_makes_before_it_breaks() {
    let (mut a, mut b) = pair();
    let mut out = NetOut::new();
    send(&a, &b, 0, &mut out);
    let d = exchange(&a, &b, out, NetOut::new());
    assert_eq!(d.b, vec![0]);
    // Announce and prepare: b adds a's next key after the current one; it takes a's
    // addresses, so b's packets to a wait for that peer's session.
    let next = Key::generate();
    b.add(&a, next.public_key());
    let mut b_out = NetOut::new();
    for s in 1..4 {
        send(&b, &a, s, &mut b_out);
    }
    let mut a_out = NetOut::new();
    send(&a, &b, 50, &mut a_out);
    let d = exchange(&a, &b, a_out, b_out);
    assert_eq!(d.b, vec![50], "a's old key still reaches b");
    assert!(d.a.is_empty(), "b's packets wait for a's new key");
    // Switch: a takes the next key and starts its handshakes at once.
    a.secret = next;
    a.peers.set_private_key(a.secret.as_array());
    let mut a_out = NetOut::new();
    a.peers.initiate(&[b.pod()], &mut a_out);
    let d = exchange(&a, &b, a_out, NetOut::new());
    assert_eq!(d.a, vec![1, 2, 3], "nothing b queued was lost");
    // Break: b drops a's old key; traffic goes on under the new one.
    b.peers.remove(&a.public().public_key());
    let mut out = NetOut::new();
    send(&b, &a, 4, &mut out);
    send(&a, &b, 51, &mut out);
    let (a_out, b_out): (NetOut, NetOut) = out.into_iter().partition(|(to, _)| *to == b.addr);
    let d = exchange(&a, &b, a_out, b_out);
    assert_eq!((d.a, d.b), (vec![4], vec![51]));
}

#[test]
fn a_peer_cannot_send_from_addresses_it_was_not_given() {
    let (a, b) = pair();
    let mut out = NetOut::new();
    send(&a, &b, 0, &mut out);
    exchange(&a, &b, out, NetOut::new());
    let mut out = NetOut::new();
    let spoofed = packet(Ipv4Addr::new(10, 0, 9, 9), b.pod(), 7);
    // a's TUN hands it over; a's session encrypts it; b must refuse it.
    a.peers.outgoing(&spoofed, &mut out);
    let d = exchange(&a, &b, out, NetOut::new());
    assert!(
        d.b.is_empty(),
        "b dropped a packet from outside a's allowed IPs"
    );
}

#[test]
fn packets_without_a_peer_and_garbage_are_dropped() {
    let (a, b) = pair();
    let mut out = NetOut::new();
    a.peers
        .outgoing(&packet(a.pod(), Ipv4Addr::new(10, 7, 0, 1), 0), &mut out);
    a.peers.outgoing(&[0x45, 0, 0], &mut out);
    assert!(
        out.is_empty(),
        "no peer holds 10.7.0.1; a truncated header goes nowhere"
    );
    let mut tun = Vec::new();
    b.peers
        .incoming(a.addr, &[4, 0, 0, 0, 1, 2, 3], &mut out, &mut tun);
    b.peers.incoming(a.addr, &[1; 148], &mut out, &mut tun);
    assert!(out.is_empty() && tun.is_empty(), "b answers no garbage");
}

#[test]
fn the_later_peer_takes_an_equal_prefix_and_the_more_specific_wins() {
    let (mut a, b) = pair();
    let other = Key::generate().public_key();
    a.add(&b, other.clone());
    let host = IpAddrMask::new(IpAddr::V4(b.pod()), 32);
    let first = a.peers.route(IpAddr::V4(b.pod())).unwrap().key.clone();
    assert_eq!(first, other);
    let mut c = Node::new(3);
    c.pods = host;
    a.add(&c, c.public());
    assert_eq!(
        a.peers.route(IpAddr::V4(b.pod())).unwrap().key,
        c.public(),
        "a /32 beats a /24"
    );
    assert!(
        a.peers
            .route(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1)))
            .is_none()
    );
}
