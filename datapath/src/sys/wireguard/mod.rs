//! The WireGuard interface of a node: kernel WireGuard when the kernel has it, else ward's
//! own userspace device over TUN ([`userspace`], this machine's case). Both speak
//! defguard_wireguard_rs types; the kernel through its netlink API, the userspace device by
//! direct calls.
//!
//! The interface and the device's UDP socket are created inside the node's network
//! namespace; the device's threads only use their file descriptors. The userspace device runs
//! in a process of its own (`ward-agent device`), which the agent configures over a Unix
//! socket in its run directory ([`userspace::control`]), so that the tunnel outlives an agent
//! restart: [`WireGuard::create`] attaches to a running device before it makes a new one.
//!
//! Peers are only ever added or removed, never changed in place: a removed-and-added peer
//! loses its session.

mod kernel;
pub mod userspace;

use super::net::{Net, NetnsNet};
use super::netns::in_netns;
use crate::wireguard::keys::PrivateKey;
use anyhow::{Result, anyhow};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{Kernel, WGApi, WireguardInterfaceApi};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use userspace::Remote;
use userspace::control::{SOCKET, Secret, Setup};

/// Makes WireGuard interfaces in one network namespace.
pub trait WireGuard: Send + Sync {
    /// Creates interface `ifname` with `key`, listening on `port`, with `mtu`, up. A running
    /// userspace device (left by the agent before) is attached to and kept when it has that
    /// name, port and MTU (its key switched to `key` if needed); any other interface of that
    /// name left from before is removed first.
    fn create(
        &self,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        mtu: u32,
    ) -> Result<Box<dyn WgDevice>>;
    /// Stops a userspace device an earlier agent left running (its interface goes), if
    /// there is one: for when this agent does not want it (encryption off or failed).
    fn stop_left(&self) -> Result<()>;
}

/// One WireGuard interface. Dropping it removes a kernel interface; ward's userspace device
/// keeps running for the next agent to attach to ([`WgDevice::remove`] stops it).
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
    /// Removes the interface now (the userspace device's process exits).
    fn remove(&self) -> Result<()>;
    /// Whether the device still runs: false once the userspace device's process has ended
    /// (its interface went with it).
    fn alive(&self) -> bool {
        true
    }
    /// The process that runs the device, when it is ward's userspace device.
    fn pid(&self) -> Option<u32> {
        None
    }
}

/// The kernel's WireGuard (or ward's userspace device where the kernel has none) in the
/// network namespace at a path.
#[derive(Debug, Clone)]
pub struct KernelWireGuard {
    netns: PathBuf,
    /// The userspace device's control socket.
    socket: PathBuf,
}

impl KernelWireGuard {
    /// WireGuard interfaces in the namespace at `netns`; a userspace device is reached at
    /// `<run_dir>/wireguard.sock` (and started from this executable, `device` subcommand).
    pub fn new(netns: &Path, run_dir: &Path) -> KernelWireGuard {
        KernelWireGuard {
            netns: netns.to_path_buf(),
            socket: std::path::absolute(run_dir)
                .unwrap_or_else(|_| run_dir.to_path_buf())
                .join(SOCKET),
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
        let setup = Setup {
            netns: self.netns.clone(),
            ifname: ifname.to_owned(),
            port,
            mtu,
            key: Secret(key.secret().as_array()),
        };
        Ok(Box::new(Device::create(&self.socket, setup, key)?))
    }

    fn stop_left(&self) -> Result<()> {
        if let Some(remote) = Remote::attach(&self.socket)? {
            tracing::info!(
                pid = remote.pid(),
                "stopping the WireGuard device left running"
            );
            remote.shutdown()?;
        }
        Ok(())
    }
}

/// Which WireGuard implementation runs the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The kernel module (netlink).
    Kernel,
    /// ward's device, over TUN, in its own process.
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The peer as defguard_wireguard_rs describes it.
    pub(crate) fn to_peer(&self) -> Peer {
        let mut p = Peer::new(self.key.clone());
        p.endpoint = Some(self.endpoint);
        p.allowed_ips.clone_from(&self.allowed);
        p.persistent_keepalive_interval = self.keepalive;
        p
    }
}

