//! [`NodeMaps`]: typed handles on one node's pinned maps, with the byte-order work done.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, MapError};

use super::maps::{
    CONFIG_MAP, COUNTERS_MAP, CT_MAP, CounterKey, CounterValue, CtKey, CtValue, ENDPOINTS_MAP,
    EVENTS_BYTES, EVENTS_MAP, EndpointInfo, IDENTITY_WORLD, IPCACHE_MAP, IPCACHE6_MAP,
    IpcacheValue, LB_MAP, LbKey, LbValue, MAX_COUNTERS, MAX_CT, MAX_ENDPOINTS, MAX_IPCACHE,
    MAX_IPCACHE6, MAX_LB, MAX_NAT, MAX_POLICY, NAT_FWD_MAP, NAT_REV_MAP, NatValue, NodeConfig,
    POLICY_EXACT_MAP, POLICY_MAP, PolicyKey, PolicyKeyData, PolicyValue, Verdict, addr_from_wire,
    addr_to_wire, direction_from_byte,
};
use ward_engine::Direction;

/// One counter, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter {
    /// Endpoint id (0: interface without endpoint entry).
    pub ep_id: u32,
    /// Direction, from the endpoint's point of view.
    pub direction: Direction,
    /// Verdict (`None` for an unknown byte).
    pub verdict: Option<Verdict>,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One ipcache entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcacheEntry {
    /// Network address of the prefix.
    pub addr: IpAddr,
    /// Prefix length, 0..=32 (IPv4) or 0..=128 (IPv6).
    pub prefix_len: u8,
    /// Security identity.
    pub identity: u32,
}

/// Occupancy of one map, for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSize {
    /// Map name (`ward_policy`, ...).
    pub name: &'static str,
    /// Current entries (for the ring buffer: bytes waiting to be read).
    pub entries: u64,
    /// Capacity (for the ring buffer: its size in bytes).
    pub max_entries: u64,
}

/// Typed handles on one node's maps (loaded by [`super::NodeDatapath`], or opened from
/// their pins by any other process with [`NodeMaps::open_pinned`]).
#[derive(Debug)]
pub struct NodeMaps {
    endpoints: HashMap<MapData, u32, EndpointInfo>,
    ipcache: LpmTrie<MapData, u32, IpcacheValue>,
    ipcache6: LpmTrie<MapData, [u8; 16], IpcacheValue>,
    policy: LpmTrie<MapData, PolicyKeyData, PolicyValue>,
    /// Port-exact entries (prefix 96): a hash lookup whatever the number of rules.
    policy_exact: HashMap<MapData, PolicyKeyData, PolicyValue>,
    ct: HashMap<MapData, CtKey, CtValue>,
    counters: HashMap<MapData, CounterKey, CounterValue>,
    config: ConfigMap,
    lb: HashMap<MapData, LbKey, LbValue>,
    nat_fwd: HashMap<MapData, CtKey, NatValue>,
    nat_rev: HashMap<MapData, CtKey, NatValue>,
}

/// `ward_config` (aya's array handle has no `Debug`).
struct ConfigMap(Array<MapData, NodeConfig>);

impl std::fmt::Debug for ConfigMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(CONFIG_MAP)
    }
}

