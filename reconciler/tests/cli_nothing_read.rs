//! A run that reads nothing is not a success: include folders that do not exist, or no file
//! at all, are errors (unless --allow-empty), so a typo in --include cannot validate green or
//! plan to prune everything.

mod util;

use util::{EXIT_ERROR, EXIT_OK, Env, FIXTURE_OBJECTS, objects};

#[test]
fn a_repository_without_the_include_folders_is_an_error_unless_allowed() {
    let env = Env::new();
    let mut repo = env.repo("empty");
    repo.write("README.md", "nothing here\n");
    repo.commit("no policies");
    for args in [&["validate"][..], &["validate", "--rev", "HEAD"], &["plan"]] {
        repo.ward(args)
            .code(EXIT_ERROR)
            .stderr_has(
                "no manifest (.yaml, .yml, .json) found in \"policies\", \"cluster-config\"",
            )
            .stderr_has("--allow-empty");
        let mut allowed = args.to_vec();
        allowed.push("--allow-empty");
        repo.ward(&allowed).code(EXIT_OK);
    }
}

#[test]
fn a_misspelt_include_folder_is_an_error_that_names_it_and_prunes_nothing() {
    let env = Env::new();
    let repo = env.fixture_repo();
    repo.ward(&["apply"]).code(EXIT_OK);
    let before = objects(&repo.state());
    assert_eq!(before.len(), FIXTURE_OBJECTS.len());
    for args in [
        &["validate", "--include", "polices"][..],
        &["validate", "--include", "polices", "--rev", "HEAD"],
        &["plan", "--include", "polices", "--prune"],
        &[
            "apply",
            "--include",
            "polices",
            "--prune",
            "--allow-prune-all",
        ],
        &[
            "validate",
            "--include",
            "policies",
            "--include",
            "cluster-confg",
        ],
    ] {
        let run = repo.ward(args);
        run.code(EXIT_ERROR).stderr_has("do not exist in").check(
            run.stderr.contains("\"polices\"") || run.stderr.contains("\"cluster-confg\""),
            "the message names the folder",
        );
    }
    assert_eq!(objects(&repo.state()), before, "nothing was pruned");
}

#[test]
fn ward_include_takes_folders_separated_by_spaces_or_commas() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let all = repo.ward(&["validate", "--format", "json"]);
    all.code(EXIT_OK);
    let files = all.json()["files"].as_u64().unwrap_or_default();
    assert!(files > 1, "the fixtures have several files");
    for value in [
        "policies cluster-config",
        "policies,cluster-config",
        " policies , cluster-config ",
    ] {
        let out = env
            .runner()
            .command(&repo.path, &["validate", "--format", "json"])
            .env("WARD_INCLUDE", value)
            .output()
            .expect("ward runs");
        assert_eq!(
            out.status.code(),
            Some(EXIT_OK),
            "WARD_INCLUDE={value:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            json["files"].as_u64(),
            Some(files),
            "WARD_INCLUDE={value:?} reads both folders"
        );
    }
}
