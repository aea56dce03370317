//! Records the Git commit ward is built from, for `ward version`: `WARD_BUILD_COMMIT` when
//! set (a build from a source archive or in a container without `.git`), else
//! `git rev-parse HEAD`, else `unknown`. It reruns only when `HEAD` or the branch it points
//! to moves, so an ordinary build does not pay for it; the value depends on the commit
//! alone, so two builds of one commit agree.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WARD_BUILD_COMMIT");
    let commit = std::env::var("WARD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WARD_GIT_COMMIT={}", commit.trim());
    let watched = watched();
    for file in &watched {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    if watched.is_empty() {
        // Git answered nothing (missing, or failing for a moment): watch the workspace's
        // `.git/HEAD` and its branches (a commit moves a branch, not `HEAD`) if there are
        // any, so that the next commit or checkout runs this again instead of keeping
        // `unknown` for good, and a file that does not exist otherwise.
        let git_dir = manifest_dir().join("../.git");
        let found: Vec<PathBuf> = ["HEAD", "refs/heads", "packed-refs"]
            .iter()
            .map(|f| git_dir.join(f))
            .filter(|f| f.exists())
            .collect();
        for f in &found {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        if found.is_empty() {
            println!("cargo:rerun-if-changed=.git-commit-unknown");
        }
    }
}

/// The crate's folder, as cargo tells this run of the script (not as it was when the script
/// was compiled: a build cache shared between checkouts would otherwise ask git in a folder
/// that is not there and record `unknown`).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `git args` in the crate's folder, trimmed; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// The files whose change means another commit: `HEAD`, the branch it names, `packed-refs`.
fn watched() -> Vec<PathBuf> {
    let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) else {
        return Vec::new();
    };
    let (git_dir, common) = (PathBuf::from(git_dir), PathBuf::from(common));
    let mut files = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(common.join(Path::new(&branch)));
    }
    files.into_iter().filter(|f| f.exists()).collect()
}
