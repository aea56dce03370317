//! Hostile and broken input: each is one error naming the file, exit 1, nothing applied
//! (the state directory is byte-identical after `apply`), and fast.
//!
//! The wall time of every refused apply is printed (`cargo test -- --nocapture` shows it);
//! the assertion allows 2 s so a loaded CI machine does not fail the suite, the target is
//! well under one.

mod util;

use std::time::Duration;
use util::{EXIT_ERROR, EXIT_OK, Env, Repo, Run, snapshot};

const LIMIT: Duration = Duration::from_secs(2);

/// A repository with the example policies committed and applied; returns it with a snapshot
/// of its state directory.
fn applied(env: &Env) -> Repo {
    let repo = env.fixture_repo();
    repo.ward(&["apply"]).code(EXIT_OK);
    repo
}

/// Runs `ward apply extra...` and checks that it refuses with exactly one error, on `file`,
/// quickly, and leaves the state directory as it was.
fn refused(case: &str, repo: &Repo, file: &str, extra: &[&str]) -> Run {
    let before = snapshot(&repo.state());
    let mut args = vec!["apply"];
    args.extend_from_slice(extra);
    let run = repo.ward(&args);
    eprintln!(
        "timing: {case:<28} {:>6.1} ms",
        run.elapsed.as_secs_f64() * 1000.0
    );
    run.code(EXIT_ERROR).stderr_has("nothing applied").check(
        run.elapsed < LIMIT,
        format_args!("{case}: refused within {LIMIT:?}"),
    );
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("error["))
        .collect();
    run.check(
        errors.len() == 1,
        format_args!("{case}: exactly one error, got {errors:?}"),
    )
    .check(
        errors[0].starts_with(&format!("{file}:")),
        format_args!("{case}: the error names {file}"),
    )
    .stdout_has("1 error(s)");
    assert!(
        snapshot(&repo.state()) == before,
        "{case}: the state directory changed\n{}",
        run.context()
    );
    run
}

#[test]
fn a_yaml_alias_bomb() {
    let env = Env::new();
    let repo = applied(&env);
    // Billion laughs: 9 levels of 9 aliases each, ~387 million nodes when expanded.
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        text.push_str(&format!(
            "{}: &{} [{}]\n",
            w[1],
            w[1],
            vec![format!("*{}", w[0]); 9].join(",")
        ));
    }
    repo.write("policies/bomb.yaml", &text);
    refused("alias bomb", &repo, "policies/bomb.yaml", &[]).stdout_has("alias");
}

