//! ward about itself: `ward version` (the crate version, the commit it was built from, the
//! Cilium release of its schemas), `ward completions`, `ward man`, and the clone and fetch
//! progress bar, drawn on a terminal only.
#![allow(clippy::unwrap_used, reason = "tests")]

mod util;

use std::process::Command;
use util::{EXIT_ERROR, EXIT_OK, Env, workspace};

/// The commit the workspace is at, as the build recorded it.
fn built_from() -> String {
    if let Ok(c) = std::env::var("WARD_BUILD_COMMIT")
        && !c.trim().is_empty()
    {
        return c.trim().to_owned();
    }
    git2::Repository::discover(workspace())
        .map(|r| r.head().unwrap().peel_to_commit().unwrap().id().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The Cilium release named in the generated schema's header.
fn schema_cilium() -> String {
    let header = util::fixture("schema/json/ward.schema.json");
    let at = header.find("Cilium v").unwrap() + "Cilium ".len();
    header[at..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn version_names_the_release_the_commit_and_the_cilium_schemas() {
    let env = Env::new();
    let text = env.ward(env.path(), &["version"]);
    text.code(EXIT_OK)
        .stdout_has(&format!("ward {}\n", env!("CARGO_PKG_VERSION")))
        .stdout_has(&format!("commit:         {}\n", built_from()))
        .stdout_has(&format!(
            "cilium schemas: {} (default; --cilium-version also takes v1.18.",
            schema_cilium()
        ))
        .stdout_has(", v1.17.");
    let json = env.ward(env.path(), &["version", "-o", "json"]);
    json.code(EXIT_OK);
    let doc = json.json();
    assert_eq!(doc["version"], 1, "the output format's version");
    assert_eq!(doc["command"], "version");
    assert_eq!(doc["ward"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["commit"], built_from().as_str());
    assert_eq!(doc["ciliumSchemas"], schema_cilium().as_str());
    assert_eq!(doc["ciliumReleases"]["1.19"], schema_cilium().as_str());
    let older = doc["ciliumReleases"]["1.17"].as_str().unwrap();
    assert!(older.starts_with("v1.17."), "{older}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    let env = Env::new();
    env.ward(env.path(), &["completions", "bash"])
        .code(EXIT_OK)
        .stdout_has("_ward()")
        .stdout_has("--as-group")
        .stdout_has("completions");
    env.ward(env.path(), &["completions", "zsh"])
        .code(EXIT_OK)
        .stdout_has("#compdef ward");
    env.ward(env.path(), &["completions", "fish"])
        .code(EXIT_OK)
        .stdout_has("complete -c ward");
    env.ward(env.path(), &["completions", "tcsh"])
        .code(EXIT_ERROR);

    env.ward(env.path(), &["man"])
        .code(EXIT_OK)
        .stdout_has(".TH ward 1")
        .stdout_has(".SH SYNOPSIS")
        .stdout_has("\\-\\-as\\-group");
    let dir = env.path().join("man1");
    env.ward(env.path(), &["man", "--out-dir", dir.to_str().unwrap()])
        .code(EXIT_OK);
    let plan = std::fs::read_to_string(dir.join("ward-plan.1")).unwrap();
    assert!(
        plan.contains("\\-\\-out"),
        "ward-plan.1 documents --out:\n{plan}"
    );
    assert!(dir.join("ward.1").exists() && dir.join("ward-apply.1").exists());
}

/// `ward validate` of a repository fetched by URL under `script`, which gives it a terminal;
/// what reached the terminal.
fn on_a_terminal(env: &Env, url: &str, cache: &str, extra: &str) -> String {
    let cmd = format!(
        "{} --repo {url} --cache-dir {cache} validate --rev main {extra}",
        util::WARD
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", env.path())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn clone_and_fetch_show_progress_on_a_terminal_only() {
    if Command::new("script").arg("--version").output().is_err() {
        ward_testkit::skip(
            "progress bar",
            "util-linux `script` (a pseudo-terminal) is missing",
        );
        return;
    }
    let env = Env::new();
    let repo = env.fixture_repo();
    let url = repo.bare_clone(&env.path().join("remote.git"));
    let cache = env.path().join("cache").display().to_string();
    let shown = on_a_terminal(&env, &url, &cache, "");
    assert!(shown.contains(&format!("cloning {url}")), "{shown}");
    assert!(shown.contains("objects"), "{shown}");
    let json = on_a_terminal(&env, &url, &cache, "-o json");
    assert!(
        !json.contains("fetching") && !json.contains("objects"),
        "{json}"
    );
    // A pipe never gets one.
    let piped = env.ward(
        env.path(),
        &[
            "--repo",
            &url,
            "--cache-dir",
            &cache,
            "validate",
            "--rev",
            "main",
        ],
    );
    piped
        .code(EXIT_OK)
        .stderr_lacks("fetching")
        .stderr_lacks("objects");
}
