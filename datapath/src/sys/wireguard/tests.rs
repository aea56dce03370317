//! What ward hands defguard_wireguard_rs for kernel WireGuard, checked without the module.
//! Not covered here (this machine's kernel has no WireGuard module, and defguard builds its
//! netlink messages in private functions): the encoding of these values as generic-netlink
//! attributes, the kernel's answers, `read` parsing a real dump, interface creation, and the
//! calls of a key switch themselves (configure the device, then each peer in the order
//! checked here) against a kernel.

use super::*;
use std::net::IpAddr;

fn spec(n: u8, keepalive: Option<u16>) -> PeerSpec {
    PeerSpec {
        key: PrivateKey::generate().public(),
        endpoint: SocketAddr::from(([172, 30, 0, n], 51871)),
        allowed: vec![
            IpAddrMask::new(IpAddr::V4(Ipv4Addr::new(172, 30, 0, n)), 32),
            IpAddrMask::new(IpAddr::V4(Ipv4Addr::new(10, 200, n, 0)), 24),
        ],
        keepalive,
    }
}

#[test]
fn a_peer_carries_its_key_endpoint_allowed_ips_and_keepalive() {
    let s = spec(2, Some(25));
    let p = s.to_peer();
    assert_eq!(p.public_key, s.key);
    assert_eq!(p.endpoint, Some(s.endpoint));
    assert_eq!(p.allowed_ips, s.allowed);
    assert_eq!(p.persistent_keepalive_interval, Some(25));
    assert_eq!(p.preshared_key, None, "ward uses no preshared keys");
    assert_eq!(spec(3, None).to_peer().persistent_keepalive_interval, None);
}

#[test]
fn a_key_switch_sets_the_key_and_port_and_nothing_else() {
    let next = PrivateKey::generate();
    let c = kernel_host_config("cilium_wg0", &next, 51871);
    assert_eq!(c.name, "cilium_wg0");
    assert_eq!(c.prvkey, next.secret().to_string());
    assert_eq!(c.port, 51871);
    assert!(
        c.peers.is_empty(),
        "the peers are added again one by one, in order"
    );
    assert!(
        c.addresses.is_empty(),
        "the tunnel interface has no addresses"
    );
    assert_eq!(
        (c.mtu, c.fwmark),
        (None, None),
        "MTU and fwmark are left alone"
    );
}

#[test]
fn after_a_key_switch_a_nodes_next_key_is_added_after_its_current_one() {
    // Node 2 is rotating: its current key, then its next key, which must end up holding its
    // addresses again; node 3 was added in between.
    let (current, other, next) = (spec(2, None), spec(3, None), spec(2, None));
    let order = [current.key.clone(), other.key.clone(), next.key.clone()];
    for read_back in [
        vec![next.to_peer(), current.to_peer(), other.to_peer()],
        vec![other.to_peer(), next.to_peer(), current.to_peer()],
    ] {
        let keys: Vec<Key> = in_added_order(read_back, &order)
            .into_iter()
            .map(|p| p.public_key)
            .collect();
        assert_eq!(keys, order);
    }
    let stranger = spec(4, None).to_peer();
    let sorted = in_added_order(vec![stranger.clone(), next.to_peer()], &order);
    assert_eq!(
        sorted.last(),
        Some(&stranger),
        "a peer ward did not add goes last"
    );
}
