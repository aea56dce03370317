//! The `WardSync`: ward's record on the cluster. Its status holds the inventory (what ward
//! applied, with fingerprints and revision markers), the revisions applied and attempted, and
//! the controller's conditions; events about it tell `kubectl describe` what happened.

use super::FIELD_MANAGER;
use super::client::{Cluster, api_error};
use crate::target::{Inventory, InventoryEntry};
use anyhow::{Context, Result};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use ward_schema::{Kind, ResourceKey};

/// A condition's type, in kstatus' vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    /// The revision asked for is applied.
    Ready,
    /// The controller is working towards the revision (or will retry).
    Reconciling,
    /// The controller cannot make progress without a new revision.
    Stalled,
}

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Not known (reconciliation is suspended).
    Unknown,
}

/// One condition of the `WardSync` status, as Kubernetes' `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which condition.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened, for people (at most 4096 characters).
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `WardSync` generation the condition is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition to set: type, status, reason, message.
pub type SetCondition<'a> = (ConditionType, ConditionStatus, &'a str, &'a str);

/// One object in the inventory, as the `WardSync` status stores it (compact: 10,000 entries
/// must fit in one object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeEntry {
    /// `Kind/namespace/name` or `Kind/name`.
    pub id: String,
    /// Fingerprint of what ward sent (the first 16 hex digits).
    pub fp: String,
    /// The object's revision marker after ward's write ([`super::marker`]); empty while an apply is
    /// in flight.
    #[serde(default)]
    pub seen: String,
    /// Where it was defined (`file:line`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
}

/// The inventory and revisions in a `WardSync` status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The revision whose apply completed last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The revision of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// When the last apply completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_at: Option<String>,
    /// What ward applied.
    #[serde(default)]
    pub inventory: Vec<KubeEntry>,
    /// The controller's conditions (Ready, Reconciling, Stalled), Kubernetes style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The WardSync generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

pub(super) fn sync_resource() -> ApiResource {
    ApiResource {
        group: "ward.dev".into(),
        version: "v1alpha1".into(),
        api_version: "ward.dev/v1alpha1".into(),
        kind: "WardSync".into(),
        plural: "wardsyncs".into(),
    }
}

/// The `WardSync` as last read or written, kept by resourceVersion. At 10,000 objects its
/// status is a megabyte, and a reconcile needs it up to three times (the spec, the plan's
/// inventory, the conditions): when the object's resourceVersion is still the one kept (a
/// metadata-only GET tells), the copy kept is the object.
#[derive(Default)]
pub struct SyncCache(Mutex<Option<Arc<Seen>>>);

/// One `WardSync` as the API server returned it.
struct Seen {
    name: String,
    resource_version: String,
    spec: Value,
    generation: Option<i64>,
    record: SyncRecord,
}

impl Seen {
    /// The parts of `obj` a reconcile reads; its status is moved, not copied (a megabyte of
    /// JSON at 10,000 objects).
    fn from_object(sync: &str, mut obj: DynamicObject) -> Result<Seen> {
        let record = match obj.data.get_mut("status").map(Value::take) {
            Some(status) => serde_json::from_value(status)
                .with_context(|| format!("WardSync {sync}: unreadable status"))?,
            None => SyncRecord::default(),
        };
        Ok(Seen {
            name: sync.to_owned(),
            resource_version: obj.metadata.resource_version.unwrap_or_default(),
            spec: obj
                .data
                .get_mut("spec")
                .map_or_else(|| json!({}), Value::take),
            generation: obj.metadata.generation,
            record,
        })
    }
}

impl SyncCache {
    fn kept(&self, sync: &str) -> Option<Arc<Seen>> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.as_ref().filter(|s| s.name == sync).cloned()
    }

    fn keep(&self, seen: Option<Arc<Seen>>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = seen;
    }
}

