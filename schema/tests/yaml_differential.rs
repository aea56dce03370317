//! Differential tests of the YAML fast path against the general saphyr-based path.
//!
//! Wherever the fast path answers (`parse_fast` returns `Some`), its answer must be exactly
//! the saphyr path's: same documents, node trees, values, positions of every node and key,
//! and no findings. The fast path must also actually answer for the manifests ward is built
//! for (a generated corpus of realistic Cilium policies, the repository's own policies), or
//! it would be dead weight. Mutated inputs check that odd text makes it fall back rather
//! than answer wrongly, and that it never panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use ward_schema::yaml::{Limits, Parsed, parse_fast, parse_saphyr};

mod support;

/// The repository root (the workspace above this crate).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.yaml`/`.yml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in read.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Generates a corpus of realistic policy files with the benchmark generator.
fn generated_corpus(out: &Path) -> Vec<PathBuf> {
    let script = repo().join("ci/bench/gen_policies.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(out)
        .args(["--docs", "2000", "--files", "200", "--seed", "1234"])
        .status()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    assert!(status.success(), "{} failed: {status}", script.display());
    let files = yaml_files(out);
    assert_eq!(
        files.len(),
        200,
        "the generator should have written 200 files"
    );
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Compares both paths on `text`: `Some(true)` when the fast path answered (and agreed),
/// `Some(false)` when it fell back. Panics on disagreement.
fn compare(label: &str, text: &str) -> bool {
    let limits = Limits::default();
    let Some(fast) = parse_fast(text, &limits) else {
        return false;
    };
    let slow = parse_saphyr("f.yaml", text, &limits);
    if fast != slow {
        panic!(
            "fast path disagrees with saphyr on {label}:\n--- text\n{text}\n--- fast\n{fast:#?}\n--- saphyr\n{slow:#?}"
        );
    }
    true
}

/// Counts how many of `files` the fast path answered for, checking agreement on all of them
/// (as written and with CRLF line ends).
fn compare_files(files: &[PathBuf]) -> (usize, usize) {
    let mut taken = 0;
    for f in files {
        let text = read(f);
        let label = f.display().to_string();
        let as_written = compare(&label, &text);
        let crlf = compare(&format!("{label} (CRLF)"), &text.replace('\n', "\r\n"));
        assert_eq!(
            as_written, crlf,
            "CRLF line ends should not change whether {label} is taken"
        );
        taken += usize::from(as_written);
    }
    (taken, files.len())
}

#[test]
fn fast_path_agrees_on_the_generated_corpus_and_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = generated_corpus(dir.path());
    let (taken, total) = compare_files(&files);
    let docs: usize = files
        .iter()
        .map(|f| parse_fast(&read(f), &Limits::default()).map_or(0, |p: Parsed| p.docs.len()))
        .sum();
    println!("generated corpus: fast path taken for {taken}/{total} files ({docs} documents)");
    assert_eq!(
        taken, total,
        "the fast path should handle every generated policy file"
    );
    assert_eq!(docs, 2000);
}

#[test]
fn fast_path_agrees_on_the_repository_policies_and_is_taken() {
    let mut files = yaml_files(&repo().join("policies"));
    files.extend(yaml_files(&repo().join("cluster-config")));
    assert!(
        !files.is_empty(),
        "no policies found under {}",
        repo().display()
    );
    let (taken, total) = compare_files(&files);
    println!("repository policies and cluster config: fast path taken for {taken}/{total} files");
    assert_eq!(
        taken, total,
        "the fast path should handle every policy in the repository"
    );
}

#[test]
fn fast_path_agrees_on_the_cilium_crds() {
    // Large files with block scalars (`description: |-`): the fast path falls back on these,
    // which must still be right wherever it answers.
    let mut files = yaml_files(&repo().join("schema/crds"));
    assert!(!files.is_empty());
    // The fetched ones are the same files when schema/crds is up to date (crd_crosscheck checks
    // that), and the newer ones while it is being updated.
    if let Some(fetched) =
        support::cilium_crds("fast_path_agrees_on_the_cilium_crds (fetched CRDs)")
    {
        files.extend(yaml_files(&fetched));
    }
    let (taken, total) = compare_files(&files);
    println!("CRDs: fast path taken for {taken}/{total} files");
}

// ------------------------------------------------------------------------------ mutations

/// A small deterministic generator (SplitMix64), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Characters that matter to YAML, and some that do not.
const ALPHABET: &[&str] = &[
    " ", " ", " ", "-", "- ", ":", ": ", "#", " #", "'", "\"", "[", "]", "{", "}", ",", "\n", "\t",
    "&", "*", "!", "|", ">", "?", "%", "@", "\\", "\\n", "\\u00e9", ".", "~", "0", "1", "x", "é",
    "日", "\r", "\r\n", "---", "...", "null", "true", "0x1", "1e3", "''",
];

/// One random edit of `text`: insert or delete characters, swap, duplicate or drop lines,
/// change a line's indentation, join or split lines.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let n = lines.len();
    match rng.below(8) {
        0 | 1 => {
            // Insert a token at a random character boundary.
            let i = rng.below(n);
            let line = &mut lines[i];
            let cuts: Vec<usize> = line
                .char_indices()
                .map(|(c, _)| c)
                .chain([line.len()])
                .collect();
            let at = cuts[rng.below(cuts.len())];
            line.insert_str(at, ALPHABET[rng.below(ALPHABET.len())]);
        }
        2 => {
            // Delete one to three characters.
            let i = rng.below(n);
            let mut chars: Vec<char> = lines[i].chars().collect();
            if !chars.is_empty() {
                let at = rng.below(chars.len());
                let len = (1 + rng.below(3)).min(chars.len() - at);
                chars.drain(at..at + len);
            }
            lines[i] = chars.into_iter().collect();
        }
        3 => {
            let (a, b) = (rng.below(n), rng.below(n));
            lines.swap(a, b);
        }
        4 => {
            // Indent or dedent a line by one or two spaces.
            let i = rng.below(n);
            if rng.below(2) == 0 {
                lines[i].insert_str(0, if rng.below(2) == 0 { " " } else { "  " });
            } else {
                let drop = lines[i]
                    .bytes()
                    .take_while(|&b| b == b' ')
                    .count()
                    .min(1 + rng.below(2));
                lines[i].drain(..drop);
            }
        }
        5 => {
            let i = rng.below(n);
            let copy = lines[i].clone();
            lines.insert(i, copy);
        }
        6 => {
            let i = rng.below(n);
            lines.remove(i);
        }
        _ => {
            // Join a line with the next one.
            let i = rng.below(n);
            if i + 1 < lines.len() {
                let next = lines.remove(i + 1);
                lines[i].push(' ');
                lines[i].push_str(next.trim_start());
            }
        }
    }
    lines.join("\n")
}

