//! Security identities: Cilium's reserved numbers (reference §4.5), the entities that select
//! them (§2 Entities), and deterministic allocation for label sets.

use super::labels::{Label, LabelSet, SOURCE_RESERVED};
use super::scope::cluster_is;
use super::selector::{Operator, Requirement, Selector};
use std::collections::BTreeMap;
use std::fmt;

/// A numeric security identity. `0` is "unknown" and, as a remote identity in the datapath's
/// policy map, "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity(pub u32);

impl Identity {
    /// 0: unknown / any.
    pub const ANY: Identity = Identity(0);
    /// 1: the local host.
    pub const HOST: Identity = Identity(1);
    /// 2: everything outside the cluster (single-stack).
    pub const WORLD: Identity = Identity(2);
    /// 3: endpoints Cilium does not manage.
    pub const UNMANAGED: Identity = Identity(3);
    /// 4: the health endpoint.
    pub const HEALTH: Identity = Identity(4);
    /// 5: endpoints still initializing (no labels yet).
    pub const INIT: Identity = Identity(5);
    /// 6: other nodes of the cluster.
    pub const REMOTE_NODE: Identity = Identity(6);
    /// 7: the Kubernetes API server.
    pub const KUBE_APISERVER: Identity = Identity(7);
    /// 8: the ingress proxy.
    pub const INGRESS: Identity = Identity(8);
    /// 9: IPv4 world (dual-stack).
    pub const WORLD_IPV4: Identity = Identity(9);
    /// 10: IPv6 world (dual-stack).
    pub const WORLD_IPV6: Identity = Identity(10);
    /// The first identity allocated for a label set.
    pub const FIRST_ALLOCATED: u32 = 256;

    /// Whether this is a reserved identity (below 256).
    pub fn is_reserved(self) -> bool {
        self.0 < Identity::FIRST_ALLOCATED
    }

    /// The reserved identity called `name` (`host`, `world`, ...).
    pub fn reserved(name: &str) -> Option<Identity> {
        RESERVED.iter().find(|(_, n)| *n == name).map(|(id, _)| *id)
    }

    /// The name of a reserved identity.
    pub fn reserved_name(self) -> Option<&'static str> {
        RESERVED.iter().find(|(id, _)| *id == self).map(|(_, n)| *n)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reserved_name() {
            Some(name) => write!(f, "{} (reserved:{name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The reserved identities with a label of their own, in number order.
pub const RESERVED: [(Identity, &str); 10] = [
    (Identity::HOST, "host"),
    (Identity::WORLD, "world"),
    (Identity::UNMANAGED, "unmanaged"),
    (Identity::HEALTH, "health"),
    (Identity::INIT, "init"),
    (Identity::REMOTE_NODE, "remote-node"),
    (Identity::KUBE_APISERVER, "kube-apiserver"),
    (Identity::INGRESS, "ingress"),
    (Identity::WORLD_IPV4, "world-ipv4"),
    (Identity::WORLD_IPV6, "world-ipv6"),
];

/// The labels of a reserved identity: its one `reserved:<name>` label.
pub fn reserved_labels(id: Identity) -> Option<LabelSet> {
    id.reserved_name()
        .map(|n| LabelSet::from_labels([Label::reserved(n)]))
}

/// What an entity (`fromEntities`/`toEntities`) selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityPeers {
    /// `all`: every identity, the world included (the datapath's identity 0).
    All,
    /// Every identity matched by one of these selectors.
    Selectors(Vec<Selector>),
}

/// Maps an entity to the selectors Cilium uses for it; `None` for an unknown entity.
/// `none` selects nothing (an empty list).
pub fn entity(name: &str, cluster: &str) -> Option<EntityPeers> {
    let reserved = |n: &str| {
        let mut s = Selector::wildcard();
        s.push(Requirement::new(SOURCE_RESERVED, n, Operator::Exists));
        s
    };
    let sels = match name {
        "all" => return Some(EntityPeers::All),
        "none" => vec![],
        "world" => ["world", "world-ipv4", "world-ipv6"].map(reserved).to_vec(),
        "cluster" => {
            let mut v: Vec<Selector> = [
                "host",
                "remote-node",
                "init",
                "ingress",
                "health",
                "unmanaged",
                "kube-apiserver",
            ]
            .map(reserved)
            .to_vec();
            let mut pods = Selector::wildcard();
            pods.push(cluster_is(cluster));
            v.push(pods);
            v
        }
        "host" | "remote-node" | "init" | "ingress" | "health" | "unmanaged" | "kube-apiserver"
        | "world-ipv4" | "world-ipv6" => {
            vec![reserved(name)]
        }
        _ => return None,
    };
    Some(EntityPeers::Selectors(sels))
}

/// Gives each distinct label set a numeric identity from 256 up. A number, once given, never
/// changes and is never given to another label set. [`IdentityAllocator::allocate_all`] hands
/// out numbers in sorted label-set order, so the same input always gives the same numbers.
#[derive(Debug, Clone, Default)]
pub struct IdentityAllocator {
    by_labels: BTreeMap<LabelSet, Identity>,
    next: u32,
}

impl IdentityAllocator {
    /// An allocator with nothing allocated.
    pub fn new() -> IdentityAllocator {
        IdentityAllocator {
            by_labels: BTreeMap::new(),
            next: Identity::FIRST_ALLOCATED,
        }
    }

    /// Allocates identities for every new label set, in sorted order.
    pub fn allocate_all<'a>(&mut self, sets: impl IntoIterator<Item = &'a LabelSet>) {
        let mut fresh: Vec<&LabelSet> = sets
            .into_iter()
            .filter(|s| !self.by_labels.contains_key(*s))
            .collect();
        fresh.sort();
        fresh.dedup();
        for s in fresh {
            self.allocate(s);
        }
    }

    /// The identity of `labels`, allocating the next number if it has none.
    pub fn allocate(&mut self, labels: &LabelSet) -> Identity {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        let id = Identity(self.next);
        self.next += 1;
        self.by_labels.insert(labels.clone(), id);
        id
    }

    /// The identity of `labels`, if allocated.
    pub fn get(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).copied()
    }

