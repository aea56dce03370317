//! The policy repository: every CNP/CCNP compiled, the rules that select each subject, and the
//! resolved [`EndpointPolicy`] of each subject, kept up to date incrementally.
//!
//! # Incremental updates
//! [`PolicyRepository::upsert`] and [`PolicyRepository::remove`] recompute only the subjects
//! the changed policy selects before or after the change: a policy's entries only ever
//! appear in the resolved policy of the subjects its rules select, and peer selectors are
//! evaluated against identities that policy changes never alter. The result is the same as
//! a full rebuild (entries are always ordered by policy key, rule and position).
//! Changing the cluster ([`PolicyRepository::upsert_endpoint`], ...) recomputes everything
//! but keeps every identity number already given.

use super::cluster::{Cluster, ClusterError, Endpoint};
use super::compile::{self, CompiledPolicy, CompiledRule, Subject};
use super::config::{Enforcement, EngineConfig};
use super::groups::CidrGroups;
use super::identity::{Identity, IdentityAllocator};
use super::labels::LabelSet;
use super::resolve::EndpointPolicy;
use super::rule::Note;
use super::select::SelectorCache;
use super::world::{self, EndpointId, NodeId, SubjectKind, World};
use std::collections::BTreeMap;
use std::sync::Arc;
use ward_schema::{Kind, Resource, ResourceKey, ResourceSet};

/// The cluster given to the engine is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EngineError(pub Vec<ClusterError>);

/// What an update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// How many subjects (distinct label sets of managed endpoints) were re-resolved.
    pub recomputed: usize,
}

/// Resolved policy for every endpoint of a cluster.
#[derive(Debug)]
pub struct PolicyRepository {
    pub(crate) config: EngineConfig,
    pub(crate) cluster: Cluster,
    pub(crate) ids: IdentityAllocator,
    pub(crate) world: World,
    selectors: SelectorCache,
    /// The CiliumCIDRGroups the policies' CIDR group references resolve against.
    groups: CidrGroups,
    resources: BTreeMap<ResourceKey, Resource>,
    compiled: BTreeMap<ResourceKey, CompiledPolicy>,
    /// Per subject, the rules selecting it: (policy, rule position), sorted.
    rules_of: Vec<Vec<(Arc<ResourceKey>, u32)>>,
    pub(crate) resolved: Vec<EndpointPolicy>,
}

impl PolicyRepository {
    /// A repository with no policy (every endpoint unrestricted unless enforcement is
    /// `always`).
    pub fn new(cluster: Cluster, config: EngineConfig) -> Result<PolicyRepository, EngineError> {
        let mut ids = IdentityAllocator::new();
        let world = world::build(&cluster, &mut ids, &config).map_err(EngineError)?;
        let mut repo = PolicyRepository {
            selectors: SelectorCache::new(world.peers.clone()),
            config,
            cluster,
            ids,
            world,
            groups: CidrGroups::default(),
            resources: BTreeMap::new(),
            compiled: BTreeMap::new(),
            rules_of: Vec::new(),
            resolved: Vec::new(),
        };
        repo.rebuild();
        Ok(repo)
    }

    /// A repository with the set's policies (CNP, CCNP, Kubernetes NetworkPolicy), its
    /// CiliumCIDRGroups and the settings of its CiliumConfig.
    pub fn from_resources(
        cluster: Cluster,
        set: &ResourceSet,
    ) -> Result<PolicyRepository, EngineError> {
        let mut repo = PolicyRepository::new(cluster, EngineConfig::from_resources(set))?;
        for r in set.iter() {
            repo.groups.upsert(r);
        }
        repo.resources = set
            .iter()
            .filter(|r| r.key.kind.is_policy())
            .map(|r| (r.key.clone(), r.clone()))
            .collect();
        repo.rebuild();
        Ok(repo)
    }

    /// Adds or replaces a policy and re-resolves the subjects it selects before or after; a
    /// CiliumCIDRGroup recompiles every policy (any of them may refer to it). Other kinds are
    /// ignored.
    pub fn upsert(&mut self, res: &Resource) -> Update {
        if self.groups.upsert(res) {
            return self.rebuild();
        }
        if !res.key.kind.is_policy() {
            return Update::default();
        }
        self.resources.insert(res.key.clone(), res.clone());
        let new = self.compile(res);
        self.swap_policy(&res.key, new)
    }

