//! The kube target: a real cluster through kube-rs.
//!
//! # How it maps ward's objects
//! - CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, CiliumEnvoyConfig and
//!   CiliumClusterwideEnvoyConfig are applied as they are (cilium.io/v2).
//! - The CiliumConfig is not a CRD: it is stored where agents read it, a ConfigMap of the same
//!   name in the config namespace (default `kube-system`), the document under the key
//!   [`CONFIG_MAP_KEY`], labelled `app.kubernetes.io/managed-by: ward`.
//!
//! # Writes
//! Server-side apply with field manager [`FIELD_MANAGER`]. Another manager owning a field ward
//! sets is a conflict, reported with the manager and the field, and taken over only with
//! `--force-conflicts`. Cluster-wide objects and the config go before namespaced ones; the
//! namespaces must exist (ward does not create them).
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

use super::{ApplyOptions, ApplyReport, Inventory, InventoryEntry, LiveObject, LiveSet, Target};
use crate::normalize::{canonical_bytes, hash_bytes, normalize_owned, to_yaml};
use crate::plan::{Action, Change, Plan, unified_diff};
use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tokio::runtime::Runtime;
use ward_schema::{Kind, Resource, ResourceKey, ResourceSet};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ward";
/// The annotation that keeps an object from being pruned (value `disabled`).
pub const PRUNE_ANNOTATION: &str = "ward.dev/prune";
/// The ConfigMap key that holds the CiliumConfig document.
pub const CONFIG_MAP_KEY: &str = "cilium-config.yaml";
/// The label on ConfigMaps that hold a CiliumConfig.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ward");
/// Objects per LIST request (the rest follows with the continue token).
const LIST_PAGE: u32 = 500;
/// Dry runs in flight at once during a plan.
const CONCURRENCY: usize = 16;

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
        }
    }
}

/// One object in the inventory, as the `WardSync` status stores it (compact: 10,000 entries
/// must fit in one object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeEntry {
    /// `Kind/namespace/name` or `Kind/name`.
    pub id: String,
    /// Fingerprint of what ward sent (the first 16 hex digits).
    pub fp: String,
    /// The object's revision marker after ward's write ([`marker`]); empty while an apply is
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
    pub conditions: Vec<Value>,
    /// The WardSync generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A cluster reached through kube-rs.
pub struct KubeTarget {
    rt: Runtime,
    client: Client,
    opts: KubeOptions,
    server: String,
    /// What the last plan found besides the plan.
    extra: Extra,
    /// Whether plans carry per-object diff text (reports do; the controller does not).
    diffs: bool,
}

/// What plans and `ward status` need of a live object. The server's bookkeeping
/// (`managedFields`, `status`) is read once and dropped, and the normalised content is kept
/// as canonical bytes, parsed only when a plan compares or diffs it: at 10,000 objects a
/// reconcile holds a few megabytes of live state instead of two object trees each.
struct Live {
    /// The normalised object.
    normalized: LiveObject,
    /// Its [`marker`].
    marker: String,
    /// Its labels and annotations (`{"labels": .., "annotations": ..}`).
    metadata: Value,
    /// The managers other than ward that own fields through server-side apply.
    appliers: Vec<String>,
    /// The message of a `Valid` condition that is `False`.
    invalid: Option<String>,
}

impl Live {
    fn from_raw(raw: Value) -> Live {
        let marker = marker(&raw);
        let appliers = appliers(&raw);
        let invalid = invalid_condition(&raw);
        let metadata = json!({
            "labels": raw.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
            "annotations": raw.pointer("/metadata/annotations").cloned().unwrap_or(Value::Null),
        });
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

    fn annotation(&self, name: &str) -> Option<&str> {
        self.metadata["annotations"].get(name)?.as_str()
    }
}

/// The client configuration kubectl would use with `--kubeconfig` and `--context`: neither
/// given, the pod's service account when there is one, else `KUBECONFIG` or `~/.kube/config`.
/// (`ward-agent` connects the same way; it cannot share this function, because the agent
/// does not link the reconciler and the `ward` CLI need not link the agent.)
async fn client_config(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Config> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kopts = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    match kubeconfig {
        None if context.is_none() => kube::Config::infer()
            .await
            .context("no in-cluster service account and no usable kubeconfig; pass --kubeconfig"),
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kopts)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))
        }
        None => kube::Config::from_kubeconfig(&kopts)
            .await
            .context("no usable kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig"),
    }
}

