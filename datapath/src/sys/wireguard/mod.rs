//! The WireGuard interface of a node: kernel WireGuard when the kernel has it, else ward's
//! own userspace device over TUN ([`userspace`], this machine's case). Both speak
//! defguard_wireguard_rs types; the kernel through its netlink API, the userspace device by
//! direct calls.
//!
//! The interface and the device's UDP socket are created inside the node's network
//! namespace; the device's threads only use their file descriptors.
//!
//! Peers are only ever added or removed, never changed in place: a removed-and-added peer
//! loses its session.

pub mod userspace;

use super::net::{Net, NetnsNet};
use super::netns::in_netns;
use crate::wireguard::keys::PrivateKey;
use anyhow::{Result, anyhow};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use userspace::{Sockets, Userspace};

/// Makes WireGuard interfaces in one network namespace.
pub trait WireGuard: Send + Sync {
    /// Creates interface `ifname` with `key`, listening on `port`, with `mtu`, up. An
    /// interface of that name left from before is removed first.
    fn create(
        &self,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        mtu: u32,
    ) -> Result<Box<dyn WgDevice>>;
}

/// One WireGuard interface. Dropping it removes the interface.
///
/// Peers are only ever added or removed, never changed in place: a removed-and-added peer
/// loses its session.
pub trait WgDevice: Send {
    /// The interface name.
    fn ifname(&self) -> &str;
    /// The listen port.
    fn port(&self) -> u16;
    /// Kernel or userspace.
    fn implementation(&self) -> Implementation;
    /// Switches the interface to `key`. Its sessions end; peers are kept.
    fn set_private_key(&self, key: &PrivateKey) -> Result<()>;
    /// Adds a peer that the interface does not have yet.
    fn add_peer(&self, peer: &PeerSpec) -> Result<()>;
    /// Removes the peer with `key` (no error when it is not there).
    fn remove_peer(&self, key: &Key) -> Result<()>;
    /// The interface as the implementation reports it: peers with handshakes and byte
    /// counts, never the private key.
    fn read(&self) -> Result<Host>;
    /// Starts the handshakes towards the peers of `targets` now rather than with their next
    /// packet. Best effort.
    fn start_handshakes(&self, targets: &[Ipv4Addr]);
}

/// The kernel's WireGuard (or ward's userspace device where the kernel has none) in the network namespace
/// at a path.
#[derive(Debug, Clone)]
pub struct KernelWireGuard {
    netns: PathBuf,
}

impl KernelWireGuard {
    /// WireGuard interfaces in the namespace at `netns`.
    pub fn new(netns: &Path) -> KernelWireGuard {
        KernelWireGuard {
            netns: netns.to_path_buf(),
        }
    }
}

impl WireGuard for KernelWireGuard {
    fn create(
        &self,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        mtu: u32,
    ) -> Result<Box<dyn WgDevice>> {
        Ok(Box::new(Device::create(
            &self.netns,
            ifname,
            key,
            port,
            mtu,
        )?))
    }
}

/// Which WireGuard implementation runs the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The kernel module (netlink).
    Kernel,
    /// ward's device in this process, over TUN.
    Userspace,
}

impl Implementation {
    /// `kernel` or `userspace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Kernel => "kernel",
            Implementation::Userspace => "userspace",
        }
    }
}

/// A peer as ward configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Its public key.
    pub key: Key,
    /// Its endpoint.
    pub endpoint: SocketAddr,
    /// Its allowed IPs.
    pub allowed: Vec<IpAddrMask>,
    /// Persistent keepalive in seconds.
    pub keepalive: Option<u16>,
}

impl PeerSpec {
    fn to_peer(&self) -> Peer {
        let mut p = Peer::new(self.key.clone());
        p.endpoint = Some(self.endpoint);
        p.allowed_ips.clone_from(&self.allowed);
        p.persistent_keepalive_interval = self.keepalive;
        p
    }
}

enum Backend {
    /// Dropping it stops the device's threads and removes the TUN interface.
    Userspace(Userspace),
    /// The interface lives in the kernel; each call opens a netlink socket in the namespace.
    Kernel,
}

