//! Commands about ward itself: `ward version`, `ward completions`, `ward man`.

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::{EXIT_OK, Settings, write_stdout};
use crate::report::Format;
use anyhow::{Context, Result};
use clap::CommandFactory;
use ward_schema::CiliumVersion;
use ward_schema::schemas::cilium_release;

/// The Git commit ward was built from (`unknown` outside a checkout; see `build.rs`).
pub const BUILD_COMMIT: &str = env!("WARD_GIT_COMMIT");

/// The Cilium release whose CRDs the default schemas were generated from (`v1.19.7`).
pub fn cilium_version() -> &'static str {
    ward_schema::schemas::cilium_release(CiliumVersion::default())
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
                "ciliumReleases": CiliumVersion::ALL
                    .iter()
                    .map(|v| (v.minor(), cilium_release(*v)))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            }),
        ),
        _ => {
            let others: Vec<&str> = CiliumVersion::ALL
                .iter()
                .rev()
                .filter(|v| **v != CiliumVersion::default())
                .map(|v| cilium_release(*v))
                .collect();
            format!(
                "ward {version}\ncommit:         {BUILD_COMMIT}\ncilium schemas: {} (default; --cilium-version also takes {})\n",
                cilium_version(),
                others.join(", ")
            )
        }
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
