//! Every finding code means one thing and is listed in the README: no two constants share a
//! code, and the README's table has a row for each.

use std::collections::BTreeMap;
use std::path::Path;

/// `(code, constant)` of every `pub const NAME: &str = "WARD-…";` in a source file.
fn codes_in(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("source file");
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = l.split_once(": &str = \"")?;
            let code = rest.strip_suffix("\";")?;
            code.starts_with("WARD-")
                .then(|| (code.to_owned(), name.to_owned()))
        })
        .collect()
}

#[test]
fn each_code_is_one_constant_and_is_documented_in_the_readme() {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let all: Vec<(String, String)> = ["src/diagnostic.rs", "src/topology.rs"]
        .iter()
        .flat_map(|f| codes_in(f))
        .collect();
    assert!(all.len() > 30, "the codes were found: {all:?}");
    for (code, name) in &all {
        if let Some(other) = seen.insert(code.clone(), name.clone()) {
            panic!("{code} is both {other} and {name}: a code means one thing");
        }
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    for code in seen.keys() {
        assert!(
            readme.contains(&format!("| `{code}` |")),
            "README.md's table of finding codes lacks {code}"
        );
    }
}
