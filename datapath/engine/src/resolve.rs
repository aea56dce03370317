//! The resolved policy of one subject (a distinct security-relevant label set): per direction,
//! whether default deny is on, and a lookup structure keyed by remote identity that gives the
//! deciding entry for a (protocol, port) in a few hash and slice operations.
//!
//! The lookup mirrors the datapath's policy map (reference §6): entries for exact remote
//! identities, entries for identity 0 (any peer), and deny precedence. Entries of all rules
//! that select the subject are numbered in a fixed order (policy key, rule, list, index);
//! among matching entries a deny wins, otherwise the first allow is reported.

use super::cidr::CidrPeer;
use super::cluster::NamedPort;
use super::compile::{CompiledRule, Entry, PeerMatch};
use super::identity::Identity;
use super::index::FxMap;
use super::labels::LabelSet;
use super::ports::{L4, Protocol};
use super::rule::{Direction, RuleRef};
use super::select::CachedSelector;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Declared named ports of an endpoint, by lower-cased name.
pub(crate) type NamedPorts = BTreeMap<String, NamedPort>;

/// The remote end of a flow as one direction's policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote {
    pub id: Identity,
    pub ip: Option<IpAddr>,
    /// Outside the cluster: CIDR peers apply.
    pub world: bool,
}

/// The deciding entries for one lookup.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hit {
    pub deny: Option<u32>,
    pub allow: Option<u32>,
    /// The allowing entry carries unenforced L7 rules.
    pub l7: bool,
}

