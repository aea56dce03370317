//! Plan = diff(desired, live): what an apply would create, change and prune, what is
//! unchanged, and what drifted (changed outside ward since ward applied it).
//!
//! One implementation, the [`Planner`], for every target: a target turns each desired object
//! into a [`Proposal`] (what it would become there), the planner compares it with the live
//! object and renders the diff.

use crate::live::{Body, Inventory, LiveObject, LiveSet};
use crate::normalize::{hash_bytes, normalize, to_yaml};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;
use std::collections::BTreeMap;
use ward_schema::{Resource, ResourceKey, ResourceSet};

/// What a plan is asked for besides the desired objects.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Plan deletes of inventory objects that are no longer desired.
    pub prune: bool,
    /// The revision planned.
    pub revision: Option<String>,
    /// Plan taking over fields other field managers own (kube target).
    pub force_conflicts: bool,
    /// Render each change's diff (reports do; the controller does not).
    pub diffs: bool,
    /// Take over desired objects that exist but were not applied by ward.
    pub adopt: bool,
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Desired, not live.
    Create,
    /// Desired and live, different.
    Update,
    /// In ward's inventory, live, no longer desired.
    Delete,
}

/// One object's change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The object.
    pub key: ResourceKey,
    /// What happens to it.
    pub action: Action,
    /// The live object (normalised), for updates and deletes.
    #[serde(skip)]
    pub before: Option<Value>,
    /// The desired object (normalised), for creates and updates, as bytes: a plan of
    /// thousands of creates holds no parsed objects.
    #[serde(skip)]
    pub after: Option<Body>,
    /// Fingerprint of `after`.
    #[serde(skip)]
    pub after_fingerprint: Option<String>,
    /// Unified YAML diff, live → desired.
    pub diff: String,
    /// Where the desired object is defined (`file:line`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Whether the live object was changed outside ward.
    pub drifted: bool,
    /// Whether the object exists but ward did not apply it, and this change takes it over
    /// (`--adopt`): field manager ward, into the inventory.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

/// The whole plan. Lists are in apply order (config and cluster-wide objects first).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// The desired revision.
    pub revision: Option<String>,
    /// Objects to create.
    pub creates: Vec<Change>,
    /// Objects to change.
    pub updates: Vec<Change>,
    /// Objects to prune (executed only when `prune` is set).
    pub deletes: Vec<Change>,
    /// Objects already as desired.
    pub unchanged: Vec<ResourceKey>,
    /// Objects changed or deleted outside ward since ward applied them.
    pub drifted: Vec<ResourceKey>,
    /// Desired objects that exist in the target but were not applied by ward: left alone
    /// unless `--adopt` takes them over.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<ResourceKey>,
    /// Whether deletes will be carried out.
    pub prune: bool,
}

impl Plan {
    /// Whether applying would change anything (deletes count only with prune).
    pub fn has_changes(&self) -> bool {
        !self.creates.is_empty()
            || !self.updates.is_empty()
            || (self.prune && !self.deletes.is_empty())
    }

    /// Every change that an apply carries out, in order: creates and updates in apply order,
    /// then deletes in reverse apply order (namespaced objects before cluster-wide ones).
    pub fn actions(&self) -> Vec<&Change> {
        let mut writes: Vec<&Change> = self.creates.iter().chain(&self.updates).collect();
        writes.sort_by(|a, b| a.key.cmp(&b.key));
        let mut deletes: Vec<&Change> = if self.prune {
            self.deletes.iter().collect()
        } else {
            Vec::new()
        };
        deletes.sort_by(|a, b| b.key.cmp(&a.key));
        writes.extend(deletes);
        writes
    }

    /// One-line summary, Terraform style.
    pub fn summary(&self) -> String {
        let prune_note = if self.prune || self.deletes.is_empty() {
            ""
        } else {
            " (with --prune)"
        };
        let unmanaged = if self.unmanaged.is_empty() {
            String::new()
        } else {
            format!(
                ", {} exist(s) not managed by ward (--adopt takes them over)",
                self.unmanaged.len()
            )
        };
        format!(
            "{} to create, {} to change, {} to prune{prune_note}, {} drifted, {} unchanged{unmanaged}",
            self.creates.len(),
            self.updates.len(),
            self.deletes.len(),
            self.drifted.len(),
            self.unchanged.len()
        )
    }
}

