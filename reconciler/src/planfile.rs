//! Saved plans, like `terraform plan -out`: `ward plan --out FILE` writes the plan it made,
//! and `ward apply FILE` applies exactly that plan (the objects in the file, not re-read from
//! Git) or refuses, changing nothing, when the source revision or the target changed since.
//!
//! # The file (version 1)
//! One JSON document, written atomically:
//!
//! | field | what it holds |
//! |---|---|
//! | `kind`, `version` | `"WardPlan"` and `1`; any other version is refused |
//! | `wardVersion`, `createdAt` | the ward that wrote it, and when (RFC 3339) |
//! | `source` | `repository` (absolute path or URL), `rev` (as asked; `null`: the working tree), `commit` (the full commit planned, `<commit>-dirty` for a changed working tree), `include` (the folders read), `files`, `documents` |
//! | `target` | `identity` (`{"type": "local", "stateDir"}` or `{"type": "kube", "server", "sync", "configNamespace"}`), `fingerprint` (SHA-256 of the state below), `appliedRevision`, `inventory` and `live` (object id → fingerprint, as the target held them), `extra` (what the target needs to apply the plan, e.g. objects whose imperative changes it takes back) |
//! | `options` | `prune`, `adopt`, `forceConflicts`, `maxPrune`, `allowPruneAll` |
//! | `summary` | the plan's one-line summary |
//! | `changes` | creates, updates, then deletes (carried out only with `prune`): `key`, `action` (`create`, `update`, `delete`), `origin`, `object` (what is sent), `fingerprint`, `adopt`, `drifted`, `diff` |
//! | `unchanged`, `drifted`, `unmanaged` | object keys, as the plan lists them |
//! | `checksum` | SHA-256 of the document with `checksum` empty: a file changed after ward wrote it is refused |
//!
//! The checksum detects edits and corruption; it is not a signature (whoever can write the
//! file can recompute it), so keep plan files where only the people who may apply can write.

use crate::live::LiveSet;
use crate::normalize::hash_bytes;
use crate::plan::{Action, Change, Plan};
use crate::source::{RepoRef, Source};
use crate::target::{ApplyOptions, TargetId};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use ward_schema::ResourceKey;

/// The `kind` of a plan file.
pub const KIND: &str = "WardPlan";
/// The version of the plan file format this ward writes and reads.
pub const VERSION: u32 = 1;

/// A plan as saved in a file (see the module documentation for the format).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPlan {
    /// Always [`KIND`].
    pub kind: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The ward that wrote the file.
    pub ward_version: String,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// Where the desired state came from.
    pub source: SavedSource,
    /// The target planned against, and how it stood.
    pub target: SavedTarget,
    /// How to apply.
    pub options: SavedOptions,
    /// The plan's one-line summary.
    pub summary: String,
    /// Every change: creates, updates, then deletes, each in apply order.
    pub changes: Vec<SavedChange>,
    /// Objects already as desired.
    pub unchanged: Vec<ResourceKey>,
    /// Objects changed outside ward.
    pub drifted: Vec<ResourceKey>,
    /// Desired objects that exist but ward did not apply.
    pub unmanaged: Vec<ResourceKey>,
    /// SHA-256 of the document with this field empty.
    pub checksum: String,
}

/// The source of a saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedSource {
    /// An absolute path or a URL.
    pub repository: String,
    /// The revision as asked for (`None`: the working tree).
    pub rev: Option<String>,
    /// The full commit planned.
    pub commit: Option<String>,
    /// The include folders read.
    pub include: Vec<String>,
    /// The files read.
    pub files: Vec<String>,
    /// The YAML documents read.
    pub documents: usize,
}

/// The target of a saved plan and how it stood when the plan was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedTarget {
    /// Which target.
    pub identity: TargetId,
    /// SHA-256 over `appliedRevision`, `inventory` and `live`.
    pub fingerprint: String,
    /// The revision the target was at.
    pub applied_revision: Option<String>,
    /// ward's inventory there: object id → fingerprint.
    pub inventory: BTreeMap<String, String>,
    /// The target's objects: object id → fingerprint.
    pub live: BTreeMap<String, String>,
    /// What the target needs to apply this plan later ([`crate::target::Target::plan_extra`]).
    pub extra: Value,
}

