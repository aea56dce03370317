//! ward's node datapath.
//!
//! The pure policy engine (labels, identities, selectors, resolved policy, verdicts with
//! explanations) is its own crate, `ward-engine` (`datapath/engine/`): no I/O and no kernel
//! dependencies, so the reconciler uses it for `ward test` and connectivity diffs without
//! linking any of this crate. This crate is the node side: [`sys`] is its one seam to the
//! kernel (network namespaces, links, addresses, routes, sysctls, mounts, the WireGuard
//! device), and above it [`bpf`] (the eBPF programs, their maps and the aya loader),
//! [`agent`] (`ward-agent`: engine to map entries), [`wireguard`] (the mesh and key rotation)
//! and [`lab`] (network namespaces from a topology file; test and demo infrastructure that
//! no production module imports). [`names`] are the lab's namespace and interface names.
//! The map of the whole workspace is ARCHITECTURE.md at the repository's root.

pub mod agent;
pub mod bpf;
pub mod lab;
pub mod names;
pub mod sys;
pub mod wireguard;

/// The DNS message types the lab's probes and the DNS proxy speak (response codes).
pub use hickory_proto;
