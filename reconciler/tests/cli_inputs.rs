//! Inputs as kubectl and linters take them: `-` and `-f FILE` (repeatable, `-f -`) read
//! standard input and name files; a path that does not exist is a finding for that path
//! while every other file is still checked; a path Git knows as deleted (`ward validate
//! $(git diff --name-only)` after a deletion) is counted, not an error; `--fail-on-warn`.

mod util;

use util::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, NO_NAMESPACE, cnp};

/// A CiliumNetworkPolicy whose port is out of range on line 14, column 21.
const BAD_PORT: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bad
  namespace: shop
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: y
      toPorts:
        - ports:
            - port: \"65536\"
              protocol: TCP
";

#[test]
fn a_dash_reads_standard_input_and_names_it_stdin() {
    let env = Env::new();
    let repo = env.repo("repo");
    for args in [&["validate", "-"][..], &["validate", "-f", "-"]] {
        let run = repo.ward_stdin(args, BAD_PORT);
        run.code(EXIT_ERROR)
            .stdout_has("<stdin>:14:21: error[WARD-S009]")
            .stdout_has("invalid: 1 file(s), 1 document(s), 1 error(s)");
        repo.ward_stdin(args, &cnp("shop", "ok", 80))
            .code(EXIT_OK)
            .stdout_has("valid: 1 file(s), 1 document(s), 0 error(s)");
    }
    // JSON names the file too.
    let json = repo
        .ward_stdin(&["validate", "-", "--format", "json"], BAD_PORT)
        .json();
    assert_eq!(json["diagnostics"][0]["file"], "<stdin>", "{json}");
    assert_eq!(json["diagnostics"][0]["line"], 14, "{json}");
    // Standard input and files together; stdin is read once even when named twice.
    repo.write("policies/a.yaml", cnp("shop", "a", 80));
    repo.ward_stdin(
        &["validate", "-f", "policies/a.yaml", "-f", "-", "-"],
        &cnp("shop", "b", 81),
    )
    .code(EXIT_OK)
    .stdout_has("valid: 2 file(s), 2 document(s)");
    // Duplicate objects across stdin and a file are found like any other.
    repo.ward_stdin(&["validate", "policies/a.yaml", "-"], &cnp("shop", "a", 80))
        .code(EXIT_ERROR)
        .stdout_has("WARD-D001");
    // Standard input has no revision.
    repo.ward_stdin(&["validate", "-", "--rev", "HEAD"], BAD_PORT)
        .code(EXIT_ERROR)
        .stderr_has("standard input (-) cannot be read at a revision");
}