/// The apply options a plan was made with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedOptions {
    /// Deletes are carried out.
    pub prune: bool,
    /// Existing objects are taken over.
    pub adopt: bool,
    /// Fields of other managers are taken over.
    pub force_conflicts: bool,
    /// The deletion budget.
    pub max_prune: usize,
    /// Pruning everything is allowed.
    pub allow_prune_all: bool,
}

/// One change of a saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedChange {
    /// The object.
    pub key: ResourceKey,
    /// What happens to it.
    pub action: Action,
    /// Where it is defined (`file:line`).
    pub origin: Option<String>,
    /// What is sent (creates and updates).
    pub object: Option<Value>,
    /// The fingerprint the inventory records for it.
    pub fingerprint: Option<String>,
    /// Whether it is taken over.
    pub adopt: bool,
    /// Whether it drifted.
    pub drifted: bool,
    /// The unified diff shown when it was planned.
    pub diff: String,
}

/// How a target stood: what a saved plan was made against, compared again before it is
/// applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    /// The revision the target was at.
    pub applied_revision: Option<String>,
    /// ward's inventory: object id → fingerprint.
    pub inventory: BTreeMap<String, String>,
    /// The target's objects: object id → fingerprint.
    pub live: BTreeMap<String, String>,
}

impl TargetState {
    /// The state of a live set.
    pub fn of(live: &LiveSet) -> TargetState {
        TargetState {
            applied_revision: live.inventory.applied_revision.clone(),
            inventory: live
                .inventory
                .entries
                .iter()
                .map(|(id, e)| (id.clone(), e.fingerprint.clone()))
                .collect(),
            live: live
                .objects
                .iter()
                .map(|(k, l)| (k.to_string(), l.fingerprint.clone()))
                .collect(),
        }
    }

    /// SHA-256 of the state.
    pub fn fingerprint(&self) -> String {
        let doc = serde_json::json!([self.applied_revision, self.inventory, self.live]);
        hash_bytes(&serde_json::to_vec(&doc).expect("a JSON value serialises"))
    }

    /// What differs from `now`, one item per line; empty when nothing does.
    pub fn changes_to(&self, now: &TargetState) -> Vec<String> {
        let mut out = Vec::new();
        if self.applied_revision != now.applied_revision {
            out.push(format!(
                "applied revision was {}, is now {}",
                self.applied_revision.as_deref().unwrap_or("(none)"),
                now.applied_revision.as_deref().unwrap_or("(none)")
            ));
        }
        let objects = map_changes(&self.live, &now.live);
        out.extend(objects.iter().map(|(id, how)| format!("object {id} {how}")));
        // An object whose change is listed already needs no second line for its record.
        let entries = map_changes(&self.inventory, &now.inventory);
        out.extend(
            entries
                .iter()
                .filter(|(id, _)| !objects.iter().any(|(o, _)| o == id))
                .map(|(id, how)| format!("inventory entry {id} {how}")),
        );
        out
    }
}

/// The ids that differ between two id → fingerprint maps, with `added`, `changed` or
/// `removed`.
fn map_changes<'a>(
    before: &'a BTreeMap<String, String>,
    after: &'a BTreeMap<String, String>,
) -> Vec<(&'a str, &'static str)> {
    let mut out = Vec::new();
    for (id, fp) in before {
        match after.get(id) {
            None => out.push((id.as_str(), "removed")),
            Some(now) if now != fp => out.push((id.as_str(), "changed")),
            Some(_) => {}
        }
    }
    for id in after.keys().filter(|id| !before.contains_key(*id)) {
        out.push((id.as_str(), "added"));
    }
    out
}

/// Everything a saved plan is made of besides the plan itself.
pub struct PlanContext<'a> {
    /// The source read.
    pub source: &'a Source,
    /// The revision asked for.
    pub rev: Option<&'a str>,
    /// The files read.
    pub files: &'a [String],
    /// The YAML documents read.
    pub documents: usize,
    /// The target planned against.
    pub identity: TargetId,
    /// What the target held.
    pub live: &'a LiveSet,
    /// [`crate::target::Target::plan_extra`].
    pub extra: Value,
    /// The apply options.
    pub options: &'a ApplyOptions,
}