    /// Removes a policy or a CIDR group; returns what was recomputed (nothing if it was not
    /// there).
    pub fn remove(&mut self, key: &ResourceKey) -> Update {
        if key.kind == Kind::CiliumCIDRGroup {
            return if self.groups.remove(&key.name) {
                self.rebuild()
            } else {
                Update::default()
            };
        }
        if self.resources.remove(key).is_none() {
            return Update::default();
        }
        self.swap_policy(key, None)
    }

    /// Adds or replaces an endpoint (by namespace and name). Identities already given keep
    /// their numbers; a new label set gets the next one. Re-resolves everything.
    pub fn upsert_endpoint(&mut self, endpoint: Endpoint) -> Result<Update, EngineError> {
        let mut cluster = self.cluster.clone();
        match cluster
            .endpoints
            .iter_mut()
            .find(|e| e.name == endpoint.name && e.namespace == endpoint.namespace)
        {
            Some(e) => *e = endpoint,
            None => cluster.endpoints.push(endpoint),
        }
        self.set_cluster(cluster)
    }

    /// Removes an endpoint by `namespace/name`; its identity number is never given to
    /// another label set. Re-resolves everything.
    pub fn remove_endpoint(&mut self, full_name: &str) -> Result<Update, EngineError> {
        let mut cluster = self.cluster.clone();
        cluster.endpoints.retain(|e| e.full_name() != full_name);
        self.set_cluster(cluster)
    }

    /// Replaces the cluster, keeping identity numbers. Re-resolves everything.
    pub fn set_cluster(&mut self, cluster: Cluster) -> Result<Update, EngineError> {
        let mut ids = self.ids.clone();
        let world = world::build(&cluster, &mut ids, &self.config).map_err(EngineError)?;
        self.selectors = SelectorCache::new(world.peers.clone());
        (self.cluster, self.ids, self.world) = (cluster, ids, world);
        Ok(self.rebuild())
    }

    /// Recompiles every policy and re-resolves every subject.
    fn rebuild(&mut self) -> Update {
        self.compiled.clear();
        self.rules_of = vec![Vec::new(); self.world.subjects.len()];
        let resources = std::mem::take(&mut self.resources);
        for res in resources.values() {
            if let Some(c) = self.compile(res) {
                self.link(&res.key, &c);
                self.compiled.insert(res.key.clone(), c);
            }
        }
        self.resources = resources;
        let all: Vec<u32> = (0..self.world.subjects.len())
            .filter_map(|s| u32::try_from(s).ok())
            .collect();
        self.resolved = all.iter().map(|s| self.resolve_subject(*s)).collect();
        Update {
            recomputed: all.len(),
        }
    }

    fn compile(&mut self, res: &Resource) -> Option<CompiledPolicy> {
        let mut ctx = compile::Ctx {
            cluster: &self.config.cluster_name,
            non_default_deny_policies: self.config.non_default_deny_policies,
            selectors: &mut self.selectors,
            groups: &self.groups,
            dns: &self.cluster.dns,
            services: &self.cluster.services,
        };
        let mut c = compile::compile(res, &mut ctx)?;
        for rule in &mut c.rules {
            rule.subjects = self.subjects_of(rule);
        }
        Some(c)
    }

    /// The subjects a rule selects: `endpointSelector` rules never select hosts,
    /// `nodeSelector` rules only select hosts.
    fn subjects_of(&self, rule: &CompiledRule) -> Vec<u32> {
        let (sel, hosts) = match &rule.subject {
            Subject::Endpoints(s) => (s, false),
            Subject::Nodes(s) => (s, true),
            Subject::Nothing => return Vec::new(),
        };
        let subjects = &self.world.subjects;
        let mut out = self.world.subject_index.select(sel);
        out.retain(|s| (subjects[*s as usize].kind == SubjectKind::Host) == hosts);
        out
    }

    /// Records which subjects each rule of `c` selects.
    fn link(&mut self, key: &ResourceKey, c: &CompiledPolicy) {
        let key = Arc::new(key.clone());
        for (i, rule) in c.rules.iter().enumerate() {
            for s in &rule.subjects {
                self.rules_of[*s as usize]
                    .push((key.clone(), u32::try_from(i).unwrap_or(u32::MAX)));
            }
        }
    }

    fn swap_policy(&mut self, key: &ResourceKey, new: Option<CompiledPolicy>) -> Update {
        let old = self.compiled.remove(key);
        let mut affected: Vec<u32> = old
            .iter()
            .chain(new.iter())
            .flat_map(|c| c.rules.iter().flat_map(|r| r.subjects.iter().copied()))
            .collect();
        affected.sort_unstable();
        affected.dedup();
        for s in &affected {
            self.rules_of[*s as usize].retain(|(k, _)| **k != *key);
        }
        if let Some(c) = new {
            self.link(key, &c);
            self.compiled.insert(key.clone(), c);
        }
        for s in &affected {
            self.rules_of[*s as usize].sort();
        }
        for s in &affected {
            self.resolved[*s as usize] = self.resolve_subject(*s);
        }
        Update {
            recomputed: affected.len(),
        }
    }

