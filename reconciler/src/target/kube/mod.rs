//! The kube target: a real cluster through kube-rs.
//!
//! # How it maps ward's objects
//! - CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, CiliumEnvoyConfig and
//!   CiliumClusterwideEnvoyConfig are applied as they are (cilium.io/v2).
//! - The CiliumConfig is not a CRD: it is stored where agents read it, a ConfigMap named
//!   [`CONFIG_MAP_PREFIX`] + its name (`ward-cilium-config`: never Cilium's own
//!   `cilium-config`, which ward must not touch) in the config namespace (default
//!   `kube-system`), the document under the key
//!   [`CONFIG_MAP_KEY`], labelled `app.kubernetes.io/managed-by: ward`.
//!
//! # Writes
//! Server-side apply with field manager [`FIELD_MANAGER`]. Another manager owning a field ward
//! sets is a conflict, reported with the manager and the field, and taken over only with
//! `--force-conflicts`. An apply runs kind by kind in dependency order (the config, CIDR
//! groups, cluster-wide objects, then namespaced ones; deletes last, in reverse), with up to
//! [`KubeOptions::concurrency`] requests in flight within a kind; the namespaces must exist
//! (ward does not create them). How refusals are reported is in `apply`'s docs.
//!
//! # Plans
//! A plan asks the API server: every object whose content may differ is applied with
//! `dryRun=All`, and the answer (defaults, other managers' fields and all) is compared with the
//! live object. An object whose desired content and live revision marker (`metadata.generation`,
//! or the `resourceVersion` of kinds without one, such as ConfigMaps) are what ward
//! recorded when it last applied it needs no request at all, so a plan with nothing to do
//! costs one LIST per kind. Everything a plan writes has passed the server's own validation in
//! that dry run, so an apply does not stop half-way on a bad object.
//!
//! # Inventory
//! What ward applied is recorded in the status of a cluster-scoped `WardSync`
//! (`ward.dev/v1alpha1`, default name `ward`; its CRD is in `schema/crds/`): per object its
//! id, a fingerprint of what ward sent and the revision marker the server gave it. Pruning deletes
//! only what the inventory lists, never what merely carries ward's label. Before the first
//! write of an apply the inventory is extended with everything the apply may create, so an
//! apply interrupted at any point (API server gone, process killed) leaves nothing orphaned;
//! the next plan sees what is really there.
//!
//! Prune guards: an object annotated `ward.dev/prune: disabled` is never deleted (it leaves
//! the inventory and stays); the budget and zero-object guards are in [`super::check_prune`].
//!
//! # Parts
//! [`client`] is the connection (kube-rs client and tokio runtime), [`record`] the `WardSync`
//! recorder (inventory, conditions, events); planning and applying are in their own modules.

mod apply;
pub mod client;
mod plan;
pub mod record;

pub use client::Cluster;
pub use record::{Recorder, SyncRecord, parse_id};

