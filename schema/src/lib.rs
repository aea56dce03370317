//! ward-schema: the resource model and everything that decides whether a revision is valid.
//!
//! Pure: bytes in, typed resources and findings out. No I/O besides what the caller hands in
//! (and the directory walk of [`store`], over a folder the caller names).
//!
//! - [`yaml`]: bounded YAML loading with line and column for every value and key.
//! - [`envelope`]: apiVersion, kind and metadata.
//! - [`schemas`]: ward's JSON Schemas (`schema/json/`), one per Cilium release, compiled once.
//! - [`semantic`]: Cilium's own validation rules, with its messages.
//! - [`release`]: the Cilium releases ward validates for, and what differs between them.
//! - [`load`]: one file to resources and findings; many files to a [`load::Validation`].
//! - [`model`]: typed structs for the policy engine and the agents.
//! - [`policytest`]: the PolicyTest document, typed; [`topology`]: the lab topology.
//! - [`store`]: where ward's records live: the local target's state directory (objects,
//!   inventory, journal) and the ConfigMap key of the CiliumConfig.

pub mod diagnostic;
pub mod duration;
pub mod envelope;
pub mod labels;
pub mod load;
pub mod model;
pub mod policytest;
pub mod protocol;
pub mod release;
pub mod resource;
pub mod schemas;
pub mod semantic;
pub mod store;
pub mod topology;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{
    FileReport, LoadOptions, ResourceSet, Validation, assemble, load_file, load_file_with,
};
pub use release::CiliumVersion;
pub use resource::{Kind, Origin, Resource, ResourceKey};
pub use yaml::Limits;
