//! The policy engine: Cilium 1.19 network-policy semantics in pure Rust (no I/O, no kernel).
//!
//! The specification is `reference/cilium-semantics.md` §4 (fields in §2). The pieces:
//!
//! - [`labels`]: labels with sources and label sets; which labels are security-relevant.
//! - [`selector`]: compiled endpoint selectors (§4.4).
//! - [`scope`]: namespace and cluster scoping of CNP/CCNP selectors (§4.3).
//! - [`identity`]: reserved identities (§4.5), entities (§2), deterministic allocation.
//! - [`cidr`], [`ports`]: CIDR peers and layer 4 (ports, ranges, ANY, named ports, ICMP).
//! - [`cluster`]: the input world (nodes, namespaces, endpoints).
//! - [`groups`]: CiliumCIDRGroups, which `cidrGroupRef`/`cidrGroupSelector` resolve against.
//! - Kubernetes NetworkPolicies are translated into the same rules as Cilium does
//!   (`knp`), so the datapath gets them without knowing the kind.
//! - [`PolicyRepository`]: compiled policies and the resolved [`EndpointPolicy`] of every
//!   endpoint, updated incrementally; [`PolicyRepository::verdict`] decides a [`Flow`].
//!
//! ```
//! use ward_engine::{Cluster, Endpoint, EngineConfig, Flow, Peer, PolicyRepository, Verdict};
//! let mut cluster = Cluster::default();
//! for name in ["client", "echo"] {
//!     cluster.endpoints.push(Endpoint {
//!         name: name.into(),
//!         namespace: "demo".into(),
//!         labels: [("app".to_owned(), name.to_owned())].into(),
//!         ..Endpoint::default()
//!     });
//! }
//! let repo = PolicyRepository::new(cluster, EngineConfig::default()).expect("valid cluster");
//! let client = repo.endpoint_id("demo/client").expect("declared");
//! let echo = repo.endpoint_id("demo/echo").expect("declared");
//! let decision = repo.verdict(&Flow::tcp(Peer::Endpoint(client), Peer::Endpoint(echo), 80));
//! assert_eq!(decision.verdict, Verdict::Allow); // no policy selects either end
//! ```
//!
//! # What is not evaluated
//! `toServices`, `toFQDNs` and `fromGroups`/`toGroups` need a live cluster, DNS or a cloud
//! provider: they match nothing, and [`PolicyRepository::notes`] says so for each rule. CIDR
//! groups resolve against the CiliumCIDRGroups given with the policies ([`groups`]); a
//! reference to a group that is not there matches nothing and its note is
//! [`Note::unresolved`].
//! L7 rules count as their L4 allow in [`PolicyRepository::verdict`] (the decision is
//! flagged, [`DirectionDecision::l7_not_enforced`]), as the datapath sees them;
//! [`PolicyRepository::l7_verdict`] then decides an HTTP request or DNS query as Cilium's
//! proxies would (`l7`). Mutual authentication is not evaluated.

pub mod cidr;
pub mod cluster;
mod compile;
mod config;
mod fqdn;
pub mod groups;
pub mod identity;
mod index;
mod knp;
mod l7;
pub mod labels;
mod peers;
mod policy;
pub mod ports;
mod resolve;
mod rule;
pub mod scope;
mod select;
pub mod selector;
pub mod service;
mod verdict;
mod world;

pub use cluster::{Cluster, ClusterError, DnsAnswer, Endpoint, NamedPort, Node};
pub use config::{Enforcement, EngineConfig};
pub use fqdn::matches as fqdn_matches;
pub use groups::{CidrGroup, CidrGroups};
pub use identity::{Identity, IdentityAllocator};
pub use l7::{HttpRequest, L7Decision, L7Request, L7Verdict};
pub use labels::{Label, LabelSet};
pub use policy::{EngineError, PolicyRepository, Update};
pub use ports::{L4, Protocol};
pub use resolve::{EndpointPolicy, ExportedEntry, ExportedPeer};
pub use rule::{Direction, Note, RuleList, RuleRef, SpecRef};
pub use selector::Selector;
pub use service::{Backend, Service, ServicePort, TargetPort};
pub use verdict::{Decision, DirectionDecision, Flow, Peer, Reason, Verdict};
pub use world::{EndpointId, NodeId};