use super::{
    ApplyOptions, ApplyReport, DesiredObjects, LiveObject, LiveSet, PlanOptions, Planned, Status,
    Target, TargetId,
};
use crate::normalize::{canonical_bytes, hash_bytes, normalize_owned, to_yaml};
use crate::plan::Plan;
use anyhow::Result;
use client::api_error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use record::{read_record, to_inventory};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use ward_schema::{Kind, Resource, ResourceKey};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ward";
/// The annotation that keeps an object from being pruned (value `disabled`).
pub const PRUNE_ANNOTATION: &str = "ward.dev/prune";
pub use ward_schema::store::CONFIG_MAP_KEY;
/// What the name of a CiliumConfig's ConfigMap starts with, so that ward's configuration never
/// lands in (or prunes) a ConfigMap of Cilium's.
pub const CONFIG_MAP_PREFIX: &str = "ward-";
/// The label on ConfigMaps that hold a CiliumConfig.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ward");
/// Objects per LIST request (the rest follows with the continue token).
const LIST_PAGE: u32 = 500;
/// Requests in flight at once by default (`--concurrency`): dry runs while planning, writes
/// and deletes while applying.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How to reach the cluster and where ward keeps its records there.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// A kubeconfig file; without one, `KUBECONFIG` or `~/.kube/config` as kubectl does.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use (default: the kubeconfig's current context).
    pub context: Option<String>,
    /// The `WardSync` whose status holds the inventory.
    pub sync: String,
    /// The namespace of the CiliumConfig's ConfigMap.
    pub config_namespace: String,
    /// The user to act as (`--as`, like kubectl's): every request carries
    /// `Impersonate-User`, so the cluster's RBAC for that user decides.
    pub impersonate: Option<String>,
    /// The groups to act as (`--as-group`, repeatable).
    pub impersonate_groups: Vec<String>,
    /// Requests in flight at once (`--concurrency`, at least 1): dry runs while planning,
    /// writes and deletes while applying, one kind after the other.
    pub concurrency: usize,
}

impl KubeOptions {
    /// Which cluster, as the user named it (for report headings).
    pub fn describe(&self) -> String {
        match (&self.context, &self.kubeconfig) {
            (Some(c), _) => format!("cluster of context {c}"),
            (None, Some(k)) => format!("cluster of {}", k.display()),
            (None, None) => "cluster".into(),
        }
    }
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            kubeconfig: None,
            context: None,
            sync: "ward".into(),
            config_namespace: "kube-system".into(),
            impersonate: None,
            impersonate_groups: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A cluster as a [`Target`]: plans by server-side dry run, applies by server-side apply,
/// keeps its inventory in a `WardSync`.
pub struct KubeTarget {
    cluster: Arc<Cluster>,
    opts: KubeOptions,
    /// What the last plan found besides the plan.
    extra: plan::Extra,
}

/// What plans and `ward status` need of a live object. The server's bookkeeping
/// (`managedFields`, `status`) is read once and dropped, and the normalised content is kept
/// as canonical bytes, parsed only when a plan compares or diffs it: at 10,000 objects a
/// reconcile holds a few megabytes of live state instead of two object trees each.
pub(crate) struct Live {
    /// The normalised object.
    pub(crate) normalized: LiveObject,
    /// Its [`marker`].
    pub(crate) marker: String,
    /// Its labels and annotations (`{"labels": .., "annotations": ..}`; `null` when it has
    /// neither).
    pub(crate) metadata: Value,
    /// The managers other than ward that own fields through server-side apply.
    pub(crate) appliers: Vec<String>,
    /// The message of a `Valid` condition that is `False`.
    pub(crate) invalid: Option<String>,
}

impl Live {
    fn from_raw(raw: Value) -> Live {
        let marker = marker(&raw);
        let appliers = plan::appliers(&raw);
        let invalid = invalid_condition(&raw);
        let labels = raw.pointer("/metadata/labels").cloned();
        let annotations = raw.pointer("/metadata/annotations").cloned();
        // Most objects have neither: `null` then costs no allocation (a JSON object is a
        // B-tree node, 10,000 of them megabytes).
        let metadata = if labels.is_none() && annotations.is_none() {
            Value::Null
        } else {
            json!({
                "labels": labels.unwrap_or(Value::Null),
                "annotations": annotations.unwrap_or(Value::Null),
            })
        };
        let bytes = canonical_bytes(&normalize_owned(raw));
        let fp = short_hash(&bytes);
        Live {
            normalized: LiveObject::from_canonical(bytes, fp),
            marker,
            metadata,
            appliers,
            invalid,
        }
    }

    pub(crate) fn annotation(&self, name: &str) -> Option<&str> {
        self.metadata["annotations"].get(name)?.as_str()
    }
}

impl KubeTarget {
    /// Connects as kubectl would with `--kubeconfig` and `--context`.
    pub fn connect(opts: KubeOptions) -> Result<KubeTarget> {
        let cluster = Cluster::connect(&opts)?;
        Ok(KubeTarget::new(Arc::new(cluster), opts))
    }

