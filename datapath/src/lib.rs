//! ward's node datapath.
//!
//! The pure policy engine (labels, identities, selectors, resolved policy, verdicts with
//! explanations) is its own crate, `ward-engine` (`datapath/engine/`): no I/O and no kernel
//! dependencies, so the reconciler uses it for `ward test` and connectivity diffs without
//! linking any of this crate. This crate is the node side, and may depend on the kernel:
//! [`lab`] (network namespaces from a topology file), [`bpf`] (the eBPF programs, their maps
//! and the aya loader), [`agent`] (`ward-agent`: engine to map entries) and [`wireguard`].
//! The map of the whole workspace is ARCHITECTURE.md at the repository's root.

pub mod agent;
pub mod bpf;
pub mod lab;
pub mod wireguard;