impl Hit {
    fn merge(&mut self, other: Hit) {
        self.deny = min_opt(self.deny, other.deny);
        if other.allow.is_some() && min_opt(self.allow, other.allow) == other.allow {
            self.l7 = other.l7;
        }
        self.allow = min_opt(self.allow, other.allow);
    }
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A slice of [`DirectionPolicy::items`] or [`DirectionPolicy::ports`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One entry in a lookup table: everything a scan needs, without touching the entry itself.
#[derive(Debug, Clone, Copy)]
struct Item {
    entry: u32,
    deny: bool,
    l7: bool,
    ports: Span,
}

/// A compact layer-4 match (8 bytes); named ports index [`DirectionPolicy::names`].
#[derive(Debug, Clone, Copy)]
enum PortMatch {
    All,
    Range { proto: Protocol, lo: u16, hi: u16 },
    Named { proto: Protocol, name: u32 },
}

/// One direction of a subject's policy: the entries that apply, and flat lookup tables
/// (deny entries first, then by entry number) per remote identity, for identity 0 (any
/// peer) and for CIDR peers.
#[derive(Debug, Default)]
pub(crate) struct DirectionPolicy {
    pub enforced: bool,
    pub default_deny_by: Option<RuleRef>,
    pub entries: Vec<Arc<Entry>>,
    /// Per entry, its rule (kept apart from `entries` so a verdict touches little memory).
    pub rules: Vec<RuleRef>,
    /// Per entry, its span of `ports`.
    entry_ports: Vec<Span>,
    ports: Vec<PortMatch>,
    names: Vec<String>,
    items: Vec<Item>,
    by_identity: FxMap<Identity, Span>,
    wildcard: Span,
    cidr: Vec<(CidrPeer, Item)>,
}

/// `e` as a subject sees it whose rules require `requires` of endpoint peers (Cilium appends
/// them to every `fromEndpoints`/`toEndpoints` selector of the direction; deny entries take
/// the deny rules' requirements). Other peers are left alone.
fn narrow(e: &Arc<Entry>, requires: &[&CachedSelector]) -> Arc<Entry> {
    let endpoint_peers = e.peers.iter().any(|p| matches!(p, PeerMatch::Endpoints(_)));
    if requires.is_empty() || !endpoint_peers {
        return e.clone();
    }
    let peers = e
        .peers
        .iter()
        .map(|p| match p {
            PeerMatch::Endpoints(s) => {
                let mut selector = s.selector.clone();
                for r in requires {
                    for req in r.selector.requirements() {
                        selector.push(req.clone());
                    }
                }
                let identities = s
                    .identities
                    .iter()
                    .filter(|id| {
                        requires
                            .iter()
                            .all(|r| r.identities.binary_search(id).is_ok())
                    })
                    .copied()
                    .collect();
                PeerMatch::Endpoints(Arc::new(CachedSelector {
                    selector,
                    identities,
                }))
            }
            other => other.clone(),
        })
        .collect();
    Arc::new(Entry {
        peers,
        ..(**e).clone()
    })
}

impl DirectionPolicy {
    /// Resolves one direction from the rules selecting the subject, in order.
    pub fn build(rules: &[&CompiledRule], dir: Direction, always: bool) -> DirectionPolicy {
        let d = dir.index();
        let default_deny_by = rules
            .iter()
            .find(|r| r.default_deny[d])
            .map(|r| r.origin.clone());
        let requires: [Vec<&CachedSelector>; 2] = [0, 1].map(|k| {
            rules
                .iter()
                .flat_map(|r| r.requires[d][k].iter().map(|s| &**s))
                .collect()
        });
        let entries: Vec<Arc<Entry>> = rules
            .iter()
            .flat_map(|r| r.entries[d].iter())
            .map(|e| narrow(e, &requires[usize::from(e.deny)]))
            .collect();
        let mut policy = DirectionPolicy {
            enforced: always || default_deny_by.is_some(),
            default_deny_by,
            ..DirectionPolicy::default()
        };
        policy.compile_ports(&entries);
        let mut pairs: Vec<(Identity, u32)> = Vec::new();
        let mut wildcard = Vec::new();
        for (eid, e) in entries.iter().enumerate() {
            let eid = u32::try_from(eid).unwrap_or(u32::MAX);
            for p in &e.peers {
                match p {
                    PeerMatch::Any => wildcard.push(eid),
                    PeerMatch::Selector(s) | PeerMatch::Endpoints(s) => {
                        pairs.extend(s.identities.iter().map(|id| (*id, eid)))
                    }
                    PeerMatch::Cidr(c) => policy.cidr.push((c.clone(), policy.item(eid, &entries))),
                }
            }
        }
        policy.cidr.sort_by_key(|(_, it)| (!it.deny, it.entry));
        pairs.sort_unstable();
        pairs.dedup();
        policy.wildcard = policy.table(wildcard, &entries, &mut FxMap::default());
        policy.index(&pairs, &entries);
        policy.rules = entries.iter().map(|e| e.rule.clone()).collect();
        policy.entries = entries;
        policy
    }

    fn compile_ports(&mut self, entries: &[Arc<Entry>]) {
        for e in entries {
            let start = len32(self.ports.len());
            for m in &e.l4 {
                let compact = match m {
                    L4::All => PortMatch::All,
                    L4::Ports { proto, lo, hi } => PortMatch::Range {
                        proto: *proto,
                        lo: *lo,
                        hi: *hi,
                    },
                    L4::Named { proto, name } => {
                        let at = self
                            .names
                            .iter()
                            .position(|n| n == name)
                            .unwrap_or_else(|| {
                                self.names.push(name.clone());
                                self.names.len() - 1
                            });
                        PortMatch::Named {
                            proto: *proto,
                            name: len32(at),
                        }
                    }
                };
                self.ports.push(compact);
            }
            self.entry_ports.push(Span {
                start,
                len: len32(self.ports.len()) - start,
            });
        }
    }

    fn item(&self, eid: u32, entries: &[Arc<Entry>]) -> Item {
        let e = &entries[eid as usize];
        Item {
            entry: eid,
            deny: e.deny,
            l7: e.l7 && !e.deny,
            ports: self.entry_ports[eid as usize],
        }
    }

    /// Groups (identity, entry) pairs into shared tables.
    fn index(&mut self, pairs: &[(Identity, u32)], entries: &[Arc<Entry>]) {
        let mut interned: FxMap<Vec<u32>, Span> = FxMap::default();
        let mut start = 0;
        while start < pairs.len() {
            let id = pairs[start].0;
            let end = start + pairs[start..].iter().take_while(|(x, _)| *x == id).count();
            let span = self.table(
                pairs[start..end].iter().map(|(_, e)| *e).collect(),
                entries,
                &mut interned,
            );
            self.by_identity.insert(id, span);
            start = end;
        }
    }

    /// Appends a table of entries (deny first, then by number), or reuses an equal one.
    fn table(
        &mut self,
        mut ids: Vec<u32>,
        entries: &[Arc<Entry>],
        interned: &mut FxMap<Vec<u32>, Span>,
    ) -> Span {
        ids.sort_unstable_by_key(|e| (!entries[*e as usize].deny, *e));
        ids.dedup();
        if let Some(span) = interned.get(&ids) {
            return *span;
        }
        let span = Span {
            start: len32(self.items.len()),
            len: len32(ids.len()),
        };
        for eid in &ids {
            let item = self.item(*eid, entries);
            self.items.push(item);
        }
        interned.insert(ids, span);
        span
    }

    /// The first matching deny and allow entries for a flow with this remote end.
    pub fn lookup(
        &self,
        remote: &Remote,
        proto: Protocol,
        port: u16,
        named: Option<&NamedPorts>,
    ) -> Hit {
        let mut hit = self.scan(self.wildcard, proto, port, named);
        if let Some(span) = self.by_identity.get(&remote.id) {
            hit.merge(self.scan(*span, proto, port, named));
        }
        for item in self.cidr_items(remote) {
            if self.l4_matches(item.ports, proto, port, named) {
                hit.merge(hit_of(item));
            }
        }
        hit
    }

    /// Every allow entry that matches a flow with this remote end (not only the first), in
    /// entry order: the L7 rules of all of them apply together.
    pub fn allows(
        &self,
        remote: &Remote,
        proto: Protocol,
        port: u16,
        named: Option<&NamedPorts>,
    ) -> Vec<u32> {
        let tables =
            std::iter::once(self.wildcard).chain(self.by_identity.get(&remote.id).copied());
        let mut out: Vec<u32> = tables
            .flat_map(|span| self.items[span.range()].iter())
            .chain(self.cidr_items(remote))
            .filter(|it| !it.deny && self.l4_matches(it.ports, proto, port, named))
            .map(|it| it.entry)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The CIDR entries whose prefix holds a world remote end.
    fn cidr_items<'s>(&'s self, remote: &'s Remote) -> impl Iterator<Item = &'s Item> + 's {
        self.cidr
            .iter()
            .filter(move |(c, _)| {
                remote.world
                    && match remote.ip {
                        Some(ip) => c.contains(ip),
                        None => c.prefix.is_default_route(),
                    }
            })
            .map(|(_, item)| item)
    }

    fn scan(&self, table: Span, proto: Protocol, port: u16, named: Option<&NamedPorts>) -> Hit {
        self.items[table.range()]
            .iter()
            .find(|it| self.l4_matches(it.ports, proto, port, named))
            .map_or_else(Hit::default, hit_of)
    }

    fn l4_matches(
        &self,
        ports: Span,
        proto: Protocol,
        port: u16,
        named: Option<&NamedPorts>,
    ) -> bool {
        self.ports[ports.range()].iter().any(|m| match *m {
            PortMatch::All => true,
            PortMatch::Range { proto: p, lo, hi } => p == proto && lo <= port && port <= hi,
            PortMatch::Named { proto: p, name } => {
                p == proto
                    && named
                        .and_then(|n| n.get(&self.names[name as usize]))
                        .is_some_and(|np| np.port == port && np.protocol == proto)
            }
        })
    }

    /// How many (remote identity → table) keys the lookup holds.
    pub fn identity_keys(&self) -> usize {
        self.by_identity.len()
    }
}

fn hit_of(item: &Item) -> Hit {
    if item.deny {
        Hit {
            deny: Some(item.entry),
            allow: None,
            l7: false,
        }
    } else {
        Hit {
            deny: None,
            allow: Some(item.entry),
            l7: item.l7,
        }
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The remote side of an [`ExportedEntry`].
#[derive(Debug, Clone, Copy)]
pub enum ExportedPeer<'a> {
    /// Every remote identity (the datapath's identity 0).
    Any,
    /// These remote identities (those a selector or entity matches).
    Identities(&'a [Identity]),
    /// World addresses inside a prefix and outside its exceptions.
    Cidr(&'a CidrPeer),
}

/// One policy entry of a direction, as [`EndpointPolicy::export`] gives it.
#[derive(Debug, Clone)]
pub struct ExportedEntry<'a> {
    /// The entry's rule.
    pub rule: &'a RuleRef,
    /// A deny entry (wins over every allow).
    pub deny: bool,
    /// An allow that carries L7 rules, enforced here only at layer 4.
    pub l7: bool,
    /// The remote peers.
    pub peers: Vec<ExportedPeer<'a>>,
    /// The ports (named ports resolve against the destination endpoint).
    pub l4: &'a [L4],
    /// The entry's `toPorts` items with their L7 rules (empty without L7 rules).
    l7_ports: &'a [crate::l7::PortL7],
}

impl ExportedEntry<'_> {
    /// Whether the allow carries `rules.dns` for the ports `l4` (one of [`Self::l4`]): Cilium
    /// sends such traffic through its DNS proxy, which enforces the rules on each query.
    pub fn dns_rules_on(&self, l4: &L4) -> bool {
        !self.deny
            && self.l7_ports.iter().any(|p| {
                p.rules
                    .as_ref()
                    .is_some_and(|r| r.dns.as_ref().is_some_and(|d| !d.is_empty()))
                    && (p.l4.is_empty() || p.l4.contains(l4))
            })
    }
}

/// The resolved policy of every endpoint with one security identity (and, for hosts, one
/// node label set): the rules that select it and, per direction, the lookup structure.
#[derive(Debug)]
pub struct EndpointPolicy {
    pub(crate) identity: Identity,
    pub(crate) labels: LabelSet,
    pub(crate) selected_by: Vec<RuleRef>,
    pub(crate) directions: [DirectionPolicy; 2],
}

impl EndpointPolicy {
    /// Resolves the policy of a subject from the rules selecting it (in repository order).
    pub(crate) fn resolve(
        identity: Identity,
        labels: LabelSet,
        rules: &[&CompiledRule],
        always: bool,
    ) -> EndpointPolicy {
        let directions = Direction::BOTH.map(|d| DirectionPolicy::build(rules, d, always));
        let selected_by = rules.iter().map(|r| r.origin.clone()).collect();
        EndpointPolicy {
            identity,
            labels,
            selected_by,
            directions,
        }
    }

    /// The security identity.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The security-relevant labels the policy was resolved for.
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    /// The rules (`spec`/`specs[i]`) whose subject selector selects this endpoint.
    pub fn selected_by(&self) -> &[RuleRef] {
        &self.selected_by
    }

    /// Whether the direction is in default deny (only what some rule allows passes).
    pub fn is_enforced(&self, dir: Direction) -> bool {
        self.directions[dir.index()].enforced
    }

    /// The first rule that put the direction into default deny.
    pub fn default_deny_by(&self, dir: Direction) -> Option<&RuleRef> {
        self.directions[dir.index()].default_deny_by.as_ref()
    }

    /// The entries that apply in a direction: (entry, is deny, ports, carries unenforced L7).
    pub fn entries(&self, dir: Direction) -> impl Iterator<Item = (&RuleRef, bool, &[L4], bool)> {
        self.directions[dir.index()]
            .entries
            .iter()
            .map(|e| (&e.rule, e.deny, e.l4.as_slice(), e.l7))
    }

    /// How many remote-identity keys the direction's lookup holds (a size measure).
    pub fn identity_keys(&self, dir: Direction) -> usize {
        self.directions[dir.index()].identity_keys()
    }

    /// The entries of one direction in the form a datapath stores them: each entry's
    /// remote peers (any, identities, or world prefixes) with its ports, deny flag and rule.
    /// Together with [`EndpointPolicy::is_enforced`] this is everything a verdict depends on
    /// apart from the flow (see `agent::entries` for the translation into BPF map keys).
    pub fn export(&self, dir: Direction) -> Vec<ExportedEntry<'_>> {
        self.directions[dir.index()]
            .entries
            .iter()
            .map(|e| ExportedEntry {
                rule: &e.rule,
                deny: e.deny,
                l7: e.l7 && !e.deny,
                l4: &e.l4,
                l7_ports: &e.l7_ports,
                peers: e
                    .peers
                    .iter()
                    .map(|p| match p {
                        PeerMatch::Any => ExportedPeer::Any,
                        PeerMatch::Selector(s) | PeerMatch::Endpoints(s) => {
                            ExportedPeer::Identities(&s.identities)
                        }
                        PeerMatch::Cidr(c) => ExportedPeer::Cidr(c),
                    })
                    .collect(),
            })
            .collect()
    }

    pub(crate) fn direction(&self, dir: Direction) -> &DirectionPolicy {
        &self.directions[dir.index()]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::compile::{Ctx, compile};
    use crate::select::SelectorCache;
    use serde_json::json;
    use ward_schema::{Kind, Origin, Resource, ResourceKey};

    #[test]
    fn identities_with_the_same_entries_share_one_deny_first_table() {
        let set = |s: &str| LabelSet::parse(s.split(','), "k8s").unwrap();
        let ns = "io.kubernetes.pod.namespace=ns,io.cilium.k8s.policy.cluster=default";
        let peers = vec![
            (Identity(256), set(&format!("app=a,{ns}"))),
            (Identity(257), set(&format!("app=a,tier=x,{ns}"))),
            (Identity(258), set(&format!("app=b,{ns}"))),
        ];
        let mut cache = SelectorCache::new(peers);
        let spec = json!({
            "endpointSelector": {},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "a"}}], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
            "ingressDeny": [{"fromEndpoints": [{}], "toPorts": [{"ports": [{"port": "81", "protocol": "TCP"}]}]}]
        });
        let [policy] = compile_all(&mut cache, [policy("p", spec)]);
        let rules: Vec<&CompiledRule> = policy.rules.iter().collect();
        let dp = DirectionPolicy::build(&rules, Direction::Ingress, false);
        assert!(dp.enforced);
        assert_eq!(dp.identity_keys(), 3);
        let (a, a2, b) = (
            dp.by_identity[&Identity(256)],
            dp.by_identity[&Identity(257)],
            dp.by_identity[&Identity(258)],
        );
        assert_eq!(a, a2, "same entries, same table");
        assert_ne!(a, b);
        // Deny (entry 1) comes before allow (entry 0) in a table.
        let order: Vec<(u32, bool)> = dp.items[a.range()]
            .iter()
            .map(|i| (i.entry, i.deny))
            .collect();
        assert_eq!(order, [(1, true), (0, false)]);
        let remote = |id| Remote {
            id: Identity(id),
            ip: None,
            world: false,
        };
        let hit = dp.lookup(&remote(256), Protocol::TCP, 81, None);
        assert_eq!((hit.deny, hit.allow), (Some(1), None));
        let hit = dp.lookup(&remote(256), Protocol::TCP, 80, None);
        assert_eq!((hit.deny, hit.allow), (None, Some(0)));
        let hit = dp.lookup(&remote(258), Protocol::TCP, 80, None);
        assert_eq!((hit.deny, hit.allow), (None, None));
    }