/// The `WardSync` `sync` as the API server has it now (`None` when it does not exist), read
/// in full only when its resourceVersion is not the one `cache` keeps.
async fn fetch(client: &Client, cache: &SyncCache, sync: &str) -> Result<Option<Arc<Seen>>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &sync_resource());
    let unreadable = || {
        format!(
            "cannot read WardSync {sync} (is ward's CRD installed? kubectl apply -f schema/crds/)"
        )
    };
    if let Some(kept) = cache.kept(sync) {
        let meta = api
            .get_metadata_opt(sync)
            .await
            .map_err(|e| api_error(e, &unreadable()))?;
        match meta {
            None => {
                cache.keep(None);
                return Ok(None);
            }
            Some(m) if m.metadata.resource_version.as_deref() == Some(&kept.resource_version) => {
                return Ok(Some(kept));
            }
            Some(_) => {}
        }
    }
    let obj = api
        .get_opt(sync)
        .await
        .map_err(|e| api_error(e, &unreadable()))?;
    let seen = obj
        .map(|o| Seen::from_object(sync, o).map(Arc::new))
        .transpose()?;
    cache.keep(seen.clone());
    Ok(seen)
}

/// The record in the `WardSync` status (empty when there is none yet).
pub(super) async fn read_record(
    client: &Client,
    cache: &SyncCache,
    sync: &str,
) -> Result<SyncRecord> {
    Ok(fetch(client, cache, sync)
        .await?
        .map(|s| s.record.clone())
        .unwrap_or_default())
}

/// Writes the record into the `WardSync` status (creating the object when needed).
pub(super) async fn write_record(
    client: &Client,
    cache: &SyncCache,
    sync: &str,
    record: &SyncRecord,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &sync_resource());
    if api
        .get_metadata_opt(sync)
        .await
        .map_err(|e| api_error(e, "cannot read the WardSync"))?
        .is_none()
    {
        let base = json!({"apiVersion": "ward.dev/v1alpha1", "kind": "WardSync", "metadata": {"name": sync}});
        api.patch(
            sync,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&base),
        )
        .await
        .map_err(|e| api_error(e, &format!("cannot create WardSync {sync}")))?;
    }
    let mut body =
        json!({"apiVersion": "ward.dev/v1alpha1", "kind": "WardSync", "metadata": {"name": sync}});
    body["status"] = serde_json::to_value(record)?;
    let written = api
        .patch_status(
            sync,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("cannot record the inventory in WardSync {sync}"),
            )
        });
    match written {
        Ok(obj) => cache.keep(Seen::from_object(sync, obj).ok().map(Arc::new)),
        Err(e) => {
            cache.keep(None);
            return Err(e);
        }
    }
    Ok(())
}

pub(super) fn to_inventory(record: &SyncRecord) -> Inventory {
    let mut inv = Inventory {
        applied_revision: record.last_applied_revision.clone(),
        attempted_revision: record.last_attempted_revision.clone(),
        applied_at: record.last_applied_at.clone(),
        entries: BTreeMap::new(),
    };
    for e in &record.inventory {
        if let Some(key) = parse_id(&e.id) {
            inv.entries.insert(
                e.id.clone(),
                InventoryEntry {
                    key,
                    fingerprint: e.fp.clone(),
                    origin: e.origin.clone(),
                },
            );
        }
    }
    inv
}

/// Parses `Kind/namespace/name` or `Kind/name`.
pub fn parse_id(id: &str) -> Option<ResourceKey> {
    let parts: Vec<&str> = id.split('/').collect();
    let kind = Kind::parse(parts.first()?)?;
    match (kind.namespaced(), parts.as_slice()) {
        (true, [_, ns, name]) => Some(ResourceKey::new(kind, Some(ns), name)),
        (false, [_, name]) => Some(ResourceKey::new(kind, None, name)),
        _ => None,
    }
}

/// Reads and writes one `WardSync` and records events about it.
pub struct Recorder {
    cluster: Arc<Cluster>,
    sync: String,
}

impl Recorder {
    /// The recorder of `WardSync` `sync`.
    pub fn new(cluster: Arc<Cluster>, sync: &str) -> Recorder {
        Recorder {
            cluster,
            sync: sync.to_owned(),
        }
    }

    /// The record (empty when there is none yet).
    pub fn record(&self) -> Result<SyncRecord> {
        self.cluster.block_on(read_record(
            self.cluster.client(),
            self.cluster.sync_cache(),
            &self.sync,
        ))
    }

