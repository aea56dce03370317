//! Writing only what changed: the difference between the entries in the kernel and the
//! entries wanted, applied in an order that never opens a window.
//!
//! Order: endpoints first, then every new or changed policy entry (denies before allows),
//! then the ipcache's additions and changes (an address moving to a new identity finds that
//! identity's entries in place), then removals of stale policy entries, stale ipcache
//! entries and departed endpoints. In between, the maps hold the union of old and new entries, in which a
//! deny still wins; so nothing is ever allowed that neither revision allows, and an endpoint
//! never has no entry at all (which would drop its traffic, as it should while it is unknown).

use super::entries::{
    EndpointEntry, NodeEntries, PolicyKey, PolicyValue, Prefix, ServiceSlot, SlotValue,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// The node's enforcement datapath as the agent drives it: the BPF programs attached to pod
/// interfaces and the maps they read. [`crate::bpf::NodeDatapath`] is the kernel's; unit
/// tests use a fake.
pub trait Datapath {
    /// Attaches the programs to interface `ifname` in the network namespace at `netns`;
    /// returns its index (the endpoint map's key).
    fn attach(&mut self, netns: &Path, ifname: &str) -> Result<u32>;
    /// Attaches the host programs to the node's underlay interface `ifname` (the host
    /// endpoint's packets only; forwarded traffic passes); returns its index.
    fn attach_host(&mut self, netns: &Path, ifname: &str) -> Result<u32>;
    /// What the maps hold, endpoints named by `ifindex` (pod name → interface index).
    fn read_back(&self, ifindex: &BTreeMap<String, u32>) -> Result<NodeEntries>;
    /// The maps as a [`MapStore`], endpoints keyed by their index in `ifindex`.
    fn store<'a>(&'a mut self, ifindex: &'a BTreeMap<String, u32>) -> Box<dyn MapStore + 'a>;
    /// Writes the node's configuration for the programs (the DNS proxy's socket); a fake
    /// datapath has none.
    fn set_config(&mut self, _config: crate::bpf::maps::NodeConfig) -> Result<()> {
        Ok(())
    }
    /// The remote addresses of the connections conntrack still tracks (a fake datapath has
    /// none).
    fn live_destinations(&self) -> Result<std::collections::BTreeSet<std::net::IpAddr>> {
        Ok(std::collections::BTreeSet::new())
    }
}

/// Where map entries go: the node's pinned BPF maps, or a fake in unit tests.
pub trait MapStore {
    /// Adds or replaces an endpoint (keyed by its map id).
    fn set_endpoint(&mut self, name: &str, e: &EndpointEntry) -> Result<()>;
    /// Removes an endpoint.
    fn remove_endpoint(&mut self, name: &str, e: &EndpointEntry) -> Result<()>;
    /// Adds or replaces an ipcache entry.
    fn set_ipcache(&mut self, prefix: Prefix, identity: u32) -> Result<()>;
    /// Removes an ipcache entry.
    fn remove_ipcache(&mut self, prefix: Prefix) -> Result<()>;
    /// Adds or replaces a policy entry.
    fn set_policy(&mut self, key: &PolicyKey, value: &PolicyValue) -> Result<()>;
    /// Removes a policy entry.
    fn remove_policy(&mut self, key: &PolicyKey) -> Result<()>;
    /// Adds or replaces a service-map slot.
    fn set_service(&mut self, slot: ServiceSlot, value: SlotValue) -> Result<()>;
    /// Removes a service-map slot.
    fn remove_service(&mut self, slot: ServiceSlot) -> Result<()>;
}

/// How many entries a sync wrote and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Entries added or changed.
    pub written: usize,
    /// Entries removed.
    pub removed: usize,
    /// Entries already right.
    pub unchanged: usize,
}

