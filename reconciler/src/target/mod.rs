//! Where the desired state is applied. A [`Target`] reads what is live, plans a desired
//! state against it, applies a plan, and says what ward applied last (its inventory) and how
//! things stand. Callers hold a `dyn Target` and never ask which one it is.
//!
//! [`local::LocalTarget`] is the embedded default: a state directory, no cluster needed.
//! [`kube::KubeTarget`] is a cluster. [`memory::MemoryTarget`] is a revision taken as live,
//! which `ward diff --base` plans the head revision against.

pub mod kube;
pub mod local;
pub mod memory;

pub use crate::live::{Inventory, InventoryEntry, LiveObject, LiveSet};
pub use crate::plan::PlanOptions;

use crate::desired::Bodies;
use crate::plan::{self, Plan};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use ward_schema::{Resource, ResourceKey, ResourceSet};

/// The desired objects a target plans: a set of resources, borrowed when the caller still
/// needs it afterwards (the CLI's connectivity diff) or owned, and, when validated with
/// [`crate::desired::Keep::Bodies`], their bodies as bytes beside them. A target that
/// consumes the objects one by one ([`DesiredObjects::into_resources`]) then parses each body
/// only when it takes it, so the revision is never held parsed whole.
#[derive(Debug)]
pub struct DesiredObjects<'a> {
    set: Cow<'a, ResourceSet>,
    bodies: Bodies,
}

impl<'a> DesiredObjects<'a> {
    /// `set`, whose objects are `null` where `bodies` holds them.
    pub fn new(set: Cow<'a, ResourceSet>, bodies: Bodies) -> Self {
        DesiredObjects { set, bodies }
    }

    /// The keys, in apply order.
    pub fn keys(&self) -> impl Iterator<Item = &ResourceKey> {
        self.set.keys()
    }

    /// Every object parsed, in one set (what targets that compare whole sets read).
    pub fn into_set(self) -> Cow<'a, ResourceSet> {
        if self.bodies.is_empty() {
            return self.set;
        }
        let mut set = ResourceSet::new();
        for r in self.into_resources() {
            set.insert(r);
        }
        Cow::Owned(set)
    }

    /// The resources in apply order, moved out (copied when borrowed), each body parsed as
    /// its resource is taken.
    pub fn into_resources(self) -> impl Iterator<Item = Resource> + 'a {
        let mut bodies = self.bodies;
        let resources: Box<dyn Iterator<Item = Resource> + 'a> = match self.set {
            Cow::Borrowed(set) => Box::new(set.iter().cloned()),
            Cow::Owned(set) => Box::new(set.into_iter()),
        };
        resources.map(move |mut r| {
            if let Some(body) = bodies.remove(&r.key) {
                r.object = body.value();
            }
            r
        })
    }
}

impl<'a> From<&'a ResourceSet> for DesiredObjects<'a> {
    fn from(set: &'a ResourceSet) -> Self {
        DesiredObjects::new(Cow::Borrowed(set), Bodies::new())
    }
}

impl From<ResourceSet> for DesiredObjects<'_> {
    fn from(set: ResourceSet) -> Self {
        DesiredObjects::new(Cow::Owned(set), Bodies::new())
    }
}

/// Which target a saved plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum TargetId {
    /// A local state directory (absolute).
    Local {
        /// The state directory.
        state_dir: std::path::PathBuf,
    },
    /// A cluster and the WardSync that holds ward's inventory there.
    Kube {
        /// The API server's URL.
        server: String,
        /// The WardSync's name.
        sync: String,
        /// The CiliumConfig's ConfigMap namespace.
        config_namespace: String,
    },
}

impl std::fmt::Display for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetId::Local { state_dir } => write!(f, "local state {}", state_dir.display()),
            TargetId::Kube {
                server,
                sync,
                config_namespace,
            } => write!(
                f,
                "cluster {server}, WardSync {sync}, config namespace {config_namespace}"
            ),
        }
    }
}

/// Options for applying a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Delete inventory objects that are no longer desired.
    pub prune: bool,
    /// The revision being applied.
    pub revision: Option<String>,
    /// Take over fields other field managers own (kube target).
    pub force_conflicts: bool,
    /// Take over desired objects that exist but were not applied by ward.
    pub adopt: bool,
    /// The most objects one apply may prune ([`check_prune`]).
    pub max_prune: usize,
    /// Allow an apply to prune every object ward applied.
    pub allow_prune_all: bool,
}

/// The default deletion budget of one apply.
pub const DEFAULT_MAX_PRUNE: usize = 100;

impl Default for ApplyOptions {
    /// No pruning, no forcing, the default deletion budget.
    fn default() -> Self {
        ApplyOptions {
            prune: false,
            revision: None,
            force_conflicts: false,
            adopt: false,
            max_prune: DEFAULT_MAX_PRUNE,
            allow_prune_all: false,
        }
    }
}

/// The prune guards, checked before anything is written: an apply may not prune more than
/// its deletion budget, nor every object ward applied (the usual sign of a wrong path or an
/// empty checkout) unless that is asked for.
pub fn check_prune(plan: &Plan, inventory_size: usize, options: &ApplyOptions) -> Result<()> {
    if !options.prune || plan.deletes.is_empty() {
        return Ok(());
    }
    let n = plan.deletes.len();
    if n > options.max_prune {
        anyhow::bail!(
            "refusing to prune {n} objects: more than the deletion budget of {} (raise it with --max-prune {n}); nothing was applied",
            options.max_prune
        );
    }
    let left = plan.creates.len() + plan.updates.len() + plan.unchanged.len();
    if left == 0 && n >= inventory_size && !options.allow_prune_all {
        anyhow::bail!(
            "refusing to prune all {n} objects ward applied: the revision desires none (a wrong --include or an empty checkout?); pass --allow-prune-all if that is intended; nothing was applied"
        );
    }
    Ok(())
}

