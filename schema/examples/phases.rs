//! Times each validation phase over a folder of YAML files, single-threaded:
//! `cargo run --release -p ward-schema --example phases -- DIR`
//! (add `--fast-only` to run only the YAML fast path, 20 times, e.g. under a profiler).

use std::time::{Duration, Instant};
use ward_schema::{Kind, envelope, schemas::Schemas, semantic, yaml};

fn files(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
    for e in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(std::fs::read(&p).expect("readable file"));
        }
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: phases DIR");
    let mut all = Vec::new();
    files(std::path::Path::new(&dir), &mut all);
    let limits = yaml::Limits::default();
    if std::env::args().nth(2).as_deref() == Some("--fast-only") {
        // For profiling the YAML fast path alone.
        let t = Instant::now();
        for _ in 0..20 {
            fast_path(&all, &limits);
        }
        println!("fast path x20: {:?}", t.elapsed());
        return;
    }
    let (mut t_parse, mut t_json, mut t_env, mut t_schema, mut t_sem) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let schemas = Schemas::get();
    let mut docs = 0;
    let whole = Instant::now();
    for bytes in &all {
        let t = Instant::now();
        let parsed = yaml::parse_bytes("f", bytes, &limits);
        t_parse += t.elapsed();
        for mut d in parsed.docs {
            docs += 1;
            let t = Instant::now();
            let v = d.root.take_json();
            t_json += t.elapsed();
            let t = Instant::now();
            let _ = envelope::check(&v);
            t_env += t.elapsed();
            let kind = v
                .get("kind")
                .and_then(|k| k.as_str())
                .and_then(Kind::parse)
                .expect("known kind");
            let t = Instant::now();
            let _ = schemas.validate(kind, &v);
            t_schema += t.elapsed();
            let t = Instant::now();
            let _ = semantic::check(kind, &v);
            t_sem += t.elapsed();
        }
    }
    let total = whole.elapsed();
    let (taken, t_fast) = fast_path(&all, &limits);
    println!(
        "fast path: taken for {taken}/{} files, {t_fast:?} alone",
        all.len()
    );
    let t = Instant::now();
    let events = raw_events(&all);
    println!("raw saphyr: {events} events in {:?}", t.elapsed());
    println!(
        "{docs} docs in {total:?} ({:.0} docs/s single-threaded)",
        docs as f64 / total.as_secs_f64()
    );
    for (name, t) in [
        ("parse", t_parse),
        ("to_json", t_json),
        ("envelope", t_env),
        ("schema", t_schema),
        ("semantic", t_sem),
    ] {
        println!(
            "{name:>9}: {t:?} ({:.1} us/doc)",
            t.as_secs_f64() * 1e6 / docs as f64
        );
    }
}

/// Raw event throughput of the parser alone, for comparison with `parse`.
#[allow(dead_code)]
pub fn raw_events(all: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for b in all {
        let s = std::str::from_utf8(b).expect("utf8");
        let mut p = saphyr_parser::Parser::new_from_str(s);
        while let Some(Ok(_)) = p.next_event() {
            n += 1;
        }
    }
    n
}

/// How many files the YAML fast path handles without falling back, and its time alone.
fn fast_path(all: &[Vec<u8>], limits: &yaml::Limits) -> (usize, Duration) {
    let t = Instant::now();
    let taken = all
        .iter()
        .filter(|b| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| yaml::parse_fast(s, limits))
                .is_some()
        })
        .count();
    (taken, t.elapsed())
}