#[test]
fn ten_thousand_deep_flow_nesting() {
    let env = Env::new();
    let repo = applied(&env);
    repo.write(
        "policies/deep-flow.yaml",
        format!("spec: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
    );
    refused(
        "10,000-deep flow nesting",
        &repo,
        "policies/deep-flow.yaml",
        &[],
    );
}

#[test]
fn ten_thousand_deep_block_nesting() {
    let env = Env::new();
    let repo = applied(&env);
    // Compact block sequences: `- - - ... x`, one level per dash.
    repo.write(
        "policies/deep-block.yaml",
        format!("{}x\n", "- ".repeat(10_000)),
    );
    refused(
        "10,000-deep block nesting",
        &repo,
        "policies/deep-block.yaml",
        &[],
    )
    .stdout_has("nesting deeper than");
    // Block mappings, one level per line (10,000 levels of indentation would exceed the size
    // limit before the depth limit, so 2,000: still far beyond it).
    repo.remove("policies/deep-block.yaml");
    let nested: String = (0..2_000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect::<String>()
        + &" ".repeat(2_000)
        + "v\n";
    repo.write("policies/deep-map.yaml", nested);
    refused(
        "2,000-deep block mappings",
        &repo,
        "policies/deep-map.yaml",
        &[],
    )
    .stdout_has("nesting deeper than");
}

#[test]
fn a_100_mib_file_is_refused_before_it_is_read() {
    let env = Env::new();
    let repo = applied(&env);
    let path = repo.path.join("policies/huge.yaml");
    let f = std::fs::File::create(&path).expect("create");
    // Sparse: costs nothing on disk; reading it would take 100 MiB of memory.
    f.set_len(100 << 20).expect("set_len");
    drop(f);
    refused("100 MiB file", &repo, "policies/huge.yaml", &[]).stdout_has("104857600 bytes");
}

#[test]
fn a_committed_file_over_the_limit_is_refused_from_its_git_header() {
    let env = Env::new();
    let mut repo = applied(&env);
    repo.write("policies/big.yaml", vec![b'#'; 5 << 20]);
    repo.commit("a 5 MiB file");
    repo.remove("policies/big.yaml");
    refused(
        "5 MiB blob (--rev)",
        &repo,
        "policies/big.yaml",
        &["--rev", "HEAD"],
    )
    .stdout_has("5242880 bytes, more than the limit of 4194304 bytes");
}

#[test]
fn a_binary_file_named_yaml() {
    let env = Env::new();
    let repo = applied(&env);
    let mut bytes = b"apiVersion: cilium.io/v2\nkind: \x00\x00\x01\x02".to_vec();
    bytes.extend((0u8..=255).cycle().take(4096));
    repo.write("policies/x.yaml", bytes);
    refused("binary x.yaml", &repo, "policies/x.yaml", &[]).stdout_has("binary file");
}

#[test]
fn a_symlink_to_a_file_outside_the_repository() {
    let env = Env::new();
    let repo = applied(&env);
    // The target is a perfectly valid policy: it is refused for where it is, not what it says.
    let outside = env.path().join("outside.yaml");
    std::fs::write(&outside, util::cnp("shop", "smuggled", 22)).expect("write");
    std::os::unix::fs::symlink(&outside, repo.path.join("policies/link.yaml")).expect("symlink");
    refused(
        "symlink outside (worktree)",
        &repo,
        "policies/link.yaml",
        &[],
    )
    .stdout_has("symlink points outside the repository");
    let v = repo.ward(&["validate"]);
    v.code(EXIT_ERROR)
        .stdout_has("policies/link.yaml")
        .stdout_lacks("smuggled");
}

#[test]
fn a_committed_symlink_leaving_the_repository_read_with_rev() {
    let env = Env::new();
    let mut repo = applied(&env);
    std::fs::write(
        env.path().join("outside.yaml"),
        util::cnp("shop", "smuggled", 22),
    )
    .expect("write");
    // Relative, climbing out of the repository: policies/ -> repo/ -> sandbox.
    std::os::unix::fs::symlink("../../outside.yaml", repo.path.join("policies/link.yaml"))
        .expect("symlink");
    repo.commit("link a file from outside");
    let tree = repo
        .git
        .head()
        .and_then(|h| h.peel_to_tree())
        .expect("tree");
    let entry = tree
        .get_path(std::path::Path::new("policies/link.yaml"))
        .expect("committed");
    assert_eq!(entry.filemode(), 0o120000, "committed as a symlink");
    // Only Git holds the link from here on: the working tree is valid.
    repo.remove("policies/link.yaml");
    repo.ward(&["validate"]).code(EXIT_OK);
    refused(
        "symlink outside (--rev)",
        &repo,
        "policies/link.yaml",
        &["--rev", "HEAD"],
    )
    .stdout_has("symlink points outside the repository");
    repo.ward(&["validate", "--rev", "HEAD"])
        .code(EXIT_ERROR)
        .stdout_lacks("smuggled");
}

#[test]
fn non_utf8_text() {
    let env = Env::new();
    let repo = applied(&env);
    repo.write(
        "policies/latin1.yaml",
        b"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: caf\xe9\n  namespace: shop\n".as_slice(),
    );
    refused("non-UTF-8 text", &repo, "policies/latin1.yaml", &[]).stdout_has("UTF-8");
}

#[test]
fn duplicate_keys() {
    let env = Env::new();
    let repo = applied(&env);
    let text = util::cnp("shop", "dup", 80).replace(
        "  namespace: shop\n",
        "  namespace: shop\n  name: dup-again\n",
    );
    repo.write("policies/dup.yaml", text);
    let run = refused("duplicate keys", &repo, "policies/dup.yaml", &[]);
    run.stdout_has("policies/dup.yaml:6:3:")
        .stdout_has("duplicate key \"name\"")
        .stdout_has("already defined on line 4");
}

#[test]
fn an_invalid_policy_in_a_commit_keeps_the_applied_state() {
    let env = Env::new();
    let mut repo = applied(&env);
    let good = repo.head();
    let inv_before = std::fs::read(repo.state().join("inventory.json")).expect("inventory");
    let path = "policies/namespaces/shop/backend-ingress.yaml";
    repo.write(
        path,
        repo.read(path).replace("port: \"80\"", "port: \"80000\""),
    );
    repo.commit("break the backend");
    refused("invalid policy (worktree)", &repo, path, &[]);
    refused(
        "invalid policy (--rev HEAD)",
        &repo,
        path,
        &["--rev", "HEAD"],
    )
    .stdout_has("80000");
    assert_eq!(
        std::fs::read(repo.state().join("inventory.json")).expect("inventory"),
        inv_before
    );
    repo.ward(&["plan"]).code(EXIT_ERROR);
    repo.ward(&["status"])
        .code(util::EXIT_OK)
        .stdout_has(&format!("applied revision:  {good}\n"))
        .stdout_has("drift:             none");
    // The last good revision can still be applied by name.
    repo.ward(&["apply", "--rev", &good, "--detailed-exitcode"])
        .code(util::EXIT_OK);
}