/// What an apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Objects created.
    pub created: usize,
    /// Objects changed (drift corrections included).
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Objects left as they were.
    pub unchanged: usize,
    /// Objects in the inventory after the apply.
    pub inventory: usize,
}

/// A plan with what was live when it was made.
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// What the target held (and its inventory) when it was planned.
    pub live: LiveSet,
    /// Things the user should know that are not part of the plan (an interrupted apply
    /// repaired, objects kept by their prune annotation).
    pub notes: Vec<String>,
}

/// How a target stands, for `ward status`.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The target's description.
    pub target: String,
    /// ward's inventory there.
    pub inventory: Inventory,
    /// How many objects are live.
    pub live: usize,
    /// Inventory objects changed or deleted outside ward.
    pub drifted: Vec<String>,
    /// Live objects ward never applied.
    pub unmanaged: Vec<String>,
    /// The pid of an apply running right now (local target).
    pub writer: Option<u32>,
    /// Whether an apply was interrupted and is not yet repaired (local target).
    pub interrupted: bool,
    /// Objects the target reports unusable, with the message (kube target).
    pub invalid: Vec<(String, String)>,
}

/// A place ward applies to.
pub trait Target {
    /// A short description for messages (`local state .ward`).
    fn describe(&self) -> String;

    /// Reads what is live and the inventory.
    fn snapshot(&mut self) -> Result<LiveSet>;

    /// Plans `desired` against what is live now. The default compares ward's normalised
    /// objects ([`plan::compute`]); a target that knows better what an object becomes (the
    /// API server's defaults) overrides it. `desired` is borrowed when the caller still needs
    /// it afterwards (the CLI's connectivity diff): a target that only reads it then copies
    /// nothing.
    fn plan(&mut self, desired: DesiredObjects<'_>, options: &PlanOptions) -> Result<Planned> {
        let desired = desired.into_set();
        let live = self.snapshot()?;
        let plan = plan::compute(&desired, &live, options);
        Ok(Planned {
            plan,
            live,
            notes: Vec::new(),
        })
    }

    /// Whether an apply has bookkeeping to do although the plan changes nothing (beyond
    /// recording a new revision, which every target does).
    fn pending(&self, _planned: &Planned, _options: &ApplyOptions) -> bool {
        false
    }

    /// Applies `plan` (its creates, updates and, with `prune`, deletes) all-or-nothing as far
    /// as the target allows, and records the inventory.
    fn apply(&mut self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport>;

    /// Objects the target holds that it reports as unusable, with why.
    fn unhealthy(&mut self) -> Result<Vec<(ResourceKey, String)>> {
        Ok(Vec::new())
    }

    /// How the target stands.
    fn status(&mut self) -> Result<Status>;

    /// Which target this is, for a saved plan; `None` when plans against it cannot be saved.
    fn identity(&self) -> Option<TargetId> {
        None
    }

    /// What this target needs, besides the plan, to apply the plan it made last at a later
    /// time (a saved plan); `null` when nothing.
    fn plan_extra(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores [`Target::plan_extra`] from a saved plan, before it is applied.
    fn set_plan_extra(&mut self, _extra: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// Drift and unmanaged objects of a target whose fingerprints are ward's own, from its live
/// set alone (the local and memory targets).
pub fn status_of(target: String, live: LiveSet) -> Status {
    let inv = &live.inventory;
    let drifted = inv
        .entries
        .values()
        .filter(|e| {
            live.objects
                .get(&e.key)
                .is_none_or(|l| l.fingerprint != e.fingerprint)
        })
        .map(|e| e.key.to_string())
        .collect();
    let unmanaged = live
        .objects
        .keys()
        .filter(|k| inv.get(k).is_none())
        .map(ToString::to_string)
        .collect();
    Status {
        target,
        live: live.objects.len(),
        inventory: live.inventory,
        drifted,
        unmanaged,
        ..Status::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::plan::{Action, Change};
    use ward_schema::{Kind, ResourceKey};

    fn deletes(n: usize) -> Plan {
        let change = |i: usize| Change {
            key: ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, None, &format!("p{i}")),
            action: Action::Delete,
            before: None,
            after: None,
            after_fingerprint: None,
            diff: String::new(),
            origin: None,
            drifted: false,
            adopt: false,
        };
        Plan {
            deletes: (0..n).map(change).collect(),
            prune: true,
            ..Plan::default()
        }
    }

    #[test]
    fn prune_guards() {
        let opts = ApplyOptions {
            prune: true,
            max_prune: 2,
            ..ApplyOptions::default()
        };
        assert!(check_prune(&deletes(2), 5, &opts).is_ok());
        assert!(
            check_prune(&deletes(3), 5, &opts)
                .unwrap_err()
                .to_string()
                .contains("deletion budget of 2")
        );
        assert!(
            check_prune(&deletes(2), 2, &opts)
                .unwrap_err()
                .to_string()
                .contains("refusing to prune all 2")
        );
        assert!(
            check_prune(
                &deletes(2),
                2,
                &ApplyOptions {
                    allow_prune_all: true,
                    ..opts.clone()
                }
            )
            .is_ok()
        );
        assert!(
            check_prune(
                &deletes(9),
                9,
                &ApplyOptions {
                    prune: false,
                    ..opts
                }
            )
            .is_ok(),
            "no prune, no guard"
        );
    }
}
