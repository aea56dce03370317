//! `ward reconcile`: the controller that keeps a cluster at a Git revision, Flux style.
//!
//! One loop, woken by the poll interval, a webhook (`/hook`, see [`http`]) or, for a
//! repository on the controller's own disk, a change of its refs (notify). Each wake-up:
//! 1. only the leader works: a `coordination.k8s.io` Lease ([`lease`]) is acquired or renewed
//!    first, so two controllers against one cluster never both write;
//! 2. a suspended WardSync (`spec.suspend: true`) is left alone;
//! 3. the revision is read and validated; an invalid one is **not applied** (all or nothing):
//!    the cluster keeps the last good revision, the WardSync says `Stalled` with the file,
//!    line and message of the first errors, and a Warning event is recorded;
//! 4. a valid one is planned against the cluster and applied (with `--prune`, pruning through
//!    the inventory and its guards); `Ready=True` with the revision;
//! 5. a failure that may pass (API server gone, network) is retried with exponential backoff
//!    and jitter ([`retry`]: from 1 s, doubling, at most 5 min), `Ready=False` with the error.
//!
//! `/healthz` answers while the process runs, `/readyz` once the controller has reached the
//! API server, `/metrics` ([`metrics`]) with labels of bounded cardinality (outcomes only,
//! never revisions or object names). SIGTERM or SIGINT ends the loop after the current
//! reconcile, releases the Lease and shuts the HTTP server down gracefully.

pub mod http;
pub mod lease;
pub mod metrics;
pub mod retry;

use crate::source::Source;
use crate::source::verify::Unverified;
use crate::sync::{self, Outcome, Request, Step};
use crate::target::ApplyOptions;
use crate::target::kube::record::{ConditionStatus, ConditionType, SetCondition};
use crate::target::kube::{Cluster, KubeOptions, KubeTarget, Recorder};
use anyhow::{Context, Result};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime};

/// "; restored after drift: <objects>" (the first few) when something ward applied was
/// changed or deleted outside ward; empty otherwise.
fn drift_note(drifted: &[ward_schema::ResourceKey]) -> String {
    const SHOWN: usize = 5;
    if drifted.is_empty() {
        return String::new();
    }
    let names: Vec<String> = drifted
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    let more = drifted.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("; restored after drift: {}{more}", names.join(", "))
}

/// What woke the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A webhook was accepted.
    Webhook,
    /// The local repository's refs changed.
    Notify,
    /// Shutting down.
    Stop,
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The ref to follow (branch, tag or commit).
    pub rev: String,
    /// How often to look at the repository without being woken.
    pub interval: Duration,
    /// Where `/healthz`, `/readyz`, `/metrics` and `/hook` listen.
    pub listen: SocketAddr,
    /// The webhook secret (HMAC key, or GitLab token).
    pub webhook_secret: Option<Vec<u8>>,
    /// The largest webhook body accepted.
    pub max_body: usize,
    /// Prune objects no longer desired.
    pub prune: bool,
    /// The deletion budget of one reconcile.
    pub max_prune: usize,
    /// This controller's name in the Lease.
    pub identity: String,
    /// Where the Lease lives.
    pub lease_namespace: String,
    /// Stop after the first reconcile (for scripts).
    pub once: bool,
}

