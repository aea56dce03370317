//! Replays every input the fuzzer found a problem with (`tests/data/fuzz/`, one file each,
//! named after what it broke) and the fuzzer's seed corpus (`schema/fuzz/seeds/load/`)
//! through the fuzz target's own checks (`support/invariants.rs`), so a fixed finding stays
//! fixed without running the fuzzer. `ci/fuzz/run.sh` says how to add one.

mod support;

use std::path::{Path, PathBuf};
use support::invariants;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    out.sort();
    out
}

fn replay(dir: &Path) -> usize {
    let inputs = files(dir);
    assert!(
        !inputs.is_empty(),
        "{} holds no inputs: the replay would test nothing",
        dir.display()
    );
    for p in &inputs {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
        let outcome = std::panic::catch_unwind(|| invariants::check(&bytes));
        assert!(
            outcome.is_ok(),
            "{} breaks an invariant (above)",
            p.display()
        );
    }
    inputs.len()
}

#[test]
fn fuzz_findings_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let n = replay(&dir);
    eprintln!("replayed {n} fuzz finding(s)");
}

#[test]
fn the_seed_corpus_keeps_the_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/load");
    let n = replay(&dir);
    eprintln!("replayed {n} seed(s)");
}
