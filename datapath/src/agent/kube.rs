//! Kube mode: the agent's view of the cluster from the API server instead of a topology file
//! and a state directory.
//!
//! Watches (kube-runtime reflectors, relisting with backoff after errors) keep ten caches:
//! Nodes, Pods, Namespaces, CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies,
//! Kubernetes NetworkPolicies, CiliumCIDRGroups, the ConfigMaps ward stores the
//! CiliumConfig in (label `app.kubernetes.io/managed-by: ward`, key
//! `cilium-config.yaml`, in the config namespace), Services and EndpointSlices. From them:
//! - [`KubeSource::topology`]: nodes (InternalIP, podCIDR, labels), namespaces (labels), pods
//!   (labels, IPv4 address, node, named container ports) and ClusterIP services (cluster IPs,
//!   TCP and UDP ports, selector, or the ready addresses of their EndpointSlices) in the
//!   engine's terms; pods that have finished, share their node's network or have no address
//!   yet are left out.
//! - [`KubeSource::desired`]: the policies, the CIDR groups and the CiliumConfig as a
//!   [`ResourceSet`]. A config
//!   map that does not yield a valid CiliumConfig is reported, never read as "encryption off".
//! - [`NodeAnnotations`]: the WireGuard records of every node, published on the node's own
//!   Node object: `network.cilium.io/wg-pub-key` (the public key, as Cilium publishes it) and
//!   `ward.dev/wireguard` (the whole record, for ward's make-before-break rotation). A node with
//!   only Cilium's annotation is a peer with that key at its InternalIP and port 51871.
//!
//! Every watch event calls the agent back with what kind of object changed; the agent reads
//! the caches (never the API) when it syncs, so a sync costs no round trip.

use crate::wireguard::registry::{NodeRecord, Records};
use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use ward_engine::Protocol;
use ward_schema::model::WIREGUARD_DEFAULT_PORT;
use ward_schema::topology::{
    Ipv4Net, NodeSpec, PodSpec, PortSpec, ServicePortSpec, ServiceSpec, TargetPort, Topology,
    WorldSpec,
};
use ward_schema::{Kind, Limits, Origin, Resource, ResourceKey, ResourceSet, load_file};

/// The Node annotation with the node's WireGuard public key (Cilium's name).
pub const WG_PUB_KEY_ANNOTATION: &str = "network.cilium.io/wg-pub-key";
/// The Node annotation with ward's whole WireGuard record (JSON).
pub const WG_RECORD_ANNOTATION: &str = "ward.dev/wireguard";
pub use ward_schema::store::CONFIG_MAP_KEY;
/// The label selecting the ConfigMaps that hold a CiliumConfig.
pub const CONFIG_MAP_SELECTOR: &str = "app.kubernetes.io/managed-by=ward";
/// How long the agent waits for the first complete listing of every watched kind.
const INITIAL_SYNC: Duration = Duration::from_secs(60);
/// How long one write to the API server (a Node annotation) may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Records larger than this are ignored (a record is a few hundred bytes).
const MAX_RECORD: usize = 64 * 1024;

/// How to reach the API server.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// A kubeconfig file; without one (and no context), the pod's service account, else
    /// `KUBECONFIG` or `~/.kube/config` as kubectl does.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig.
    pub context: Option<String>,
    /// The namespace of the ConfigMap that holds the CiliumConfig.
    pub config_namespace: String,
}

/// The kind of object a watch event was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// A Node (addresses, labels, WireGuard annotations).
    Nodes,
    /// A Pod.
    Pods,
    /// A Namespace (labels).
    Namespaces,
    /// A Service or an EndpointSlice.
    Services,
    /// A CNP or CCNP.
    Policies,
    /// The CiliumConfig's ConfigMap.
    Config,
}

/// The cluster as the watches last saw it.
pub struct KubeSource {
    rt: Arc<tokio::runtime::Runtime>,
    client: Client,
    server: String,
    caches: Caches,
}

#[derive(Clone)]
struct Caches {
    nodes: Store<Node>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    cnps: Store<DynamicObject>,
    ccnps: Store<DynamicObject>,
    knps: Store<DynamicObject>,
    cidr_groups: Store<DynamicObject>,
    configs: Store<ConfigMap>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
}

