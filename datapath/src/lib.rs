//! ward's node datapath.
//!
//! [`engine`] is the pure policy engine (labels, identities, selectors, resolved policy,
//! verdicts with explanations): no I/O and no kernel dependencies, so the reconciler can use
//! it for `ward test` and connectivity diffs. The node side lives beside it and may depend on
//! the kernel: [`lab`] (network namespaces from a topology file), [`bpf`] (the eBPF programs,
//! their maps and the aya loader) and [`agent`] (`ward-agent`: engine to map entries). See
//! `DESIGN.md` in the repository's shared docs.

pub mod agent;
pub mod bpf;
pub mod engine;
pub mod lab;
pub mod wireguard;
