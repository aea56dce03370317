//! A revision taken as live: every object of it as if ward had applied it. `ward diff --base
//! A --head B` is the plan of B against the memory target of A, with pruning, so a diff
//! between revisions and a plan against a target are the same computation.

use super::{
    ApplyOptions, ApplyReport, Inventory, InventoryEntry, LiveObject, LiveSet, Status, Target,
    status_of,
};
use crate::normalize::{fingerprint, normalize};
use crate::plan::{Action, Plan};
use anyhow::{Result, bail};
use ward_schema::ResourceSet;

/// Objects held in memory, all of them in ward's inventory.
#[derive(Debug, Default)]
pub struct MemoryTarget {
    name: String,
    live: LiveSet,
}

impl MemoryTarget {
    /// The applied objects of a revision (`name` describes it), as live and in the inventory.
    pub fn of_revision(name: &str, set: &ResourceSet) -> MemoryTarget {
        let mut live = LiveSet::default();
        for r in set.iter().filter(|r| r.key.kind.is_applied()) {
            let object = normalize(&r.object);
            let fp = fingerprint(&object);
            live.inventory.entries.insert(
                Inventory::id(&r.key),
                InventoryEntry {
                    key: r.key.clone(),
                    fingerprint: fp.clone(),
                    origin: r.origin.to_string(),
                },
            );
            live.objects
                .insert(r.key.clone(), LiveObject::new(object, fp));
        }
        MemoryTarget {
            name: name.to_owned(),
            live,
        }
    }
}

impl Target for MemoryTarget {
    fn describe(&self) -> String {
        format!("revision {}", self.name)
    }

    fn snapshot(&mut self) -> Result<LiveSet> {
        Ok(self.live.clone())
    }

    fn apply(&mut self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport> {
        let mut report = ApplyReport {
            unchanged: plan.unchanged.len(),
            ..ApplyReport::default()
        };
        for change in plan.actions() {
            let id = Inventory::id(&change.key);
            match (change.action, &change.after, &change.after_fingerprint) {
                (Action::Delete, _, _) => {
                    self.live.objects.remove(&change.key);
                    self.live.inventory.entries.remove(&id);
                    report.deleted += 1;
                }
                (action, Some(after), Some(fp)) => {
                    self.live.objects.insert(
                        change.key.clone(),
                        LiveObject::from_canonical(after.bytes().to_vec(), fp.clone()),
                    );
                    self.live.inventory.entries.insert(
                        id,
                        InventoryEntry {
                            key: change.key.clone(),
                            fingerprint: fp.clone(),
                            origin: change.origin.clone().unwrap_or_default(),
                        },
                    );
                    match action {
                        Action::Create => report.created += 1,
                        _ => report.updated += 1,
                    }
                }
                _ => bail!("internal error: {} has no desired content", change.key),
            }
        }
        self.live.inventory.applied_revision = options.revision.clone();
        self.live.inventory.attempted_revision = options.revision.clone();
        report.inventory = self.live.inventory.entries.len();
        Ok(report)
    }

    fn status(&mut self) -> Result<Status> {
        Ok(status_of(self.describe(), self.live.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::target::PlanOptions;
    use serde_json::json;
    use ward_schema::{Kind, Origin, Resource, ResourceKey};

    fn set(names: &[(&str, i64)]) -> ResourceSet {
        let mut s = ResourceSet::new();
        for (name, port) in names {
            s.insert(Resource {
                key: ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, None, name),
                object: json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                    "metadata": {"name": name}, "spec": {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": port.to_string()}]}]}]}}),
                origin: Origin::default(),
            });
        }
        s
    }

    /// A plan applied to the memory target leaves it holding the head revision: planning
    /// the head again finds nothing to do.
    #[test]
    fn an_applied_plan_converges() {
        let mut target = MemoryTarget::of_revision("base", &set(&[("a", 80), ("b", 80)]));
        let head = set(&[("a", 443), ("c", 80)]);
        let opts = PlanOptions {
            prune: true,
            ..PlanOptions::default()
        };
        let planned = target.plan((&head).into(), &opts).unwrap();
        assert_eq!(
            planned.plan.summary(),
            "1 to create, 1 to change, 1 to prune, 0 drifted, 0 unchanged"
        );
        let report = target
            .apply(
                &planned.plan,
                &ApplyOptions {
                    prune: true,
                    ..ApplyOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            (
                report.created,
                report.updated,
                report.deleted,
                report.inventory
            ),
            (1, 1, 1, 2)
        );
        let again = target.plan(head.into(), &opts).unwrap();
        assert!(!again.plan.has_changes(), "{}", again.plan.summary());
        assert!(target.status().unwrap().drifted.is_empty());
    }
}