/// Brings `store` from `current` to `wanted`, touching only the entries that differ.
pub fn apply(
    store: &mut dyn MapStore,
    current: &NodeEntries,
    wanted: &NodeEntries,
) -> Result<SyncStats> {
    let mut s = SyncStats::default();
    for (name, e) in &wanted.endpoints {
        if current.endpoints.get(name) == Some(e) {
            s.unchanged += 1;
        } else {
            store.set_endpoint(name, e)?;
            s.written += 1;
        }
    }
    let changed = |(k, v): &(&PolicyKey, &PolicyValue)| current.policy.get(k) != Some(v);
    let (denies, allows): (Vec<_>, Vec<_>) = wanted
        .policy
        .iter()
        .filter(changed)
        .partition(|(_, v)| v.deny);
    let policy_written = denies.len() + allows.len();
    for (k, v) in denies.into_iter().chain(allows) {
        store.set_policy(k, v)?;
    }
    s.written += policy_written;
    s.unchanged += wanted.policy.len() - policy_written;
    // The ipcache after the policy: an address that gets a new identity finds that
    // identity's entries already there.
    for (prefix, id) in &wanted.ipcache {
        if current.ipcache.get(prefix) == Some(id) {
            s.unchanged += 1;
        } else {
            store.set_ipcache(*prefix, *id)?;
            s.written += 1;
        }
    }
    // Services after the ipcache and the policy (their backends are judged as soon as a
    // packet is translated): backends before the count that makes them reachable.
    let service_changed = |(k, v): &(&ServiceSlot, &SlotValue)| current.services.get(k) != Some(v);
    let (counts, backends): (Vec<_>, Vec<_>) = wanted
        .services
        .iter()
        .filter(service_changed)
        .partition(|(k, _)| k.3 == 0);
    s.unchanged += wanted.services.len() - counts.len() - backends.len();
    for (k, v) in backends.into_iter().chain(counts) {
        store.set_service(*k, *v)?;
        s.written += 1;
    }
    // A departed service's count first, so that no packet picks a slot about to go.
    let (gone_counts, gone_backends): (Vec<&ServiceSlot>, Vec<&ServiceSlot>) = current
        .services
        .keys()
        .filter(|k| !wanted.services.contains_key(k))
        .partition(|k| k.3 == 0);
    for k in gone_counts.into_iter().chain(gone_backends) {
        store.remove_service(*k)?;
        s.removed += 1;
    }
    for k in current
        .policy
        .keys()
        .filter(|k| !wanted.policy.contains_key(k))
    {
        store.remove_policy(k)?;
        s.removed += 1;
    }
    for prefix in current
        .ipcache
        .keys()
        .filter(|p| !wanted.ipcache.contains_key(p))
    {
        store.remove_ipcache(*prefix)?;
        s.removed += 1;
    }
    for (name, e) in current
        .endpoints
        .iter()
        .filter(|(n, _)| !wanted.endpoints.contains_key(*n))
    {
        store.remove_endpoint(name, e)?;
        s.removed += 1;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Records every call, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl MapStore for Log {
        fn set_endpoint(&mut self, name: &str, _: &EndpointEntry) -> Result<()> {
            self.0.push(format!("+ep {name}"));
            Ok(())
        }
        fn remove_endpoint(&mut self, name: &str, _: &EndpointEntry) -> Result<()> {
            self.0.push(format!("-ep {name}"));
            Ok(())
        }
        fn set_ipcache(&mut self, p: Prefix, id: u32) -> Result<()> {
            self.0.push(format!("+ip {}/{} {id}", p.0, p.1));
            Ok(())
        }
        fn remove_ipcache(&mut self, p: Prefix) -> Result<()> {
            self.0.push(format!("-ip {}/{}", p.0, p.1));
            Ok(())
        }
        fn set_policy(&mut self, k: &PolicyKey, v: &PolicyValue) -> Result<()> {
            self.0.push(format!(
                "+pol {} {}",
                k.port,
                if v.deny { "deny" } else { "allow" }
            ));
            Ok(())
        }
        fn remove_policy(&mut self, k: &PolicyKey) -> Result<()> {
            self.0.push(format!("-pol {}", k.port));
            Ok(())
        }
        fn set_service(&mut self, k: ServiceSlot, v: SlotValue) -> Result<()> {
            self.0.push(format!("+svc {}:{} {} {v:?}", k.0, k.1, k.3));
            Ok(())
        }
        fn remove_service(&mut self, k: ServiceSlot) -> Result<()> {
            self.0.push(format!("-svc {}:{} {}", k.0, k.1, k.3));
            Ok(())
        }
    }

    /// A service grows: its new backend before the count that reaches it; it shrinks: the
    /// lower count before the backend goes; it departs: its count before its backends.
    #[test]
    fn service_slots_are_never_reachable_before_they_exist() {
        let vip: std::net::IpAddr = "10.96.0.10".parse().unwrap();
        let be = |n: u8| SlotValue::Backend(std::net::Ipv4Addr::new(10, 1, 0, n).into(), 80);
        let one = NodeEntries {
            services: [
                ((vip, 80, 6, 0), SlotValue::Count(1)),
                ((vip, 80, 6, 1), be(1)),
            ]
            .into(),
            ..NodeEntries::default()
        };
        let two = NodeEntries {
            services: [
                ((vip, 80, 6, 0), SlotValue::Count(2)),
                ((vip, 80, 6, 1), be(1)),
                ((vip, 80, 6, 2), be(2)),
            ]
            .into(),
            ..NodeEntries::default()
        };
        let mut log = Log::default();
        apply(&mut log, &one, &two).unwrap();
        assert_eq!(
            log.0,
            [
                "+svc 10.96.0.10:80 2 Backend(10.1.0.2, 80)",
                "+svc 10.96.0.10:80 0 Count(2)"
            ]
        );
        let mut log = Log::default();
        apply(&mut log, &two, &one).unwrap();
        assert_eq!(
            log.0,
            ["+svc 10.96.0.10:80 0 Count(1)", "-svc 10.96.0.10:80 2"]
        );
        let mut log = Log::default();
        apply(&mut log, &two, &NodeEntries::default()).unwrap();
        assert_eq!(
            log.0,
            [
                "-svc 10.96.0.10:80 0",
                "-svc 10.96.0.10:80 1",
                "-svc 10.96.0.10:80 2"
            ]
        );
    }

    fn key(port: u16) -> PolicyKey {
        PolicyKey {
            ep: 1,
            egress: false,
            identity: 300,
            proto: 6,
            port,
            bits: 24,
        }
    }

    /// An address whose identity changes (a CIDR identity of a new prefix) points at it only
    /// once the new identity's entries are in, and the old ones go last.
    #[test]
    fn an_address_moves_to_a_new_identity_after_its_entries() {
        let allow = PolicyValue {
            deny: false,
            l7: false,
            dns: false,
            rule: 1,
        };
        let with_identity = |identity| PolicyKey {
            identity,
            ..key(443)
        };
        let prefix: Prefix = ("192.0.2.7".parse().unwrap(), 32);
        let mut current = NodeEntries::default();
        current.ipcache.insert(prefix, 2);
        current.policy.insert(with_identity(2), allow);
        let mut wanted = NodeEntries::default();
        wanted.ipcache.insert(prefix, 16_777_300);
        wanted.policy.insert(with_identity(16_777_300), allow);
        let mut log = Log::default();
        apply(&mut log, &current, &wanted).unwrap();
        assert_eq!(
            log.0,
            ["+pol 443 allow", "+ip 192.0.2.7/32 16777300", "-pol 443"]
        );
    }

    #[test]
    fn only_differences_are_written_denies_first_removals_last() {
        let allow = PolicyValue {
            deny: false,
            l7: false,
            dns: false,
            rule: 1,
        };
        let deny = PolicyValue {
            deny: true,
            l7: false,
            dns: false,
            rule: 2,
        };
        let mut current = NodeEntries::default();
        current.policy.insert(key(80), allow);
        current.policy.insert(key(81), allow);
        current
            .ipcache
            .insert((std::net::Ipv4Addr::new(10, 0, 0, 1).into(), 32), 300);
        let mut wanted = current.clone();
        wanted.policy.remove(&key(81));
        wanted.policy.insert(key(82), allow);
        wanted.policy.insert(key(83), deny);
        let mut log = Log::default();
        let s = apply(&mut log, &current, &wanted).unwrap();
        assert_eq!(log.0, ["+pol 83 deny", "+pol 82 allow", "-pol 81"]);
        assert_eq!((s.written, s.removed), (2, 1));
        // Nothing to do the second time.
        let mut log = Log::default();
        apply(&mut log, &wanted, &wanted).unwrap();
        assert!(log.0.is_empty());
    }
}