/// Runs the controller until SIGTERM/SIGINT (or after one reconcile with `once`).
pub fn run(source: &Source, kube: &KubeOptions, opts: &ControllerOptions) -> Result<()> {
    let cluster = Arc::new(Cluster::connect(kube)?);
    let mut target = KubeTarget::new(Arc::clone(&cluster), kube.clone());
    let recorder = Recorder::new(Arc::clone(&cluster), &kube.sync);
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(metrics::Metrics::new());
    let shared = Arc::new(http::Shared {
        ready: AtomicBool::new(false),
        metrics: Arc::clone(&metrics),
        wake: tx.clone(),
        secret: opts.webhook_secret.clone(),
        max_body: opts.max_body,
    });
    let listener = TcpListener::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    // Shut down gracefully when `run` returns (dropped before the cluster and its runtime).
    let server = http::Server::start(&cluster.handle(), listener, Arc::clone(&shared))
        .with_context(|| format!("cannot serve on {}", opts.listen))?;
    tracing::info!(listen = %server.local_addr(), "serving /healthz, /readyz, /metrics and /hook");
    watch_signals(&cluster, tx.clone(), Arc::clone(&stop));
    let _watcher = watch_local_repo(source, tx);
    let mut lease = lease::Lease::new(&cluster, &opts.lease_namespace, &kube.sync, &opts.identity);
    let mut backoff = retry::Backoff::default();
    // When the next reconcile is due; a wake-up only to renew the Lease does not reconcile.
    let mut due = Instant::now();
    loop {
        let leader = lease.try_hold();
        shared.ready.store(leader.is_ok(), Ordering::Relaxed);
        let wait = match leader {
            Ok(true) if Instant::now() < due => {
                metrics.leader(true);
                due.saturating_duration_since(Instant::now())
            }
            Ok(true) => {
                metrics.leader(true);
                let started = Instant::now();
                let outcome = lease.hold_during(|| reconcile(source, &mut target, &recorder, opts));
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    ok = outcome.is_ok(),
                    "reconcile finished"
                );
                metrics.took(started.elapsed());
                // Whether this reconcile applied its revision (for `--once`'s exit status).
                let applied = matches!(outcome, Ok(Done::Applied(_)));
                let wait = match outcome {
                    Ok(Done::Applied(n)) => {
                        metrics.reconciled("success");
                        metrics.applied(SystemTime::now(), n);
                        backoff.reset();
                        opts.interval
                    }
                    Ok(Done::Invalid | Done::Suspended) => {
                        metrics.reconciled(if matches!(outcome, Ok(Done::Invalid)) {
                            "invalid"
                        } else {
                            "skipped"
                        });
                        backoff.reset();
                        opts.interval
                    }
                    Err(e) => {
                        metrics.reconciled("failure");
                        let next = backoff.failed();
                        tracing::warn!(retry_in = ?next, "reconcile failed: {e:#}");
                        next
                    }
                };
                if opts.once {
                    stop.store(true, Ordering::Relaxed);
                    lease.release();
                    return if applied {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "the revision was not applied (see the WardSync's conditions and the log)"
                        ))
                    };
                }
                wait
            }
            Ok(false) => {
                metrics.leader(false);
                lease::RETRY
            }
            Err(e) => {
                // Without the API server there is no reconcile either: a failure, backed off.
                let next = backoff.failed();
                tracing::warn!(retry_in = ?next, "cannot reach the API server for the Lease: {e:#}");
                metrics.leader(lease.held());
                metrics.reconciled("failure");
                next
            }
        };
        // A leader renews its Lease well before it expires, whatever the interval.
        if Instant::now() >= due {
            due = Instant::now() + wait;
        }
        // The holder renews well before the Lease lapses (also after a reconcile longer than
        // it); a follower looks again soon.
        let wait = wait.min(if lease.held() {
            lease::RENEW
        } else {
            lease::RETRY
        });
        match wait_for_trigger(&rx, wait) {
            Some(Trigger::Stop) => break,
            // Woken by a push: reconcile now.
            Some(_) => due = Instant::now(),
            None => {}
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    lease.release();
    Ok(())
}

/// Waits `wait` or until woken.
fn wait_for_trigger(rx: &Receiver<Trigger>, wait: Duration) -> Option<Trigger> {
    let t = rx.recv_timeout(wait).ok()?;
    // Coalesce a burst (a push fires the hook and notify together). Whether this controller
    // may act on it is the Lease's to say, right after.
    let mut stop = t == Trigger::Stop;
    while let Ok(more) = rx.try_recv() {
        stop |= more == Trigger::Stop;
    }
    Some(if stop { Trigger::Stop } else { t })
}

/// How one reconcile ended, when it did not fail.
enum Done {
    /// Applied (or nothing to do); the inventory's size.
    Applied(usize),
    /// The revision is invalid; nothing applied.
    Invalid,
    /// The WardSync is suspended.
    Suspended,
}

