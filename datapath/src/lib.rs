//! ward's node datapath.
//!
//! This crate will hold the pure policy engine (labels, identities, selectors, verdicts) and,
//! behind a module boundary the reconciler does not pull in, the eBPF loader, the WireGuard
//! mesh and the `ward-agent` binary. See `DESIGN.md` in the repository's shared docs.
