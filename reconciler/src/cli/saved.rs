//! `ward plan --out FILE` and `ward apply FILE`: saved plans ([`crate::planfile`]).

use super::args::PlanArgs;
use super::{EXIT_CHANGES, EXIT_OK, Settings, emit};
use crate::planfile::{PlanContext, SavedPlan};
use crate::report::Report;
use crate::sync::{self, Synced};
use crate::target::kube::KubeTarget;
use crate::target::local::LocalTarget;
use crate::target::{ApplyOptions, Planned, Target, TargetId};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Saves the plan `synced` holds to `out`.
pub(super) fn save(
    settings: &Settings,
    a: &PlanArgs,
    options: &ApplyOptions,
    target: &dyn Target,
    synced: &Synced,
    out: &Path,
) -> Result<()> {
    let identity = target
        .identity()
        .with_context(|| format!("plans against {} cannot be saved", target.describe()))?;
    let saved = SavedPlan::new(
        &synced.planned.plan,
        PlanContext {
            source: &settings.source,
            rev: a.rev.as_deref(),
            files: &synced.loaded.files,
            documents: synced.loaded.desired.validation.documents,
            identity,
            live: &synced.planned.live,
            extra: target.plan_extra(),
            options,
        },
    );
    saved.write(out)?;
    eprintln!(
        "ward: plan saved to {0}; `ward apply {0}` applies exactly it",
        out.display()
    );
    Ok(())
}

/// Applies the plan saved in `file`, or refuses (changing nothing) when its source revision
/// moved or its target changed since it was made.
pub(super) fn apply(settings: &Settings, file: &Path, detailed_exitcode: bool) -> Result<i32> {
    if settings.source.verify.is_some() {
        anyhow::bail!(
            "--verify-signatures with a saved plan: a plan file holds objects, not a signed \
             revision; verify when planning (`ward plan --verify-signatures --out {}`), then \
             apply the file without the flag",
            file.display()
        );
    }
    let saved = SavedPlan::read(file)?;
    saved.check_source(&settings.source.cache_dir)?;
    let mut target = open_saved_target(settings, &saved.target.identity)?;
    target.set_plan_extra(&saved.target.extra)?;
    let live = target.snapshot()?;
    saved.check_target(&live)?;
    let planned = Planned {
        plan: saved.plan(),
        live,
        notes: Vec::new(),
    };
    sync::apply_planned(target.as_mut(), &planned, &saved.apply_options())?;
    let none = std::collections::BTreeMap::new();
    let report = Report {
        command: "apply",
        files: &saved.source.files,
        documents: saved.source.documents,
        skipped: &none,
        deleted: &[],
        diagnostics: &[],
        plan: Some(&planned.plan),
        base: None,
        head: saved.source.commit.clone(),
        connectivity: None,
    };
    emit(settings, &report)?;
    Ok(if detailed_exitcode && planned.plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

/// The target a saved plan names, reached with the credentials of this command line (a plan
/// file holds none); refused when the command line points at another target.
fn open_saved_target(settings: &Settings, id: &TargetId) -> Result<Box<dyn Target>> {
    match (id, &settings.kube) {
        (TargetId::Local { state_dir }, None) => Ok(Box::new(LocalTarget::new(state_dir))),
        (TargetId::Local { .. }, Some(_)) => bail!(
            "the plan was made for the {id}, not a cluster; drop --kubeconfig and --context to apply it; nothing was applied"
        ),
        (TargetId::Kube { server, .. }, None) => bail!(
            "the plan was made for cluster {server}; pass --kubeconfig or --context for it; nothing was applied"
        ),
        (
            TargetId::Kube {
                sync,
                config_namespace,
                ..
            },
            Some(k),
        ) => {
            let mut opts = k.clone();
            opts.sync = sync.clone();
            opts.config_namespace = config_namespace.clone();
            let target = KubeTarget::connect(opts)?;
            if target.identity().as_ref() != Some(id) {
                bail!(
                    "the plan was made for the {id}, but --kubeconfig/--context reach {}; nothing was applied",
                    target.describe()
                );
            }
            Ok(Box::new(target))
        }
    }
}