impl SavedPlan {
    /// The saved form of `plan`.
    pub fn new(plan: &Plan, cx: PlanContext<'_>) -> SavedPlan {
        let state = TargetState::of(cx.live);
        let o = cx.options;
        let mut saved = SavedPlan {
            kind: KIND.into(),
            version: VERSION,
            ward_version: env!("CARGO_PKG_VERSION").into(),
            created_at: crate::time::now_rfc3339(),
            source: SavedSource {
                repository: repository_name(&cx.source.repo),
                rev: cx.rev.map(str::to_owned),
                commit: plan.revision.clone(),
                include: cx.source.selection.include.clone(),
                files: cx.files.to_vec(),
                documents: cx.documents,
            },
            target: SavedTarget {
                identity: cx.identity,
                fingerprint: state.fingerprint(),
                applied_revision: state.applied_revision,
                inventory: state.inventory,
                live: state.live,
                extra: cx.extra,
            },
            options: SavedOptions {
                prune: plan.prune,
                adopt: o.adopt,
                force_conflicts: o.force_conflicts,
                max_prune: o.max_prune,
                allow_prune_all: o.allow_prune_all,
            },
            summary: plan.summary(),
            changes: plan
                .creates
                .iter()
                .chain(&plan.updates)
                .chain(&plan.deletes)
                .map(saved_change)
                .collect(),
            unchanged: plan.unchanged.clone(),
            drifted: plan.drifted.clone(),
            unmanaged: plan.unmanaged.clone(),
            checksum: String::new(),
        };
        saved.checksum = saved.compute_checksum();
        saved
    }

    fn compute_checksum(&self) -> String {
        let mut copy = self.clone();
        copy.checksum.clear();
        hash_bytes(&serde_json::to_vec(&copy).expect("a plan serialises"))
    }

    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
        crate::target::local::write_atomic(&path, &bytes)
            .with_context(|| format!("cannot write the plan to {}", path.display()))
    }

    /// Reads a plan file, refusing one of another kind or version, or one changed after ward
    /// wrote it.
    pub fn read(path: &Path) -> Result<SavedPlan> {
        let shown = path.display();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read plan {shown}"))?;
        let doc: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{shown} is not a ward plan: not JSON"))?;
        if doc["kind"] != KIND {
            bail!(
                "{shown} is not a ward plan (no \"kind\": \"{KIND}\"); write one with `ward plan --out {shown}`"
            );
        }
        if doc["version"] != VERSION {
            bail!(
                "{shown} is a plan of format version {}, and this ward ({}) reads version {VERSION}; make the plan again with this ward",
                doc["version"],
                env!("CARGO_PKG_VERSION")
            );
        }
        let saved: SavedPlan = serde_json::from_value(doc)
            .with_context(|| format!("{shown} is not a valid ward plan; make the plan again"))?;
        if saved.compute_checksum() != saved.checksum {
            bail!(
                "{shown} was changed after ward wrote it (its checksum does not match); nothing was applied; make the plan again with `ward plan --out`"
            );
        }
        Ok(saved)
    }

    /// The plan to apply, as it was made.
    pub fn plan(&self) -> Plan {
        let mut plan = Plan {
            revision: self.source.commit.clone(),
            prune: self.options.prune,
            unchanged: self.unchanged.clone(),
            drifted: self.drifted.clone(),
            unmanaged: self.unmanaged.clone(),
            ..Plan::default()
        };
        for c in &self.changes {
            let change = Change {
                key: c.key.clone(),
                action: c.action,
                before: None,
                after: c.object.as_ref().map(crate::live::Body::new),
                after_fingerprint: c.fingerprint.clone(),
                diff: c.diff.clone(),
                origin: c.origin.clone(),
                drifted: c.drifted,
                adopt: c.adopt,
            };
            match c.action {
                Action::Create => plan.creates.push(change),
                Action::Update => plan.updates.push(change),
                Action::Delete => plan.deletes.push(change),
            }
        }
        plan
    }

    /// The options to apply with.
    pub fn apply_options(&self) -> ApplyOptions {
        let o = &self.options;
        ApplyOptions {
            prune: o.prune,
            revision: self.source.commit.clone(),
            force_conflicts: o.force_conflicts,
            adopt: o.adopt,
            max_prune: o.max_prune,
            allow_prune_all: o.allow_prune_all,
        }
    }

    /// The source the plan was read from (its include folders and `cache_dir`'s clones).
    pub fn source(&self, cache_dir: &Path) -> Source {
        Source {
            repo: RepoRef::parse(&self.source.repository),
            selection: crate::source::Selection::new(
                &self.source.include,
                true,
                ward_schema::yaml::Limits::default(),
            ),
            cache_dir: cache_dir.to_path_buf(),
            // Only resolved here, never read: the plan holds the objects.
            verify: None,
        }
    }

    /// Fails when the revision the plan was made from has moved (a branch with new commits,
    /// a working tree with a new commit or new changes).
    pub fn check_source(&self, cache_dir: &Path) -> Result<()> {
        let rev = self.source.rev.as_deref();
        let now = self.source(cache_dir).resolve(rev).with_context(|| {
            format!("cannot check the plan's source {}", self.source.repository)
        })?;
        if now != self.source.commit {
            let what = rev.map_or_else(|| "the working tree".to_owned(), |r| format!("\"{r}\""));
            bail!(
                "the source revision moved since the plan was made: {what} of {} was {}, is now {}; nothing was applied; make the plan again",
                self.source.repository,
                self.source.commit.as_deref().unwrap_or("(no commit)"),
                now.as_deref().unwrap_or("(no commit)")
            );
        }
        Ok(())
    }

    /// Fails, naming what changed, when the target no longer stands as it did when the plan
    /// was made.
    pub fn check_target(&self, live: &LiveSet) -> Result<()> {
        let now = TargetState::of(live);
        if now.fingerprint() == self.target.fingerprint {
            return Ok(());
        }
        let then = TargetState {
            applied_revision: self.target.applied_revision.clone(),
            inventory: self.target.inventory.clone(),
            live: self.target.live.clone(),
        };
        let mut msg = format!(
            "the target ({}) changed since the plan was made; nothing was applied; make the plan again:",
            self.target.identity
        );
        let changes = then.changes_to(&now);
        for c in changes.iter().take(20) {
            let _ = write!(msg, "\n  {c}");
        }
        if changes.len() > 20 {
            let _ = write!(msg, "\n  ... and {} more", changes.len() - 20);
        }
        bail!(msg)
    }
}