#[test]
fn fast_path_never_disagrees_on_mutated_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = generated_corpus(dir.path());
    // Single documents keep each comparison cheap; add the repository's policies for their
    // hand-written style (flow collections, comments, compact sequences).
    let mut seeds: Vec<String> = files
        .iter()
        .take(20)
        .flat_map(|f| {
            read(f)
                .split("\n---\n")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    for f in yaml_files(&repo().join("policies"))
        .iter()
        .chain(&yaml_files(&repo().join("cluster-config")))
    {
        seeds.push(read(f));
    }
    seeds.push(
        "a: 1\nb: [x, \"y\", {k: v}]\nc:\n- d\n- e: f\n  g: 'h'\n---\n- - i\n  - j\n".to_owned(),
    );

    let mut rng = Rng(0x5eed_2024);
    let (mut taken, mut fell_back) = (0usize, 0usize);
    const ROUNDS: usize = 4000;
    for round in 0..ROUNDS {
        let seed = &seeds[rng.below(seeds.len())];
        let mut text = seed.clone();
        for _ in 0..1 + rng.below(3) {
            text = mutate(&mut rng, &text);
        }
        if compare(&format!("mutation round {round}"), &text) {
            taken += 1;
        } else {
            fell_back += 1;
        }
    }
    println!(
        "mutated input: fast path answered (and agreed) {taken} times, fell back {fell_back} times"
    );
    // Most single edits leave valid YAML within the subset: if the fast path hardly ever
    // answered, this test would prove nothing.
    assert!(
        taken > ROUNDS / 5,
        "fast path answered only {taken} of {ROUNDS} times"
    );
    assert!(
        fell_back > ROUNDS / 20,
        "fast path fell back only {fell_back} of {ROUNDS} times"
    );
}

// ------------------------------------------------------------------------- random documents

/// Scalars as written in YAML, plain and quoted, including ones that resolve to numbers,
/// booleans and null, and some with characters that matter to YAML.
const SCALARS: &[&str] = &[
    "web",
    "app.kubernetes.io/name",
    "k8s:io.kubernetes.pod.namespace",
    "10.0.0.0/8",
    "2001:db8::/32",
    "/api/v[12]/.*",
    "a#b",
    "a:b",
    "x,y",
    "two words",
    "é",
    "日本語",
    "ключ",
    "80",
    "080",
    "-5",
    "+1",
    "1e3",
    "-.5",
    ".5",
    "1.",
    "0x1F",
    "0o17",
    "1_000",
    ".inf",
    "-0",
    "99999999999999999999",
    "true",
    "False",
    "TRUE",
    "yes",
    "no",
    "on",
    "null",
    "Null",
    "~",
    "\"80\"",
    "\"\"",
    "''",
    "'it''s'",
    "'a: b'",
    "\"a: b\"",
    "\"tab\\there\"",
    "\"q\\\"q\"",
    "\"back\\\\slash\"",
    "\"\\u00e9t\\u00e9\"",
    "\"\\/\"",
    "\"# no comment\"",
    "' padded '",
    "\"é, ü\"",
    "'[x]'",
    "\"{y}\"",
    "-dash",
    "(paren)",
    "$var",
    "a~b",
    "x_y",
];

/// Mapping keys: a small pool, so that duplicates happen.
const KEYS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "spec",
    "ingress",
    "egress",
    "toPorts",
    "port",
    "app",
    "k8s:app",
    "1",
    "080",
    "true",
    "~",
    "\"quoted key\"",
    "'single'",
    "\"a b\"",
    "ключ",
    "x-y",
    "a.b/c",
    "null",
    "1e3",
    "-dash",
    "a#b",
    "\"k:\"",
    "'#'",
];

