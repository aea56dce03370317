//! Snapshots of every output format of `ward validate`, `plan`, `diff`, `test`, `explain` and
//! `status`: the exact bytes of stdout and stderr, and the exit code, of the real binary on
//! fixed fixtures (`tests/data/snapshot/`, a frozen copy of the example policies, so that
//! editing the examples does not move these snapshots).
//!
//! What differs from run to run is scrubbed before comparing: the sandbox's temporary path
//! (`[TMP]`), commit ids (`[BASE]`, `[HEAD]`, `[BASE12]`, `[HEAD12]` for the commits a test
//! makes, `[COMMIT]` for any other) and timestamps (`[TIMESTAMP]`). Everything else must stay
//! byte-identical; a change shows up as a snapshot diff (`cargo insta review`, or
//! `INSTA_UPDATE=always` to rewrite them after a deliberate change). Under `CI=true` insta
//! writes nothing and a missing snapshot fails.

mod util;

use std::path::Path;
use util::{
    BAD, EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env, NO_NAMESPACE, Repo, Run, cnp,
    flip_first_expectation, workspace,
};

/// Every value of `--format` (plan, apply and diff write them all).
const FORMATS: [&str; 7] = [
    "text", "json", "markdown", "github", "sarif", "junit", "dot",
];

/// The formats `ward validate` writes.
const VALIDATE_FORMATS: [&str; 6] = ["text", "json", "markdown", "github", "sarif", "junit"];

const BACKEND: &str = "policies/namespaces/shop/backend-ingress.yaml";
const EGRESS_DENY_ALL: &str = "policies/namespaces/shop/backend-egress-deny-all.yaml";

/// YAML that does not parse.
const BROKEN: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: broken
 namespace: shop
";

/// A repository with the frozen fixtures committed once.
fn fixture_repo(env: &Env) -> Repo {
    let mut repo = env.repo("repo");
    repo.copy_tree(&workspace().join("reconciler/tests/data/snapshot"), "");
    repo.commit("example policies");
    repo
}

/// The second commit of the plan and diff scenarios: one object changed (the backend takes
/// admin too, on 8080 instead of 80), one created, one deleted.
fn second_commit(repo: &mut Repo) -> String {
    let backend = repo
        .read(BACKEND)
        .replace("port: \"80\"", "port: \"8080\"")
        .replace(
            "        - matchLabels:\n            app: frontend\n",
            "        - matchLabels:\n            app: frontend\n        - matchLabels:\n            app: admin\n",
        );
    repo.write(BACKEND, backend)
        .write(
            "policies/namespaces/shop/admin-ingress.yaml",
            cnp("shop", "admin", 9090),
        )
        .remove(EGRESS_DENY_ALL);
    repo.commit("backend on 8080 for frontend and admin; admin ingress; no egress deny-all")
}

/// Replaces what differs between runs with stable placeholders.
struct Scrub {
    literal: Vec<(String, String)>,
}

impl Scrub {
    /// Scrubs the sandbox path of `env` and the named commits.
    fn new(env: &Env, commits: &[(&str, &str)]) -> Scrub {
        let mut literal = Vec::new();
        for (id, name) in commits {
            literal.push((id.to_string(), format!("[{name}]")));
            literal.push((id[..12].to_string(), format!("[{name}12]")));
        }
        let tmp = env.path().to_string_lossy().into_owned();
        if let Ok(real) = env.path().canonicalize() {
            let real = real.to_string_lossy().into_owned();
            if real != tmp {
                literal.push((real, "[TMP]".into()));
            }
        }
        literal.push((tmp, "[TMP]".into()));
        Scrub { literal }
    }

    fn apply(&self, s: &str) -> String {
        let mut s = s.to_owned();
        for (from, to) in &self.literal {
            s = s.replace(from.as_str(), to);
        }
        s
    }
}

/// The insta settings of every snapshot here: regex filters for what literal scrubbing
/// cannot name in advance.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIMESTAMP]",
    );
    s.add_filter(r"\b[0-9a-f]{40}\b", "[COMMIT]");
    s
}