    /// Compiles CNPs in namespace `ns` of cluster `default` (no CIDR groups, no DNS answers).
    fn compile_all<const N: usize>(
        cache: &mut SelectorCache,
        resources: [Resource; N],
    ) -> [crate::compile::CompiledPolicy; N] {
        let groups = crate::groups::CidrGroups::default();
        let mut ctx = Ctx {
            cluster: "default",
            non_default_deny_policies: true,
            selectors: cache,
            groups: &groups,
            dns: &[],
            services: &[],
        };
        resources.map(|r| compile(&r, &mut ctx).unwrap())
    }

    fn policy(name: &str, spec: serde_json::Value) -> Resource {
        Resource {
            key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some("ns"), name),
            object: json!({"kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}),
            origin: Origin::default(),
        }
    }

    /// Cilium before 1.19: the `fromRequires` of every rule selecting a subject are appended to
    /// every `fromEndpoints` selector of every rule selecting it (deny requirements to deny
    /// entries); L4-only wildcards and subjects the requiring rule does not select are untouched.
    #[test]
    fn from_requires_narrow_every_endpoint_peer_of_the_subject() {
        let set = |s: &str| LabelSet::parse(s.split(','), "k8s").unwrap();
        let ns = "io.kubernetes.pod.namespace=ns,io.cilium.k8s.policy.cluster=default";
        let mut cache = SelectorCache::new(vec![
            (Identity(256), set(&format!("role=frontend,env=prod,{ns}"))),
            (Identity(257), set(&format!("role=frontend,env=dev,{ns}"))),
            (Identity(258), set(&format!("env=prod,{ns}"))),
        ]);
        let requiring = policy(
            "prod-only",
            json!({
                "endpointSelector": {"matchLabels": {"env": "prod"}},
                "ingress": [{"fromRequires": [{"matchLabels": {"env": "prod"}}]}],
                "ingressDeny": [{"fromRequires": [{"matchLabels": {"env": "dev"}}]}]
            }),
        );
        let allowing = policy(
            "frontend",
            json!({
                "endpointSelector": {"matchLabels": {"app": "backend"}},
                "ingress": [
                    {"fromEndpoints": [{"matchLabels": {"role": "frontend"}}], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
                    {"toPorts": [{"ports": [{"port": "82", "protocol": "TCP"}]}]}
                ],
                "ingressDeny": [{"fromEndpoints": [{}], "toPorts": [{"ports": [{"port": "81", "protocol": "TCP"}]}]}]
            }),
        );
        let [requiring, allowing] = compile_all(&mut cache, [requiring, allowing]);
        let remote = |id| Remote {
            id: Identity(id),
            ip: None,
            world: false,
        };
        let verdict = |dp: &DirectionPolicy, id: u32, port: u16| {
            let hit = dp.lookup(&remote(id), Protocol::TCP, port, None);
            match (hit.deny, hit.allow) {
                (Some(_), _) => "deny",
                (None, Some(_)) => "allow",
                (None, None) => "none",
            }
        };
        // A prod backend: both policies select it.
        let both: Vec<&CompiledRule> = requiring.rules.iter().chain(&allowing.rules).collect();
        let dp = DirectionPolicy::build(&both, Direction::Ingress, false);
        assert_eq!(verdict(&dp, 256, 80), "allow", "frontend in prod");
        assert_eq!(
            verdict(&dp, 257, 80),
            "none",
            "frontend in dev lacks env=prod"
        );
        assert_eq!(verdict(&dp, 258, 80), "none", "not a frontend");
        assert_eq!(verdict(&dp, 257, 81), "deny", "deny narrowed to env=dev");
        assert_eq!(
            verdict(&dp, 256, 81),
            "none",
            "prod is outside the narrowed deny"
        );
        assert_eq!(
            verdict(&dp, 257, 82),
            "allow",
            "the L4-only wildcard is not narrowed"
        );
        let narrowed = dp
            .entries
            .iter()
            .find_map(|e| match &e.peers[..] {
                [PeerMatch::Endpoints(s)] if !e.deny => Some(s.selector.to_string()),
                _ => None,
            })
            .unwrap();
        assert!(
            narrowed.contains("role = frontend") && narrowed.contains("env = prod"),
            "{narrowed}"
        );
        // A dev backend: only the allowing policy selects it, nothing is narrowed.
        let one: Vec<&CompiledRule> = allowing.rules.iter().collect();
        let dp = DirectionPolicy::build(&one, Direction::Ingress, false);
        assert_eq!(verdict(&dp, 257, 80), "allow");
        assert_eq!(verdict(&dp, 256, 81), "deny");
    }
}
