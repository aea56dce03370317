//! The sync pipeline, the one path from a Git revision to a target, which `ward plan`,
//! `ward apply`, `ward diff` and the controller (`ward reconcile`) all take:
//!
//! 1. [`load`]: the revision's selected files from the [`Source`] (with `--verify-signatures`,
//!    only once the revision's signature is checked: an untrusted one is not read);
//! 2. [`validate`]: schema and Cilium's semantic rules, file by file on all cores; an invalid
//!    revision stops here ([`Outcome::Invalid`]) and nothing is planned or applied;
//! 3. [`plan`]: the target compares the desired objects with what it holds;
//! 4. [`guard`]: the prune guards, before anything is written;
//! 5. [`apply`]: the target carries out the plan and records its inventory;
//! 6. [`record`]: a revision that changes nothing is still recorded as applied (and an
//!    incomplete inventory completed), so the target says which commit it is at.
//!
//! The pipeline knows targets only as `dyn Target`. What callers do with the outcome (print
//! a report, write a WardSync's conditions) is theirs.

use crate::desired::{Desired, Keep, validate_snapshot_keeping};
use crate::plan::Plan;
use crate::source::{Snapshot, Source};
use crate::target::{
    ApplyOptions, ApplyReport, DesiredObjects, PlanOptions, Planned, Target, check_prune,
};
use anyhow::Result;
use std::borrow::Cow;
use std::fmt;

/// What to sync.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The revision (`None`: the working tree).
    pub rev: Option<String>,
    /// Apply, or only plan.
    pub apply: bool,
    /// How to apply (its `revision` is set by the pipeline to the commit loaded).
    pub options: ApplyOptions,
    /// Render each change's diff.
    pub diffs: bool,
    /// Keep the desired objects in the outcome (the CLI's connectivity diff reads them); else
    /// they move into the plan, so a first apply of 10,000 objects holds them once.
    pub keep_desired: bool,
    /// After an apply, ask the target which objects it finds unusable.
    pub check_health: bool,
}

/// A validated revision and the files it was read from.
#[derive(Debug)]
pub struct Loaded {
    /// Resources, findings and the commit.
    pub desired: Desired,
    /// The files read, in path order.
    pub files: Vec<String>,
}

/// A step of the pipeline, named in failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading the revision.
    Load,
    /// Planning against the target.
    Plan,
    /// The prune guards.
    Guard,
    /// Applying, or recording an unchanged revision.
    Apply,
}