/// A WireGuard interface in a node's namespace. Dropping it removes the interface.
pub struct Device {
    ifname: String,
    netns: PathBuf,
    net: NetnsNet,
    port: u16,
    backend: Backend,
    /// Peers in the order they were added (kernel: a key switch adds them again in it).
    order: std::sync::Mutex<Vec<Key>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("ifname", &self.ifname)
            .field("implementation", &self.implementation())
            .field("port", &self.port)
            .finish()
    }
}

impl Device {
    /// Creates interface `ifname` in `netns` with `key`, listening on `port`, with `mtu`, up.
    /// Uses kernel WireGuard when `ip link add type wireguard` works there, else ward's
    /// userspace device.
    pub fn create(
        netns: &Path,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        mtu: u32,
    ) -> Result<Device> {
        let ns = netns.to_path_buf();
        let net = NetnsNet::new(netns);
        remove_stale(&net, ifname);
        let backend = if kernel_available(&net, ifname) {
            let name = ifname.to_owned();
            in_netns(&ns, move || -> Result<()> {
                let mut api = WGApi::<Kernel>::new(name.clone()).map_err(|e| anyhow!("{e}"))?;
                api.create_interface()
                    .map_err(|e| anyhow!("cannot create {name}: {e}"))
            })??;
            Backend::Kernel
        } else {
            let name = ifname.to_owned();
            let sockets = in_netns(&ns, move || Sockets::open(&name, port))??;
            Backend::Userspace(Userspace::start(
                sockets,
                port,
                key.secret().as_array(),
                mtu,
            )?)
        };
        let dev = Device {
            ifname: ifname.to_owned(),
            netns: ns,
            net,
            port,
            backend,
            order: std::sync::Mutex::default(),
        };
        dev.net.set_link_up(ifname, Some(mtu))?;
        dev.set_key_and_port(key)?;
        Ok(dev)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kernel or userspace.
    pub fn implementation(&self) -> Implementation {
        match self.backend {
            Backend::Kernel => Implementation::Kernel,
            Backend::Userspace(_) => Implementation::Userspace,
        }
    }

    fn set_key_and_port(&self, key: &PrivateKey) -> Result<()> {
        match &self.backend {
            Backend::Userspace(_) => Ok(()),
            Backend::Kernel => self.kernel_set_host(key),
        }
    }

    /// Switches the interface to `key`. Its sessions end; peers are kept.
    pub fn set_private_key(&self, key: &PrivateKey) -> Result<()> {
        match &self.backend {
            Backend::Userspace(u) => {
                u.set_private_key(key.secret().as_array());
                Ok(())
            }
            Backend::Kernel => self.kernel_set_host(key),
        }
    }

    /// Kernel: private key and port ([`kernel_host_config`]), then the peers it had, read
    /// back and added again one by one in the order ward added them: of two peers with the
    /// same allowed IPs (a node's current and next key) the later takes them, as before.
    /// (defguard_wireguard_rs would add them in the order of a hash map.)
    fn kernel_set_host(&self, key: &PrivateKey) -> Result<()> {
        let peers = self.read()?.peers.into_values().collect();
        let peers = in_added_order(peers, &self.added());
        let config = kernel_host_config(&self.ifname, key, self.port);
        self.kernel(move |api| {
            api.configure_interface(&config)
                .map_err(|e| anyhow!("{e}"))?;
            peers
                .iter()
                .try_for_each(|p| api.configure_peer(p).map_err(|e| anyhow!("{e}")))
        })
    }

    fn added(&self) -> std::sync::MutexGuard<'_, Vec<Key>> {
        self.order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a peer that the interface does not have yet.
    pub fn add_peer(&self, peer: &PeerSpec) -> Result<()> {
        let p = peer.to_peer();
        match &self.backend {
            Backend::Userspace(u) => u.add_peer(peer)?,
            Backend::Kernel => {
                self.kernel(move |api| api.configure_peer(&p).map_err(|e| anyhow!("{e}")))?;
            }
        }
        self.added().push(peer.key.clone());
        Ok(())
    }

    /// Removes the peer with `key` (no error when it is not there).
    pub fn remove_peer(&self, key: &Key) -> Result<()> {
        let k = key.clone();
        match &self.backend {
            Backend::Userspace(u) => u.remove_peer(key),
            Backend::Kernel => {
                self.kernel(move |api| api.remove_peer(&k).map_err(|e| anyhow!("{e}")))?;
            }
        }
        self.added().retain(|a| a != key);
        Ok(())
    }

    /// The interface as the implementation reports it: peers with handshakes and byte counts.
    /// (The private key in the answer is dropped here.)
    pub fn read(&self) -> Result<Host> {
        let mut host = match &self.backend {
            Backend::Userspace(u) => u.read(),
            Backend::Kernel => {
                self.kernel(|api| api.read_interface_data().map_err(|e| anyhow!("{e}")))?
            }
        };
        host.private_key = None;
        Ok(host)
    }

    fn kernel<T: Send>(&self, f: impl FnOnce(&WGApi<Kernel>) -> Result<T> + Send) -> Result<T> {
        let name = self.ifname.clone();
        in_netns(&self.netns, move || {
            let api = WGApi::<Kernel>::new(name).map_err(|e| anyhow!("{e}"))?;
            f(&api)
        })?
    }
}

impl WgDevice for Device {
    fn ifname(&self) -> &str {
        Device::ifname(self)
    }
    fn port(&self) -> u16 {
        Device::port(self)
    }
    fn implementation(&self) -> Implementation {
        Device::implementation(self)
    }
    fn set_private_key(&self, key: &PrivateKey) -> Result<()> {
        Device::set_private_key(self, key)
    }
    fn add_peer(&self, peer: &PeerSpec) -> Result<()> {
        Device::add_peer(self, peer)
    }
    fn remove_peer(&self, key: &Key) -> Result<()> {
        Device::remove_peer(self, key)
    }
    fn read(&self) -> Result<Host> {
        Device::read(self)
    }
    fn start_handshakes(&self, targets: &[Ipv4Addr]) {
        match &self.backend {
            Backend::Userspace(u) => u.initiate(targets),
            Backend::Kernel => kernel_start_handshakes(&self.netns, targets),
        }
    }
}

/// Kernel WireGuard: one empty UDP datagram into the tunnel towards each of `targets` (port
/// 9, "discard") makes the interface start its handshakes now. Best effort.
fn kernel_start_handshakes(netns: &Path, targets: &[Ipv4Addr]) {
    let targets = targets.to_vec();
    let r = in_netns(netns, move || -> std::io::Result<()> {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        for t in targets {
            let _ = s.send_to(&[], (t, 9));
        }
        Ok(())
    });
    if let Err(e) = r {
        tracing::debug!("start_handshakes: {e:#}");
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Backend::Kernel = self.backend {
            let _ = self.net.delete_link(&self.ifname);
        }
        // Userspace: dropping the device stops its threads; the TUN interface goes with its fd.
    }
}

/// What kernel WireGuard is given on creation and on a key switch: the key and the port, no
/// peers, no addresses, MTU and fwmark left alone. defguard_wireguard_rs sends it as one
/// `WG_CMD_SET_DEVICE` with `WGDEVICE_F_REPLACE_PEERS`, after flushing the interface's
/// addresses (none here): every peer goes, and [`Device::kernel_set_host`] adds them again
/// (sessions restart, as they must with a new key).
fn kernel_host_config(ifname: &str, key: &PrivateKey, port: u16) -> InterfaceConfiguration {
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

/// `peers` (as read back) in the order of `order`; any it does not name last.
fn in_added_order(mut peers: Vec<Peer>, order: &[Key]) -> Vec<Peer> {
    peers.sort_by_key(|p| {
        order
            .iter()
            .position(|k| *k == p.public_key)
            .unwrap_or(usize::MAX)
    });
    peers
}

/// An interface of that name left by a crashed agent (kernel WireGuard survives its agent).
fn remove_stale(net: &NetnsNet, ifname: &str) {
    if net.link_exists(ifname).unwrap_or(false) {
        tracing::info!(
            interface = ifname,
            "removing a WireGuard interface left from before"
        );
        let _ = net.delete_link(ifname);
    }
}

/// Whether the kernel can make WireGuard interfaces (tries a throw-away one).
fn kernel_available(net: &NetnsNet, ifname: &str) -> bool {
    if std::env::var_os("WARD_WIREGUARD_USERSPACE").is_some() {
        return false;
    }
    let probe = format!("{}p", &ifname[..ifname.len().min(14)]);
    net.can_add_wireguard(&probe)
}

#[cfg(test)]
mod tests;