    /// Changes the record with `f` and writes it back, unless `f` changed nothing (a
    /// reconcile that finds the cluster as it was writes nothing: at 10,000 objects the
    /// record is a megabyte).
    pub fn update(&self, f: impl FnOnce(&mut SyncRecord)) -> Result<()> {
        let (client, cache) = (self.cluster.client(), self.cluster.sync_cache());
        self.cluster.block_on(async {
            let read = read_record(client, cache, &self.sync).await?;
            let mut rec = read.clone();
            f(&mut rec);
            if rec == read {
                return Ok(());
            }
            write_record(client, cache, &self.sync, &rec).await
        })
    }

    /// The `WardSync`'s spec and generation (`{}` and `None` when it does not exist yet).
    pub fn spec(&self) -> Result<(Value, Option<i64>)> {
        let (client, cache) = (self.cluster.client(), self.cluster.sync_cache());
        let seen = self.cluster.block_on(fetch(client, cache, &self.sync))?;
        Ok(seen.map_or((json!({}), None), |s| (s.spec.clone(), s.generation)))
    }

    /// Sets conditions, keeping each one's transition time when its status does not change,
    /// and records the attempted revision and the generation acted on.
    pub fn set_conditions(
        &self,
        generation: Option<i64>,
        attempted: Option<&str>,
        conditions: &[SetCondition<'_>],
    ) -> Result<()> {
        let now = crate::time::rfc3339_micro(std::time::SystemTime::now());
        self.update(|rec| {
            for &(type_, status, reason, message) in conditions {
                let old = rec.conditions.iter().position(|c| c.type_ == type_);
                let since = old
                    .map(|i| &rec.conditions[i])
                    .filter(|c| c.status == status)
                    .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
                let c = Condition {
                    type_,
                    status,
                    reason: reason.to_owned(),
                    message: message.chars().take(4096).collect(),
                    last_transition_time: since,
                    observed_generation: generation,
                };
                match old {
                    Some(i) => rec.conditions[i] = c,
                    None => rec.conditions.push(c),
                }
            }
            rec.observed_generation = generation;
            if let Some(r) = attempted {
                rec.last_attempted_revision = Some(r.to_owned());
            }
        })
    }

    /// Records a Kubernetes event about the `WardSync` (`Normal` or `Warning`); failures to
    /// record are logged, never fatal.
    pub fn event(&self, warning: bool, reason: &str, message: &str) {
        let now = crate::time::rfc3339_micro(std::time::SystemTime::now());
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", self.sync), "namespace": "default"},
            "involvedObject": {"apiVersion": "ward.dev/v1alpha1", "kind": "WardSync", "name": self.sync},
            "reason": reason, "message": message.chars().take(1024).collect::<String>(),
            "type": if warning { "Warning" } else { "Normal" },
            "firstTimestamp": now.clone(), "lastTimestamp": now, "count": 1,
            "source": {"component": "ward"},
        });
        let r: Result<()> = self.cluster.block_on(async {
            let ar = ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Event".into(),
                plural: "events".into(),
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.cluster.client().clone(), "default", &ar);
            let obj: DynamicObject = serde_json::from_value(ev)?;
            api.create(&kube::api::PostParams::default(), &obj)
                .await
                .map_err(|e| api_error(e, "cannot record an event"))?;
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!("{e:#}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back_to_keys() {
        for key in [
            ResourceKey::new(Kind::CiliumNetworkPolicy, Some("shop"), "a"),
            ResourceKey::new(Kind::CiliumConfig, None, "cilium-config"),
        ] {
            assert_eq!(parse_id(&Inventory::id(&key)), Some(key));
        }
        assert_eq!(
            parse_id("CiliumNetworkPolicy/a"),
            None,
            "a namespaced kind needs a namespace"
        );
        assert_eq!(parse_id("Pod/x/y"), None);
    }

    #[test]
    fn conditions_read_and_write_as_kubernetes_has_them() {
        let c: Condition = serde_json::from_value(json!({
            "type": "Ready", "status": "False", "reason": "ValidationFailed", "message": "m",
            "lastTransitionTime": "2026-12-06T17:00:00.000000Z", "observedGeneration": 2
        }))
        .unwrap();
        assert_eq!(
            (c.type_, c.status),
            (ConditionType::Ready, ConditionStatus::False)
        );
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["type"], "Ready");
        assert_eq!(back["lastTransitionTime"], "2026-12-06T17:00:00.000000Z");
        assert_eq!(back["observedGeneration"], 2);
    }
}