/// The desired state read from the caches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeDesired {
    /// The policies and the CiliumConfig.
    pub resources: ResourceSet,
    /// Why a CiliumConfig ConfigMap could not be read (the agent then fails closed).
    pub config_problem: Option<String>,
}

impl KubeSource {
    /// Connects as kubectl would, starts the watches and waits (up to a minute) until each has
    /// listed its objects once. `on_change` is called from the watch tasks on every event.
    pub fn connect(
        opts: &KubeOptions,
        on_change: impl Fn(Watched) + Send + Sync + 'static,
    ) -> Result<KubeSource> {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("ward-kube")
                .enable_all()
                .build()?,
        );
        let config = rt.block_on(client_config(
            opts.kubeconfig.as_deref(),
            opts.context.as_deref(),
        ))?;
        let server = config.cluster_url.to_string();
        let client = rt
            .block_on(async { Client::try_from(config) })
            .context("cannot build a Kubernetes client")?;
        let on_change: Arc<dyn Fn(Watched) + Send + Sync> = Arc::new(on_change);
        let caches = {
            let _guard = rt.enter();
            Caches {
                nodes: watch(
                    Api::all(client.clone()),
                    (),
                    watcher::Config::default(),
                    Watched::Nodes,
                    &on_change,
                ),
                pods: watch(
                    Api::all(client.clone()),
                    (),
                    watcher::Config::default(),
                    Watched::Pods,
                    &on_change,
                ),
                namespaces: watch(
                    Api::all(client.clone()),
                    (),
                    watcher::Config::default(),
                    Watched::Namespaces,
                    &on_change,
                ),
                cnps: watch_policies(&client, Kind::CiliumNetworkPolicy, &on_change),
                ccnps: watch_policies(&client, Kind::CiliumClusterwideNetworkPolicy, &on_change),
                knps: watch_policies(&client, Kind::NetworkPolicy, &on_change),
                cidr_groups: watch_policies(&client, Kind::CiliumCIDRGroup, &on_change),
                configs: watch(
                    Api::namespaced(client.clone(), &opts.config_namespace),
                    (),
                    watcher::Config::default().labels(CONFIG_MAP_SELECTOR),
                    Watched::Config,
                    &on_change,
                ),
                services: watch(
                    Api::all(client.clone()),
                    (),
                    watcher::Config::default(),
                    Watched::Services,
                    &on_change,
                ),
                slices: watch(
                    Api::all(client.clone()),
                    (),
                    watcher::Config::default(),
                    Watched::Services,
                    &on_change,
                ),
            }
        };
        let source = KubeSource {
            rt,
            client,
            server,
            caches,
        };
        source.wait_listed()?;
        Ok(source)
    }

    /// The API server's address.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn wait_listed(&self) -> Result<()> {
        let c = self.caches.clone();
        let waited = self.rt.block_on(async move {
            tokio::time::timeout(INITIAL_SYNC, async {
                for (what, ready) in [
                    ("nodes", c.nodes.wait_until_ready().await),
                    ("pods", c.pods.wait_until_ready().await),
                    ("namespaces", c.namespaces.wait_until_ready().await),
                    ("ciliumnetworkpolicies", c.cnps.wait_until_ready().await),
                    (
                        "ciliumclusterwidenetworkpolicies",
                        c.ccnps.wait_until_ready().await,
                    ),
                    ("networkpolicies", c.knps.wait_until_ready().await),
                    ("ciliumcidrgroups", c.cidr_groups.wait_until_ready().await),
                    ("configmaps", c.configs.wait_until_ready().await),
                    ("services", c.services.wait_until_ready().await),
                    ("endpointslices", c.slices.wait_until_ready().await),
                ] {
                    ready.map_err(|_| anyhow!("the watch of {what} stopped"))?;
                }
                Ok::<(), anyhow::Error>(())
            })
            .await
        });
        waited.map_err(|_| {
            anyhow!(
                "the API server at {} did not list nodes, pods, namespaces, CNPs, CCNPs, NetworkPolicies, CiliumCIDRGroups, ConfigMaps, Services and EndpointSlices within {}s; check the address, the credentials, the agent's RBAC (reconciler/deploy/agent.yaml) and that the Cilium CRDs are installed",
                self.server,
                INITIAL_SYNC.as_secs()
            )
        })?
    }

    /// Nodes, namespaces and pods in the engine's terms (see the module documentation).
    pub fn topology(&self) -> Topology {
        let mut nodes: Vec<NodeSpec> = self
            .caches
            .nodes
            .state()
            .iter()
            .filter_map(|n| node_spec(n))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let namespaces = self
            .caches
            .namespaces
            .state()
            .iter()
            .filter_map(|ns| {
                Some((
                    ns.metadata.name.clone()?,
                    ns.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let pods = pod_specs(&self.caches.pods.state(), &nodes);
        Topology {
            name: "kube".into(),
            source: self.server.clone(),
            underlay: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0)
                .unwrap_or_else(|| unreachable!("0.0.0.0/0 is a network")),
            namespaces,
            nodes,
            world: WorldSpec {
                name: "world".into(),
                ip: Ipv4Addr::UNSPECIFIED,
                addresses: Vec::new(),
                addresses6: Vec::new(),
                ipv6: Vec::new(),
            },
            pods,
            ipv6: None,
            services: service_specs(&self.caches.services.state(), &self.caches.slices.state()),
        }
    }

    /// The CNPs, CCNPs, NetworkPolicies, CIDR groups and the CiliumConfig.
    pub fn desired(&self) -> KubeDesired {
        let mut out = KubeDesired::default();
        for (kind, store) in [
            (Kind::CiliumNetworkPolicy, &self.caches.cnps),
            (Kind::CiliumClusterwideNetworkPolicy, &self.caches.ccnps),
            (Kind::NetworkPolicy, &self.caches.knps),
            (Kind::CiliumCIDRGroup, &self.caches.cidr_groups),
        ] {
            for o in store.state() {
                if let Some(r) = policy_resource(kind, &o) {
                    out.resources.insert(r);
                }
            }
        }
        let mut configs = self.caches.configs.state();
        configs.sort_by_key(|c| c.metadata.name.clone());
        for cm in configs {
            match config_resource(&cm) {
                Ok(Some(r)) => {
                    out.resources.insert(r);
                }
                Ok(None) => {}
                Err(e) => out.config_problem = Some(e),
            }
        }
        out
    }

    /// The WireGuard records on the Node objects, for the mesh.
    pub fn records(&self) -> NodeAnnotations {
        NodeAnnotations {
            rt: Arc::clone(&self.rt),
            nodes: Api::all(self.client.clone()),
            cache: self.caches.nodes.clone(),
        }
    }
}

/// The client configuration kubectl would use with `--kubeconfig` and `--context`: neither
/// given, the pod's service account when there is one, else `KUBECONFIG` or `~/.kube/config`.
/// (The reconciler's kube target connects the same way, with its own copy: `ward` without
/// the node feature does not link this crate.)
pub async fn client_config(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<Config> {
    let kopts = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    match kubeconfig {
        None if context.is_none() => Config::infer()
            .await
            .context("no in-cluster service account and no usable kubeconfig; pass --kubeconfig"),
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &kopts)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))
        }
        None => Config::from_kubeconfig(&kopts)
            .await
            .context("no usable kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig"),
    }
}