enum Backend {
    /// The device process; dropping the connection leaves it running.
    Userspace(Remote),
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
    /// Kernel: the peers in the order they were added, and the calls each change makes.
    plan: std::sync::Mutex<kernel::Plan>,
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
    /// Creates the interface `setup` describes, up: kernel WireGuard when `ip link add type
    /// wireguard` works in the namespace; else ward's userspace device: the one serving
    /// `socket` if one runs (attached to), or a new one.
    pub fn create(socket: &Path, setup: Setup, key: &PrivateKey) -> Result<Device> {
        let net = NetnsNet::new(&setup.netns);
        let (netns, ifname, port, mtu) = (
            setup.netns.clone(),
            setup.ifname.clone(),
            setup.port,
            setup.mtu,
        );
        let backend = if kernel_available(&net, &ifname) {
            remove_stale(&net, &ifname);
            create_kernel(&netns, &ifname)?;
            Backend::Kernel
        } else if let Some(remote) = Remote::attach(socket)? {
            let kept = remote.setup(setup)?;
            tracing::info!(interface = %ifname, pid = remote.pid(), kept, "attached to the running WireGuard device");
            Backend::Userspace(remote)
        } else {
            remove_stale(&net, &ifname);
            Backend::Userspace(spawn_userspace(socket, setup)?)
        };
        let dev = Device {
            ifname,
            netns,
            net,
            port,
            backend,
            plan: std::sync::Mutex::default(),
        };
        dev.net.set_link_up(&dev.ifname, Some(mtu))?;
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
            Backend::Userspace(u) => u.set_private_key(key.secret().as_array()),
            Backend::Kernel => self.kernel_set_host(key),
        }
    }

    /// Kernel: private key and port, then the peers it had, read back and added again in
    /// the order ward added them ([`kernel::Plan::set_key`]).
    fn kernel_set_host(&self, key: &PrivateKey) -> Result<()> {
        let peers = self.read()?.peers.into_values().collect();
        let calls = self.plan().set_key(&self.ifname, key, self.port, peers);
        self.kernel_run(calls)
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, kernel::Plan> {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a peer that the interface does not have yet.
    pub fn add_peer(&self, peer: &PeerSpec) -> Result<()> {
        match &self.backend {
            Backend::Userspace(u) => u.add_peer(peer),
            Backend::Kernel => {
                let calls = self.plan().add(peer);
                self.kernel_run(calls)
            }
        }
    }

    /// Removes the peer with `key` (no error when it is not there).
    pub fn remove_peer(&self, key: &Key) -> Result<()> {
        match &self.backend {
            Backend::Userspace(u) => u.remove_peer(key),
            Backend::Kernel => {
                let calls = self.plan().remove(key);
                self.kernel_run(calls)
            }
        }
    }

    /// The interface as the implementation reports it: peers with handshakes and byte counts.
    /// (The private key in the answer is dropped here.)
    pub fn read(&self) -> Result<Host> {
        let mut host = match &self.backend {
            Backend::Userspace(u) => u.read()?,
            Backend::Kernel => {
                self.kernel(|api| api.read_interface_data().map_err(|e| anyhow!("{e}")))?
            }
        };
        host.private_key = None;
        Ok(host)
    }

    /// Makes `calls` on the kernel interface, in order, up to the first that fails.
    fn kernel_run(&self, calls: Vec<kernel::Call>) -> Result<()> {
        self.kernel(move |api| calls.iter().try_for_each(|c| c.run(api)))
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
    fn remove(&self) -> Result<()> {
        match &self.backend {
            Backend::Userspace(u) => u.shutdown(),
            Backend::Kernel => self.net.delete_link(&self.ifname),
        }
    }
    fn alive(&self) -> bool {
        match &self.backend {
            Backend::Userspace(u) => u.alive(),
            Backend::Kernel => true,
        }
    }
    fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Userspace(u) => Some(u.pid()),
            Backend::Kernel => None,
        }
    }
}

fn create_kernel(netns: &Path, ifname: &str) -> Result<()> {
    let name = ifname.to_owned();
    in_netns(netns, move || -> Result<()> {
        let mut api = WGApi::<Kernel>::new(name.clone()).map_err(|e| anyhow!("{e}"))?;
        api.create_interface()
            .map_err(|e| anyhow!("cannot create {name}: {e}"))
    })?
}

/// Starts a device process from this executable and sets it up.
fn spawn_userspace(socket: &Path, setup: Setup) -> Result<Remote> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow!("cannot find the agent's executable to start the device: {e}"))?;
    let remote = Remote::spawn(socket, &exe)?;
    remote.setup(setup)?;
    Ok(remote)
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
        // Userspace: the device process keeps running for the next agent.
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