#[test]
fn f_names_files_and_repeats() {
    let env = Env::new();
    let repo = env.repo("repo");
    repo.write("a.yaml", cnp("shop", "a", 80))
        .write("b.yaml", BAD_PORT)
        .write("c.yaml", cnp("shop", "c", 82));
    repo.ward(&["validate", "-f", "a.yaml", "--filename", "c.yaml"])
        .code(EXIT_OK)
        .stdout_has("valid: 2 file(s), 2 document(s)");
    repo.ward(&["validate", "a.yaml", "-f", "b.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("b.yaml:14:21: error[WARD-S009]")
        .stdout_has("invalid: 2 file(s)");
}

#[test]
fn a_missing_path_is_a_finding_and_the_other_files_are_still_checked() {
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.write("policies/ok.yaml", cnp("shop", "ok", 80))
        .write("policies/bad.yaml", BAD_PORT);
    repo.commit("two policies");
    let run = repo.ward(&[
        "validate",
        "policies/ok.yaml",
        "policies/nope.yaml",
        "policies/bad.yaml",
    ]);
    run.code(EXIT_ERROR)
        .stdout_has("policies/nope.yaml: error[WARD-Y007]: no such file or folder")
        .stdout_has("policies/bad.yaml:14:21: error[WARD-S009]")
        .stdout_has("invalid: 2 file(s), 2 document(s), 2 error(s)")
        .check(run.stderr.is_empty(), "no command error: a finding");
    // Alone, it is still a finding (not "no manifest found"), in every format.
    let json = repo
        .ward(&["validate", "nope.yaml", "--format", "json"])
        .code(EXIT_ERROR)
        .json();
    assert_eq!(json["diagnostics"][0]["code"], "WARD-Y007", "{json}");
    assert_eq!(json["diagnostics"][0]["file"], "nope.yaml", "{json}");
    assert_eq!(json["summary"]["valid"], false, "{json}");
    // ward test reports it the same way.
    repo.ward(&["test", "policies/ok.yaml", "missing/"])
        .code(EXIT_ERROR)
        .stdout_has("missing/: error[WARD-Y007]");
}

#[test]
fn paths_git_knows_as_deleted_are_counted_not_errors() {
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.write("policies/keep.yaml", cnp("shop", "keep", 80))
        .write("policies/gone.yaml", cnp("shop", "gone", 81))
        .write("policies/old/x.yaml", cnp("shop", "x", 83));
    repo.commit("three policies");
    // Deleted in the working tree only (still in HEAD and the index).
    repo.remove("policies/gone.yaml");
    // A folder deleted, as `git diff --name-only` lists its files.
    std::fs::remove_dir_all(repo.path.join("policies/old")).expect("rm -r");
    // Added to the index, never committed, then deleted from the working tree.
    repo.write("policies/new.yaml", cnp("shop", "new", 84));
    let mut index = repo.git.index().expect("index");
    index
        .add_path(std::path::Path::new("policies/new.yaml"))
        .expect("git add");
    index.write().expect("write index");
    repo.remove("policies/new.yaml");

    let names = git_diff_name_only(&repo.path, "HEAD");
    assert!(
        names.contains(&"policies/gone.yaml".to_owned())
            && names.contains(&"policies/old/x.yaml".to_owned()),
        "git lists the deleted files: {names:?}"
    );
    let mut args = vec!["validate", "policies/keep.yaml", "policies/new.yaml"];
    args.extend(names.iter().map(String::as_str));
    repo.ward(&args).code(EXIT_OK).stdout_has(
        "valid: 1 file(s), 1 document(s), 0 error(s), 0 warning(s), 3 deleted file(s) not checked",
    );
    // Only deletions: nothing to check, and nothing wrong.
    repo.ward(&["validate", "policies/gone.yaml"])
        .code(EXIT_OK)
        .stdout_has("valid: 0 file(s), 0 document(s), 0 error(s), 0 warning(s), 1 deleted file(s) not checked");
    let json = repo
        .ward(&["validate", "policies/gone.yaml", "--format", "json"])
        .code(EXIT_OK)
        .json();
    assert_eq!(json["deleted"][0], "policies/gone.yaml", "{json}");
    // From a sub-folder, paths are relative to it and still found in Git.
    let run = env.ward(
        &repo.path.join("policies"),
        &["validate", "gone.yaml", "keep.yaml"],
    );
    run.code(EXIT_OK)
        .stdout_has("1 deleted file(s) not checked");
    // Deleted in a commit, as in a pull request: `git diff --name-only <base>` lists them,
    // and they are in neither HEAD nor the index any more.
    repo.remove("policies/keep.yaml");
    repo.commit("every policy deleted");
    let names = git_diff_name_only(&repo.path, "HEAD~1");
    assert_eq!(
        names,
        [
            "policies/gone.yaml",
            "policies/keep.yaml",
            "policies/old/x.yaml"
        ],
        "git lists the files the commit deleted"
    );
    let mut args = vec!["validate"];
    args.extend(names.iter().map(String::as_str));
    repo.ward(&args).code(EXIT_OK).stdout_has(
        "valid: 0 file(s), 0 document(s), 0 error(s), 0 warning(s), 3 deleted file(s) not checked",
    );
    // A path Git never knew stays an error, beside the deleted one.
    repo.ward(&["validate", "policies/gone.yaml", "policies/never.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("policies/never.yaml: error[WARD-Y007]")
        .stdout_has("1 deleted file(s) not checked");
    // With --repo naming another repository, Git of that repository decides.
    let other = env.repo("other");
    other
        .ward(&[
            "validate",
            "--repo",
            "../repo",
            "../repo/policies/gone.yaml",
        ])
        .code(EXIT_OK)
        .stdout_has("1 deleted file(s) not checked");
    other
        .ward(&["validate", "../repo/policies/gone.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("WARD-Y007");
}

/// `git diff --name-only REV` (the working tree against REV), as a user's shell runs it.
fn git_diff_name_only(dir: &std::path::Path, rev: &str) -> Vec<String> {
    let out = std::process::Command::new("git")
        .args(["diff", "--name-only", rev])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git diff: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn fail_on_warn_makes_warnings_fail() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    repo.write("policies/no-namespace.yaml", NO_NAMESPACE);
    repo.ward(&["validate"])
        .code(EXIT_OK)
        .stdout_has("1 warning(s)");
    repo.ward(&["validate", "--fail-on-warn"])
        .code(EXIT_ERROR)
        .stdout_has("1 warning(s)");
    repo.ward(&[
        "validate",
        "--fail-on-warn",
        "-f",
        "policies/no-namespace.yaml",
    ])
    .code(EXIT_ERROR);
    // plan: the whole plan is shown, and the exit code says the warnings failed it.
    repo.ward(&["plan"]).code(EXIT_OK);
    repo.ward(&["plan", "--fail-on-warn", "--detailed-exitcode"])
        .code(EXIT_ERROR)
        .stdout_has("14 to create");
    // apply: nothing is applied.
    repo.ward(&["apply", "--fail-on-warn"])
        .code(EXIT_ERROR)
        .stderr_has("nothing applied: the revision has 1 warning(s) and --fail-on-warn");
    assert!(
        !repo.state().join("inventory.json").exists(),
        "nothing was applied"
    );
    repo.ward(&["apply"]).code(EXIT_OK);
    // diff: between revisions, and against the target.
    repo.commit("a policy with a warning");
    repo.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    repo.ward(&["diff", "--base", "HEAD~1", "--fail-on-warn"])
        .code(EXIT_ERROR)
        .stdout_has("1 warning(s)");
    repo.ward(&["diff"]).code(EXIT_OK);
    repo.ward(&["diff", "--fail-on-warn"]).code(EXIT_ERROR);
    // Without warnings the flag changes nothing.
    repo.remove("policies/no-namespace.yaml");
    repo.ward(&["validate", "--fail-on-warn"]).code(EXIT_OK);
}

/// A PolicyTest with one expectation that holds (port 80) and one that fails (81) against
/// `cnp("shop", "api", 80)`; the failing one is on line 10.
const API_TEST: &str = "apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata: {name: t}
spec:
  endpoints:
    - {name: client, namespace: shop, labels: {app: client}}
    - {name: api, namespace: shop, labels: {app: api}}
  expectations:
    - {from: client, to: api, port: 80, protocol: TCP, expect: allow}
    - {from: client, to: api, port: 81, protocol: TCP, expect: allow}
";

#[test]
fn ward_test_reads_standard_input_too() {
    let env = Env::new();
    let repo = env.repo("repo");
    repo.write("p.yaml", cnp("shop", "api", 80));
    let run = repo.ward_stdin(&["test", "-f", "p.yaml", "-"], API_TEST);
    run.code(EXIT_ERROR)
        .stdout_has("PolicyTest t (<stdin>:1)")
        .stdout_has("1 passed, 1 failed");
    repo.ward_stdin(&["test", "p.yaml", "-", "--format", "github"], API_TEST)
        .code(EXIT_ERROR)
        .stdout_has("::error file=<stdin>,line=10,title=ward test t::client → api TCP/81: expected allow, got default-deny");
}
