//! What ward asks of kernel WireGuard, as values. Every change [`super::Device`] makes to a
//! kernel interface is planned here as a list of [`Call`]s on defguard_wireguard_rs's
//! netlink API (pure, so unit-tested without the module) and then made, call by call, by
//! [`Call::run`]. Each call is one generic-netlink `WG_CMD_SET_DEVICE` request:
//!
//! | ward's step | calls |
//! |---|---|
//! | a peer set | one [`Call::SetPeer`] per peer, in ward's order |
//! | rotation, announce (the rotating node) | none: the interface keeps its key |
//! | rotation, confirm (each peer) | [`Call::SetPeer`] for the node's next key, with the node's addresses |
//! | rotation, switch (the rotating node) | [`Call::SetDevice`] (key, port, every peer removed), then [`Call::SetPeer`] for each peer again, in the order they were added |
//! | rotation, drop (each peer) | [`Call::RemovePeer`] for the node's old key |
//!
//! # Not tested here
//! This machine's kernel has no WireGuard module, so none of the following has run:
//! - the encoding of these calls as netlink attributes, except a removal (defguard builds the
//!   others in private functions; a removal's attributes are public and checked), and the
//!   kernel's answers to them, errors included;
//! - reading an interface back (defguard parsing a real `WG_CMD_GET_DEVICE` dump; a peer
//!   whose allowed IPs span several messages is merged by defguard), interface creation and
//!   removal, and [`super::kernel_start_handshakes`];
//! - the rotation's traffic on the kernel. The tests model the kernel's allowed-IPs rule
//!   (`drivers/net/wireguard/allowedips.c`: a prefix given to a second peer moves to it), so
//!   they show that after the confirm step the node's next key holds its addresses, as in the
//!   userspace device. Unlike ward's device, the kernel also checks the source of a decrypted
//!   packet against that table (`receive.c`), so the node's packets under its old key would
//!   be dropped from the confirm step until its switch (milliseconds when every peer
//!   confirms, up to [`crate::wireguard::ROTATION_WAIT`] when one does not). The lab's
//!   zero-loss rotation test runs only on the userspace device.

use super::PeerSpec;
use crate::wireguard::keys::PrivateKey;
use anyhow::{Result, anyhow};
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};

/// One request to kernel WireGuard, through defguard_wireguard_rs.
#[derive(Debug, Clone)]
pub enum Call {
    /// `configure_interface`: flushes the interface's addresses (it has none), then sets the
    /// private key and listen port with `WGDEVICE_F_REPLACE_PEERS`: every peer goes.
    SetDevice(InterfaceConfiguration),
    /// `configure_peer`: adds or updates one peer (key, keepalive, endpoint) and replaces its
    /// allowed IPs (`WGPEER_F_REPLACE_ALLOWEDIPS`); a prefix another peer held moves to it.
    SetPeer(Peer),
    /// `remove_peer`: the peer with this key, `WGPEER_F_REMOVE_ME`.
    RemovePeer(Key),
}

impl Call {
    /// Makes the call on `api` (an interface in the calling thread's namespace).
    pub fn run(&self, api: &WGApi<Kernel>) -> Result<()> {
        match self {
            Call::SetDevice(c) => api.configure_interface(c),
            Call::SetPeer(p) => api.configure_peer(p),
            Call::RemovePeer(k) => api.remove_peer(k),
        }
        .map_err(|e| anyhow!("kernel WireGuard: {e}"))
    }
}

/// The peers ward added to one kernel interface, in order, and the calls each change needs.
#[derive(Debug, Default)]
pub struct Plan {
    /// Keys in the order they were added (a key switch adds the peers again in it).
    order: Vec<Key>,
}

impl Plan {
    /// Adds a peer the interface does not have yet.
    pub fn add(&mut self, spec: &PeerSpec) -> Vec<Call> {
        self.order.push(spec.key.clone());
        vec![Call::SetPeer(spec.to_peer())]
    }

    /// Removes the peer with `key`.
    pub fn remove(&mut self, key: &Key) -> Vec<Call> {
        self.order.retain(|k| k != key);
        vec![Call::RemovePeer(key.clone())]
    }

    /// Sets the key and port of interface `ifname`, and adds again the peers it had
    /// (`read_back`, as the kernel reported them), in the order ward added them: of two peers
    /// with the same allowed IPs (a node's current and next key) the later takes them, as
    /// before. (defguard_wireguard_rs would add them in the order of a hash map.)
    pub fn set_key(
        &self,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        read_back: Vec<Peer>,
    ) -> Vec<Call> {
        let mut calls = vec![Call::SetDevice(host_config(ifname, key, port))];
        calls.extend(
            in_added_order(read_back, &self.order)
                .into_iter()
                .map(Call::SetPeer),
        );
        calls
    }
}

/// What kernel WireGuard is given on creation and on a key switch: the key and the port, no
/// peers, no addresses, MTU and fwmark left alone.
fn host_config(ifname: &str, key: &PrivateKey, port: u16) -> InterfaceConfiguration {
    InterfaceConfiguration {
        name: ifname.to_owned(),
        prvkey: key.secret().to_string(),
        addresses: vec![],
        port,
        peers: vec![],
        mtu: None,
        fwmark: None,
    }
}

/// `peers` in the order of `order`; any it does not name last.
fn in_added_order(mut peers: Vec<Peer>, order: &[Key]) -> Vec<Peer> {
    peers.sort_by_key(|p| {
        order
            .iter()
            .position(|k| *k == p.public_key)
            .unwrap_or(usize::MAX)
    });
    peers
}

#[cfg(test)]
mod tests;