/// Checks the pins under `dir` that already exist have the layout this build expects, so a
/// restart after an upgrade fails with a clear message instead of misreading old maps.
pub(crate) fn check_pinned_layouts(dir: &Path) -> Result<()> {
    let expected: [(&str, u32, u32, u32); 12] = [
        (
            ENDPOINTS_MAP,
            4,
            size_of::<EndpointInfo>() as u32,
            MAX_ENDPOINTS,
        ),
        (
            IPCACHE_MAP,
            8,
            size_of::<IpcacheValue>() as u32,
            MAX_IPCACHE,
        ),
        (
            IPCACHE6_MAP,
            20,
            size_of::<IpcacheValue>() as u32,
            MAX_IPCACHE6,
        ),
        (POLICY_MAP, 16, size_of::<PolicyValue>() as u32, MAX_POLICY),
        (
            POLICY_EXACT_MAP,
            12,
            size_of::<PolicyValue>() as u32,
            MAX_POLICY,
        ),
        (
            CT_MAP,
            size_of::<CtKey>() as u32,
            size_of::<CtValue>() as u32,
            MAX_CT,
        ),
        (EVENTS_MAP, 0, 0, EVENTS_BYTES),
        (
            COUNTERS_MAP,
            size_of::<CounterKey>() as u32,
            size_of::<CounterValue>() as u32,
            MAX_COUNTERS,
        ),
        (CONFIG_MAP, 4, size_of::<NodeConfig>() as u32, 1),
        (
            LB_MAP,
            size_of::<LbKey>() as u32,
            size_of::<LbValue>() as u32,
            MAX_LB,
        ),
        (
            NAT_FWD_MAP,
            size_of::<CtKey>() as u32,
            size_of::<NatValue>() as u32,
            MAX_NAT,
        ),
        (
            NAT_REV_MAP,
            size_of::<CtKey>() as u32,
            size_of::<NatValue>() as u32,
            MAX_NAT,
        ),
    ];
    for (name, key, value, max) in expected {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let data = MapData::from_pin(&path)
            .with_context(|| format!("opening the pinned map {}", path.display()))?;
        let info = data
            .info()
            .with_context(|| format!("reading {}", path.display()))?;
        if (info.key_size(), info.value_size(), info.max_entries()) != (key, value, max) {
            bail!(
                "the pinned map {} has key size {}, value size {}, {} entries; this build \
                 expects {key}, {value}, {max}. It was made by another ward version: remove \
                 {} (enforcement state on this node is lost until the agent refills it)",
                path.display(),
                info.key_size(),
                info.value_size(),
                info.max_entries(),
                dir.display(),
            );
        }
    }
    Ok(())
}

fn map_of(name: &str, map: Option<Map>) -> Result<Map> {
    map.with_context(|| format!("the BPF object has no map {name}"))
}

impl NodeMaps {
    /// Handles from maps taken out of a loaded object.
    pub(crate) fn from_maps(mut take: impl FnMut(&str) -> Option<Map>) -> Result<NodeMaps> {
        Ok(NodeMaps {
            endpoints: HashMap::try_from(map_of(ENDPOINTS_MAP, take(ENDPOINTS_MAP))?)
                .context(ENDPOINTS_MAP)?,
            ipcache: LpmTrie::try_from(map_of(IPCACHE_MAP, take(IPCACHE_MAP))?)
                .context(IPCACHE_MAP)?,
            ipcache6: LpmTrie::try_from(map_of(IPCACHE6_MAP, take(IPCACHE6_MAP))?)
                .context(IPCACHE6_MAP)?,
            policy: LpmTrie::try_from(map_of(POLICY_MAP, take(POLICY_MAP))?).context(POLICY_MAP)?,
            policy_exact: HashMap::try_from(map_of(POLICY_EXACT_MAP, take(POLICY_EXACT_MAP))?)
                .context(POLICY_EXACT_MAP)?,
            ct: HashMap::try_from(map_of(CT_MAP, take(CT_MAP))?).context(CT_MAP)?,
            counters: HashMap::try_from(map_of(COUNTERS_MAP, take(COUNTERS_MAP))?)
                .context(COUNTERS_MAP)?,
            config: ConfigMap(
                Array::try_from(map_of(CONFIG_MAP, take(CONFIG_MAP))?).context(CONFIG_MAP)?,
            ),
            lb: HashMap::try_from(map_of(LB_MAP, take(LB_MAP))?).context(LB_MAP)?,
            nat_fwd: HashMap::try_from(map_of(NAT_FWD_MAP, take(NAT_FWD_MAP))?)
                .context(NAT_FWD_MAP)?,
            nat_rev: HashMap::try_from(map_of(NAT_REV_MAP, take(NAT_REV_MAP))?)
                .context(NAT_REV_MAP)?,
        })
    }

