//! ward's node datapath.
//!
//! [`engine`] is the pure policy engine (labels, identities, selectors, resolved policy,
//! verdicts with explanations): no I/O and no kernel dependencies, so the reconciler can use
//! it for `ward test` and connectivity diffs. The eBPF loader, the WireGuard mesh and the
//! `ward-agent` binary will live behind a separate module boundary. See `DESIGN.md` in the
//! repository's shared docs.

pub mod engine;
