//! ward's node datapath.
//!
//! The pure policy engine (labels, identities, selectors, resolved policy, verdicts with
//! explanations) is its own crate, `ward-engine` (`datapath/engine/`): no I/O and no kernel
//! dependencies, so the reconciler uses it for `ward test` and connectivity diffs without
//! linking any of this crate. This crate is the node side, and may depend on the kernel: [`lab`] (network namespaces from a topology file), [`bpf`] (the eBPF programs,
//! their maps and the aya loader) and [`agent`] (`ward-agent`: engine to map entries). See
//! `DESIGN.md` in the repository's shared docs.

pub mod agent;
pub mod bpf;
pub mod lab;
pub mod wireguard;