    /// Opens the maps pinned for `node` under [`super::PIN_ROOT`] without loading programs
    /// (status commands, tests). Fails when the node's datapath was never opened.
    pub fn open_pinned(node: &str) -> Result<NodeMaps> {
        let dir = super::pin_dir(node)?;
        check_pinned_layouts(&dir)?;
        NodeMaps::from_maps(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path).ok()?;
            Some(match name {
                IPCACHE_MAP | IPCACHE6_MAP | POLICY_MAP => Map::LpmTrie(data),
                CT_MAP => Map::LruHashMap(data),
                CONFIG_MAP => Map::Array(data),
                _ => Map::HashMap(data),
            })
        })
        .with_context(|| {
            format!(
                "opening the pinned maps under {} (is the node's agent running as root?)",
                dir.display()
            )
        })
    }

    /// Writes the node's configuration (the DNS proxy's socket).
    pub fn set_config(&mut self, config: NodeConfig) -> Result<()> {
        self.config
            .0
            .set(0, config, 0)
            .with_context(|| format!("writing {CONFIG_MAP}"))
    }

    /// The node's configuration.
    pub fn config(&self) -> Result<NodeConfig> {
        self.config
            .0
            .get(&0, 0)
            .with_context(|| format!("reading {CONFIG_MAP}"))
    }

    /// Sets the endpoint of host veth `ifindex`.
    pub fn set_endpoint(&mut self, ifindex: u32, info: EndpointInfo) -> Result<()> {
        self.endpoints
            .insert(ifindex, info, 0)
            .with_context(|| format!("setting endpoint of ifindex {ifindex} in {ENDPOINTS_MAP}"))
    }

    /// Removes the endpoint of `ifindex` (its traffic is then dropped); false when absent.
    pub fn remove_endpoint(&mut self, ifindex: u32) -> Result<bool> {
        absent_is_false(self.endpoints.remove(&ifindex))
            .with_context(|| format!("removing ifindex {ifindex} from {ENDPOINTS_MAP}"))
    }

    /// Every endpoint entry: (ifindex, info).
    pub fn endpoints(&self) -> Result<Vec<(u32, EndpointInfo)>> {
        collect(self.endpoints.iter()).context(ENDPOINTS_MAP)
    }

    /// Maps `addr/prefix_len` (host bits are cleared) to `identity`, in the ipcache of
    /// the address's family.
    pub fn ipcache_set(
        &mut self,
        addr: impl Into<IpAddr>,
        prefix_len: u8,
        identity: u32,
    ) -> Result<()> {
        let addr = addr.into();
        let value = IpcacheValue { identity };
        match addr {
            IpAddr::V4(a) => self.ipcache.insert(&ipcache_key(a, prefix_len)?, value, 0),
            IpAddr::V6(a) => self
                .ipcache6
                .insert(&ipcache6_key(a, prefix_len)?, value, 0),
        }
        .with_context(|| format!("setting {addr}/{prefix_len} in {}", ipcache_name(addr)))
    }

    /// Removes `addr/prefix_len`; false when absent.
    pub fn ipcache_remove(&mut self, addr: impl Into<IpAddr>, prefix_len: u8) -> Result<bool> {
        let addr = addr.into();
        absent_is_false(match addr {
            IpAddr::V4(a) => self.ipcache.remove(&ipcache_key(a, prefix_len)?),
            IpAddr::V6(a) => self.ipcache6.remove(&ipcache6_key(a, prefix_len)?),
        })
        .with_context(|| format!("removing {addr}/{prefix_len} from {}", ipcache_name(addr)))
    }

    /// Every ipcache entry, IPv4 then IPv6.
    pub fn ipcache_entries(&self) -> Result<Vec<IpcacheEntry>> {
        let entry = |addr: IpAddr, prefix_len: u32, value: IpcacheValue| IpcacheEntry {
            addr,
            prefix_len: u8::try_from(prefix_len).unwrap_or(u8::MAX),
            identity: value.identity,
        };
        let v4 = collect(self.ipcache.iter()).context(IPCACHE_MAP)?;
        let v6 = collect(self.ipcache6.iter()).context(IPCACHE6_MAP)?;
        Ok(v4
            .into_iter()
            .map(|(k, v)| entry(addr_from_wire(k.data()).into(), k.prefix_len(), v))
            .chain(
                v6.into_iter()
                    .map(|(k, v)| entry(Ipv6Addr::from(k.data()).into(), k.prefix_len(), v)),
            )
            .collect())
    }

    /// The identity the datapath resolves for `addr` (longest prefix; `world` when none).
    pub fn ipcache_lookup(&self, addr: impl Into<IpAddr>) -> Result<u32> {
        let addr = addr.into();
        let found = match addr {
            IpAddr::V4(a) => self.ipcache.get(&Key::new(32, addr_to_wire(a)), 0),
            IpAddr::V6(a) => self.ipcache6.get(&Key::new(128, a.octets()), 0),
        };
        match found {
            Ok(value) => Ok(value.identity),
            Err(MapError::KeyNotFound) => Ok(IDENTITY_WORLD),
            Err(e) => Err(e).context(ipcache_name(addr)),
        }
    }

    /// Sets one policy entry: a port-exact key goes to the exact-match map, any shorter
    /// prefix to the trie (the program looks in that order).
    pub fn policy_set(&mut self, key: PolicyKey, value: PolicyValue) -> Result<()> {
        match key.exact_key() {
            Some(exact) => self
                .policy_exact
                .insert(exact, value, 0)
                .with_context(|| format!("setting {key:?} in {POLICY_EXACT_MAP}")),
            None => self
                .policy
                .insert(&key.trie_key(), value, 0)
                .with_context(|| format!("setting {key:?} in {POLICY_MAP}")),
        }
    }

    /// Removes one policy entry; false when absent.
    pub fn policy_remove(&mut self, key: &PolicyKey) -> Result<bool> {
        match key.exact_key() {
            Some(exact) => absent_is_false(self.policy_exact.remove(&exact))
                .with_context(|| format!("removing {key:?} from {POLICY_EXACT_MAP}")),
            None => absent_is_false(self.policy.remove(&key.trie_key()))
                .with_context(|| format!("removing {key:?} from {POLICY_MAP}")),
        }
    }

    /// The value of one policy entry (from the map [`NodeMaps::policy_set`] puts it in);
    /// `None` when absent.
    pub fn policy_get(&self, key: &PolicyKey) -> Result<Option<PolicyValue>> {
        let got = match key.exact_key() {
            Some(exact) => self.policy_exact.get(&exact, 0),
            None => self.policy.get(&key.trie_key(), 0),
        };
        match got {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key:?}")),
        }
    }

    /// Every policy entry (both maps).
    pub fn policy_entries(&self) -> Result<Vec<(PolicyKey, PolicyValue)>> {
        let trie = collect(self.policy.iter()).context(POLICY_MAP)?;
        let exact = collect(self.policy_exact.iter()).context(POLICY_EXACT_MAP)?;
        Ok(trie
            .into_iter()
            .map(|(key, value)| (PolicyKey::from_trie_key(&key), value))
            .chain(
                exact
                    .into_iter()
                    .map(|(key, value)| (PolicyKey::from_exact_key(key), value)),
            )
            .collect())
    }

    /// Every conntrack entry.
    pub fn ct_entries(&self) -> Result<Vec<(CtKey, CtValue)>> {
        collect(self.ct.iter()).context(CT_MAP)
    }

    /// Removes every conntrack entry (established connections then need policy again).
    pub fn ct_clear(&mut self) -> Result<()> {
        let keys = collect(self.ct.keys()).context(CT_MAP)?;
        for key in keys {
            absent_is_false(self.ct.remove(&key)).context(CT_MAP)?;
        }
        Ok(())
    }

    /// Sets one service-map entry (a service's slot 0 or one of its backends).
    pub fn lb_set(&mut self, key: LbKey, value: LbValue) -> Result<()> {
        self.lb
            .insert(key, value, 0)
            .with_context(|| format!("setting {key:?} in {LB_MAP}"))
    }

    /// Removes one service-map entry; false when absent.
    pub fn lb_remove(&mut self, key: &LbKey) -> Result<bool> {
        absent_is_false(self.lb.remove(key))
            .with_context(|| format!("removing {key:?} from {LB_MAP}"))
    }

    /// Every service-map entry.
    pub fn lb_entries(&self) -> Result<Vec<(LbKey, LbValue)>> {
        collect(self.lb.iter()).context(LB_MAP)
    }

    /// Every translated connection: (the pod's tuple to the service, the backend it got).
    pub fn nat_entries(&self) -> Result<Vec<(CtKey, NatValue)>> {
        collect(self.nat_fwd.iter()).context(NAT_FWD_MAP)
    }

    /// Every counter.
    pub fn counters(&self) -> Result<Vec<Counter>> {
        let raw = collect(self.counters.iter()).context(COUNTERS_MAP)?;
        let mut out: Vec<Counter> = raw
            .into_iter()
            .map(|(key, value)| Counter {
                ep_id: key.ep_id,
                direction: direction_from_byte(key.direction),
                verdict: Verdict::from_u8(key.verdict),
                packets: value.packets,
                bytes: value.bytes,
            })
            .collect();
        out.sort_by_key(|c| (c.ep_id, c.direction, c.verdict));
        Ok(out)
    }

    /// Entries and capacity of every hash/trie map (not the ring buffer).
    pub fn sizes(&self) -> Result<Vec<MapSize>> {
        let sizes = [
            (ENDPOINTS_MAP, count(self.endpoints.keys())?, MAX_ENDPOINTS),
            (IPCACHE_MAP, count(self.ipcache.keys())?, MAX_IPCACHE),
            (IPCACHE6_MAP, count(self.ipcache6.keys())?, MAX_IPCACHE6),
            (POLICY_MAP, count(self.policy.keys())?, MAX_POLICY),
            (
                POLICY_EXACT_MAP,
                count(self.policy_exact.keys())?,
                MAX_POLICY,
            ),
            (CT_MAP, count(self.ct.keys())?, MAX_CT),
            (LB_MAP, count(self.lb.keys())?, MAX_LB),
            (NAT_FWD_MAP, count(self.nat_fwd.keys())?, MAX_NAT),
            (NAT_REV_MAP, count(self.nat_rev.keys())?, MAX_NAT),
            (COUNTERS_MAP, count(self.counters.keys())?, MAX_COUNTERS),
        ];
        Ok(sizes
            .into_iter()
            .map(|(name, entries, max)| MapSize {
                name,
                entries,
                max_entries: u64::from(max),
            })
            .collect())
    }
}