impl KubeTarget {
    /// Connects as kubectl would with `--kubeconfig` and `--context`.
    pub fn connect(opts: KubeOptions) -> Result<KubeTarget> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let config = rt.block_on(client_config(
            opts.kubeconfig.as_deref(),
            opts.context.as_deref(),
        ))?;
        let server = config.cluster_url.to_string();
        let client = rt
            .block_on(async { Client::try_from(config) })
            .context("cannot build a Kubernetes client")?;
        Ok(KubeTarget {
            rt,
            client,
            opts,
            server,
            extra: Extra::default(),
            diffs: true,
        })
    }

    /// The client, for callers that talk to the cluster themselves (the controller, tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Objects the last plan did not prune because they carry `ward.dev/prune: disabled`.
    pub fn kept(&self) -> &[ResourceKey] {
        &self.extra.kept
    }

    /// The `WardSync` record (empty when there is none yet).
    pub fn record(&self) -> Result<SyncRecord> {
        self.rt.block_on(read_record(&self.client, &self.opts.sync))
    }

    /// Changes the `WardSync` record with `f` and writes it back.
    pub fn update_record(&self, f: impl FnOnce(&mut SyncRecord)) -> Result<()> {
        self.rt.block_on(async {
            let mut rec = read_record(&self.client, &self.opts.sync).await?;
            f(&mut rec);
            write_record(&self.client, &self.opts.sync, &rec).await
        })
    }

    /// The `WardSync`'s spec and generation (`{}` and `None` when it does not exist yet).
    pub fn sync_spec(&self) -> Result<(Value, Option<i64>)> {
        self.rt.block_on(async {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &sync_resource());
            let obj = api
                .get_opt(&self.opts.sync)
                .await
                .map_err(|e| api_error(e, "cannot read the WardSync"))?;
            Ok(obj.map_or((json!({}), None), |o| {
                (
                    o.data.get("spec").cloned().unwrap_or(json!({})),
                    o.metadata.generation,
                )
            }))
        })
    }

    /// Records a Kubernetes event about the `WardSync` (`Normal` or `Warning`); failures to
    /// record are logged, never fatal.
    pub fn event(&self, warning: bool, reason: &str, message: &str) {
        let now = crate::controller::rfc3339_micro(std::time::SystemTime::now());
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", self.opts.sync), "namespace": "default"},
            "involvedObject": {"apiVersion": "ward.dev/v1alpha1", "kind": "WardSync", "name": self.opts.sync},
            "reason": reason, "message": message.chars().take(1024).collect::<String>(),
            "type": if warning { "Warning" } else { "Normal" },
            "firstTimestamp": now.clone(), "lastTimestamp": now, "count": 1,
            "source": {"component": "ward"},
        });
        let r: Result<()> = self.rt.block_on(async {
            let ar = ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Event".into(),
                plural: "events".into(),
            };
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), "default", &ar);
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

    /// Runs `f` in the background on the target's runtime.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        drop(self.rt.spawn(f));
    }

    /// Runs `f` on the target's runtime (for callers with their own kube-rs calls).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The runtime, for work on other threads (the Lease renewed during a reconcile).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// Computes a plan against the cluster (see the module docs); with `force_conflicts`,
    /// fields other managers own are planned as taken over. Also what was live before, from
    /// the same reading of the cluster.
    pub fn plan(
        &mut self,
        desired: &ResourceSet,
        prune: bool,
        revision: Option<String>,
        force_conflicts: bool,
    ) -> Result<(Plan, LiveSet)> {
        self.plan_owned(desired.clone(), prune, revision, force_conflicts)
    }

    /// [`KubeTarget::plan`], taking the desired objects: each is moved into the body the plan
    /// sends, so a first apply of 10,000 objects does not hold them twice (the controller).
    pub fn plan_owned(
        &mut self,
        desired: ResourceSet,
        prune: bool,
        revision: Option<String>,
        force_conflicts: bool,
    ) -> Result<(Plan, LiveSet)> {
        let (client, opts) = (self.client.clone(), self.opts.clone());
        let ask = Ask {
            prune,
            revision,
            force_conflicts,
            diffs: self.diffs,
        };
        let (plan, extra, live) = self.rt.block_on(async {
            let snap = snapshot(&client, &opts).await?;
            let (plan, extra) = plan(&client, &opts, &snap, desired, ask).await?;
            Ok::<_, anyhow::Error>((plan, extra, snap.live_set()))
        })?;
        self.extra = extra;
        Ok((plan, live))
    }

    /// Plans without per-object diff text (`Change::diff` stays empty): what the controller
    /// wants, since nobody reads them there and a first apply of 10,000 objects would hold
    /// every object once more as YAML.
    pub fn without_diffs(mut self) -> KubeTarget {
        self.diffs = false;
        self
    }

    /// What `ward status` shows, from one reading of the cluster.
    pub fn status(&self) -> Result<KubeStatus> {
        let snap = self.rt.block_on(snapshot(&self.client, &self.opts))?;
        Ok(KubeStatus {
            live: snap.live_set(),
            drifted: snap.drifted(),
            invalid: snap.invalid(),
        })
    }

    /// Objects whose `status.conditions[type=Valid]` is `False`, with the message (Cilium's
    /// agent sets it on policies it cannot use).
    pub fn unhealthy(&self) -> Result<Vec<(ResourceKey, String)>> {
        Ok(self
            .rt
            .block_on(snapshot(&self.client, &self.opts))?
            .invalid())
    }
}

