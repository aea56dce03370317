//! The calls ward makes on kernel WireGuard for a peer set and for each step of a rotation,
//! checked without the module: against a model of what each call does to an interface (its
//! key, its peers, and which peer holds each allowed prefix). What this leaves untested is
//! listed in the [module documentation](super).

use super::*;
use defguard_wireguard_rs::net::IpAddrMask;
use netlink_packet_wireguard::{
    WireguardAttribute, WireguardPeer, WireguardPeerAttribute, WireguardPeerFlags,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const IF: &str = "cilium_wg0";
const PORT: u16 = 51871;

/// Node `n`'s peer entry under a fresh key: its node address and its pod CIDR.
fn spec(n: u8, keepalive: Option<u16>) -> PeerSpec {
    PeerSpec {
        key: PrivateKey::generate().public(),
        endpoint: SocketAddr::from(([172, 30, 0, n], PORT)),
        allowed: vec![
            IpAddrMask::new(IpAddr::V4(Ipv4Addr::new(172, 30, 0, n)), 32),
            IpAddrMask::new(IpAddr::V4(Ipv4Addr::new(10, 200, n, 0)), 24),
        ],
        keepalive,
    }
}

/// A kernel interface as far as these calls change it. A prefix set on a second peer moves
/// to it (`drivers/net/wireguard/allowedips.c`); `WGDEVICE_F_REPLACE_PEERS` removes every
/// peer.
#[derive(Debug, Default)]
struct Interface {
    key: Option<String>,
    port: u16,
    peers: Vec<Key>,
    holder: BTreeMap<String, Key>,
}

impl Interface {
    fn apply(&mut self, calls: &[Call]) {
        for call in calls {
            match call {
                Call::SetDevice(c) => {
                    self.key = Some(c.prvkey.clone());
                    self.port = c.port;
                    self.peers.clear();
                    self.holder.clear();
                }
                Call::SetPeer(p) => {
                    if !self.peers.contains(&p.public_key) {
                        self.peers.push(p.public_key.clone());
                    }
                    self.holder.retain(|_, k| *k != p.public_key);
                    for m in &p.allowed_ips {
                        self.holder.insert(m.to_string(), p.public_key.clone());
                    }
                }
                Call::RemovePeer(key) => {
                    self.peers.retain(|k| k != key);
                    self.holder.retain(|_, k| k != key);
                }
            }
        }
    }

    /// Which peer holds each of `s`'s allowed prefixes (the same one for all, or a panic).
    fn holder_of(&self, s: &PeerSpec) -> Option<Key> {
        let holders: Vec<Option<&Key>> = s
            .allowed
            .iter()
            .map(|m| self.holder.get(&m.to_string()))
            .collect();
        assert!(holders.windows(2).all(|w| w[0] == w[1]), "{holders:?}");
        holders[0].cloned()
    }
}

fn set_peer(calls: &[Call]) -> Vec<&Peer> {
    calls
        .iter()
        .map(|c| match c {
            Call::SetPeer(p) => p,
            other => panic!("expected a peer, got {other:?}"),
        })
        .collect()
}

#[test]
fn a_peer_carries_its_key_endpoint_allowed_ips_and_keepalive() {
    let s = spec(2, Some(25));
    let calls = Plan::default().add(&s);
    let [p] = set_peer(&calls)[..] else {
        panic!("one call per peer: {calls:?}")
    };
    assert_eq!(p.public_key, s.key);
    assert_eq!(p.endpoint, Some(s.endpoint));
    assert_eq!(p.allowed_ips, s.allowed);
    assert_eq!(p.persistent_keepalive_interval, Some(25));
    assert_eq!(p.preshared_key, None, "ward uses no preshared keys");
    let none = Plan::default().add(&spec(3, None));
    assert_eq!(set_peer(&none)[0].persistent_keepalive_interval, None);
}

#[test]
fn a_peer_set_is_one_call_per_peer_in_order_and_each_holds_its_own_addresses() {
    let nodes = [spec(2, None), spec(3, None), spec(4, None)];
    let (mut plan, mut iface) = (Plan::default(), Interface::default());
    let calls: Vec<Call> = nodes.iter().flat_map(|s| plan.add(s)).collect();
    let keys: Vec<&Key> = set_peer(&calls).iter().map(|p| &p.public_key).collect();
    assert_eq!(keys, nodes.iter().map(|s| &s.key).collect::<Vec<_>>());
    iface.apply(&calls);
    for s in &nodes {
        assert_eq!(iface.holder_of(s), Some(s.key.clone()));
    }
}

#[test]
fn a_key_switch_sets_the_key_and_port_with_no_peers_then_adds_them_again() {
    let (a, b) = (spec(2, None), spec(3, Some(25)));
    let mut plan = Plan::default();
    plan.add(&a);
    plan.add(&b);
    let next = PrivateKey::generate();
    let calls = plan.set_key(IF, &next, PORT, vec![b.to_peer(), a.to_peer()]);
    let Some(Call::SetDevice(c)) = calls.first() else {
        panic!("the device first: {calls:?}")
    };
    assert_eq!((c.name.as_str(), c.port), (IF, PORT));
    assert_eq!(c.prvkey, next.secret().to_string());
    assert!(c.peers.is_empty(), "peers are added one by one, in order");
    assert!(c.addresses.is_empty(), "the tunnel has no addresses");
    assert_eq!((c.mtu, c.fwmark), (None, None), "MTU and fwmark left alone");
    assert_eq!(set_peer(&calls[1..]), [&a.to_peer(), &b.to_peer()]);
}

#[test]
fn a_rotation_on_kernel_wireguard_keeps_every_peer_and_ends_with_the_new_key_alone() {
    // Node 2 rotates; node 1 is its peer, with node 3 besides.
    let (n2, n3) = (spec(2, None), spec(3, None));
    let next2 = PeerSpec {
        key: PrivateKey::generate().public(),
        ..n2.clone()
    };
    let (mut plan1, mut iface1) = (Plan::default(), Interface::default());
    iface1.apply(&plan1.add(&n2));
    iface1.apply(&plan1.add(&n3));

    // Announce (node 2 publishes its next key): nothing is sent to node 1's kernel.
    // Confirm: node 1 adds node 2's next key with node 2's addresses, which move to it; the
    // old key stays a peer.
    let confirm = plan1.add(&next2);
    assert_eq!(set_peer(&confirm), [&next2.to_peer()]);
    iface1.apply(&confirm);
    assert_eq!(
        iface1.peers,
        [&n2.key, &n3.key, &next2.key].map(Clone::clone)
    );
    assert_eq!(iface1.holder_of(&n2), Some(next2.key.clone()));
    assert_eq!(iface1.holder_of(&n3), Some(n3.key.clone()));

    // Node 1 switches its own key meanwhile: the peers come back in the order added, so
    // node 2's next key holds its addresses again, whatever order the kernel read them in.
    let key1 = PrivateKey::generate();
    let read_back = vec![next2.to_peer(), n3.to_peer(), n2.to_peer()];
    let switch1 = plan1.set_key(IF, &key1, PORT, read_back);
    iface1.apply(&switch1);
    assert_eq!(iface1.key, Some(key1.secret().to_string()));
    assert_eq!(
        iface1.peers,
        [&n2.key, &n3.key, &next2.key].map(Clone::clone)
    );
    assert_eq!(iface1.holder_of(&n2), Some(next2.key.clone()));

    // Drop: node 2 switched (its own interface: a key switch, as above); node 1 removes the
    // old key, and the next key is node 2's only entry.
    let drop = plan1.remove(&n2.key);
    assert!(matches!(&drop[..], [Call::RemovePeer(k)] if *k == n2.key));
    iface1.apply(&drop);
    assert_eq!(iface1.peers, [&n3.key, &next2.key].map(Clone::clone));
    assert_eq!(iface1.holder_of(&n2), Some(next2.key.clone()));

    // A later key switch no longer adds the dropped key.
    let again = plan1.set_key(IF, &key1, PORT, vec![next2.to_peer(), n3.to_peer()]);
    assert_eq!(set_peer(&again[1..]), [&n3.to_peer(), &next2.to_peer()]);
}

#[test]
fn a_peer_ward_did_not_add_goes_last_after_a_key_switch() {
    let (mine, stranger) = (spec(2, None), spec(4, None));
    let mut plan = Plan::default();
    plan.add(&mine);
    let calls = plan.set_key(
        IF,
        &PrivateKey::generate(),
        PORT,
        vec![stranger.to_peer(), mine.to_peer()],
    );
    assert_eq!(
        set_peer(&calls[1..]),
        [&mine.to_peer(), &stranger.to_peer()]
    );
}

#[test]
fn a_removal_is_the_peers_key_with_remove_me_on_the_interface() {
    // defguard builds a removal's netlink attributes in public: the message itself.
    let key = spec(2, None).key;
    let attrs = key.as_nlas_remove(IF);
    assert_eq!(
        attrs,
        [
            WireguardAttribute::IfName(IF.to_owned()),
            WireguardAttribute::Peers(vec![WireguardPeer(vec![
                WireguardPeerAttribute::PublicKey(key.as_array()),
                WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
            ])]),
        ]
    );
}
