//! The agent's policy repository, kept from one sync to the next. Resolving every endpoint of
//! a large cluster again on each change is what a policy edit would otherwise cost (hundreds
//! of milliseconds at 10,000 endpoints); so a sync whose cluster and CiliumConfig are those of
//! the last one only upserts and removes the policies that changed, and the engine
//! re-resolves just the endpoints they select (its incremental updates agree with a full
//! rebuild: `datapath/tests/engine_incremental.rs`). Anything else, and every periodic
//! resync, builds the repository again from scratch.

use anyhow::{Result, anyhow};
use std::collections::BTreeMap;
use ward_engine::{Cluster, PolicyRepository};
use ward_schema::ResourceSet;

/// Whether a sync may update the kept repository in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Update it when only policies changed; rebuild otherwise.
    IfNeeded,
    /// Build it again from scratch (the periodic resync).
    Always,
}

/// Which cluster a repository was built from, without comparing 10,000 pods: the agent's
/// count of topology changes, and the local pods attached (the engine sees only those of the
/// node's pods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterVersion {
    /// How many times the agent's topology changed.
    pub changes: u64,
    /// The local pods attached, with their interface index.
    pub attached: BTreeMap<String, u32>,
    /// The generation of the DNS proxy's answers (`toFQDNs` resolves against them).
    pub dns: u64,
}

/// The repository of the last sync and what it was built from.
struct Kept {
    version: ClusterVersion,
    resources: ResourceSet,
    repo: PolicyRepository,
}

impl Kept {
    fn build(version: ClusterVersion, cluster: Cluster, resources: ResourceSet) -> Result<Kept> {
        let repo =
            PolicyRepository::from_resources(cluster, &resources).map_err(|e| anyhow!("{e}"))?;
        Ok(Kept {
            version,
            resources,
            repo,
        })
    }

    /// Brings the repository to `resources` by the policies that differ; how many those were.
    fn update(&mut self, resources: ResourceSet) -> usize {
        let mut changed = 0;
        for key in self.resources.keys() {
            if resources.get(key).is_none() {
                self.repo.remove(key);
                changed += 1;
            }
        }
        for r in resources.iter() {
            if self.resources.get(&r.key) != Some(r) {
                self.repo.upsert(r);
                changed += 1;
            }
        }
        self.resources = resources;
        changed
    }
}

/// The policy repository an agent keeps between syncs.
#[derive(Default)]
pub struct KeptRepository(Option<Kept>);

impl KeptRepository {
    /// The repository of the last sync, if it succeeded.
    pub fn current(&self) -> Option<&PolicyRepository> {
        self.0.as_ref().map(|k| &k.repo)
    }

    /// The repository for the cluster `cluster` gives (at `version`) and `resources`: the
    /// kept one updated in place when `rebuild` allows it and only policies changed, else a
    /// new one; it keeps `resources` to compare the next sync's with. On an error nothing is
    /// kept (the next sync builds from scratch).
    pub fn update(
        &mut self,
        version: &ClusterVersion,
        cluster: impl FnOnce() -> Cluster,
        resources: ResourceSet,
        rebuild: Rebuild,
    ) -> Result<&PolicyRepository> {
        let reusable = |k: &Kept| {
            rebuild == Rebuild::IfNeeded
                && k.version == *version
                && k.resources.config() == resources.config()
        };
        let kept = match self.0.take() {
            Some(mut k) if reusable(&k) => {
                let changed = k.update(resources);
                tracing::debug!(changed, "policies updated in place");
                k
            }
            _ => Kept::build(version.clone(), cluster(), resources)?,
        };
        Ok(&self.0.insert(kept).repo)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::agent::entries;
    use crate::agent::run::tests::{TOPOLOGY, valid_resources};
    use ward_schema::topology::Topology;

    fn policy(name: &str, from: &str, to: &str, port: u16) -> String {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: {to}}}}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{app: {from}}}}}]\n      toPorts: [{{ports: [{{port: \"{port}\", protocol: TCP}}]}}]\n"
        )
    }

    /// Every step's entries, for both nodes, from the kept repository and from a new one.
    #[test]
    fn an_update_in_place_gives_the_entries_of_a_full_build() {
        let topology = Topology::parse("lab.yaml", TOPOLOGY.as_bytes()).unwrap();
        let steps = [
            vec![policy("a", "frontend", "backend", 80)],
            vec![
                policy("a", "frontend", "backend", 81),
                policy("b", "admin", "frontend", 22),
            ],
            vec![policy("b", "admin", "frontend", 22)],
            vec![
                policy("b", "backend", "frontend", 23),
                policy("c", "admin", "backend", 80),
            ],
            vec![],
        ];
        let mut kept = KeptRepository::default();
        let mut previous = None;
        for (i, docs) in steps.iter().enumerate() {
            let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
            let resources = valid_resources(&docs);
            let mut fresh = KeptRepository::default();
            for node in ["node-1", "node-2"] {
                let same = ClusterVersion::default();
                let inc = kept
                    .update(
                        &same,
                        || Cluster::from_topology(&topology),
                        resources.clone(),
                        Rebuild::IfNeeded,
                    )
                    .map(|r| entries::compute(r, node).unwrap())
                    .unwrap();
                let full = fresh
                    .update(
                        &same,
                        || Cluster::from_topology(&topology),
                        resources.clone(),
                        Rebuild::Always,
                    )
                    .map(|r| entries::compute(r, node).unwrap())
                    .unwrap();
                assert_eq!(inc, full, "step {i}, {node}");
                if node == "node-2" {
                    assert_ne!(
                        previous.as_ref(),
                        Some(&inc),
                        "step {i} changes node-2's maps"
                    );
                    previous = Some(inc);
                }
            }
        }
    }
}
