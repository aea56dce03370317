//! Applying a plan to a cluster: server-side apply, the inventory extended before the first
//! write so no interruption orphans an object, and completed after the last.
//!
//! # Order and concurrency
//! The plan's actions run in waves, one kind at a time in apply order (the CiliumConfig, CIDR
//! groups, cluster-wide objects, then namespaced ones; deletes afterwards in reverse), so an
//! object never reaches the cluster before what it names. The namespaces the writes need are
//! checked before any write (ward does not create them). Within a wave up to
//! [`KubeOptions::concurrency`] requests are in flight at once.
//!
//! # Failures
//! A refused object (the API server's answer: a conflict, RBAC, admission) does not stop its
//! wave: every refusal of the wave is reported, each with its object and origin, and no later
//! wave starts. A request that gets no answer (the API server gone) stops the wave at once,
//! since every other request would fail the same way. Either way the inventory written
//! before the first write lists every object the apply may have created.

use super::client::{Cluster, api_error};
use super::plan::{Extra, ensure_namespaces};
use super::record::{KubeEntry, SyncRecord, read_record, write_record};
use super::{FIELD_MANAGER, KubeOptions, api_for, marker_of, object_name};
use crate::plan::{Action, Change, Plan};
use crate::target::{ApplyOptions, ApplyReport, Inventory};
use anyhow::{Result, anyhow};
use futures::StreamExt;
use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use std::collections::BTreeMap;

/// What one request did.
enum Done {
    /// Applied; the object's revision marker afterwards.
    Applied(String),
    /// Deleted (or already gone).
    Deleted,
}

/// Why one request failed.
enum Refused {
    /// The API server answered with a refusal of this object.
    Object(anyhow::Error),
    /// No answer: the API server is unreachable (the wave stops).
    Unreachable(anyhow::Error),
}

pub(super) async fn apply(
    cluster: &Cluster,
    opts: &KubeOptions,
    plan: &Plan,
    options: &ApplyOptions,
    extra: &Extra,
) -> Result<ApplyReport> {
    let (client, cache) = (cluster.client(), cluster.sync_cache());
    let record = read_record(client, cache, &opts.sync).await?;
    let actions = plan.actions();
    let writes: Vec<&Change> = actions
        .iter()
        .copied()
        .filter(|c| c.action != Action::Delete)
        .collect();
    ensure_namespaces(
        client,
        opts,
        &writes.iter().map(|c| &c.key).collect::<Vec<_>>(),
    )
    .await?;
    let mut entries = announce(&record, &writes);
    let mut rec = SyncRecord {
        last_attempted_revision: options.revision.clone(),
        inventory: entries.values().cloned().collect(),
        ..record.clone()
    };
    // Only creates can orphan an object; updates and deletes are of listed objects already.
    if writes.iter().any(|c| c.action == Action::Create) {
        write_record(client, cache, &opts.sync, &rec).await?;
    }
    let mut run = Run {
        report: ApplyReport {
            unchanged: plan.unchanged.len(),
            ..ApplyReport::default()
        },
        entries: &mut entries,
        failures: Vec::new(),
        unreachable: None,
        unanswered: 0,
    };
    let waves: Vec<&[&Change]> = actions
        .chunk_by(|a, b| {
            a.key.kind == b.key.kind && (a.action == Action::Delete) == (b.action == Action::Delete)
        })
        .collect();
    let mut waves = waves.into_iter();
    for wave in waves.by_ref() {
        run.wave(client, opts, wave, options, extra).await;
        if run.stopped() {
            break;
        }
    }
    run.unanswered += waves.map(<[_]>::len).sum::<usize>();
    let Run {
        mut report,
        failures,
        unreachable,
        unanswered,
        ..
    } = run;
    if let Some(error) = stop_error(failures, unreachable, unanswered) {
        rec.inventory = entries.into_values().collect();
        // Best effort: the inventory written before the first write already covers
        // everything this apply touched.
        let _ = write_record(client, cache, &opts.sync, &rec).await;
        return Err(error.context(format!(
            "apply of {} stopped; the inventory lists every object it may have written; run it again",
            options.revision.as_deref().unwrap_or("the working tree")
        )));
    }
    if options.prune {
        for k in &extra.kept {
            entries.remove(&Inventory::id(k));
        }
    }
    rec.inventory = entries.into_values().collect();
    rec.last_applied_revision = options.revision.clone();
    rec.last_applied_at = Some(crate::time::now_rfc3339());
    for e in &mut rec.inventory {
        if let Some((seen, fp)) = extra.refresh.get(&e.id) {
            e.seen = seen.clone();
            e.fp = fp.clone();
        }
    }
    write_record(client, cache, &opts.sync, &rec).await?;
    report.inventory = rec.inventory.len();
    Ok(report)
}

/// The inventory as it must be before the first write: everything the apply may create is
/// listed, and every object it writes is marked unconfirmed (no marker), so no interruption
/// can orphan an object or leave a stale marker.
fn announce(record: &SyncRecord, writes: &[&Change]) -> BTreeMap<String, KubeEntry> {
    let mut entries: BTreeMap<String, KubeEntry> = record
        .inventory
        .iter()
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    for c in writes {
        let id = Inventory::id(&c.key);
        let fp = c.after_fingerprint.clone().unwrap_or_default();
        entries
            .entry(id.clone())
            .and_modify(|e| e.seen.clear())
            .or_insert(KubeEntry {
                id,
                fp,
                seen: String::new(),
                origin: c.origin.clone().unwrap_or_default(),
            });
    }
    entries
}

