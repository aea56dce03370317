//! Commands about ward itself: `ward version`, `ward completions`, `ward man`.

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::{EXIT_OK, Settings, write_stdout};
use crate::report::Format;
use anyhow::{Context, Result};
use clap::CommandFactory;

/// The Git commit ward was built from (`unknown` outside a checkout; see `build.rs`).
pub const BUILD_COMMIT: &str = env!("WARD_GIT_COMMIT");

/// The Cilium release whose CRDs the embedded schemas were generated from (`v1.19.7`), as
/// the schema's own header records it; `unknown` if the header says none.
pub fn cilium_version() -> &'static str {
    schema_cilium_version(ward_schema::schemas::WARD_SCHEMA).unwrap_or("unknown")
}

/// The `v1.2.3` after the first "Cilium v" of a generated schema (its header).
fn schema_cilium_version(schema: &str) -> Option<&str> {
    let at = schema.find("Cilium v")? + "Cilium ".len();
    let rest = &schema[at..];
    let end = rest[1..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(rest.len(), |i| i + 1);
    let v = rest[..end].trim_end_matches('.');
    (v.len() > 1).then_some(v)
}

/// `ward version`: the crate version, the commit and the Cilium release of the schemas.
pub(super) fn version(settings: &Settings) -> Result<i32> {
    let version = env!("CARGO_PKG_VERSION");
    let text = match settings.format {
        Format::Json => crate::report::json_text(
            "version",
            &serde_json::json!({
                "ward": version,
                "commit": BUILD_COMMIT,
                "ciliumSchemas": cilium_version(),
            }),
        ),
        _ => format!(
            "ward {version}\ncommit:         {BUILD_COMMIT}\ncilium schemas: {}\n",
            cilium_version()
        ),
    };
    write_stdout(&text)?;
    Ok(EXIT_OK)
}

/// `ward completions SHELL`: the completion script on standard output.
pub(super) fn completions(a: &CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "ward", &mut out);
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(EXIT_OK)
}

/// `ward man`: ward.1 on standard output, or every page into `--out-dir`.
pub(super) fn man(a: &ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    match &a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            eprintln!(
                "ward: man pages written to {}; `man ward` finds them when that folder is on MANPATH (e.g. ~/.local/share/man/man1)",
                dir.display()
            );
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            write_stdout(&String::from_utf8_lossy(&out))?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cilium_version_comes_from_the_schema_header() {
        assert_eq!(
            schema_cilium_version(
                r#"{"$comment": "Generated from the CRDs of Cilium v1.19.7 (schema/crds)"}"#
            ),
            Some("v1.19.7")
        );
        assert_eq!(
            schema_cilium_version(r#"{"$comment": "of Cilium v1.18."}"#),
            Some("v1.18")
        );
        assert_eq!(schema_cilium_version("{}"), None);
        assert!(cilium_version().starts_with("v1."), "{}", cilium_version());
    }
}
