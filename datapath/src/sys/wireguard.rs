//! The WireGuard interface of a node: kernel WireGuard when the kernel has it, else boringtun
//! in userspace over TUN (this machine's case). Both are driven through defguard_wireguard_rs
//! types; the kernel through its netlink API, boringtun through the WireGuard UAPI socket.
//!
//! Everything is created inside the node's network namespace: the interface, boringtun's
//! threads (which inherit the namespace of the thread that starts them) and so its UDP socket.
//!
//! Peers are only ever added or removed, never changed in place: boringtun refuses (panics on)
//! a second configuration of an existing peer, and a removed-and-added peer loses its session.

use super::net::{Net, NetnsNet};
use super::netns::in_netns;
use crate::wireguard::keys::PrivateKey;
use anyhow::{Context, Result, anyhow, bail};
use defguard_boringtun::device::{DeviceConfig, DeviceHandle};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
/// Peers are only ever added or removed, never changed in place: boringtun refuses (panics
/// on) a second configuration of an existing peer, and a removed-and-added peer loses its
/// session.
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
    /// Sends one empty UDP datagram into the tunnel towards each of `targets` (port 9,
    /// "discard"), which makes the interface start its handshakes now. Best effort.
    fn start_handshakes(&self, targets: &[Ipv4Addr]);
}

/// The kernel's WireGuard (or boringtun where the kernel has none) in the network namespace
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

/// Where boringtun puts its UAPI sockets.
pub const UAPI_DIR: &str = "/run/wireguard";

/// Which WireGuard implementation runs the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The kernel module (netlink).
    Kernel,
    /// boringtun in this process, over TUN.
    Userspace,
}

impl Implementation {
    /// `kernel` or `userspace (boringtun)`.
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Kernel => "kernel",
            Implementation::Userspace => "userspace (boringtun)",
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
    /// Dropping the handle stops boringtun's threads and removes the TUN interface.
    Userspace(#[allow(dead_code)] DeviceHandle),
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
    /// Uses kernel WireGuard when `ip link add type wireguard` works there, else boringtun.
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
            let handle = in_netns(&ns, move || {
                // Incoming packets are matched to peers by index, never by a per-peer connected
                // socket: two peers (a node's old and new key) share one endpoint in a rotation.
                let config = DeviceConfig {
                    n_threads: 2,
                    use_connected_socket: false,
                    use_multi_queue: false,
                    uapi_fd: -1,
                };
                DeviceHandle::new(&name, config)
            })?
            .map_err(|e| {
                anyhow!("cannot start boringtun for {ifname}: {e:?} (is /dev/net/tun there?)")
            })?;
            Backend::Userspace(handle)
        };
        let dev = Device {
            ifname: ifname.to_owned(),
            netns: ns,
            net,
            port,
            backend,
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
            Backend::Userspace(_) => self.uapi_set(&format!(
                "private_key={}\nlisten_port={}\n",
                key.secret().to_lower_hex(),
                self.port
            )),
            Backend::Kernel => self.kernel_set_host(key),
        }
    }

    /// Switches the interface to `key`. Its sessions end; peers are kept.
    pub fn set_private_key(&self, key: &PrivateKey) -> Result<()> {
        match &self.backend {
            Backend::Userspace(_) => {
                self.uapi_set(&format!("private_key={}\n", key.secret().to_lower_hex()))
            }
            Backend::Kernel => self.kernel_set_host(key),
        }
    }

    /// Kernel: private key and port with the current peers (kernel WireGuard updates existing
    /// peers in place, so their sessions survive everything but the key change itself).
    fn kernel_set_host(&self, key: &PrivateKey) -> Result<()> {
        let peers: Vec<Peer> = self.read()?.peers.into_values().collect();
        let config = InterfaceConfiguration {
            name: self.ifname.clone(),
            prvkey: key.secret().to_string(),
            addresses: vec![],
            port: self.port,
            peers,
            mtu: None,
            fwmark: None,
        };
        self.kernel(move |api| api.configure_interface(&config).map_err(|e| anyhow!("{e}")))
    }

    /// Adds a peer that the interface does not have yet.
    pub fn add_peer(&self, peer: &PeerSpec) -> Result<()> {
        let p = peer.to_peer();
        match &self.backend {
            Backend::Userspace(_) => self.uapi_set(&p.as_uapi_update()),
            Backend::Kernel => {
                self.kernel(move |api| api.configure_peer(&p).map_err(|e| anyhow!("{e}")))
            }
        }
    }

    /// Removes the peer with `key` (no error when it is not there).
    pub fn remove_peer(&self, key: &Key) -> Result<()> {
        let k = key.clone();
        match &self.backend {
            Backend::Userspace(_) => {
                self.uapi_set(&format!("public_key={}\nremove=true\n", key.to_lower_hex()))
            }
            Backend::Kernel => {
                self.kernel(move |api| api.remove_peer(&k).map_err(|e| anyhow!("{e}")))
            }
        }
    }

    /// The interface as the implementation reports it: peers with handshakes and byte counts.
    /// (The private key in the answer is dropped here.)
    pub fn read(&self) -> Result<Host> {
        let mut host = match &self.backend {
            Backend::Userspace(_) => {
                let mut s = self.uapi()?;
                s.write_all(b"get=1\n\n")?;
                Host::parse_uapi(s).context("cannot read the WireGuard interface")?
            }
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

    fn uapi(&self) -> Result<UnixStream> {
        let path = Path::new(UAPI_DIR).join(format!("{}.sock", self.ifname));
        let s = UnixStream::connect(&path)
            .with_context(|| format!("cannot reach boringtun at {}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(s)
    }

    /// One UAPI `set` transaction (applied by boringtun under one lock).
    fn uapi_set(&self, body: &str) -> Result<()> {
        let mut s = self.uapi()?;
        s.write_all(b"set=1\n")?;
        s.write_all(body.as_bytes())?;
        s.write_all(b"\n")?;
        for line in BufReader::new(s).lines() {
            let line = line.context("no answer from boringtun")?;
            if let Some(errno) = line.strip_prefix("errno=") {
                return match errno.trim() {
                    "0" => Ok(()),
                    e => bail!(
                        "boringtun refused the configuration of {} (errno {e})",
                        self.ifname
                    ),
                };
            }
        }
        bail!(
            "boringtun closed the UAPI socket of {} without an answer",
            self.ifname
        )
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
        let targets = targets.to_vec();
        let r = in_netns(&self.netns, move || -> std::io::Result<()> {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            for t in targets {
                let _ = s.send_to(&[], (t, 9));
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::debug!("start_handshakes: {e:#}");
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Backend::Kernel = self.backend {
            let _ = self.net.delete_link(&self.ifname);
        }
        // boringtun: dropping the handle stops its threads; the TUN interface goes with its fd.
    }
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
