//! What must hold for any input to the YAML loader and the validator, whatever the bytes: the
//! one oracle shared by the fuzz target (`schema/fuzz`), the property tests
//! (`tests/proptest_loader.rs`) and the replay of fuzz findings (`tests/fuzz_regressions.rs`).
//!
//! - nothing panics (a panic is the failure);
//! - the trees stay within [`LIMITS`]: no deeper than `max_depth` collections, no more nodes
//!   than `max_nodes`, no more documents than `max_documents`;
//! - every finding names the file and, unless it is about the file as a whole, a line and
//!   column that exist in the text;
//! - wherever the fast YAML path answers, it answers exactly what the general path does;
//! - [`assemble`] of the file's report keeps every finding, sorted.

#![allow(dead_code)] // Each test binary uses a different part.

use ward_schema::diagnostic::{Diagnostic, codes};
use ward_schema::load::{assemble, load_file};
use ward_schema::yaml::{Limits, Node, NodeValue, parse_bytes, parse_fast, parse_saphyr};

/// The file name every finding must carry.
pub const FILE: &str = "fuzz/input.yaml";

/// Limits smaller than the defaults, so that an input can reach each of them quickly.
pub const LIMITS: Limits = Limits {
    max_file_bytes: 1 << 20,
    max_depth: 64,
    max_nodes: 20_000,
    max_documents: 64,
};

/// Loads and validates `bytes` with [`LIMITS`] and checks every invariant; panics with the
/// broken one.
pub fn check(bytes: &[u8]) {
    check_with(bytes, &LIMITS);
}

/// [`check`] with other limits.
pub fn check_with(bytes: &[u8], limits: &Limits) {
    let parsed = parse_bytes(FILE, bytes, limits);
    assert!(
        parsed.docs.len() <= limits.max_documents,
        "{} documents, more than the limit of {}",
        parsed.docs.len(),
        limits.max_documents
    );
    let mut nodes = 0;
    for doc in &parsed.docs {
        let (depth, count) = shape(&doc.root);
        assert!(
            depth <= limits.max_depth,
            "document {} nests {depth} collections deep, more than the limit of {}",
            doc.index,
            limits.max_depth
        );
        nodes += count;
    }
    assert!(
        nodes <= limits.max_nodes,
        "{nodes} nodes, more than the limit of {}",
        limits.max_nodes
    );
    let text = std::str::from_utf8(bytes).ok();
    for d in &parsed.diagnostics {
        check_location(d, text);
    }
    if let Some(text) = text.filter(|t| t.len() as u64 <= limits.max_file_bytes)
        && let Some(fast) = parse_fast(text, limits)
    {
        let general = parse_saphyr(FILE, text, limits);
        assert!(
            fast == general,
            "the fast path answered differently from the general path\nfast:    {fast:?}\ngeneral: {general:?}"
        );
    }

    let report = load_file(FILE, bytes, limits);
    assert_eq!(report.documents, parsed.docs.len(), "documents counted");
    for (d, _) in &report.findings {
        check_location(d, text);
    }
    let findings = report.findings.len();
    let v = assemble(vec![report]);
    assert!(
        v.diagnostics.len() <= findings,
        "assemble made findings out of one file: {} from {findings}",
        v.diagnostics.len()
    );
    for d in &v.diagnostics {
        check_location(d, text);
    }
    let mut sorted = v.diagnostics.clone();
    ward_schema::diagnostic::sort(&mut sorted);
    assert!(sorted == v.diagnostics, "findings are sorted");
}

/// The collection depth (a scalar is 0, `[x]` is 1) and node count of a tree, without
/// recursion: the point is to survive trees that are too deep.
pub fn shape(root: &Node) -> (usize, usize) {
    let mut deepest = 0;
    let mut count = 0;
    let mut stack = vec![(root, 0usize)];
    while let Some((n, depth)) = stack.pop() {
        count += 1;
        match &n.value {
            NodeValue::Seq(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            NodeValue::Map(entries) => {
                deepest = deepest.max(depth + 1);
                stack.extend(entries.iter().map(|e| (&e.value, depth + 1)));
            }
            _ => {}
        }
    }
    (deepest, count)
}

/// A finding names the file; one about a place names a line and column inside `text`.
fn check_location(d: &Diagnostic, text: Option<&str>) {
    assert_eq!(d.file, FILE, "the finding names the file: {d}");
    let file_level = matches!(d.code, codes::FILE_UNREADABLE | codes::NOT_UTF8);
    if file_level && d.line == 0 {
        assert_eq!(d.column, 0, "a file-level finding has no column: {d}");
        return;
    }
    assert!(
        d.line >= 1 && d.column >= 1,
        "the finding has a line and a column: {d}"
    );
    let Some(text) = text else {
        return;
    };
    // saphyr counts `\r`, `\n` and `\r\n` as line ends; a position may sit just past the last
    // character of a line or of the file.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        d.line <= lines.len(),
        "line {} of a text with {} line(s): {d}",
        d.line,
        lines.len()
    );
    let len = lines[d.line - 1].chars().count();
    assert!(
        d.column <= len + 1,
        "column {} of a line {len} character(s) long: {d}",
        d.column
    );
}