/// A step that failed, and why.
#[derive(Debug)]
pub struct Failed {
    /// The step.
    pub step: Step,
    /// The error.
    pub error: anyhow::Error,
    /// The commit being synced, once it was loaded.
    pub revision: Option<String>,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl From<Failed> for anyhow::Error {
    fn from(f: Failed) -> anyhow::Error {
        f.error
    }
}

/// How a sync ended.
#[derive(Debug)]
pub enum Outcome {
    /// The revision has errors: nothing was planned or applied.
    Invalid(Loaded),
    /// Planned, and applied when asked and needed.
    Synced(Box<Synced>),
}

/// A valid revision planned (and perhaps applied).
#[derive(Debug)]
pub struct Synced {
    /// The revision (its resources moved out unless [`Request::keep_desired`]).
    pub loaded: Loaded,
    /// The plan and what was live before it.
    pub planned: Planned,
    /// What the apply did, when one ran.
    pub applied: Option<ApplyReport>,
    /// Objects the target finds unusable after the apply ([`Request::check_health`]).
    pub unhealthy: Vec<(ward_schema::ResourceKey, String)>,
}

/// Runs every step for `req`.
pub fn run(source: &Source, target: &mut dyn Target, req: &Request) -> Result<Outcome, Failed> {
    let snapshot = load(source, req.rev.as_deref()).map_err(at(Step::Load, None))?;
    // A working tree's apply records a digest of the parsed objects, so only a revision's
    // bodies may stay bytes.
    let keep = if req.keep_desired || req.rev.is_none() {
        Keep::Objects
    } else {
        Keep::Bodies
    };
    let v = validate_keeping(snapshot, source, keep);
    sync(v, target, req)
}

/// Steps 3 to 6 for a revision already loaded and validated.
pub fn sync(mut loaded: Loaded, target: &mut dyn Target, req: &Request) -> Result<Outcome, Failed> {
    if !loaded.desired.validation.is_valid() {
        return Ok(Outcome::Invalid(loaded));
    }
    let options = ApplyOptions {
        revision: loaded.desired.revision.clone(),
        ..req.options.clone()
    };
    // A folder outside Git has no commit: what an apply records instead is a digest of the
    // content, so a reader (an agent, `ward status`, a test) can tell one apply from another.
    // (Plans and saved plans keep `None`: they name commits.)
    let recorded = ApplyOptions {
        revision: options.revision.clone().or_else(|| {
            req.apply
                .then(|| crate::normalize::content_digest(&loaded.desired.validation.resources))
        }),
        ..options.clone()
    };
    let bodies = std::mem::take(&mut loaded.desired.bodies);
    let desired = if req.keep_desired {
        Cow::Borrowed(&loaded.desired.validation.resources)
    } else {
        Cow::Owned(std::mem::take(&mut loaded.desired.validation.resources))
    };
    let desired = DesiredObjects::new(desired, bodies);
    let rev = options.revision.as_ref();
    let planned = plan(target, desired, &options, req.diffs).map_err(at(Step::Plan, rev))?;
    let mut applied = None;
    if req.apply {
        if planned.plan.has_changes() {
            guard(&planned, &recorded).map_err(at(Step::Guard, rev))?;
            applied = Some(apply(target, &planned.plan, &recorded).map_err(at(Step::Apply, rev))?);
        } else {
            applied = record(target, &planned, &recorded).map_err(at(Step::Apply, rev))?;
        }
    }
    let unhealthy = if req.check_health && applied.is_some() {
        target.unhealthy().map_err(at(Step::Apply, rev))?
    } else {
        Vec::new()
    };
    Ok(Outcome::Synced(Box::new(Synced {
        loaded,
        planned,
        applied,
        unhealthy,
    })))
}

/// Step 1: the selected files of `rev` (the working tree when `None`).
pub fn load(source: &Source, rev: Option<&str>) -> Result<Snapshot> {
    source.snapshot(rev)
}

/// Step 2: validates a snapshot. With `keep_objects` false the resources keep only their
/// keys and origins ([`crate::desired::validate_files`]).
pub fn validate(snapshot: Snapshot, source: &Source, keep_objects: bool) -> Loaded {
    validate_keeping(snapshot, source, Keep::objects_or_keys(keep_objects))
}

/// Step 2, keeping of each object what `keep` says (the pipeline's own run keeps bodies as
/// bytes unless [`Request::keep_desired`]).
pub fn validate_keeping(snapshot: Snapshot, source: &Source, keep: Keep) -> Loaded {
    let files = snapshot
        .files
        .iter()
        .filter(|f| f.skipped().is_none())
        .map(|f| f.path.clone())
        .collect();
    Loaded {
        desired: validate_snapshot_keeping(snapshot, &source.selection, keep),
        files,
    }
}

/// Steps 1 and 2 together: what `validate`, `test` and `explain` need.
pub fn load_validated(source: &Source, rev: Option<&str>, keep_objects: bool) -> Result<Loaded> {
    Ok(validate(load(source, rev)?, source, keep_objects))
}

/// Step 3: the target's plan of `desired`.
pub fn plan(
    target: &mut dyn Target,
    desired: DesiredObjects<'_>,
    options: &ApplyOptions,
    diffs: bool,
) -> Result<Planned> {
    target.plan(
        desired,
        &PlanOptions {
            prune: options.prune,
            revision: options.revision.clone(),
            force_conflicts: options.force_conflicts,
            diffs,
            adopt: options.adopt,
        },
    )
}

/// Step 4: the prune guards ([`check_prune`]).
pub fn guard(planned: &Planned, options: &ApplyOptions) -> Result<()> {
    check_prune(&planned.plan, planned.live.inventory.entries.len(), options)
}

/// Step 5: the target applies the plan.
pub fn apply(target: &mut dyn Target, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport> {
    target.apply(plan, options)
}

/// Step 6: a plan without changes still records its revision as applied, and whatever
/// bookkeeping the target has pending; nothing is written when the target is already there.
pub fn record(
    target: &mut dyn Target,
    planned: &Planned,
    options: &ApplyOptions,
) -> Result<Option<ApplyReport>> {
    let stale = planned.live.inventory.applied_revision != options.revision;
    if stale || target.pending(planned, options) {
        guard(planned, options)?;
        return target.apply(&planned.plan, options).map(Some);
    }
    Ok(None)
}

/// Steps 4 to 6 for a plan made earlier (a saved plan): the guards and the apply, or, when
/// the plan changes nothing, the record of its revision.
pub fn apply_planned(
    target: &mut dyn Target,
    planned: &Planned,
    options: &ApplyOptions,
) -> Result<Option<ApplyReport>> {
    if planned.plan.has_changes() {
        guard(planned, options)?;
        apply(target, &planned.plan, options).map(Some)
    } else {
        record(target, planned, options)
    }
}

fn at(step: Step, revision: Option<&String>) -> impl FnOnce(anyhow::Error) -> Failed {
    let revision = revision.cloned();
    move |error| Failed {
        step,
        error,
        revision,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::target::memory::MemoryTarget;
    use ward_schema::{Limits, ResourceSet, assemble, load_file};

    /// A revision of cluster-wide policies `names`, each allowing port `port`.
    fn revision(commit: &str, names: &[&str], port: u16) -> Loaded {
        let yaml: String = names
            .iter()
            .map(|n| {
                format!(
                    "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {n}\nspec:\n  endpointSelector: {{}}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: \"{port}\"\n---\n"
                )
            })
            .collect();
        let validation = assemble(vec![load_file(
            "policies/p.yaml",
            yaml.as_bytes(),
            &Limits::default(),
        )]);
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        Loaded {
            desired: Desired {
                validation,
                revision: Some(commit.to_owned()),
                bodies: Default::default(),
            },
            files: vec!["policies/p.yaml".into()],
        }
    }

    fn applying(prune: bool, max_prune: usize) -> Request {
        Request {
            apply: true,
            options: ApplyOptions {
                prune,
                max_prune,
                ..ApplyOptions::default()
            },
            ..Request::default()
        }
    }

    fn synced(outcome: Outcome) -> Synced {
        match outcome {
            Outcome::Synced(s) => *s,
            Outcome::Invalid(_) => panic!("the revision is valid"),
        }
    }

    fn at(target: &mut MemoryTarget) -> Option<String> {
        target.snapshot().unwrap().inventory.applied_revision
    }

    /// A revision whose objects are kept as bytes (what the controller validates) plans and
    /// applies exactly as the same revision parsed.
    #[test]
    fn bodies_kept_as_bytes_apply_like_parsed_objects() {
        let parsed = revision("c1", &["a", "b"], 80);
        let mut compact = revision("c1", &["a", "b"], 80);
        for r in compact.desired.validation.resources.iter() {
            compact
                .desired
                .bodies
                .insert(r.key.clone(), crate::live::Body::new(&r.object));
        }
        let mut nulled = ResourceSet::new();
        for mut r in std::mem::take(&mut compact.desired.validation.resources) {
            r.object = serde_json::Value::Null;
            nulled.insert(r);
        }
        compact.desired.validation.resources = nulled;
        let mut one = MemoryTarget::of_revision("base", &ResourceSet::new());
        let mut two = MemoryTarget::of_revision("base", &ResourceSet::new());
        sync(parsed, &mut one, &applying(false, 100)).unwrap();
        sync(compact, &mut two, &applying(false, 100)).unwrap();
        let (one, two) = (one.snapshot().unwrap(), two.snapshot().unwrap());
        assert_eq!(one.objects.len(), 2);
        for (key, object) in &one.objects {
            assert_eq!(two.objects[key].object(), object.object(), "{key}");
        }
    }

    #[test]
    fn a_plan_changes_nothing() {
        let mut target = MemoryTarget::of_revision("base", &ResourceSet::new());
        let request = Request {
            apply: false,
            ..applying(false, 100)
        };
        let s = synced(sync(revision("c1", &["a"], 80), &mut target, &request).unwrap());
        assert_eq!(s.planned.plan.creates.len(), 1);
        assert!(s.applied.is_none());
        assert!(target.snapshot().unwrap().objects.is_empty());
    }

    #[test]
    fn an_apply_records_the_commit_and_a_second_one_writes_nothing() {
        let mut target = MemoryTarget::of_revision("base", &ResourceSet::new());
        let first = synced(
            sync(
                revision("c1", &["a", "b"], 80),
                &mut target,
                &applying(false, 100),
            )
            .unwrap(),
        );
        assert_eq!(first.applied.unwrap().created, 2);
        assert_eq!(at(&mut target).as_deref(), Some("c1"));
        let again = synced(
            sync(
                revision("c1", &["a", "b"], 80),
                &mut target,
                &applying(false, 100),
            )
            .unwrap(),
        );
        assert!(again.applied.is_none(), "the target is already at c1");
    }

    #[test]
    fn a_commit_that_changes_nothing_is_still_recorded() {
        let mut target = MemoryTarget::of_revision("base", &ResourceSet::new());
        sync(
            revision("c1", &["a"], 80),
            &mut target,
            &applying(false, 100),
        )
        .unwrap();
        let s = synced(
            sync(
                revision("c2", &["a"], 80),
                &mut target,
                &applying(false, 100),
            )
            .unwrap(),
        );
        assert!(!s.planned.plan.has_changes());
        let report = s.applied.expect("step 6 records c2");
        assert_eq!(
            (report.created, report.updated, report.unchanged),
            (0, 0, 1)
        );
        assert_eq!(at(&mut target).as_deref(), Some("c2"));
    }

    #[test]
    fn the_guard_stops_a_prune_over_budget_before_anything_is_written() {
        let mut target = MemoryTarget::of_revision("base", &ResourceSet::new());
        sync(
            revision("c1", &["a", "b", "c"], 80),
            &mut target,
            &applying(false, 100),
        )
        .unwrap();
        let failed =
            sync(revision("c2", &["a"], 443), &mut target, &applying(true, 1)).unwrap_err();
        assert_eq!(failed.step, Step::Guard);
        assert_eq!(failed.revision.as_deref(), Some("c2"));
        assert!(
            failed.to_string().contains("deletion budget of 1"),
            "{failed}"
        );
        let live = target.snapshot().unwrap();
        assert_eq!(live.objects.len(), 3, "nothing pruned");
        assert_eq!(live.inventory.applied_revision.as_deref(), Some("c1"));
        let plan = &synced(
            sync(
                revision("c1", &["a", "b", "c"], 80),
                &mut target,
                &applying(false, 100),
            )
            .unwrap(),
        )
        .planned
        .plan;
        assert!(
            !plan.has_changes(),
            "the update of a to 443 was not applied either"
        );
    }

    #[test]
    fn an_invalid_revision_is_neither_planned_nor_applied() {
        let mut target = MemoryTarget::of_revision("base", &ResourceSet::new());
        let mut bad = revision("c1", &["a"], 80);
        bad.desired
            .validation
            .diagnostics
            .push(ward_schema::Diagnostic::error(
                ward_schema::diagnostic::codes::POLICY_TEST,
                "broken",
            ));
        assert!(matches!(
            sync(bad, &mut target, &applying(true, 100)).unwrap(),
            Outcome::Invalid(_)
        ));
        assert!(target.snapshot().unwrap().objects.is_empty());
        assert_eq!(at(&mut target), None);
    }
}
