//! Fakes of the seam's traits for unit tests: they keep the state a kernel would (routes,
//! the interface and its peers), log every call in order, and fail on request.

use super::NodeSys;
use super::net::{Net, Route, RouteTarget};
use super::wireguard::{Implementation, PeerSpec, WgDevice, WireGuard};
use crate::wireguard::keys::PrivateKey;
use anyhow::{Result, bail};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use ward_schema::topology::Ipv4Net;

/// A namespace's links, addresses and routes, in memory.
#[derive(Debug, Default)]
pub(crate) struct FakeNet {
    state: Mutex<NetState>,
}

/// What a [`FakeNet`] holds.
#[derive(Debug, Default)]
pub(crate) struct NetState {
    /// Interfaces with their IPv4 address and MTU.
    pub links: BTreeMap<String, (Option<Ipv4Addr>, u32)>,
    /// Routes by destination and metric.
    pub routes: BTreeMap<(Ipv4Net, u32), RouteTarget>,
    /// Every changing call, as `ip` would write it.
    pub log: Vec<String>,
    /// When set, route changes fail with this message.
    pub fail_routes: Option<String>,
}

impl FakeNet {
    /// A namespace with interface `ifname` holding `ip`, MTU 1500.
    pub fn with_link(ifname: &str, ip: Ipv4Addr) -> FakeNet {
        let net = FakeNet::default();
        net.state()
            .links
            .insert(ifname.to_owned(), (Some(ip), 1500));
        net
    }

    pub fn state(&self) -> MutexGuard<'_, NetState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The routes to `dst`, lowest metric first.
    pub fn routes_to(&self, dst: Ipv4Net) -> Vec<(u32, RouteTarget)> {
        self.state()
            .routes
            .iter()
            .filter(|((d, _), _)| *d == dst)
            .map(|((_, m), t)| (*m, t.clone()))
            .collect()
    }

    /// The log so far, emptied.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.state().log)
    }
}

impl Net for FakeNet {
    fn ensure_local_delivery(&self, rule: &super::net::LocalDelivery) -> Result<()> {
        self.state().log.push(format!("ip rule add {rule}"));
        Ok(())
    }

    fn ipv4_addresses(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        Ok(self
            .state()
            .links
            .iter()
            .filter_map(|(n, (ip, _))| ip.map(|ip| (n.clone(), ip)))
            .collect())
    }
    fn link_mtu(&self, ifname: &str) -> Result<u32> {
        match self.state().links.get(ifname) {
            Some((_, mtu)) => Ok(*mtu),
            None => bail!("no interface {ifname:?}"),
        }
    }
    fn link_exists(&self, ifname: &str) -> Result<bool> {
        Ok(self.state().links.contains_key(ifname))
    }
    fn set_link_up(&self, ifname: &str, mtu: Option<u32>) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("link set {ifname} up mtu {mtu:?}"));
        let link = s.links.entry(ifname.to_owned()).or_insert((None, 1500));
        if let Some(m) = mtu {
            link.1 = m;
        }
        Ok(())
    }
    fn delete_link(&self, ifname: &str) -> Result<()> {
        let mut s = self.state();
        s.log.push(format!("link del {ifname}"));
        match s.links.remove(ifname) {
            Some(_) => Ok(()),
            None => bail!("no interface {ifname:?}"),
        }
    }
    fn replace_route(&self, route: &Route) -> Result<()> {
        let mut s = self.state();
        if let Some(msg) = &s.fail_routes {
            bail!("{msg}");
        }
        s.log.push(format!("route replace {route}"));
        s.routes
            .insert((route.dst, route.metric), route.target.clone());
        Ok(())
    }
    fn delete_route(&self, dst: Ipv4Net, kind: Option<(&RouteTarget, u32)>) -> Result<()> {
        let mut s = self.state();
        if let Some(msg) = &s.fail_routes {
            bail!("{msg}");
        }
        let found = s
            .routes
            .iter()
            .find(|((d, m), t)| {
                *d == dst
                    && kind.is_none_or(|(kt, km)| {
                        *m == km && std::mem::discriminant(*t) == std::mem::discriminant(kt)
                    })
            })
            .map(|(k, _)| *k);
        match found {
            Some(k) => {
                s.log.push(format!("route del {dst} metric {}", k.1));
                s.routes.remove(&k);
                Ok(())
            }
            None => bail!("no such route {dst}"),
        }
    }
    fn route_interface(&self, ip: Ipv4Addr) -> Result<Option<String>> {
        Ok(self
            .state()
            .routes
            .iter()
            .find(|((d, _), _)| d.network() == ip && d.prefix_len() == 32)
            .and_then(|(_, t)| match t {
                RouteTarget::Dev(d) | RouteTarget::Via(_, d) => Some(d.clone()),
                RouteTarget::Unreachable => None,
            }))
    }
}

/// One node's WireGuard, in memory: at most one interface.
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeWireGuard {
    state: Arc<Mutex<WgState>>,
}

/// What a [`FakeWireGuard`] holds.
#[derive(Debug, Default)]
pub(crate) struct WgState {
    /// The interface, while its device is alive.
    pub device: Option<DeviceState>,
    /// How many interfaces were created.
    pub created: usize,
    /// Every call, in order (keys as public keys).
    pub log: Vec<String>,
    /// When set, `create` fails with this message.
    pub fail_create: Option<String>,
    /// When set, `add_peer` fails with this message.
    pub fail_add_peer: Option<String>,
}

