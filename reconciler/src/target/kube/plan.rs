//! Planning against a cluster: objects ward left untouched are unchanged without a request;
//! every other one is dry-run through server-side apply, and the server's answer is what the
//! [`Planner`] compares with the live object.

use super::client::api_error;
use super::record::{KubeEntry, parse_id};
use super::{
    FIELD_MANAGER, KubeOptions, PRUNE_ANNOTATION, Snapshot, api_for, namespace_of, object_name,
    short_fp, short_hash, to_kube_owned,
};
use crate::live::Body;
use crate::normalize::{canonical_bytes, normalize_owned};
use crate::plan::{Judged, Plan, Planner, Proposal};
use crate::target::{DesiredObjects, Inventory, LiveSet, PlanOptions};
use anyhow::{Result, bail};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use ward_schema::ResourceKey;

/// Whether the live object (its [`Live::metadata`]) still holds every label and annotation
/// ward sets (other managers may add their own).
pub(super) fn metadata_holds(live: &Value, want: &Value) -> bool {
    ["labels", "annotations"].iter().all(|f| {
        let Some(w) = want
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_object)
        else {
            return true;
        };
        w.iter()
            .all(|(k, v)| live.get(*f).and_then(|m| m.get(k)) == Some(v))
    })
}

/// The result of one dry run.
struct Dry {
    key: ResourceKey,
    send: Body,
    fp: String,
    origin: String,
    /// Whether taking fields back from an imperative change was needed.
    forced: bool,
    /// The server's answer, normalised.
    result: Result<Value>,
}

/// The managers other than ward that own fields of `raw` through server-side apply.
pub(super) fn appliers(raw: &Value) -> Vec<String> {
    let Some(fields) = raw
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|f| f["operation"] == "Apply" && f["manager"] != FIELD_MANAGER)
        .filter_map(|f| f["manager"].as_str().map(str::to_owned))
        .collect()
}

/// What a plan found besides the plan itself (kept in a saved plan, so it is applied as made).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Extra {
    /// Objects left in place because of [`PRUNE_ANNOTATION`].
    pub(super) kept: Vec<ResourceKey>,
    /// Objects whose imperative changes the apply takes back (forced apply).
    pub(super) forced: BTreeSet<ResourceKey>,
    /// Objects a dry run found unchanged although ward's record of them was out of date
    /// (a change that made no difference, a lost answer): their live marker and fingerprint,
    /// recorded by the next apply so later plans need no dry run for them.
    pub(super) refresh: BTreeMap<String, (String, String)>,
}