/// Starts a reflector for `api` on the current runtime and returns its cache; `on_change` is
/// called on every change and when a (re)listing completes.
fn watch<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    cfg: watcher::Config,
    what: Watched,
    on_change: &Arc<dyn Fn(Watched) + Send + Sync>,
) -> Store<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    let on_change = Arc::clone(on_change);
    let stream = watcher(api, cfg).default_backoff().reflect(writer);
    let hint = if what == Watched::Policies {
        " (are the Cilium CRDs installed?)"
    } else {
        ""
    };
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) => on_change(what),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(kind = ?what, "watch failed, retrying with backoff{hint}: {e}")
                }
            }
        }
    });
    reader
}

/// A reflector for one kind the policy engine reads, at the version ward writes it.
fn watch_policies(
    client: &Client,
    kind: Kind,
    on_change: &Arc<dyn Fn(Watched) + Send + Sync>,
) -> Store<DynamicObject> {
    let (group, version) = kind
        .api_version()
        .split_once('/')
        .unwrap_or(("", kind.api_version()));
    let plural = match kind {
        Kind::CiliumNetworkPolicy => "ciliumnetworkpolicies",
        Kind::CiliumClusterwideNetworkPolicy => "ciliumclusterwidenetworkpolicies",
        Kind::NetworkPolicy => "networkpolicies",
        _ => "ciliumcidrgroups",
    };
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.as_str()),
        plural,
    );
    watch(
        Api::all_with(client.clone(), &ar),
        ar.clone(),
        watcher::Config::default(),
        Watched::Policies,
        on_change,
    )
}