/// The whole of one run as a snapshot: the command, exit code, stdout and stderr. The end
/// marker keeps the last newline of stderr in the comparison (insta trims trailing ones).
fn render(args: &[&str], run: &Run, scrub: &Scrub) -> String {
    format!(
        "$ ward {}\nexit code: {}\n----- stdout -----\n{}----- stderr -----\n{}----- end -----",
        args.join(" "),
        run.code
            .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string()),
        scrub.apply(&run.stdout),
        scrub.apply(&run.stderr),
    )
}

/// Runs `ward args --format F` in `cwd` for each format and checks each run against the
/// snapshot `<name>_<F>`, after checking its exit code (the snapshot records it too).
fn check_formats(
    env: &Env,
    cwd: &Path,
    scrub: &Scrub,
    name: &str,
    args: &[&str],
    formats: &[(&str, i32)],
) {
    for (format, code) in formats {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--format", format]);
        let run = env.ward(cwd, &full);
        run.code(*code);
        settings().bind(|| {
            insta::assert_snapshot!(format!("{name}_{format}"), render(&full, &run, scrub));
        });
    }
}

/// Every format with the same expected exit code.
fn all(code: i32) -> Vec<(&'static str, i32)> {
    each(&FORMATS, code)
}

/// These formats with the same expected exit code.
fn each(formats: &[&'static str], code: i32) -> Vec<(&'static str, i32)> {
    formats.iter().map(|f| (*f, code)).collect()
}

#[test]
fn validate() {
    let env = Env::new();
    let repo = fixture_repo(&env);
    let scrub = Scrub::new(&env, &[(&repo.head(), "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "validate_valid",
        &["validate"],
        &each(&VALIDATE_FORMATS, EXIT_OK),
    );

    // Problems of every stage in the working tree (uncommitted): YAML, schema, semantic
    // rules, and a warning.
    repo.write("policies/namespaces/shop/bad.yaml", BAD)
        .write("policies/no-namespace.yaml", NO_NAMESPACE)
        .write("policies/broken.yaml", BROKEN);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "validate_invalid",
        &["validate"],
        &each(&VALIDATE_FORMATS, EXIT_ERROR),
    );
}

#[test]
fn plan() {
    let env = Env::new();
    let mut repo = fixture_repo(&env);
    let base = repo.head();
    repo.ward(&["apply"]).code(EXIT_OK);
    let head = second_commit(&mut repo);
    // Drift: an applied object edited by hand.
    let dns = repo
        .state()
        .join("objects/CiliumClusterwideNetworkPolicy/_cluster/allow-kube-dns.json");
    let text = std::fs::read_to_string(&dns).expect("the applied allow-kube-dns");
    let edited = text.replacen("\"53\"", "\"5353\"", 1);
    assert_ne!(text, edited, "allow-kube-dns names port 53");
    std::fs::write(&dns, edited).expect("edit the applied object");

    let scrub = Scrub::new(&env, &[(&base, "BASE"), (&head, "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "plan",
        &["plan", "--prune", "--detailed-exitcode"],
        &all(EXIT_CHANGES),
    );
    // Without --prune the deleted object is only reported, and the exit code is 0.
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "plan_no_prune",
        &["plan"],
        &[("text", EXIT_OK), ("json", EXIT_OK)],
    );
    // An invalid working tree: findings, no plan.
    repo.write("policies/namespaces/shop/bad.yaml", BAD);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "plan_invalid",
        &["plan"],
        &[("text", EXIT_ERROR), ("json", EXIT_ERROR)],
    );
}

#[test]
fn diff() {
    let env = Env::new();
    let mut repo = fixture_repo(&env);
    let base = repo.head();
    let head = second_commit(&mut repo);
    let scrub = Scrub::new(&env, &[(&base, "BASE"), (&head, "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "diff",
        &[
            "diff",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--detailed-exitcode",
        ],
        &all(EXIT_CHANGES),
    );

    // Without --base: against the local target, which holds the first commit.
    repo.ward(&["apply", "--rev", &base]).code(EXIT_OK);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "diff_live",
        &["diff"],
        &[("text", EXIT_OK), ("json", EXIT_OK)],
    );

    // A head with errors: findings, and the object diff of what is valid.
    repo.write("policies/namespaces/shop/bad.yaml", BAD);
    let bad = repo.commit("a bad policy");
    let scrub = Scrub::new(&env, &[(&head, "BASE"), (&bad, "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "diff_invalid",
        &["diff", "--base", "HEAD~1"],
        &all(EXIT_ERROR),
    );
}

#[test]
fn test() {
    let env = Env::new();
    let repo = fixture_repo(&env);
    let scrub = Scrub::new(&env, &[(&repo.head(), "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "test_pass",
        &["test"],
        &[("text", EXIT_OK), ("json", EXIT_OK), ("junit", EXIT_OK)],
    );

    // The seed's first expectation flipped: one failure, with the rule that decided.
    flip_first_expectation(&repo);
    // `ward test` writes text, json, github and junit (clap refuses the others).
    let formats = each(&["text", "json", "github", "junit"], EXIT_ERROR);
    check_formats(&env, &repo.path, &scrub, "test_fail", &["test"], &formats);
}

#[test]
fn explain() {
    let env = Env::new();
    let repo = fixture_repo(&env);
    let scrub = Scrub::new(&env, &[(&repo.head(), "HEAD")]);
    let allowed = [
        "explain",
        "--from",
        "shop/app=frontend",
        "--to",
        "shop/app=backend",
        "--port",
        "80/TCP",
    ];
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "explain_allow",
        &allowed,
        &[("text", EXIT_OK), ("json", EXIT_OK)],
    );
    // `ward explain` writes text and json; clap refuses the other formats (a usage error,
    // snapshot once).
    let denied = [
        "explain",
        "--from",
        "shop/app=admin",
        "--to",
        "shop/app=backend",
        "--port",
        "80/TCP",
    ];
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "explain_default_deny",
        &denied,
        &[("text", EXIT_OK), ("json", EXIT_OK), ("sarif", EXIT_ERROR)],
    );
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "explain_world",
        &[
            "explain", "--from", "backend", "--to", "world", "--port", "443/TCP",
        ],
        &[("text", EXIT_OK), ("json", EXIT_OK)],
    );
}

#[test]
fn status() {
    let env = Env::new();
    let repo = fixture_repo(&env);
    let scrub = Scrub::new(&env, &[(&repo.head(), "HEAD")]);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "status_never_applied",
        &["status"],
        &[("text", EXIT_OK), ("json", EXIT_OK)],
    );

    repo.ward(&["apply"]).code(EXIT_OK);
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "status_clean",
        &["status"],
        &[("text", EXIT_OK), ("json", EXIT_OK), ("sarif", EXIT_ERROR)],
    );

    // Drift: one applied object edited, one deleted, and one object ward never applied.
    let objects = repo.state().join("objects");
    let dns = objects.join("CiliumClusterwideNetworkPolicy/_cluster/allow-kube-dns.json");
    let text = std::fs::read_to_string(&dns).expect("the applied allow-kube-dns");
    std::fs::write(&dns, text.replacen("\"53\"", "\"5353\"", 1)).expect("edit");
    std::fs::remove_file(objects.join("CiliumNetworkPolicy/shop/frontend-egress.json"))
        .expect("delete");
    let stray = objects.join("CiliumNetworkPolicy/shop/stray.json");
    std::fs::copy(
        objects.join("CiliumNetworkPolicy/shop/backend-ingress.json"),
        &stray,
    )
    .expect("copy");
    check_formats(
        &env,
        &repo.path,
        &scrub,
        "status_drift",
        &["status", "--detailed-exitcode"],
        &[("text", EXIT_CHANGES), ("json", EXIT_CHANGES)],
    );
}