pub(super) async fn plan(
    client: &Client,
    opts: &KubeOptions,
    snap: &Snapshot,
    desired: DesiredObjects<'_>,
    ask: &PlanOptions,
) -> Result<(Plan, Extra, LiveSet)> {
    let live_set = snap.live_set();
    let mut planner = Planner::new(&live_set.objects, &live_set.inventory, ask);
    let (live, record) = (&snap.live, &snap.record);
    let recorded: BTreeMap<&str, &KubeEntry> = record
        .inventory
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    let mut to_check: Vec<DryItem> = Vec::new();
    let desired_keys: BTreeSet<ResourceKey> = desired.keys().cloned().collect();
    for r in desired.into_resources().filter(|r| r.key.kind.is_applied()) {
        let (key, origin) = (r.key.clone(), r.origin.to_string());
        let send = to_kube_owned(r, opts);
        let bytes = canonical_bytes(&send);
        let fp = short_hash(&bytes);
        let id = Inventory::id(&key);
        let entry = recorded.get(id.as_str());
        let l = live.get(&key);
        // Unchanged without asking: ward's last write is what is wanted and nobody changed
        // the object since (its marker moves on any change but, for CRDs, metadata).
        let untouched = match (entry, l) {
            (Some(e), Some(l)) => {
                e.fp == fp
                    && !e.seen.is_empty()
                    && l.marker == e.seen
                    && metadata_holds(&l.metadata, &send)
            }
            _ => false,
        };
        if untouched {
            planner.unchanged(key);
        } else {
            let appliers = l.map(|l| l.appliers.clone()).unwrap_or_default();
            // Kept as bytes until it is sent: a first apply of 10,000 objects holds no trees.
            to_check.push((key, Body::from_bytes(bytes), fp, origin, appliers));
        }
    }
    let keys: Vec<&ResourceKey> = to_check.iter().map(|i| &i.0).collect();
    ensure_namespaces(client, opts, &keys).await?;
    let mut conflicts = Vec::new();
    let mut extra = Extra::default();
    let dries = dry_runs(client, opts, to_check, ask.force_conflicts);
    futures::pin_mut!(dries);
    while let Some(d) = dries.next().await {
        if d.forced {
            extra.forced.insert(d.key.clone());
        }
        let expected = match d.result {
            Ok(v) => v,
            Err(e) => {
                conflicts.push(format!("{} ({}): {e:#}", d.key, d.origin));
                continue;
            }
        };
        let expected_fingerprint = short_fp(&expected);
        let entry = recorded.get(Inventory::id(&d.key).as_str());
        let l = live.get(&d.key);
        // Drift: ward applied this content before, and the object is no longer what ward left.
        let drifted = entry.is_some_and(|e| e.fp == d.fp)
            && l.is_none_or(|l| l.normalized.fingerprint != expected_fingerprint);
        let judged = planner.judge(Proposal {
            key: d.key,
            origin: Some(d.origin),
            send: d.send,
            send_fingerprint: d.fp.clone(),
            expected: Some(expected),
            expected_fingerprint,
            drifted,
        });
        if let (Judged::Unchanged { key, .. }, Some(l)) = (&judged, l) {
            // Recorded by the next apply, so later plans need no dry run for it.
            extra
                .refresh
                .insert(Inventory::id(key), (l.marker.clone(), d.fp));
        }
        planner.add(judged);
    }
    if !conflicts.is_empty() {
        conflicts.sort();
        bail!(
            "the API server refused {} object(s) in a dry run; nothing was applied:\n  {}",
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }
    for e in &record.inventory {
        let Some(key) = parse_id(&e.id) else { continue };
        if desired_keys.contains(&key) {
            continue;
        }
        let Some(l) = live.get(&key) else { continue };
        if l.annotation(PRUNE_ANNOTATION) == Some("disabled") {
            extra.kept.push(key);
            continue;
        }
        let drifted = !e.seen.is_empty() && l.marker != e.seen;
        planner.prune(key, drifted);
    }
    let plan = planner.finish();
    Ok((plan, extra, live_set))
}

/// One object to dry-run: key, body, fingerprint, origin, and the other managers that own
/// fields of the live object through their own server-side apply.
type DryItem = (ResourceKey, Body, String, String, Vec<String>);

/// Server-side dry runs of `items`, [`KubeOptions::concurrency`] at a time, yielded as they complete
/// (each answer already normalised), so the caller digests them one by one instead of
/// holding every answer of a first apply at once.
///
/// A conflict with a manager that changed the object imperatively (`kubectl edit`, `patch`,
/// `scale`: operation `Update`) is drift, which ward corrects: the dry run is repeated with
/// force and the object is marked to be forced. A conflict with a manager that applies the
/// object itself (operation `Apply`) is a real ownership conflict and fails the plan.
fn dry_runs<'a>(
    client: &'a Client,
    opts: &'a KubeOptions,
    items: Vec<DryItem>,
    force_conflicts: bool,
) -> impl futures::Stream<Item = Dry> + 'a {
    futures::stream::iter(items)
        .map(move |item| dry_run(client, opts, item, force_conflicts))
        .buffer_unordered(opts.concurrency.max(1))
}

async fn dry_run(
    client: &Client,
    opts: &KubeOptions,
    (key, send, fp, origin, appliers): DryItem,
    force_conflicts: bool,
) -> Dry {
    let api = api_for(client, &key, opts);
    let pp = if force_conflicts {
        PatchParams::apply(FIELD_MANAGER).dry_run().force()
    } else {
        PatchParams::apply(FIELD_MANAGER).dry_run()
    };
    let mut forced = false;
    let name = object_name(&key);
    let sent = send.value();
    let mut answer = api.patch(&name, &pp, &Patch::Apply(&sent)).await;
    if let Err(kube::Error::Api(st)) = &answer {
        let declared = appliers
            .iter()
            .any(|m| st.message.contains(&format!("conflict with \"{m}\"")));
        if st.code == 409 && !declared {
            forced = true;
            answer = api
                .patch(&name, &pp.clone().force(), &Patch::Apply(&sent))
                .await;
        }
    }
    let result = answer
        .map_err(|e| api_error(e, "dry run"))
        .and_then(|o| Ok(serde_json::to_value(o)?))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), sent["apiVersion"].clone());
                o.insert("kind".into(), sent["kind"].clone());
            }
            normalize_owned(v)
        });
    Dry {
        key,
        send,
        fp,
        origin,
        forced,
        result,
    }
}

/// Fails (before any write) when a namespace an object needs does not exist.
pub(super) async fn ensure_namespaces(
    client: &Client,
    opts: &KubeOptions,
    keys: &[&ResourceKey],
) -> Result<()> {
    let wanted: BTreeSet<&str> = keys.iter().filter_map(|k| namespace_of(k, opts)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let have: BTreeSet<String> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, "cannot list namespaces"))?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let missing: Vec<&str> = wanted.into_iter().filter(|n| !have.contains(*n)).collect();
    if !missing.is_empty() {
        bail!(
            "namespace(s) {} do not exist; create them first (ward does not create namespaces); nothing was applied",
            missing.join(", ")
        );
    }
    Ok(())
}