    /// The target on a cluster already connected to (the controller shares it with its
    /// Lease and its recorder).
    pub fn new(cluster: Arc<Cluster>, opts: KubeOptions) -> KubeTarget {
        KubeTarget {
            cluster,
            opts,
            extra: plan::Extra::default(),
        }
    }

    /// The connection.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Objects the last plan did not prune because they carry `ward.dev/prune: disabled`.
    pub fn kept(&self) -> &[ResourceKey] {
        &self.extra.kept
    }
}

impl Target for KubeTarget {
    fn describe(&self) -> String {
        format!(
            "cluster {} (inventory: WardSync {})",
            self.cluster.server(),
            self.opts.sync
        )
    }

    fn identity(&self) -> Option<TargetId> {
        Some(TargetId::Kube {
            server: self.cluster.server().to_owned(),
            sync: self.opts.sync.clone(),
            config_namespace: self.opts.config_namespace.clone(),
        })
    }

    /// The objects whose imperative changes the apply takes back, those kept by their prune
    /// annotation, and the records to refresh: what the last plan found besides the plan.
    fn plan_extra(&self) -> Value {
        serde_json::to_value(&self.extra).unwrap_or(Value::Null)
    }

    fn set_plan_extra(&mut self, extra: &Value) -> Result<()> {
        self.extra = serde_json::from_value(extra.clone())
            .map_err(|e| anyhow::anyhow!("the plan's cluster details are unreadable: {e}"))?;
        Ok(())
    }

    fn snapshot(&mut self) -> Result<LiveSet> {
        Ok(self
            .cluster
            .block_on(snapshot(&self.cluster, &self.opts))?
            .live_set())
    }

    /// Plans against the cluster (see the module docs); with `force_conflicts`, fields other
    /// managers own are planned as taken over. The desired objects are taken one by one and
    /// each turned into the bytes the plan sends (borrowed ones are copied first), so a first
    /// apply of 10,000 objects never holds them parsed all at once.
    fn plan(&mut self, desired: DesiredObjects<'_>, options: &PlanOptions) -> Result<Planned> {
        let (cluster, opts) = (&self.cluster, &self.opts);
        let client = cluster.client();
        let (plan, extra, live) = self.cluster.block_on(async {
            let snap = snapshot(cluster, opts).await?;
            plan::plan(client, opts, &snap, desired, options).await
        })?;
        self.extra = extra;
        let notes = self
            .extra
            .kept
            .iter()
            .map(|key| {
                format!("{key} is no longer desired but annotated {PRUNE_ANNOTATION}: disabled; left in place")
            })
            .collect();
        Ok(Planned { plan, live, notes })
    }

    /// Objects kept by their prune annotation leave the inventory on the next apply.
    fn pending(&self, _planned: &Planned, options: &ApplyOptions) -> bool {
        options.prune && !self.extra.kept.is_empty()
    }