/// The state of an apply across its waves.
struct Run<'a> {
    report: ApplyReport,
    entries: &'a mut BTreeMap<String, KubeEntry>,
    /// Objects the API server refused, one line each.
    failures: Vec<String>,
    /// The first request that got no answer.
    unreachable: Option<anyhow::Error>,
    /// Actions never answered: in flight or not yet sent when a wave stopped, or in waves
    /// never started.
    unanswered: usize,
}

impl Run<'_> {
    /// Whether no further wave may start.
    fn stopped(&self) -> bool {
        self.unreachable.is_some() || !self.failures.is_empty()
    }

    /// One wave: its actions with up to `opts.concurrency` in flight, each result recorded
    /// as it arrives.
    async fn wave(
        &mut self,
        client: &Client,
        opts: &KubeOptions,
        wave: &[&Change],
        options: &ApplyOptions,
        extra: &Extra,
    ) {
        let results = futures::stream::iter(wave.iter().copied())
            .map(|c| async move { (c, send(client, opts, c, options, extra).await) })
            .buffer_unordered(opts.concurrency.max(1));
        futures::pin_mut!(results);
        let mut answered = 0;
        while let Some((c, result)) = results.next().await {
            answered += 1;
            match result {
                Ok(done) => self.done(c, done),
                Err(Refused::Object(e)) => self.failures.push(format!("{e:#}")),
                Err(Refused::Unreachable(e)) => {
                    self.unreachable = Some(e);
                    // Dropping the stream cancels what is in flight and sends nothing more.
                    break;
                }
            }
        }
        self.unanswered += wave.len() - answered;
    }

    /// Records a request that succeeded.
    fn done(&mut self, c: &Change, done: Done) {
        let id = Inventory::id(&c.key);
        match done {
            Done::Deleted => {
                self.entries.remove(&id);
                self.report.deleted += 1;
            }
            Done::Applied(seen) => {
                let e = self.entries.entry(id.clone()).or_insert(KubeEntry {
                    id,
                    fp: String::new(),
                    seen: String::new(),
                    origin: String::new(),
                });
                e.fp = c.after_fingerprint.clone().unwrap_or_default();
                e.seen = seen;
                e.origin = c.origin.clone().unwrap_or_default();
                if c.action == Action::Create {
                    self.report.created += 1
                } else {
                    self.report.updated += 1
                }
            }
        }
    }
}

/// One request: the server-side apply or the delete of `c`.
async fn send(
    client: &Client,
    opts: &KubeOptions,
    c: &Change,
    options: &ApplyOptions,
    extra: &Extra,
) -> Result<Done, Refused> {
    let api = api_for(client, &c.key, opts);
    let what = format!("{} ({})", c.key, c.origin.as_deref().unwrap_or("inventory"));
    let name = object_name(&c.key);
    let (answer, verb) = match (&c.action, &c.after) {
        (Action::Delete, _) => (
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(Done::Deleted),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Done::Deleted),
                Err(e) => Err(e),
            },
            "delete",
        ),
        (_, Some(body)) => {
            let mut pp = PatchParams::apply(FIELD_MANAGER);
            if options.force_conflicts || extra.forced.contains(&c.key) {
                pp = pp.force();
            }
            (
                api.patch(&name, &pp, &Patch::Apply(body))
                    .await
                    .map(|o| Done::Applied(marker_of(&o.metadata))),
                "apply",
            )
        }
        (_, None) => return Err(Refused::Object(anyhow!("{what}: the plan holds no body"))),
    };
    answer.map_err(|e| {
        let answered = matches!(e, kube::Error::Api(_));
        let e = api_error(e, &format!("cannot {verb} {what}"));
        if answered {
            Refused::Object(e)
        } else {
            Refused::Unreachable(e)
        }
    })
}

/// The error of an apply that did not finish, naming every refused object; `None` when
/// everything was done.
fn stop_error(
    mut failures: Vec<String>,
    unreachable: Option<anyhow::Error>,
    unanswered: usize,
) -> Option<anyhow::Error> {
    let untouched = if unanswered > 0 {
        format!("; {unanswered} change(s) not sent or not answered")
    } else {
        String::new()
    };
    failures.sort();
    let refused = if failures.is_empty() {
        String::new()
    } else {
        format!(
            "the API server refused {} object(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
    };
    match (unreachable, refused.is_empty()) {
        (None, true) => None,
        (None, false) => Some(anyhow!("{refused}{untouched}")),
        (Some(e), true) => Some(e.context(format!("the API server stopped answering{untouched}"))),
        (Some(e), false) => Some(e.context(format!(
            "the API server stopped answering{untouched}; before that {refused}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_finished_apply_has_no_error() {
        assert!(stop_error(Vec::new(), None, 0).is_none());
    }

    #[test]
    fn every_refused_object_is_named_in_order() {
        let e = stop_error(
            vec![
                "cannot apply B (b.yaml:1): no".into(),
                "cannot apply A (a.yaml:1): no".into(),
            ],
            None,
            7,
        )
        .unwrap();
        assert_eq!(
            format!("{e:#}"),
            "the API server refused 2 object(s):\n  cannot apply A (a.yaml:1): no\n  cannot apply B (b.yaml:1): no; 7 change(s) not sent or not answered"
        );
    }

    #[test]
    fn an_unreachable_server_is_said_first() {
        let e = stop_error(
            vec!["cannot apply A (a.yaml:1): no".into()],
            Some(anyhow!("cannot apply C (c.yaml:1): connection refused")),
            3,
        )
        .unwrap();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("the API server stopped answering; 3 change(s) not sent or not answered; before that the API server refused 1 object(s)"),
            "{text}"
        );
        assert!(
            text.ends_with("cannot apply C (c.yaml:1): connection refused"),
            "{text}"
        );
    }
}
