//! Plan = diff(desired, live): what an apply would create, change and prune, what is
//! unchanged, and what drifted (changed outside ward since ward applied it).

use crate::normalize::{fingerprint, normalize, to_yaml};
use crate::target::{Inventory, LiveSet};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;
use ward_schema::{Resource, ResourceKey, ResourceSet};

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// The desired object (normalised), for creates and updates.
    #[serde(skip)]
    pub after: Option<Value>,
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
        format!(
            "{} to create, {} to change, {} to prune{prune_note}, {} drifted, {} unchanged",
            self.creates.len(),
            self.updates.len(),
            self.deletes.len(),
            self.drifted.len(),
            self.unchanged.len()
        )
    }
}

/// Computes the plan. Objects in the target that ward never applied (not in the inventory)
/// are left alone: neither updated unless desired, nor pruned. Kinds that are never applied
/// (PolicyTest) are not part of any plan.
pub fn compute(
    desired: &ResourceSet,
    live: &LiveSet,
    prune: bool,
    revision: Option<String>,
) -> Plan {
    let mut plan = Plan {
        revision,
        prune,
        ..Plan::default()
    };
    let inv = &live.inventory;
    // Normalising, hashing and diffing are the bulk of the work: on all cores, in order. An
    // unchanged object's canonical form is dropped at once.
    let outcomes: Vec<(&Resource, bool, Option<Change>)> = desired
        .iter()
        .filter(|r| r.key.kind.is_applied())
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|r| {
            let after = normalize(&r.object);
            let after_fp = fingerprint(&after);
            let origin = Some(r.origin.to_string());
            let drifted = is_drifted(&r.key, live, inv);
            let change = match live.objects.get(&r.key) {
                None => Some(change(
                    &r.key,
                    Action::Create,
                    None,
                    Some(after),
                    Some(after_fp),
                    origin,
                    drifted,
                )),
                Some(l) if l.fingerprint == after_fp => None,
                Some(l) => Some(change(
                    &r.key,
                    Action::Update,
                    Some(l.object().clone()),
                    Some(after),
                    Some(after_fp),
                    origin,
                    drifted,
                )),
            };
            (r, drifted, change)
        })
        .collect();
    for (r, drifted, change) in outcomes {
        if drifted {
            plan.drifted.push(r.key.clone());
        }
        match change {
            None => plan.unchanged.push(r.key.clone()),
            Some(c) if c.action == Action::Create => plan.creates.push(c),
            Some(c) => plan.updates.push(c),
        }
    }
    for entry in inv.entries.values() {
        if desired.get(&entry.key).is_some() {
            continue;
        }
        if let Some(l) = live.objects.get(&entry.key) {
            let drifted = l.fingerprint != entry.fingerprint;
            if drifted {
                plan.drifted.push(entry.key.clone());
            }
            plan.deletes.push(change(
                &entry.key,
                Action::Delete,
                Some(l.object().clone()),
                None,
                None,
                None,
                drifted,
            ));
        }
    }
    plan
}

fn is_drifted(key: &ResourceKey, live: &LiveSet, inv: &Inventory) -> bool {
    match (inv.get(key), live.objects.get(key)) {
        (Some(entry), Some(l)) => entry.fingerprint != l.fingerprint,
        (Some(_), None) => true,
        _ => false,
    }
}

fn change(
    key: &ResourceKey,
    action: Action,
    before: Option<Value>,
    after: Option<Value>,
    after_fingerprint: Option<String>,
    origin: Option<String>,
    drifted: bool,
) -> Change {
    let diff = unified_diff(key, before.as_ref(), after.as_ref());
    Change {
        key: key.clone(),
        action,
        before,
        after,
        after_fingerprint,
        diff,
        origin,
        drifted,
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
