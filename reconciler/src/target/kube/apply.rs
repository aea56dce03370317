//! Applying a plan to a cluster: server-side apply in apply order, the inventory extended
//! before the first write so no interruption orphans an object, and completed after the last.

use super::client::api_error;
use super::plan::{Extra, ensure_namespaces};
use super::record::{KubeEntry, SyncRecord, read_record, write_record};
use super::{FIELD_MANAGER, KubeOptions, api_for, marker, object_name};
use crate::plan::{Action, Change, Plan};
use crate::target::{ApplyOptions, ApplyReport, Inventory};
use anyhow::Result;
use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use std::collections::BTreeMap;

pub(super) async fn apply(
    client: &Client,
    opts: &KubeOptions,
    plan: &Plan,
    options: &ApplyOptions,
    extra: &Extra,
) -> Result<ApplyReport> {
    let record = read_record(client, &opts.sync).await?;
    let writes: Vec<&Change> = plan
        .actions()
        .into_iter()
        .filter(|c| c.action != Action::Delete)
        .collect();
    ensure_namespaces(
        client,
        opts,
        &writes.iter().map(|c| &c.key).collect::<Vec<_>>(),
    )
    .await?;
    let mut entries: BTreeMap<String, KubeEntry> = record
        .inventory
        .iter()
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    // Everything this apply may create is listed before the first write (no marker: not
    // confirmed), so no interruption can orphan an object.
    for c in &writes {
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
    let mut rec = SyncRecord {
        last_attempted_revision: options.revision.clone(),
        inventory: entries.values().cloned().collect(),
        ..record.clone()
    };
    // Only creates can orphan an object; updates and deletes are of listed objects already.
    if writes.iter().any(|c| c.action == Action::Create) {
        write_record(client, &opts.sync, &rec).await?;
    }
    let mut report = ApplyReport {
        unchanged: plan.unchanged.len(),
        ..ApplyReport::default()
    };
    let pp = PatchParams::apply(FIELD_MANAGER);
    let mut failure = None;
    for c in &plan.actions() {
        let id = Inventory::id(&c.key);
        let api = api_for(client, &c.key, opts);
        let what = format!("{} ({})", c.key, c.origin.as_deref().unwrap_or("inventory"));
        let step: Result<()> = match (&c.action, &c.after) {
            (Action::Delete, _) => match api
                .delete(&object_name(&c.key), &DeleteParams::default())
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(api_error(e, &format!("cannot delete {what}"))),
            }
            .map(|()| {
                entries.remove(&id);
                report.deleted += 1;
            }),
            (_, Some(send)) => match api
                .patch(
                    &object_name(&c.key),
                    &if options.force_conflicts || extra.forced.contains(&c.key) {
                        pp.clone().force()
                    } else {
                        pp.clone()
                    },
                    &Patch::Apply(send),
                )
                .await
            {
                Ok(o) => {
                    let e = entries.entry(id.clone()).or_insert(KubeEntry {
                        id,
                        fp: String::new(),
                        seen: String::new(),
                        origin: String::new(),
                    });
                    e.fp = c.after_fingerprint.clone().unwrap_or_default();
                    e.seen = marker(&serde_json::to_value(&o)?);
                    e.origin = c.origin.clone().unwrap_or_default();
                    if c.action == Action::Create {
                        report.created += 1
                    } else {
                        report.updated += 1
                    }
                    Ok(())
                }
                Err(e) => Err(api_error(e, &format!("cannot apply {what}"))),
            },
            (_, None) => Ok(()),
        };
        if let Err(e) = step {
            failure = Some(e);
            break;
        }
    }
    if failure.is_none() && options.prune {
        for k in &extra.kept {
            entries.remove(&Inventory::id(k));
        }
    }
    rec.inventory = entries.into_values().collect();
    match failure {
        Some(e) => {
            // Best effort: the inventory written before the first write already covers
            // everything this apply touched.
            let _ = write_record(client, &opts.sync, &rec).await;
            Err(e.context(format!(
                "apply of {} stopped; the inventory lists every object it may have written; run it again",
                options.revision.as_deref().unwrap_or("the working tree")
            )))
        }
        None => {
            rec.last_applied_revision = options.revision.clone();
            rec.last_applied_at = Some(crate::time::now_rfc3339());
            for e in &mut rec.inventory {
                if let Some((seen, fp)) = extra.refresh.get(&e.id) {
                    e.seen = seen.clone();
                    e.fp = fp.clone();
                }
            }
            write_record(client, &opts.sync, &rec).await?;
            report.inventory = rec.inventory.len();
            Ok(report)
        }
    }
}