fn reconcile(
    source: &Source,
    target: &mut KubeTarget,
    recorder: &Recorder,
    opts: &ControllerOptions,
) -> Result<Done> {
    use ConditionStatus::{False, True, Unknown};
    use ConditionType::{Ready, Reconciling, Stalled};
    let (spec, generation) = recorder.spec()?;
    if spec["suspend"] == json!(true) {
        recorder.set_conditions(
            generation,
            None,
            &[(
                Ready,
                Unknown,
                "Suspended",
                "reconciliation is suspended (spec.suspend)",
            )],
        )?;
        return Ok(Done::Suspended);
    }
    let request = Request {
        rev: Some(opts.rev.clone()),
        apply: true,
        options: ApplyOptions {
            prune: opts.prune,
            max_prune: opts.max_prune,
            ..ApplyOptions::default()
        },
        // Nobody reads diffs here, and a first apply would hold every object again as YAML.
        diffs: false,
        keep_desired: false,
        check_health: false,
    };
    let synced = match sync::run(source, target, &request) {
        Ok(Outcome::Synced(s)) => s,
        Ok(Outcome::Invalid(loaded)) => {
            let desired = &loaded.desired;
            let revision = desired.revision.as_deref();
            let msg = invalid_message(&opts.rev, desired, recorder)?;
            let why = (
                "ValidationFailed",
                msg.as_str(),
                "waiting for a new revision",
            );
            return stall(recorder, generation, revision, why);
        }
        Err(failed) if failed.step == Step::Load => {
            if let Some(unverified) = failed.error.downcast_ref::<Unverified>() {
                return refuse_unverified(unverified, generation, recorder);
            }
            let msg = format!("cannot read revision {}: {failed}", opts.rev);
            recorder.set_conditions(
                generation,
                None,
                &[
                    (Ready, False, "SourceFailed", &msg),
                    (
                        Reconciling,
                        True,
                        "Retrying",
                        "the source will be read again",
                    ),
                ],
            )?;
            return Err(failed.error);
        }
        Err(failed) => {
            let msg = failed.to_string();
            // The API server may be the thing that is gone: recording the failure is best effort.
            let _ = recorder.set_conditions(
                generation,
                failed.revision.as_deref(),
                &[
                    (Ready, False, "ReconciliationFailed", &msg),
                    (Reconciling, True, "Retrying", "retrying with backoff"),
                ],
            );
            recorder.event(true, "ReconciliationFailed", &msg);
            return Err(failed.error);
        }
    };
    let revision = synced.loaded.desired.revision.as_deref();
    let named = named_revision(&opts.rev, revision);
    if let Some(report) = &synced.applied {
        let msg = format!(
            "applied revision {named}: {} created, {} changed, {} pruned{}",
            report.created,
            report.updated,
            report.deleted,
            drift_note(&synced.planned.plan.drifted)
        );
        tracing::info!("{msg}");
        if synced.planned.plan.has_changes() {
            recorder.event(false, "ReconciliationSucceeded", &msg);
        }
    }
    let inventory = synced
        .applied
        .as_ref()
        .map_or(synced.planned.live.inventory.entries.len(), |r| r.inventory);
    let msg = format!("Applied revision: {named}");
    recorder.set_conditions(
        generation,
        revision,
        &[
            (Ready, True, "ReconciliationSucceeded", &msg),
            (Reconciling, False, "ReconciliationSucceeded", &msg),
            (Stalled, False, "ReconciliationSucceeded", &msg),
        ],
    )?;
    Ok(Done::Applied(inventory))
}

/// A revision refused by `--verify-signatures`: like an invalid one, nothing is applied and
/// nothing is retried until the ref moves; the conditions name the commit and the reason.
fn refuse_unverified(u: &Unverified, generation: Option<i64>, recorder: &Recorder) -> Result<Done> {
    let keeps = recorder.record()?.last_applied_revision;
    let msg = format!(
        "{} {}; nothing applied, the cluster keeps {} ({})",
        u.subject,
        u.reason,
        keeps.as_deref().unwrap_or("its current state"),
        u.hint
    );
    tracing::warn!("{msg}");
    let why = (
        "VerificationFailed",
        msg.as_str(),
        "waiting for a signed revision",
    );
    stall(recorder, generation, Some(&u.commit), why)
}