fn ipcache_key(addr: Ipv4Addr, prefix_len: u8) -> Result<Key<u32>> {
    if prefix_len > 32 {
        bail!("IPv4 prefix length {prefix_len} is larger than 32");
    }
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - prefix_len)
    };
    let net = Ipv4Addr::from(u32::from(addr) & mask);
    Ok(Key::new(u32::from(prefix_len), addr_to_wire(net)))
}

fn ipcache6_key(addr: Ipv6Addr, prefix_len: u8) -> Result<Key<[u8; 16]>> {
    if prefix_len > 128 {
        bail!("IPv6 prefix length {prefix_len} is larger than 128");
    }
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0);
    let net = Ipv6Addr::from_bits(addr.to_bits() & mask);
    Ok(Key::new(u32::from(prefix_len), net.octets()))
}

/// The ipcache map of `addr`'s family.
fn ipcache_name(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => IPCACHE_MAP,
        IpAddr::V6(_) => IPCACHE6_MAP,
    }
}

/// The errno under a map error, if any.
pub(crate) fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        if let Some(sys) = e.downcast_ref::<aya::sys::SyscallError>() {
            return sys.io_error.raw_os_error();
        }
        cur = e.source();
    }
    None
}

fn absent_is_false(res: Result<(), MapError>) -> Result<bool, MapError> {
    match res {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(e) if os_error(&e) == Some(libc_enoent()) => Ok(false),
        Err(e) => Err(e),
    }
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

/// Collects an aya map iterator (entries or keys); entries deleted while iterating are
/// skipped.
fn collect<T>(iter: impl Iterator<Item = Result<T, MapError>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in iter {
        match item {
            Ok(item) => out.push(item),
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn count<K>(iter: impl Iterator<Item = Result<K, MapError>>) -> Result<u64> {
    Ok(collect(iter)?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipcache_key_masks_host_bits() {
        let key = ipcache_key(Ipv4Addr::new(10, 1, 2, 3), 16).expect("valid prefix");
        assert_eq!(key.prefix_len(), 16);
        assert_eq!(addr_from_wire(key.data()), Ipv4Addr::new(10, 1, 0, 0));
        assert!(ipcache_key(Ipv4Addr::UNSPECIFIED, 33).is_err());
        let all = ipcache_key(Ipv4Addr::new(1, 2, 3, 4), 0).expect("valid prefix");
        assert_eq!(key_data(&all), 0);
    }

    fn key_data(key: &Key<u32>) -> u32 {
        key.data()
    }

    #[test]
    fn ipcache6_key_masks_host_bits() {
        let addr: Ipv6Addr = "fd00:10:1:2::3".parse().expect("an address");
        let key = ipcache6_key(addr, 48).expect("valid prefix");
        assert_eq!(key.prefix_len(), 48);
        assert_eq!(
            Ipv6Addr::from(key.data()),
            "fd00:10:1::".parse::<Ipv6Addr>().expect("an address")
        );
        assert_eq!(
            ipcache6_key(addr, 128).expect("valid").data(),
            addr.octets()
        );
        assert_eq!(ipcache6_key(addr, 0).expect("valid").data(), [0; 16]);
        assert!(ipcache6_key(addr, 129).is_err());
    }
}