impl Target for KubeTarget {
    fn describe(&self) -> String {
        format!(
            "cluster {} (inventory: WardSync {})",
            self.server, self.opts.sync
        )
    }

    fn live(&self) -> Result<LiveSet> {
        Ok(self
            .rt
            .block_on(snapshot(&self.client, &self.opts))?
            .live_set())
    }

    fn apply(&mut self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport> {
        let extra = self.extra.clone();
        self.rt
            .block_on(apply(&self.client, &self.opts, plan, options, &extra))
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

fn sync_resource() -> ApiResource {
    ApiResource {
        group: "ward.dev".into(),
        version: "v1alpha1".into(),
        api_version: "ward.dev/v1alpha1".into(),
        kind: "WardSync".into(),
        plural: "wardsyncs".into(),
    }
}

/// The namespace an object of `key` lives in on the cluster.
fn namespace_of<'a>(key: &'a ResourceKey, opts: &'a KubeOptions) -> Option<&'a str> {
    match key.kind {
        Kind::CiliumConfig => Some(&opts.config_namespace),
        _ => key.namespace.as_deref(),
    }
}

fn api_for(client: &Client, key: &ResourceKey, opts: &KubeOptions) -> Api<DynamicObject> {
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
fn to_kube_owned(r: Resource, opts: &KubeOptions) -> Value {
    let object = normalize_owned(r.object);
    match r.key.kind {
        Kind::CiliumConfig => normalize_owned(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": r.key.name, "namespace": opts.config_namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
            "data": {CONFIG_MAP_KEY: to_yaml(&object)},
        })),
        _ => {
            let mut object = object;
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
fn short_fp(normalized: &Value) -> String {
    short_hash(&canonical_bytes(normalized))
}

/// [`short_fp`] of an object already held as canonical bytes.
fn short_hash(canonical: &[u8]) -> String {
    hash_bytes(canonical).chars().take(16).collect()
}

/// Every live object of the kinds ward applies (ConfigMaps: only those labelled as ward's).
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
                let mut raw = serde_json::to_value(&item)?;
                drop(item);
                if let Some(o) = raw.as_object_mut() {
                    o.insert("apiVersion".into(), json!(ar.api_version));
                    o.insert("kind".into(), json!(ar.kind));
                }
                out.insert(
                    ResourceKey::new(kind, ns.as_deref(), &name),
                    Live::from_raw(raw),
                );
            }
            match next {
                Some(token) => lp = lp.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(out)
}

async fn read_record(client: &Client, sync: &str) -> Result<SyncRecord> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &sync_resource());
    let obj = api
        .get_opt(sync)
        .await
        .map_err(|e| api_error(e, &format!("cannot read WardSync {sync} (is ward's CRD installed? kubectl apply -f schema/crds/)")))?;
    let Some(obj) = obj else {
        return Ok(SyncRecord::default());
    };
    match obj.data.get("status") {
        Some(status) => serde_json::from_value(status.clone())
            .with_context(|| format!("WardSync {sync}: unreadable status")),
        None => Ok(SyncRecord::default()),
    }
}

/// The cluster's objects and ward's record of them, read together.
struct Snapshot {
    live: BTreeMap<ResourceKey, Live>,
    record: SyncRecord,
}

async fn snapshot(client: &Client, opts: &KubeOptions) -> Result<Snapshot> {
    Ok(Snapshot {
        live: list_live(client, opts).await?,
        record: read_record(client, &opts.sync).await?,
    })
}

impl Snapshot {
    /// The live objects (normalised) and the inventory, as every target reports them.
    fn live_set(&self) -> LiveSet {
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

/// Writes the record into the `WardSync` status (creating the object when needed).
async fn write_record(client: &Client, sync: &str, record: &SyncRecord) -> Result<()> {
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
    api.patch_status(
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
    })?;
    Ok(())
}

fn to_inventory(record: &SyncRecord) -> Inventory {
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
    match raw.pointer("/metadata/generation").and_then(Value::as_i64) {
        Some(g) => format!("g{g}"),
        None => format!(
            "rv{}",
            raw.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

/// Whether the live object (its [`Live::metadata`]) still holds every label and annotation
/// ward sets (other managers may add their own).
fn metadata_holds(live: &Value, want: &Value) -> bool {
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

/// The cluster as `ward status` reports it.
#[derive(Debug)]
pub struct KubeStatus {
    /// The live objects and the inventory.
    pub live: LiveSet,
    /// Inventory ids whose object changed or disappeared since ward wrote it, or whose write
    /// never completed.
    pub drifted: Vec<String>,
    /// Objects whose `Valid` condition is `False`, with its message.
    pub invalid: Vec<(ResourceKey, String)>,
}

/// A kube-rs error as a message a user can act on.
fn api_error(e: kube::Error, what: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 409 && s.message.contains("conflict") => {
            anyhow!(
                "{what}: {} (another field manager owns these fields; `--force-conflicts` takes them over)",
                s.message
            )
        }
        kube::Error::Api(s) if s.code == 403 => anyhow!(
            "{what}: forbidden: {} (check the RBAC of the user in the kubeconfig)",
            s.message
        ),
        kube::Error::Api(s) => anyhow!("{what}: {} ({})", s.message, s.reason),
        other => anyhow!("{what}: {other} (is the API server reachable?)"),
    }
}

/// The result of one dry run.
struct Dry {
    key: ResourceKey,
    send: Value,
    fp: String,
    origin: String,
    /// Whether taking fields back from an imperative change was needed.
    forced: bool,
    /// The server's answer, normalised.
    result: Result<Value>,
}

/// The managers other than ward that own fields of `raw` through server-side apply.
fn appliers(raw: &Value) -> Vec<String> {
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

/// What a plan found besides the plan itself.
#[derive(Debug, Default, Clone)]
struct Extra {
    /// Objects left in place because of [`PRUNE_ANNOTATION`].
    kept: Vec<ResourceKey>,
    /// Objects whose imperative changes the apply takes back (forced apply).
    forced: BTreeSet<ResourceKey>,
    /// Objects a dry run found unchanged although ward's record of them was out of date
    /// (a change that made no difference, a lost answer): their live marker and fingerprint,
    /// recorded by the next apply so later plans need no dry run for them.
    refresh: BTreeMap<String, (String, String)>,
}

/// What a plan is asked for besides the desired objects.
struct Ask {
    prune: bool,
    revision: Option<String>,
    force_conflicts: bool,
    /// Per-object diff text.
    diffs: bool,
}

async fn plan(
    client: &Client,
    opts: &KubeOptions,
    snap: &Snapshot,
    desired: ResourceSet,
    ask: Ask,
) -> Result<(Plan, Extra)> {
    let Ask {
        prune,
        revision,
        force_conflicts,
        diffs,
    } = ask;
    let diff_of = |key: &ResourceKey, before: Option<&Value>, after: Option<&Value>| {
        if diffs {
            unified_diff(key, before, after)
        } else {
            String::new()
        }
    };
    let (live, record) = (&snap.live, &snap.record);
    let recorded: BTreeMap<&str, &KubeEntry> = record
        .inventory
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    let mut plan = Plan {
        revision,
        prune,
        ..Plan::default()
    };
    let mut to_check = Vec::new();
    let desired_keys: BTreeSet<ResourceKey> = desired.keys().cloned().collect();
    for r in desired.into_iter().filter(|r| r.key.kind.is_applied()) {
        let (key, origin) = (r.key.clone(), r.origin.to_string());
        let send = to_kube_owned(r, opts);
        let fp = short_fp(&send);
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
            plan.unchanged.push(key);
        } else {
            let appliers = l.map(|l| l.appliers.clone()).unwrap_or_default();
            to_check.push((key, send, fp, origin, appliers));
        }
    }
    let keys: Vec<&ResourceKey> = to_check.iter().map(|i| &i.0).collect();
    ensure_namespaces(client, opts, &keys).await?;
    let mut conflicts = Vec::new();
    let mut extra = Extra::default();
    let dries = dry_runs(client, opts, to_check, force_conflicts);
    futures::pin_mut!(dries);
    while let Some(d) = dries.next().await {
        if d.forced {
            extra.forced.insert(d.key.clone());
        }
        let after = match d.result {
            Ok(v) => v,
            Err(e) => {
                conflicts.push(format!("{} ({}): {e:#}", d.key, d.origin));
                continue;
            }
        };
        let entry = recorded.get(Inventory::id(&d.key).as_str());
        let l = live.get(&d.key);
        // Drift: ward applied this content before, and the object is no longer what ward left.
        let drifted = entry.is_some_and(|e| e.fp == d.fp)
            && l.is_none_or(|l| &after != l.normalized.object());
        if drifted {
            plan.drifted.push(d.key.clone());
        }
        let (action, before) = match l {
            None => (Action::Create, None),
            Some(l) if l.normalized.object() == &after => {
                extra
                    .refresh
                    .insert(Inventory::id(&d.key), (l.marker.clone(), d.fp.clone()));
                plan.unchanged.push(d.key);
                continue;
            }
            Some(l) => (Action::Update, Some(l.normalized.object().clone())),
        };
        let diff = diff_of(&d.key, before.as_ref(), Some(&after));
        let change = Change {
            key: d.key,
            action,
            before,
            after: Some(d.send),
            after_fingerprint: Some(d.fp),
            diff,
            origin: Some(d.origin),
            drifted,
        };
        if action == Action::Create {
            plan.creates.push(change)
        } else {
            plan.updates.push(change)
        }
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
        if drifted {
            plan.drifted.push(key.clone());
        }
        let before = l.normalized.object();
        let diff = diff_of(&key, Some(before), None);
        plan.deletes.push(Change {
            key,
            action: Action::Delete,
            before: Some(before.clone()),
            after: None,
            after_fingerprint: None,
            diff,
            origin: None,
            drifted,
        });
    }
    for list in [&mut plan.creates, &mut plan.updates, &mut plan.deletes] {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
    plan.unchanged.sort();
    plan.drifted.sort();
    Ok((plan, extra))
}

/// One object to dry-run: key, body, fingerprint, origin, and the other managers that own
/// fields of the live object through their own server-side apply.
type DryItem = (ResourceKey, Value, String, String, Vec<String>);

/// Server-side dry runs of `items`, [`CONCURRENCY`] at a time, yielded as they complete
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
        .buffer_unordered(CONCURRENCY)
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
    let mut answer = api.patch(&key.name, &pp, &Patch::Apply(&send)).await;
    if let Err(kube::Error::Api(st)) = &answer {
        let declared = appliers
            .iter()
            .any(|m| st.message.contains(&format!("conflict with \"{m}\"")));
        if st.code == 409 && !declared {
            forced = true;
            answer = api
                .patch(&key.name, &pp.clone().force(), &Patch::Apply(&send))
                .await;
        }
    }
    let result = answer
        .map_err(|e| api_error(e, "dry run"))
        .and_then(|o| Ok(serde_json::to_value(o)?))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), send["apiVersion"].clone());
                o.insert("kind".into(), send["kind"].clone());
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

async fn apply(
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
            (Action::Delete, _) => match api.delete(&c.key.name, &DeleteParams::default()).await {
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
                    &c.key.name,
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
            rec.last_applied_at = Some(super::local::now_rfc3339());
            for e in &mut rec.inventory {
                if let Some((seen, fp)) = extra.refresh.get(&e.id) {
                    e.seen = seen.clone();
                    e.fp = fp.clone();
                }
            }
            write_record(client, &opts.sync, &rec).await?;
            Ok(report)
        }
    }
}

/// Fails (before any write) when a namespace an object needs does not exist.
async fn ensure_namespaces(
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
            metadata_holds(
                &live(json!({"metadata": {"labels": {"a": "1", "other": "x"}}})),
                &want
            ),
            "others may add labels"
        );
        assert!(!metadata_holds(
            &live(json!({"metadata": {"labels": {"a": "2"}}})),
            &want
        ));
        assert!(!metadata_holds(&live(json!({"metadata": {}})), &want));
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