    fn apply(&mut self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport> {
        let extra = self.extra.clone();
        self.cluster.block_on(apply::apply(
            &self.cluster,
            &self.opts,
            plan,
            options,
            &extra,
        ))
    }

    /// Objects whose `status.conditions[type=Valid]` is `False`, with the message (Cilium's
    /// agent sets it on policies it cannot use).
    fn unhealthy(&mut self) -> Result<Vec<(ResourceKey, String)>> {
        Ok(self
            .cluster
            .block_on(snapshot(&self.cluster, &self.opts))?
            .invalid())
    }

    /// Drift by revision marker, and health from the objects' `Valid` conditions, from one
    /// reading of the cluster.
    fn status(&mut self) -> Result<Status> {
        let snap = self.cluster.block_on(snapshot(&self.cluster, &self.opts))?;
        let live = snap.live_set();
        let unmanaged = live
            .objects
            .keys()
            .filter(|key| live.inventory.get(key).is_none())
            .map(ToString::to_string)
            .collect();
        Ok(Status {
            target: self.describe(),
            live: live.objects.len(),
            inventory: live.inventory,
            drifted: snap.drifted(),
            unmanaged,
            writer: None,
            interrupted: false,
            invalid: snap
                .invalid()
                .into_iter()
                .map(|(key, m)| (key.to_string(), m))
                .collect(),
        })
    }
}

/// The Kubernetes resource behind a kind.
fn api_resource(kind: Kind) -> ApiResource {
    let (group, version, kind_name, plural) = match kind {
        Kind::CiliumConfig => ("", "v1", "ConfigMap", "configmaps"),
        Kind::CiliumNetworkPolicy => (
            "cilium.io",
            "v2",
            "CiliumNetworkPolicy",
            "ciliumnetworkpolicies",
        ),
        Kind::CiliumClusterwideNetworkPolicy => (
            "cilium.io",
            "v2",
            "CiliumClusterwideNetworkPolicy",
            "ciliumclusterwidenetworkpolicies",
        ),
        Kind::CiliumEnvoyConfig => ("cilium.io", "v2", "CiliumEnvoyConfig", "ciliumenvoyconfigs"),
        Kind::CiliumCIDRGroup => ("cilium.io", "v2", "CiliumCIDRGroup", "ciliumcidrgroups"),
        Kind::NetworkPolicy => (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        Kind::CiliumClusterwideEnvoyConfig => (
            "cilium.io",
            "v2",
            "CiliumClusterwideEnvoyConfig",
            "ciliumclusterwideenvoyconfigs",
        ),
        Kind::PolicyTest | Kind::LabTopology => {
            ("ward.dev", "v1alpha1", kind.as_str(), "unapplied")
        }
    };
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind_name.into(),
        plural: plural.into(),
    }
}

/// The namespace an object of `key` lives in on the cluster.
pub(crate) fn namespace_of<'a>(key: &'a ResourceKey, opts: &'a KubeOptions) -> Option<&'a str> {
    match key.kind {
        Kind::CiliumConfig => Some(&opts.config_namespace),
        _ => key.namespace.as_deref(),
    }
}

pub(crate) fn api_for(
    client: &Client,
    key: &ResourceKey,
    opts: &KubeOptions,
) -> Api<DynamicObject> {
    let ar = api_resource(key.kind);
    match namespace_of(key, opts) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// What ward sends for a desired resource, normalised.
pub fn to_kube(r: &Resource, opts: &KubeOptions) -> Value {
    to_kube_owned(r.clone(), opts)
}

/// [`to_kube`], consuming the resource (a plan over thousands of objects then holds one copy
/// of each, not two).
pub(crate) fn to_kube_owned(r: Resource, opts: &KubeOptions) -> Value {
    let object = normalize_owned(r.object);
    match r.key.kind {
        Kind::CiliumConfig => normalize_owned(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": object_name(&r.key), "namespace": opts.config_namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
            "data": {CONFIG_MAP_KEY: to_yaml(&object)},
        })),
        _ => {
            let mut object = object;
            // A CiliumCIDRGroup written at the deprecated v2alpha1 (same schema) is applied
            // at v2, the version ward reads back, so plans compare like with like.
            if let Some(o) = object.as_object_mut() {
                o.insert("apiVersion".into(), json!(r.key.kind.api_version()));
            }
            if let (Some(ns), Some(meta)) = (
                &r.key.namespace,
                object.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            object
        }
    }
}

/// A fingerprint short enough for a 10,000-entry inventory in one object (64 bits; it
/// detects changes, it is not a security boundary).
pub(crate) fn short_fp(normalized: &Value) -> String {
    short_hash(&canonical_bytes(normalized))
}

/// [`short_fp`] of an object already held as canonical bytes.
pub(crate) fn short_hash(canonical: &[u8]) -> String {
    hash_bytes(canonical).chars().take(16).collect()
}

/// The name of `key`'s object on the cluster.
pub fn object_name(key: &ResourceKey) -> String {
    match key.kind {
        Kind::CiliumConfig => format!("{CONFIG_MAP_PREFIX}{}", key.name),
        _ => key.name.clone(),
    }
}

/// The key of a live object of `kind` named `name`; `None` for a ConfigMap whose name is not
/// one ward gives ([`object_name`]).
fn key_of(kind: Kind, namespace: Option<&str>, name: &str) -> Option<ResourceKey> {
    match kind {
        Kind::CiliumConfig => name
            .strip_prefix(CONFIG_MAP_PREFIX)
            .map(|n| ResourceKey::new(kind, None, n)),
        _ => Some(ResourceKey::new(kind, namespace, name)),
    }
}

/// Every live object of the kinds ward applies (ConfigMaps: only those labelled as ward's and
/// named as ward names them).
async fn list_live(client: &Client, opts: &KubeOptions) -> Result<BTreeMap<ResourceKey, Live>> {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.is_applied()) {
        let ar = api_resource(kind);
        let (api, lp): (Api<DynamicObject>, ListParams) = match kind {
            Kind::CiliumConfig => (
                Api::namespaced_with(client.clone(), &opts.config_namespace, &ar),
                ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)),
            ),
            _ => (Api::all_with(client.clone(), &ar), ListParams::default()),
        };
        // Page by page, so only one page of full objects (managedFields and all) is in
        // memory at a time.
        let mut lp = lp.limit(LIST_PAGE);
        loop {
            let list = api
                .list(&lp)
                .await
                .map_err(|e| api_error(e, &format!("cannot list {}", ar.plural)))?;
            let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
            for item in list.items {
                let name = item.metadata.name.clone().unwrap_or_default();
                let ns = if kind.namespaced() {
                    item.metadata.namespace.clone()
                } else {
                    None
                };
                let Some(key) = key_of(kind, ns.as_deref(), &name) else {
                    continue;
                };
                let mut raw = serde_json::to_value(&item)?;
                drop(item);
                if let Some(o) = raw.as_object_mut() {
                    o.insert("apiVersion".into(), json!(ar.api_version));
                    o.insert("kind".into(), json!(ar.kind));
                }
                out.insert(key, Live::from_raw(raw));
            }
            match next {
                Some(token) => lp = lp.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(out)
}

/// The cluster's objects and ward's record of them, read together.
pub(crate) struct Snapshot {
    pub(crate) live: BTreeMap<ResourceKey, Live>,
    pub(crate) record: SyncRecord,
}

async fn snapshot(cluster: &Cluster, opts: &KubeOptions) -> Result<Snapshot> {
    let client = cluster.client();
    Ok(Snapshot {
        live: list_live(client, opts).await?,
        record: read_record(client, cluster.sync_cache(), &opts.sync).await?,
    })
}

impl Snapshot {
    /// The live objects (normalised) and the inventory, as every target reports them.
    pub(crate) fn live_set(&self) -> LiveSet {
        let mut set = LiveSet {
            inventory: to_inventory(&self.record),
            ..LiveSet::default()
        };
        for (k, l) in &self.live {
            set.objects.insert(k.clone(), l.normalized.clone());
        }
        set
    }

    /// Inventory ids whose object changed or disappeared since ward wrote it, or whose write
    /// never completed.
    fn drifted(&self) -> Vec<String> {
        self.record
            .inventory
            .iter()
            .filter(|e| {
                e.seen.is_empty()
                    || parse_id(&e.id)
                        .and_then(|k| self.live.get(&k))
                        .is_none_or(|l| l.marker != e.seen)
            })
            .map(|e| e.id.clone())
            .collect()
    }

    /// Objects whose `Valid` condition is `False`, with its message.
    fn invalid(&self) -> Vec<(ResourceKey, String)> {
        self.live
            .iter()
            .filter_map(|(k, l)| l.invalid.clone().map(|m| (k.clone(), m)))
            .collect()
    }
}

/// The message of a `Valid` condition that is `False`.
fn invalid_condition(raw: &Value) -> Option<String> {
    raw.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Valid" && c["status"] == "False")
        .map(|c| c["message"].as_str().unwrap_or("(no message)").to_owned())
}

/// What changes whenever an object's content does: `g<metadata.generation>` for kinds that
/// have one (CRDs: spec changes), else `rv<resourceVersion>` (ConfigMaps).
pub fn marker(raw: &Value) -> String {
    marker_from(
        raw.pointer("/metadata/generation").and_then(Value::as_i64),
        raw.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str),
    )
}

/// [`marker`] of an object's metadata as kube-rs reads it.
pub(crate) fn marker_of(meta: &ObjectMeta) -> String {
    marker_from(meta.generation, meta.resource_version.as_deref())
}

fn marker_from(generation: Option<i64>, resource_version: Option<&str>) -> String {
    match generation {
        Some(g) => format!("g{g}"),
        None => format!("rv{}", resource_version.unwrap_or("")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn markers_follow_generation_or_resource_version() {
        assert_eq!(
            marker(&json!({"metadata": {"generation": 3, "resourceVersion": "9"}})),
            "g3"
        );
        assert_eq!(
            marker(&json!({"metadata": {"resourceVersion": "9"}})),
            "rv9"
        );
    }

    #[test]
    fn metadata_ward_sets_must_still_be_there() {
        let want = json!({"metadata": {"labels": {"a": "1"}}});
        let live = |raw: Value| Live::from_raw(raw).metadata;
        assert!(
            plan::metadata_holds(
                &live(json!({"metadata": {"labels": {"a": "1", "other": "x"}}})),
                &want
            ),
            "others may add labels"
        );
        assert!(!plan::metadata_holds(
            &live(json!({"metadata": {"labels": {"a": "2"}}})),
            &want
        ));
        assert!(!plan::metadata_holds(&live(json!({"metadata": {}})), &want));
    }

    #[test]
    fn the_cilium_config_becomes_a_labelled_config_map() {
        let r = Resource {
            key: ResourceKey::new(Kind::CiliumConfig, None, "cilium-config"),
            object: json!({"apiVersion": "cilium.io/v1.12", "kind": "CiliumConfig", "metadata": {"name": "cilium-config"}, "spec": {"enable-encryption": true}}),
            origin: ward_schema::Origin::default(),
        };
        let cm = to_kube(&r, &KubeOptions::default());
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(
            cm["metadata"]["name"], "ward-cilium-config",
            "never Cilium's own ConfigMap"
        );
        assert_eq!(
            key_of(Kind::CiliumConfig, None, "ward-cilium-config"),
            Some(r.key.clone())
        );
        assert_eq!(key_of(Kind::CiliumConfig, None, "cilium-config"), None);
        assert_eq!(cm["metadata"]["namespace"], "kube-system");
        assert_eq!(cm["metadata"]["labels"][MANAGED_BY.0], MANAGED_BY.1);
        assert!(
            cm["data"][CONFIG_MAP_KEY]
                .as_str()
                .unwrap()
                .contains("enable-encryption: true")
        );
    }

    #[test]
    fn invalid_conditions_are_found() {
        let raw = json!({"status": {"conditions": [{"type": "Valid", "status": "False", "message": "bad"}]}});
        assert_eq!(invalid_condition(&raw).as_deref(), Some("bad"));
        assert_eq!(
            invalid_condition(
                &json!({"status": {"conditions": [{"type": "Valid", "status": "True"}]}})
            ),
            None
        );
    }
}