    fn resolve_subject(&self, s: u32) -> EndpointPolicy {
        let info = &self.world.subjects[s as usize];
        let rules: Vec<&CompiledRule> = self.rules_of[s as usize]
            .iter()
            .filter_map(|(k, i)| {
                self.compiled
                    .get(&**k)
                    .and_then(|c| c.rules.get(*i as usize))
            })
            .collect();
        let always = self.config.enforcement == Enforcement::Always;
        EndpointPolicy::resolve(info.identity, info.labels.clone(), &rules, always)
    }

    /// The settings in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The endpoint called `namespace/name`.
    pub fn endpoint_id(&self, full_name: &str) -> Option<EndpointId> {
        self.world.endpoint_names.get(full_name).copied()
    }

    /// The endpoint that has address `ip`, if one has.
    pub fn endpoint_by_ip(&self, ip: std::net::IpAddr) -> Option<EndpointId> {
        match self.world.ips.get(&ip) {
            Some(world::Owner::Endpoint(i)) => Some(EndpointId(*i)),
            _ => None,
        }
    }

    /// An endpoint's declaration.
    pub fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.cluster.endpoints.get(id.0 as usize)
    }

    /// An endpoint's security identity.
    pub fn identity(&self, id: EndpointId) -> Option<Identity> {
        self.world.endpoints.get(id.0 as usize).map(|e| e.identity)
    }

    /// The resolved policy of an endpoint (shared by every endpoint with its identity).
    pub fn endpoint_policy(&self, id: EndpointId) -> Option<&EndpointPolicy> {
        self.world
            .endpoints
            .get(id.0 as usize)
            .map(|e| &self.resolved[e.subject as usize])
    }

    /// A node by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.world.node_names.get(name).map(|n| NodeId(*n))
    }

    /// The node an endpoint runs on, when it names a node.
    pub fn node_of(&self, id: EndpointId) -> Option<NodeId> {
        self.world
            .endpoints
            .get(id.0 as usize)
            .and_then(|e| e.node)
            .map(NodeId)
    }

    /// Whether a rule of the repository selects host endpoints (`nodeSelector`).
    pub fn has_host_policies(&self) -> bool {
        self.compiled
            .values()
            .flat_map(|c| &c.rules)
            .any(|r| matches!(r.subject, Subject::Nodes(_)))
    }

    /// The resolved policy of a node's host endpoint, by id.
    pub fn node_policy(&self, id: NodeId) -> Option<&EndpointPolicy> {
        let n = self.world.nodes.get(id.0 as usize)?;
        Some(&self.resolved[n.host_subject as usize])
    }

    /// The node that has address `ip`, if one has.
    pub fn node_by_ip(&self, ip: std::net::IpAddr) -> Option<NodeId> {
        match self.world.ips.get(&ip) {
            Some(world::Owner::Node(n)) => Some(NodeId(*n)),
            _ => None,
        }
    }

    /// The resolved policy of a node's host endpoint.
    pub fn host_policy(&self, node: &str) -> Option<&EndpointPolicy> {
        let n = self.world.node_names.get(node)?;
        Some(&self.resolved[self.world.nodes[*n as usize].host_subject as usize])
    }

    /// What node `node` is to pods on other nodes (`remote-node`, or its own identity when
    /// node selector labels are on).
    pub fn remote_node_identity(&self, node: &str) -> Option<Identity> {
        let n = self.world.node_names.get(node)?;
        Some(self.world.nodes[*n as usize].remote_identity)
    }

    /// Every identity a remote end can have (reserved and allocated), with its labels.
    pub fn identities(&self) -> impl Iterator<Item = (Identity, &LabelSet)> {
        self.selectors.peers()
    }

    /// Every allocated identity, including ones no endpoint has any more.
    pub fn allocated(&self) -> impl Iterator<Item = (&LabelSet, Identity)> {
        self.ids.iter()
    }

    /// What the engine could not evaluate, per policy, in key order.
    pub fn notes(&self) -> impl Iterator<Item = &Note> {
        self.compiled.values().flat_map(|c| c.notes.iter())
    }

    /// The keys of the policies in the repository.
    pub fn policies(&self) -> impl Iterator<Item = &ResourceKey> {
        self.resources.keys()
    }
}
