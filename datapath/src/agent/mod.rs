//! `ward-agent`: one per node. It turns the desired state (the local target's objects) and
//! the node's endpoints into BPF map entries with the engine, and writes only what changed.
//!
//! - [`desired`]: complete revisions read from the local target's state directory.
//! - [`kube`]: kube mode, the cluster and the desired state from the API server.
//! - [`repository`]: the engine's policy repository, kept between syncs and updated by the
//!   policies that changed.
//! - [`entries`]: the pure translation from resolved policy to map entries.
//! - [`sync`]: the difference between the maps and the wanted entries, applied in a safe order.
//! - [`run`]: attaching, reading the maps back after a restart, following the state directory.
//! - [`status`]: what a node's pinned maps hold.
//! - [`observe`]: the verdict events, named and filtered (`ward observe`).

pub mod desired;
pub mod dns;
pub mod entries;
pub mod kube;
pub mod observe;
pub mod repository;
pub mod run;
pub mod status;
pub mod sync;
