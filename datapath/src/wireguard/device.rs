//! The WireGuard interface of a node: kernel WireGuard when the kernel has it, else boringtun
//! in userspace over TUN (this machine's case). Both are driven through defguard_wireguard_rs
//! types; the kernel through its netlink API, boringtun through the WireGuard UAPI socket.
//!
//! Everything is created inside the node's network namespace: the interface, boringtun's
//! threads (which inherit the namespace of the thread that starts them) and so its UDP socket.
//!
//! Peers are only ever added or removed, never changed in place: boringtun refuses (panics on)
//! a second configuration of an existing peer, and a removed-and-added peer loses its session.

use super::keys::PrivateKey;
use crate::lab::in_netns;
use crate::lab::ip::ip_at;
use anyhow::{Context, Result, anyhow, bail};
use defguard_boringtun::device::{DeviceConfig, DeviceHandle};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        remove_stale(&ns, ifname);
        let backend = if kernel_available(&ns, ifname) {
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
            port,
            backend,
        };
        dev.ip(&["link", "set", "dev", ifname, "mtu", &mtu.to_string(), "up"])?;
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

    fn ip(&self, args: &[&str]) -> Result<()> {
        run_ip(&self.netns, args)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Backend::Kernel = self.backend {
            let _ = run_ip(&self.netns, &["link", "del", "dev", &self.ifname]);
        }
        // boringtun: dropping the handle stops its threads; the TUN interface goes with its fd.
    }
}

/// `ip <args>` in `netns` (the lab's runner), without its output.
pub(crate) fn run_ip(netns: &Path, args: &[&str]) -> Result<()> {
    ip_at(netns, args).map(|_| ())
}

/// An interface of that name left by a crashed agent (kernel WireGuard survives its agent).
fn remove_stale(netns: &Path, ifname: &str) {
    if run_ip(netns, &["link", "show", "dev", ifname]).is_ok() {
        tracing::info!(
            interface = ifname,
            "removing a WireGuard interface left from before"
        );
        let _ = run_ip(netns, &["link", "del", "dev", ifname]);
    }
}

/// Whether the kernel can make WireGuard interfaces (tries a throw-away one).
fn kernel_available(netns: &Path, ifname: &str) -> bool {
    if std::env::var_os("WARD_WIREGUARD_USERSPACE").is_some() {
        return false;
    }
    let probe = format!("{}p", &ifname[..ifname.len().min(14)]);
    let ok = run_ip(netns, &["link", "add", "dev", &probe, "type", "wireguard"]).is_ok();
    if ok {
        let _ = run_ip(netns, &["link", "del", "dev", &probe]);
    }
    ok
}