/// A random YAML value, rendered in a random one of the styles the fast path supports.
enum Gen {
    Scalar(&'static str),
    Map(Vec<(&'static str, Gen)>),
    Seq(Vec<Gen>),
}

fn gen_value(rng: &mut Rng, depth: usize) -> Gen {
    match if depth >= 4 { 0 } else { rng.below(5) } {
        0 | 1 => Gen::Scalar(SCALARS[rng.below(SCALARS.len())]),
        2 | 3 => Gen::Map(
            (0..rng.below(5))
                .map(|_| (KEYS[rng.below(KEYS.len())], gen_value(rng, depth + 1)))
                .collect(),
        ),
        _ => Gen::Seq(
            (0..rng.below(4))
                .map(|_| gen_value(rng, depth + 1))
                .collect(),
        ),
    }
}

/// Renders `g` as a flow node, or `None` if it holds something flow style cannot (here).
fn flow(g: &Gen, rng: &mut Rng) -> Option<String> {
    let sep = if rng.below(4) == 0 { " , " } else { ", " };
    Some(match g {
        Gen::Scalar(s)
            if s.starts_with(['"', '\'']) || !s.contains([',', '[', ']', '{', '}', '#', ':']) =>
        {
            (*s).to_owned()
        }
        Gen::Scalar(_) => return None,
        Gen::Seq(items) => {
            let parts: Option<Vec<String>> = items.iter().map(|i| flow(i, rng)).collect();
            format!("[{}]", parts?.join(sep))
        }
        Gen::Map(entries) => {
            let parts: Option<Vec<String>> = entries
                .iter()
                .map(|(k, v)| Some(format!("{k}: {}", flow(v, rng)?)))
                .collect();
            format!("{{{}}}", parts?.join(sep))
        }
    })
}

/// Something to end a line with: nothing, spaces, or a comment.
fn line_end(rng: &mut Rng) -> &'static str {
    ["", "", "", "  ", " # note", "   #", " #: - [x]"][rng.below(7)]
}

/// Writes `g` as the value after `key:` or `-` (already written), nested at `indent`.
fn emit_value(g: &Gen, indent: usize, in_seq: bool, rng: &mut Rng, out: &mut String) {
    if rng.below(5) == 0
        && let Some(f) = flow(g, rng)
    {
        out.push(' ');
        out.push_str(&f);
        out.push_str(line_end(rng));
        out.push('\n');
        return;
    }
    match g {
        Gen::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push_str(line_end(rng));
            out.push('\n');
        }
        Gen::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Gen::Seq(i) if i.is_empty() => out.push_str(" []\n"),
        Gen::Map(entries) if in_seq && rng.below(2) == 0 => {
            // Compact: the first entry on the `-` line.
            out.push(' ');
            emit_map(entries, indent + 2, true, rng, out);
        }
        Gen::Seq(items) if in_seq && rng.below(2) == 0 => {
            out.push(' ');
            emit_seq(items, indent + 2, true, rng, out);
        }
        Gen::Map(entries) => {
            out.push_str(line_end(rng));
            out.push('\n');
            emit_map(entries, indent + 1 + rng.below(3), false, rng, out);
        }
        Gen::Seq(items) => {
            out.push_str(line_end(rng));
            out.push('\n');
            // Under a key, a sequence may sit at the key's own indentation.
            let nested = if !in_seq && rng.below(2) == 0 {
                indent
            } else {
                indent + 1 + rng.below(3)
            };
            emit_seq(items, nested, false, rng, out);
        }
    }
}

fn emit_map(
    entries: &[(&str, Gen)],
    indent: usize,
    first_inline: bool,
    rng: &mut Rng,
    out: &mut String,
) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if !(first_inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(k);
        out.push(':');
        emit_value(v, indent, false, rng, out);
        if rng.below(12) == 0 {
            out.push_str(
                ["\n", "# comment\n", "      # indented comment\n", "   \n"][rng.below(4)],
            );
        }
    }
}

