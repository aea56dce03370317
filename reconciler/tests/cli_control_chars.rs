//! Control characters in file names and in keys read from a file are escaped in every
//! output format: a report never carries a raw control character (a terminal escape, a bell,
//! a line break inside a line-based format) and its XML stays well-formed.

mod util;

use util::{EXIT_ERROR, Env};

/// Raw control characters of `s` other than line breaks and tabs, as code points.
fn raw_controls(s: &str) -> Vec<u32> {
    s.chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .map(u32::from)
        .collect()
}

#[test]
fn no_format_prints_a_raw_control_character() {
    let env = Env::new();
    let repo = env.repo("r");
    // A key with an escape sequence and a bell (YAML's \e and \a), in a file whose name has
    // a bell too.
    repo.write(
        "policies/evil\u{7}.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a, namespace: shop}\nspec:\n  endpointSelector: {}\n  \"ingress\\e[31m\\a\": []\n",
    );
    for format in ["text", "github", "markdown", "json", "sarif", "junit"] {
        let run = repo.ward(&["validate", "--format", format]);
        run.code(EXIT_ERROR);
        run.check(
            raw_controls(&run.stdout).is_empty(),
            format!(
                "--format {format} prints raw control characters {:?}",
                raw_controls(&run.stdout)
            ),
        );
        if matches!(format, "text" | "github" | "markdown") {
            // JSON and SARIF escape them their own way (\u001b), which the parser undoes;
            // JUnit drops them (XML 1.0 cannot carry them at all).
            run.stdout_has("\\u{1b}").stdout_has("\\u{7}");
        }
    }
}