/// The fake interface.
#[derive(Debug, Clone)]
pub(crate) struct DeviceState {
    pub ifname: String,
    pub port: u16,
    pub mtu: u32,
    /// The public half of the interface's private key.
    pub public_key: Key,
    /// Peers in the order they were added.
    pub peers: Vec<PeerSpec>,
    /// The targets of each `start_handshakes` call.
    pub handshakes: Vec<Vec<Ipv4Addr>>,
}

impl FakeWireGuard {
    pub fn state(&self) -> MutexGuard<'_, WgState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The interface, if there is one.
    pub fn device(&self) -> Option<DeviceState> {
        self.state().device.clone()
    }

    /// The interface's peers' public keys, in order (empty without an interface).
    pub fn peer_keys(&self) -> Vec<Key> {
        self.device()
            .map(|d| d.peers.iter().map(|p| p.key.clone()).collect())
            .unwrap_or_default()
    }
}

impl WireGuard for FakeWireGuard {
    fn create(
        &self,
        ifname: &str,
        key: &PrivateKey,
        port: u16,
        mtu: u32,
    ) -> Result<Box<dyn WgDevice>> {
        let mut s = self.state();
        if let Some(msg) = &s.fail_create {
            bail!("{msg}");
        }
        // A device left running by an earlier agent with this interface is attached to, like
        // ward's userspace device (its key switched if it differs).
        if let Some(d) = s
            .device
            .as_mut()
            .filter(|d| (d.ifname.as_str(), d.port, d.mtu) == (ifname, port, mtu))
        {
            d.public_key = key.public();
            s.log
                .push(format!("attach {ifname} {} {port} {mtu}", key.public()));
            return Ok(Box::new(FakeDevice {
                ifname: ifname.to_owned(),
                port,
                state: Arc::clone(&self.state),
            }));
        }
        s.log
            .push(format!("create {ifname} {} {port} {mtu}", key.public()));
        s.created += 1;
        s.device = Some(DeviceState {
            ifname: ifname.to_owned(),
            port,
            mtu,
            public_key: key.public(),
            peers: Vec::new(),
            handshakes: Vec::new(),
        });
        Ok(Box::new(FakeDevice {
            ifname: ifname.to_owned(),
            port,
            state: Arc::clone(&self.state),
        }))
    }

    fn stop_left(&self) -> Result<()> {
        let mut s = self.state();
        if s.device.take().is_some() {
            s.log.push("stop left".to_owned());
        }
        Ok(())
    }
}

struct FakeDevice {
    ifname: String,
    port: u16,
    state: Arc<Mutex<WgState>>,
}

impl FakeDevice {
    fn with<T>(&self, f: impl FnOnce(&mut WgState, &mut DeviceState) -> Result<T>) -> Result<T> {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &mut *guard;
        let Some(mut d) = s.device.take() else {
            bail!("the interface is gone");
        };
        let r = f(s, &mut d);
        s.device = Some(d);
        r
    }
}

impl WgDevice for FakeDevice {
    fn ifname(&self) -> &str {
        &self.ifname
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn implementation(&self) -> Implementation {
        Implementation::Userspace
    }
    fn set_private_key(&self, key: &PrivateKey) -> Result<()> {
        self.with(|s, d| {
            s.log.push(format!("set key {}", key.public()));
            d.public_key = key.public();
            Ok(())
        })
    }
    fn add_peer(&self, peer: &PeerSpec) -> Result<()> {
        self.with(|s, d| {
            if let Some(msg) = &s.fail_add_peer {
                bail!("{msg}");
            }
            // The userspace device refuses a second configuration of a peer: the mesh never does it.
            assert!(
                d.peers.iter().all(|p| p.key != peer.key),
                "peer {} added twice",
                peer.key
            );
            s.log.push(format!("add peer {}", peer.key));
            d.peers.push(peer.clone());
            Ok(())
        })
    }
    fn remove_peer(&self, key: &Key) -> Result<()> {
        self.with(|s, d| {
            s.log.push(format!("remove peer {key}"));
            d.peers.retain(|p| &p.key != key);
            Ok(())
        })
    }
    fn read(&self) -> Result<Host> {
        self.with(|_, d| {
            let mut host = Host::new(d.port, d.public_key.clone());
            host.private_key = None;
            for p in &d.peers {
                host.peers.insert(p.key.clone(), p.to_peer());
            }
            Ok(host)
        })
    }
    fn start_handshakes(&self, targets: &[Ipv4Addr]) {
        let _ = self.with(|_, d| {
            d.handshakes.push(targets.to_vec());
            Ok(())
        });
    }
    fn remove(&self) -> Result<()> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.log.push(format!("remove {}", self.ifname));
        s.device = None;
        Ok(())
    }
    fn alive(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .device
            .is_some()
    }
}

impl FakeWireGuard {
    /// The device's process dies: the interface goes, the handles stay.
    pub fn kill_device(&self) {
        let mut s = self.state();
        s.log.push("killed".to_owned());
        s.device = None;
    }
}

/// A node's seam made of fakes, with handles on them.
pub(crate) fn node(underlay: &str, ip: Ipv4Addr) -> (NodeSys, Arc<FakeNet>, FakeWireGuard) {
    let net = Arc::new(FakeNet::with_link(underlay, ip));
    let wg = FakeWireGuard::default();
    let sys = NodeSys {
        net: net.clone(),
        wireguard: Arc::new(wg.clone()),
    };
    (sys, net, wg)
}