/// What a target expects one desired object to become; the [`Planner`] compares it with the
/// live object. Targets differ only in how they know what an object will become: the local
/// target normalises it, the kube target asks the API server (a server-side dry run).
#[derive(Debug)]
pub struct Proposal {
    /// The object.
    pub key: ResourceKey,
    /// Where it is defined (`file:line`).
    pub origin: Option<String>,
    /// What an apply sends (normalised).
    pub send: Body,
    /// Fingerprint of `send` (what the inventory records).
    pub send_fingerprint: String,
    /// What the target would hold after the apply, normalised, when that differs from `send`
    /// (the API server's dry-run answer: defaults, other managers' fields); `None`: `send`.
    pub expected: Option<Value>,
    /// Fingerprint of what the target would hold, computed the way the target fingerprints
    /// its live objects ([`LiveObject::fingerprint`]).
    pub expected_fingerprint: String,
    /// Whether the live object was changed outside ward since ward applied it.
    pub drifted: bool,
}

/// A proposal compared with the live object.
#[derive(Debug)]
pub enum Judged {
    /// The object exists but ward did not apply it (not in the inventory), and adopting was
    /// not asked for: left alone.
    Unmanaged(ResourceKey),
    /// The live object is already what the proposal would make it.
    Unchanged {
        /// The object.
        key: ResourceKey,
        /// Whether it drifted (and drifted back, or the drift made no difference).
        drifted: bool,
    },
    /// A create or an update.
    Changed(Change),
}

/// Builds the one kind of plan every target and `ward diff` produce: it compares proposals
/// with the live objects, renders diffs, lists drift and sorts everything into apply order.
pub struct Planner<'a> {
    live: &'a BTreeMap<ResourceKey, LiveObject>,
    inventory: &'a Inventory,
    diffs: bool,
    adopt: bool,
    plan: Plan,
}

impl<'a> Planner<'a> {
    /// A planner against `live` and ward's `inventory` there. `diffs` false leaves every
    /// [`Change::diff`] empty (the controller: nobody reads them, and a first apply would hold
    /// every object again as YAML); `adopt` takes over desired objects that exist but were not
    /// applied by ward, which are otherwise left alone.
    pub fn new(
        live: &'a BTreeMap<ResourceKey, LiveObject>,
        inventory: &'a Inventory,
        options: &PlanOptions,
    ) -> Self {
        Planner {
            live,
            inventory,
            diffs: options.diffs,
            adopt: options.adopt,
            plan: Plan {
                revision: options.revision.clone(),
                prune: options.prune,
                ..Plan::default()
            },
        }
    }

    /// Compares one proposal with the live object. Pure, so callers may judge on all cores.
    pub fn judge(&self, p: Proposal) -> Judged {
        let live = self.live.get(&p.key);
        let adopt = live.is_some() && self.inventory.get(&p.key).is_none();
        if adopt && !self.adopt {
            return Judged::Unmanaged(p.key);
        }
        if !adopt && live.is_some_and(|l| l.fingerprint == p.expected_fingerprint) {
            return Judged::Unchanged {
                key: p.key,
                drifted: p.drifted,
            };
        }
        let action = if live.is_some() {
            Action::Update
        } else {
            Action::Create
        };
        let before = live.map(|l| l.object().clone());
        let diff = if self.diffs {
            let expected = p.expected.unwrap_or_else(|| p.send.value());
            unified_diff(&p.key, before.as_ref(), Some(&expected))
        } else {
            String::new()
        };
        Judged::Changed(Change {
            key: p.key,
            action,
            before,
            after: Some(p.send),
            after_fingerprint: Some(p.send_fingerprint),
            diff,
            origin: p.origin,
            drifted: p.drifted,
            adopt,
        })
    }

