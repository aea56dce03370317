//! Any bytes as one policy file: the YAML loader (both paths), the envelope, the JSON Schemas,
//! Cilium's semantic rules and the assembly of a revision, checked against the invariants in
//! `schema/tests/support/invariants.rs` (which `cargo test` replays on every finding kept in
//! `schema/tests/data/fuzz/`).

#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    invariants::check(data);
});