fn saved_change(c: &Change) -> SavedChange {
    SavedChange {
        key: c.key.clone(),
        action: c.action,
        origin: c.origin.clone(),
        object: c.after.as_ref().map(crate::live::Body::value),
        fingerprint: c.after_fingerprint.clone(),
        adopt: c.adopt,
        drifted: c.drifted,
        diff: c.diff.clone(),
    }
}

/// The repository as a plan file names it: a URL, or the absolute path of the working tree
/// or bare repository.
fn repository_name(repo: &RepoRef) -> String {
    match repo {
        RepoRef::Remote(url) => url.clone(),
        RepoRef::Local(p) => {
            let root = crate::source::repo_root(p);
            std::path::absolute(&root)
                .unwrap_or(root)
                .to_string_lossy()
                .into_owned()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn state(rev: &str, live: &[(&str, &str)]) -> TargetState {
        let map: BTreeMap<String, String> = live
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        TargetState {
            applied_revision: Some(rev.into()),
            inventory: map.clone(),
            live: map,
        }
    }

    #[test]
    fn target_changes_are_named() {
        let then = state("c1", &[("A/x", "1"), ("A/y", "2")]);
        let now = state("c2", &[("A/x", "9"), ("A/z", "3")]);
        assert_ne!(then.fingerprint(), now.fingerprint());
        assert_eq!(then.fingerprint(), then.clone().fingerprint());
        let changes = then.changes_to(&now);
        assert!(changes.contains(&"applied revision was c1, is now c2".to_owned()));
        assert!(changes.contains(&"object A/x changed".to_owned()));
        assert!(changes.contains(&"object A/y removed".to_owned()));
        assert!(changes.contains(&"object A/z added".to_owned()));
        assert_eq!(
            changes.len(),
            4,
            "no second line for the same objects' records"
        );
        let mut recorded_only = then.clone();
        recorded_only.inventory.insert("A/x".into(), "7".into());
        assert_eq!(
            then.changes_to(&recorded_only),
            ["inventory entry A/x changed"]
        );
        assert!(then.changes_to(&then).is_empty());
    }
}