fn emit_seq(items: &[Gen], indent: usize, first_inline: bool, rng: &mut Rng, out: &mut String) {
    for (i, v) in items.iter().enumerate() {
        if !(first_inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push('-');
        emit_value(v, indent, true, rng, out);
    }
}

/// A random file of one to three documents.
fn random_file(rng: &mut Rng) -> String {
    let mut out = String::new();
    for d in 0..1 + rng.below(3) {
        if d > 0 || rng.below(3) == 0 {
            out.push_str(["---\n", "--- # doc\n", "...\n---\n"][rng.below(3)]);
        }
        match gen_value(rng, 0) {
            Gen::Map(e) if !e.is_empty() => emit_map(&e, 0, false, rng, &mut out),
            Gen::Seq(i) if !i.is_empty() => emit_seq(&i, 0, false, rng, &mut out),
            g => {
                out.push_str(&flow(&g, rng).unwrap_or_else(|| "x".to_owned()));
                out.push('\n');
            }
        }
    }
    if rng.below(4) == 0 {
        out.pop(); // no final line break
    }
    if rng.below(6) == 0 {
        out = out.replace('\n', "\r\n");
    }
    out
}

#[test]
fn fast_path_never_disagrees_on_random_documents() {
    let mut rng = Rng(0xd1ff_e4e7);
    let (mut taken, mut mutants_taken) = (0usize, 0usize);
    const ROUNDS: usize = 3000;
    for round in 0..ROUNDS {
        let text = random_file(&mut rng);
        taken += usize::from(compare(&format!("random document {round}"), &text));
        let mutant = mutate(&mut rng, &text);
        mutants_taken += usize::from(compare(
            &format!("mutated random document {round}"),
            &mutant,
        ));
    }
    println!(
        "random documents: fast path answered {taken}/{ROUNDS} times, {mutants_taken}/{ROUNDS} on mutants"
    );
    // Fallbacks come from duplicate keys (the key pool is small) and rare odd shapes.
    assert!(
        taken > ROUNDS / 2,
        "fast path answered only {taken} of {ROUNDS} random documents"
    );
}