    /// Adds a judged proposal to the plan.
    pub fn add(&mut self, judged: Judged) {
        match judged {
            Judged::Unmanaged(key) => self.plan.unmanaged.push(key),
            Judged::Unchanged { key, drifted } => {
                if drifted {
                    self.plan.drifted.push(key.clone());
                }
                self.plan.unchanged.push(key);
            }
            Judged::Changed(c) => {
                if c.drifted {
                    self.plan.drifted.push(c.key.clone());
                }
                match c.action {
                    Action::Create => self.plan.creates.push(c),
                    _ => self.plan.updates.push(c),
                }
            }
        }
    }

    /// An object the target knows to be unchanged without a proposal (the kube target's
    /// objects that nobody touched since ward applied this very content).
    pub fn unchanged(&mut self, key: ResourceKey) {
        self.plan.unchanged.push(key);
    }

    /// An object ward applied that is no longer desired and is still live: pruned with
    /// `prune`. `drifted`: changed outside ward since ward applied it.
    pub fn prune(&mut self, key: ResourceKey, drifted: bool) {
        let Some(l) = self.live.get(&key) else {
            return;
        };
        if drifted {
            self.plan.drifted.push(key.clone());
        }
        let before = l.object().clone();
        let diff = if self.diffs {
            unified_diff(&key, Some(&before), None)
        } else {
            String::new()
        };
        self.plan.deletes.push(Change {
            key,
            action: Action::Delete,
            before: Some(before),
            after: None,
            after_fingerprint: None,
            diff,
            origin: None,
            drifted,
            adopt: false,
        });
    }

    /// The plan, every list in apply order.
    pub fn finish(mut self) -> Plan {
        let plan = &mut self.plan;
        for list in [&mut plan.creates, &mut plan.updates, &mut plan.deletes] {
            list.sort_by(|a, b| a.key.cmp(&b.key));
        }
        plan.unchanged.sort();
        plan.drifted.sort();
        plan.unmanaged.sort();
        self.plan
    }
}

/// Plans a desired state against live objects whose fingerprints are ward's own
/// ([`crate::normalize::fingerprint`] of the normalised object): the local target, and a revision taken as
/// live (`ward diff --base`). Objects in the target that ward never applied (not in the
/// inventory) are left alone: neither updated unless desired, nor pruned. Kinds that are
/// never applied (PolicyTest) are not part of any plan.
pub fn compute(desired: &ResourceSet, live: &LiveSet, options: &PlanOptions) -> Plan {
    let inv = &live.inventory;
    let mut planner = Planner::new(&live.objects, inv, options);
    // Normalising, hashing and diffing are the bulk of the work: on all cores, in order. An
    // unchanged object's canonical form is dropped at once.
    let judged: Vec<Judged> = desired
        .iter()
        .filter(|r| r.key.kind.is_applied())
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|r: &Resource| {
            let send = Body::new(&normalize(&r.object));
            let fp = hash_bytes(send.bytes());
            planner.judge(Proposal {
                key: r.key.clone(),
                origin: Some(r.origin.to_string()),
                send,
                send_fingerprint: fp.clone(),
                expected: None,
                expected_fingerprint: fp,
                drifted: is_drifted(&r.key, live, inv),
            })
        })
        .collect();
    judged.into_iter().for_each(|j| planner.add(j));
    for entry in inv.entries.values() {
        if desired.get(&entry.key).is_some() {
            continue;
        }
        if let Some(l) = live.objects.get(&entry.key) {
            planner.prune(entry.key.clone(), l.fingerprint != entry.fingerprint);
        }
    }
    planner.finish()
}

fn is_drifted(key: &ResourceKey, live: &LiveSet, inv: &Inventory) -> bool {
    match (inv.get(key), live.objects.get(key)) {
        (Some(entry), Some(l)) => entry.fingerprint != l.fingerprint,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A unified diff of two objects rendered as YAML; an absent side is empty.
pub fn unified_diff(key: &ResourceKey, before: Option<&Value>, after: Option<&Value>) -> String {
    let a = before.map(to_yaml).unwrap_or_default();
    let b = after.map(to_yaml).unwrap_or_default();
    let label = key.to_string();
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{label}"), &format!("desired/{label}"))
        .to_string()
}