    /// Every allocation, in label-set order.
    pub fn iter(&self) -> impl Iterator<Item = (&LabelSet, Identity)> {
        self.by_labels.iter().map(|(l, id)| (l, *id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(s: &str) -> LabelSet {
        LabelSet::parse(s.split(','), "k8s").unwrap()
    }

    #[test]
    fn reserved_numbers_follow_cilium() {
        let numbers: Vec<(u32, &str)> = RESERVED.iter().map(|(id, n)| (id.0, *n)).collect();
        assert_eq!(
            numbers,
            [
                (1, "host"),
                (2, "world"),
                (3, "unmanaged"),
                (4, "health"),
                (5, "init"),
                (6, "remote-node"),
                (7, "kube-apiserver"),
                (8, "ingress"),
                (9, "world-ipv4"),
                (10, "world-ipv6")
            ]
        );
        assert_eq!(Identity::reserved("kube-apiserver"), Some(Identity(7)));
        assert_eq!(Identity::HOST.to_string(), "1 (reserved:host)");
        assert_eq!(
            reserved_labels(Identity::WORLD).unwrap().to_string(),
            "reserved:world"
        );
    }

    #[test]
    fn entities_map_to_reserved_labels() {
        let world = reserved_labels(Identity::WORLD).unwrap();
        let host = reserved_labels(Identity::HOST).unwrap();
        let pod = set("app=x,io.cilium.k8s.policy.cluster=default");
        let matches = |e: &str, l: &LabelSet| match entity(e, "default").unwrap() {
            EntityPeers::All => true,
            EntityPeers::Selectors(v) => v.iter().any(|s| s.matches(l)),
        };
        assert!(matches("world", &world) && !matches("world", &host) && !matches("world", &pod));
        assert!(
            matches("cluster", &host) && matches("cluster", &pod) && !matches("cluster", &world)
        );
        assert!(matches("all", &world));
        assert!(!matches("none", &world) && !matches("none", &pod));
        assert!(matches("host", &host) && !matches("host", &pod));
        assert!(entity("galaxy", "default").is_none());
    }

    #[test]
    fn allocation_is_sorted_deterministic_and_stable() {
        let (a, b, c) = (set("app=a"), set("app=b"), set("app=c"));
        let mut one = IdentityAllocator::new();
        one.allocate_all([&c, &a, &b, &a]);
        let mut two = IdentityAllocator::new();
        two.allocate_all([&b, &c, &a]);
        for s in [&a, &b, &c] {
            assert_eq!(one.get(s), two.get(s));
        }
        assert_eq!(one.get(&a), Some(Identity(256)));
        assert_eq!(one.get(&c), Some(Identity(258)));
        // A later label set gets the next number; nothing else moves.
        let d = set("app=0");
        assert_eq!(one.allocate(&d), Identity(259));
        assert_eq!(one.get(&a), Some(Identity(256)));
    }
}