/// Records a revision that is not applied and not retried until the ref moves: `Ready=False`
/// and `Stalled=True` with the reason and message of `why`, `Reconciling=False` saying what it
/// waits for, and a Warning event.
fn stall(
    recorder: &Recorder,
    generation: Option<i64>,
    revision: Option<&str>,
    (reason, msg, waiting): (&str, &str, &str),
) -> Result<Done> {
    use ConditionStatus::{False, True};
    use ConditionType::{Ready, Reconciling, Stalled};
    let conditions: [SetCondition<'_>; 3] = [
        (Ready, False, reason, msg),
        (Stalled, True, reason, msg),
        (Reconciling, False, reason, waiting),
    ];
    recorder.set_conditions(generation, revision, &conditions)?;
    recorder.event(true, reason, msg);
    Ok(Done::Invalid)
}

/// The condition message of an invalid revision: how many errors, what the cluster keeps,
/// and the first five findings as `ward validate` prints them.
fn invalid_message(
    rev: &str,
    desired: &crate::desired::Desired,
    recorder: &Recorder,
) -> Result<String> {
    let v = &desired.validation;
    let first: Vec<String> = v
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .take(5)
        .map(ToString::to_string)
        .collect();
    Ok(format!(
        "revision {} is invalid ({} error(s)); nothing applied, the cluster keeps {}: {}",
        named_revision(rev, desired.revision.as_deref()),
        v.error_count(),
        recorder
            .record()?
            .last_applied_revision
            .as_deref()
            .unwrap_or("its current state"),
        first.join("; ")
    ))
}

/// The revision as conditions and events name it, as Flux does: `main@sha1:<full commit>`
/// (just the commit when that is what was asked for); the commit is never abbreviated.
pub fn named_revision(rev: &str, commit: Option<&str>) -> String {
    match commit {
        Some(c) if c.starts_with(rev) => c.to_owned(),
        Some(c) => format!("{rev}@sha1:{c}"),
        None => format!("{rev} (commit not known)"),
    }
}

/// Sets `stop` and wakes the loop on SIGTERM or SIGINT.
fn watch_signals(cluster: &Cluster, tx: Sender<Trigger>, stop: Arc<AtomicBool>) {
    cluster.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down after the current reconcile");
        stop.store(true, Ordering::Relaxed);
        let _ = tx.send(Trigger::Stop);
    });
}

/// For a repository on this machine: wakes the loop when its refs change (a push).
fn watch_local_repo(source: &Source, tx: Sender<Trigger>) -> Option<notify::RecommendedWatcher> {
    let dir = source.local_git_dir()?;
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(e) = ev
            && !e.kind.is_access()
            && e.paths.iter().any(|p| {
                p.components().any(|c| c.as_os_str() == "refs")
                    || p.ends_with("packed-refs")
                    || p.ends_with("HEAD")
            })
        {
            let _ = tx.send(Trigger::Notify);
        }
    })
    .ok()?;
    notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::Recursive).ok()?;
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::{drift_note, named_revision};
    use ward_schema::{Kind, ResourceKey};

    #[test]
    fn drift_is_named_the_first_few_then_counted() {
        assert_eq!(drift_note(&[]), "");
        let cnp =
            |n: usize| ResourceKey::new(Kind::CiliumNetworkPolicy, Some("shop"), &format!("p{n}"));
        let one = drift_note(&[cnp(0)]);
        assert_eq!(one, format!("; restored after drift: {}", cnp(0)));
        let seven: Vec<ResourceKey> = (0..7).map(cnp).collect();
        let note = drift_note(&seven);
        assert!(
            note.contains(&cnp(4).to_string()) && !note.contains(&cnp(5).to_string()),
            "{note}"
        );
        assert!(note.ends_with(" and 2 more"), "{note}");
    }

    #[test]
    fn conditions_name_the_ref_and_the_full_commit() {
        let c = "3f2a0c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49";
        assert_eq!(named_revision("main", Some(c)), format!("main@sha1:{c}"));
        assert_eq!(named_revision(c, Some(c)), c);
        assert_eq!(named_revision(&c[..7], Some(c)), c);
        assert_eq!(named_revision("v1", None), "v1 (commit not known)");
    }
}