/// A node with an IPv4 InternalIP and an IPv4 pod CIDR; others cannot take part. A
/// dual-stack node's IPv6 InternalIP comes along.
fn node_spec(n: &Node) -> Option<NodeSpec> {
    let name = n.metadata.name.clone()?;
    let ip = node_ip(n);
    let spec = n.spec.as_ref();
    let cidr = spec.and_then(|s| {
        s.pod_cidrs
            .iter()
            .flatten()
            .chain(s.pod_cidr.iter())
            .find_map(|c| c.parse::<Ipv4Net>().ok())
    });
    match (ip, cidr) {
        (Some(ip), Some(pod_cidr)) => Some(NodeSpec {
            name,
            ip,
            pod_cidr,
            ipv6: node_address(n),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            // The API server does not say which nodes run an agent: every node counts.
            agent: true,
        }),
        _ => {
            tracing::debug!(node = %name, "node left out: it has no IPv4 InternalIP or no IPv4 pod CIDR yet");
            None
        }
    }
}

/// The node's first IPv4 InternalIP.
fn node_ip(n: &Node) -> Option<Ipv4Addr> {
    node_address(n)
}

/// The node's first InternalIP of the family asked for.
fn node_address<A: std::str::FromStr>(n: &Node) -> Option<A> {
    n.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The pods that are endpoints: running on a known node, with their own IPv4 address. When
/// two pods claim one address (a pod that is going away and its replacement), the newer wins.
fn pod_specs(pods: &[Arc<Pod>], nodes: &[NodeSpec]) -> Vec<PodSpec> {
    let mut by_ip: BTreeMap<Ipv4Addr, (Option<k8s_openapi::jiff::Timestamp>, PodSpec)> =
        BTreeMap::new();
    for p in pods {
        let Some(spec) = pod_spec(p).filter(|s| nodes.iter().any(|n| n.name == s.node)) else {
            continue;
        };
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        match by_ip.get(&spec.ip) {
            Some((other, _)) if *other > created => {}
            _ => {
                by_ip.insert(spec.ip, (created, spec));
            }
        }
    }
    let mut out: Vec<PodSpec> = by_ip.into_values().map(|(_, s)| s).collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// The services with an IPv4 cluster IP (headless ones and IPv6-only ones are left out), with
/// their TCP and UDP ports. A service with a selector finds its backends among the pods (as
/// its EndpointSlices would list them); one without takes the ready addresses of the
/// EndpointSlices labelled with its name (`kubernetes.io/service-name`).
fn service_specs(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Vec<ServiceSpec> {
    let mut out: Vec<ServiceSpec> = services
        .iter()
        .filter_map(|s| service_spec(s, slices))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn service_spec(s: &Service, slices: &[Arc<EndpointSlice>]) -> Option<ServiceSpec> {
    let name = s.metadata.name.clone()?;
    let namespace = s.metadata.namespace.clone()?;
    let spec = s.spec.as_ref()?;
    let ips: Vec<&str> = spec
        .cluster_ips
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(spec.cluster_ip.as_deref())
        .collect();
    let ip = ips.iter().find_map(|i| i.parse::<Ipv4Addr>().ok())?;
    let ipv6 = ips
        .iter()
        .find_map(|i| i.parse::<std::net::Ipv6Addr>().ok());
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))
                .filter(|p| *p == Protocol::TCP || *p == Protocol::UDP)?;
            let port = u16::try_from(p.port).ok()?;
            let target_port = match &p.target_port {
                None => TargetPort::Number(port),
                Some(IntOrString::Int(n)) => TargetPort::Number(u16::try_from(*n).ok()?),
                Some(IntOrString::String(n)) => TargetPort::Name(n.clone()),
            };
            Some(ServicePortSpec {
                name: p.name.clone(),
                port,
                target_port,
                protocol,
            })
        })
        .collect();
    let selector = spec.selector.clone().filter(|s| !s.is_empty());
    let (mut backends, mut backends6) = (Vec::new(), Vec::new());
    if selector.is_none() {
        for slice in slices.iter().filter(|sl| {
            sl.metadata.namespace.as_deref() == Some(namespace.as_str())
                && sl
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    == Some(&name)
        }) {
            for e in slice
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            {
                for a in &e.addresses {
                    match a.parse::<std::net::IpAddr>() {
                        Ok(std::net::IpAddr::V4(v4)) if !backends.contains(&v4) => {
                            backends.push(v4)
                        }
                        Ok(std::net::IpAddr::V6(v6)) if !backends6.contains(&v6) => {
                            backends6.push(v6)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Some(ServiceSpec {
        name,
        namespace,
        labels: s.metadata.labels.clone().unwrap_or_default(),
        ip,
        ipv6,
        ports,
        selector,
        backends,
        backends6,
    })
}

fn pod_spec(p: &Pod) -> Option<PodSpec> {
    let spec = p.spec.as_ref()?;
    let status = p.status.as_ref()?;
    if spec.host_network == Some(true)
        || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    let addresses = || {
        status
            .pod_ips
            .iter()
            .flatten()
            .map(|i| i.ip.as_str())
            .chain(status.pod_ip.as_deref())
    };
    let ip = addresses().find_map(|i| i.parse::<Ipv4Addr>().ok())?;
    let ipv6 = addresses().find_map(|i| i.parse::<std::net::Ipv6Addr>().ok());
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|cp| {
            Some(PortSpec {
                name: cp.name.clone(),
                port: u16::try_from(cp.container_port).ok()?,
                protocol: Protocol::parse(cp.protocol.as_deref().unwrap_or("TCP"))?,
            })
        })
        .collect();
    Some(PodSpec {
        name: p.metadata.name.clone()?,
        namespace: p.metadata.namespace.clone()?,
        labels: p.metadata.labels.clone().unwrap_or_default(),
        ip,
        ipv6,
        node: spec.node_name.clone()?,
        ports,
        service_account: spec.service_account_name.clone(),
    })
}

/// A policy or CIDR group as the engine reads it: apiVersion, kind, name, namespace, labels
/// and spec(s); server-side fields (managedFields, status, resourceVersion...) are left out.
fn policy_resource(kind: Kind, o: &DynamicObject) -> Option<Resource> {
    let name = o.metadata.name.clone()?;
    let namespace = o.metadata.namespace.clone();
    let mut metadata = json!({"name": name});
    if let Some(ns) = &namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(labels) = &o.metadata.labels {
        metadata["labels"] = json!(labels);
    }
    let mut object =
        json!({"apiVersion": kind.api_version(), "kind": kind.as_str(), "metadata": metadata});
    for field in ["spec", "specs"] {
        if let Some(v) = o.data.get(field) {
            object[field] = v.clone();
        }
    }
    let file = format!(
        "{}/{}",
        kind.as_str(),
        namespace
            .as_deref()
            .map_or(name.clone(), |ns| format!("{ns}/{name}"))
    );
    Some(Resource {
        key: ResourceKey::new(kind, namespace.as_deref(), &name),
        object,
        origin: Origin {
            file,
            line: 1,
            document: 0,
            item_lines: Vec::new(),
        },
    })
}

/// The CiliumConfig in a ward ConfigMap; `Ok(None)` for a map without the key, `Err` when the
/// document is not a valid CiliumConfig (the message names the map and the first problem).
fn config_resource(cm: &ConfigMap) -> Result<Option<Resource>, String> {
    let where_ = format!(
        "ConfigMap {}/{}",
        cm.metadata.namespace.as_deref().unwrap_or(""),
        cm.metadata.name.as_deref().unwrap_or("")
    );
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(CONFIG_MAP_KEY)) else {
        return Ok(None);
    };
    let report = load_file(
        &format!("{where_} key {CONFIG_MAP_KEY}"),
        text.as_bytes(),
        &Limits::default(),
    );
    let problem = report
        .findings
        .iter()
        .map(|(d, _)| d)
        .find(|d| d.is_error());
    match (
        report
            .resources
            .into_iter()
            .find(|r| r.key.kind == Kind::CiliumConfig),
        problem,
    ) {
        (Some(r), None) => Ok(Some(r)),
        (_, Some(d)) => Err(format!("{where_} does not hold a valid CiliumConfig: {d}")),
        (None, None) => Err(format!(
            "{where_}: key {CONFIG_MAP_KEY} holds no CiliumConfig"
        )),
    }
}

/// The WireGuard records on Node objects (see the module documentation).
pub struct NodeAnnotations {
    rt: Arc<tokio::runtime::Runtime>,
    nodes: Api<Node>,
    cache: Store<Node>,
}

impl NodeAnnotations {
    fn patch(&self, node: &str, annotations: Value) -> Result<()> {
        let api = self.nodes.clone();
        let node = node.to_owned();
        let patch = json!({"metadata": {"annotations": annotations}});
        self.rt
            .block_on(
                async move { tokio::time::timeout(WRITE_TIMEOUT, api.patch(&node, &PatchParams::default(), &Patch::Merge(&patch))).await },
            )
            .map_err(|_| anyhow!("the API server did not answer within {}s", WRITE_TIMEOUT.as_secs()))?
            .map(|_| ())
            .context("cannot annotate the Node (does the agent's service account have `patch` on nodes?)")
    }
}

/// The record a Node carries, if any.
pub fn node_record(n: &Node) -> Option<NodeRecord> {
    let name = n.metadata.name.clone()?;
    let annotations = n.metadata.annotations.as_ref()?;
    if let Some(text) = annotations.get(WG_RECORD_ANNOTATION) {
        if text.len() > MAX_RECORD {
            tracing::warn!(node = %name, "WireGuard record annotation too large; ignored");
            return None;
        }
        match serde_json::from_str::<NodeRecord>(text) {
            Ok(r) if r.node == name => return Some(r),
            Ok(r) => {
                tracing::warn!(node = %name, names = %r.node, "WireGuard record names another node; ignored")
            }
            Err(e) => tracing::warn!(node = %name, "WireGuard record annotation ignored: {e}"),
        }
        return None;
    }
    let key = annotations.get(WG_PUB_KEY_ANNOTATION)?;
    let ip = node_ip(n)?;
    Some(NodeRecord {
        node: name,
        public_key: key.clone(),
        next_public_key: None,
        endpoint: SocketAddr::from((ip, WIREGUARD_DEFAULT_PORT)),
        prepared: BTreeMap::new(),
        rotations: 0,
    })
}

impl Records for NodeAnnotations {
    fn read_all(&self) -> BTreeMap<String, NodeRecord> {
        self.cache
            .state()
            .iter()
            .filter_map(|n| node_record(n))
            .map(|r| (r.node.clone(), r))
            .collect()
    }

    fn publish(&self, record: &NodeRecord) -> Result<bool> {
        let current = self
            .cache
            .get(&ObjectRef::new(&record.node))
            .and_then(|n| node_record(&n));
        if current.as_ref() == Some(record) {
            return Ok(false);
        }
        let text = serde_json::to_string(record)?;
        self.patch(
            &record.node,
            json!({WG_PUB_KEY_ANNOTATION: record.public_key, WG_RECORD_ANNOTATION: text}),
        )?;
        Ok(true)
    }

    fn unpublish(&self, node: &str) -> Result<()> {
        let present = self
            .cache
            .get(&ObjectRef::new(node))
            .and_then(|n| n.metadata.annotations.clone())
            .is_some_and(|a| {
                a.contains_key(WG_PUB_KEY_ANNOTATION) || a.contains_key(WG_RECORD_ANNOTATION)
            });
        if present {
            self.patch(
                node,
                json!({WG_PUB_KEY_ANNOTATION: null, WG_RECORD_ANNOTATION: null}),
            )
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, cidr: Option<&str>, annotations: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"zone": "a"}, "annotations": annotations},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    fn pod(ns: &str, name: &str, node: &str, ip: Option<&str>, extra: Value) -> Arc<Pod> {
        let mut p = json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": ip}
        });
        merge(&mut p, extra);
        Arc::new(serde_json::from_value(p).unwrap())
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn nodes_need_an_internal_ip_and_a_pod_cidr() {
        let n = node_spec(&node("n1", "172.30.0.11", Some("10.0.1.0/24"), json!({}))).unwrap();
        assert_eq!(
            (
                n.ip.to_string(),
                n.pod_cidr.to_string(),
                n.labels["zone"].as_str()
            ),
            ("172.30.0.11".into(), "10.0.1.0/24".into(), "a")
        );
        assert!(node_spec(&node("n2", "172.30.0.12", None, json!({}))).is_none());
        assert!(node_spec(&node("n3", "fd00::1", Some("10.0.3.0/24"), json!({}))).is_none());
    }

    /// A dual-stack pod's IPv6 `podIPs` entry and a dual-stack node's IPv6 InternalIP come
    /// along with the IPv4 ones; a single-stack pod has none.
    #[test]
    fn dual_stack_pods_and_nodes_keep_their_ipv6_address() {
        let mut n = node("n1", "172.30.0.11", Some("10.0.1.0/24"), json!({}));
        if let Some(status) = n.status.as_mut() {
            status.addresses.get_or_insert_with(Vec::new).push(
                serde_json::from_value(json!({"type": "InternalIP", "address": "fd00::11"}))
                    .unwrap(),
            );
        }
        let nodes = vec![node_spec(&n).unwrap()];
        assert_eq!(nodes[0].ipv6, Some("fd00::11".parse().unwrap()));
        let pods = vec![
            pod(
                "shop",
                "web",
                "n1",
                Some("10.0.1.5"),
                json!({"status": {"podIPs": [{"ip": "10.0.1.5"}, {"ip": "fd00:1::5"}]}}),
            ),
            pod("shop", "v4", "n1", Some("10.0.1.6"), json!({})),
        ];
        let specs = pod_specs(&pods, &nodes);
        let web = specs.iter().find(|p| p.name == "web").unwrap();
        assert_eq!(web.ip.to_string(), "10.0.1.5");
        assert_eq!(web.ipv6, Some("fd00:1::5".parse().unwrap()));
        assert!(
            specs
                .iter()
                .find(|p| p.name == "v4")
                .unwrap()
                .ipv6
                .is_none()
        );
    }

    #[test]
    fn pods_become_endpoints_with_named_ports() {
        let nodes =
            vec![node_spec(&node("n1", "172.30.0.11", Some("10.0.1.0/24"), json!({}))).unwrap()];
        let pods = vec![
            pod("shop", "web", "n1", Some("10.0.1.5"), json!({})),
            pod("shop", "pending", "n1", None, json!({})),
            pod(
                "shop",
                "done",
                "n1",
                Some("10.0.1.6"),
                json!({"status": {"phase": "Succeeded"}}),
            ),
            pod(
                "shop",
                "host",
                "n1",
                Some("172.30.0.11"),
                json!({"spec": {"hostNetwork": true}}),
            ),
            pod("shop", "elsewhere", "n9", Some("10.0.9.5"), json!({})),
            pod("shop", "old", "n1", Some("10.0.1.7"), json!({})),
            pod(
                "shop",
                "new",
                "n1",
                Some("10.0.1.7"),
                json!({"metadata": {"creationTimestamp": "2026-01-02T00:00:00Z"}}),
            ),
        ];
        let specs = pod_specs(&pods, &nodes);
        let names: Vec<&str> = specs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["new", "web"]);
        let web = &specs[1];
        assert_eq!(web.ports.len(), 2);
        assert_eq!(web.ports[0].name.as_deref(), Some("http"));
        assert_eq!(web.ports[1].protocol, Protocol::parse("UDP").unwrap());
    }

    #[test]
    fn records_come_from_ward_or_cilium_annotations() {
        let rec = NodeRecord {
            node: "n1".into(),
            public_key: "A=".into(),
            next_public_key: Some("B=".into()),
            endpoint: "172.30.0.11:51871".parse().unwrap(),
            prepared: BTreeMap::new(),
            rotations: 3,
        };
        let n = node(
            "n1",
            "172.30.0.11",
            Some("10.0.1.0/24"),
            json!({WG_RECORD_ANNOTATION: serde_json::to_string(&rec).unwrap(), WG_PUB_KEY_ANNOTATION: "A="}),
        );
        assert_eq!(node_record(&n), Some(rec.clone()));
        let cilium = node(
            "n2",
            "172.30.0.12",
            Some("10.0.2.0/24"),
            json!({WG_PUB_KEY_ANNOTATION: "C="}),
        );
        let r = node_record(&cilium).unwrap();
        assert_eq!(
            (r.public_key.as_str(), r.endpoint.to_string()),
            ("C=", "172.30.0.12:51871".into())
        );
        let liar = node(
            "n3",
            "172.30.0.13",
            Some("10.0.3.0/24"),
            json!({WG_RECORD_ANNOTATION: serde_json::to_string(&rec).unwrap()}),
        );
        assert_eq!(
            node_record(&liar),
            None,
            "a record naming another node is ignored"
        );
        let junk = node(
            "n4",
            "172.30.0.14",
            Some("10.0.4.0/24"),
            json!({WG_RECORD_ANNOTATION: "{"}),
        );
        assert_eq!(node_record(&junk), None);
    }

    #[test]
    fn config_maps_yield_a_config_or_a_problem() {
        let cm = |text: &str| -> ConfigMap {
            serde_json::from_value(
                json!({"metadata": {"name": "cilium-config", "namespace": "kube-system"}, "data": {CONFIG_MAP_KEY: text}}),
            )
            .unwrap()
        };
        let good = "apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata:\n  name: cilium-config\nspec:\n  enable-encryption: true\n  encryption:\n    type: wireguard\n";
        assert_eq!(
            config_resource(&cm(good)).unwrap().unwrap().key.kind,
            Kind::CiliumConfig
        );
        let bad =
            config_resource(&cm("apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata:\n  name: x\nspec:\n  enable-encryption: [\n"))
                .unwrap_err();
        assert!(
            bad.contains("ConfigMap kube-system/cilium-config does not hold a valid CiliumConfig"),
            "{bad}"
        );
        let none: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "other", "namespace": "kube-system"}, "data": {"x": "y"}}),
        )
        .unwrap();
        assert_eq!(config_resource(&none), Ok(None));
    }

    #[test]
    fn policies_drop_server_fields() {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "shop", "resourceVersion": "7", "managedFields": [{"manager": "ward"}]},
            "spec": {"endpointSelector": {}}, "status": {"conditions": []}
        }))
        .unwrap();
        let r = policy_resource(Kind::CiliumNetworkPolicy, &o).unwrap();
        assert_eq!(
            r.object,
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "shop"}, "spec": {"endpointSelector": {}}})
        );
        assert_eq!(
            r.key,
            ResourceKey::new(Kind::CiliumNetworkPolicy, Some("shop"), "p")
        );
        let knp: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "n", "namespace": "shop", "generation": 2},
            "spec": {"podSelector": {}}
        }))
        .unwrap();
        let r = policy_resource(Kind::NetworkPolicy, &knp).unwrap();
        assert_eq!(
            r.object,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n", "namespace": "shop"}, "spec": {"podSelector": {}}})
        );
        let group: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
            "metadata": {"name": "office", "labels": {"site": "hq"}},
            "spec": {"externalCIDRs": ["192.0.2.0/24"]}
        }))
        .unwrap();
        let r = policy_resource(Kind::CiliumCIDRGroup, &group).unwrap();
        assert_eq!(
            r.key,
            ResourceKey::new(Kind::CiliumCIDRGroup, None, "office")
        );
        assert_eq!(r.object["metadata"]["labels"], json!({"site": "hq"}));
    }
}
