//! Every revision Git understands resolves to exactly that commit, for a repository on disk
//! and for one fetched by URL, with a cold and a warm cache; an unknown revision is an error
//! that names it, shows none of libgit2's internals, and changes nothing.
#![allow(clippy::unwrap_used, reason = "tests")]

mod util;

use std::path::Path;
use util::{EXIT_ERROR, EXIT_OK, Env, Repo, cnp};

/// A repository with history: `main` at c3 (c1 ← c2 ← c3), a lightweight tag `v1` and an
/// annotated tag `v2` on c1 and c2, a branch `other` at c2. Returns (c1, c2, c3).
fn history(repo: &mut Repo) -> (String, String, String) {
    repo.write("policies/a.yaml", cnp("shop", "a", 80));
    let c1 = repo.commit("c1");
    repo.write("policies/b.yaml", cnp("shop", "b", 80));
    let c2 = repo.commit("c2");
    repo.write("policies/c.yaml", cnp("shop", "c", 80));
    let c3 = repo.commit("c3");
    let git = &repo.git;
    let commit = |id: &str| {
        git.find_object(git2::Oid::from_str(id).unwrap(), None)
            .unwrap()
    };
    git.tag_lightweight("v1", &commit(&c1), false).unwrap();
    let sig = git2::Signature::new(
        "Ward Test",
        "test@ward.invalid",
        &git2::Time::new(1_700_001_000, 0),
    )
    .unwrap();
    git.tag("v2", &commit(&c2), &sig, "release 2", false)
        .unwrap();
    git.branch(
        "other",
        &git.find_commit(git2::Oid::from_str(&c2).unwrap()).unwrap(),
        false,
    )
    .unwrap();
    (c1, c2, c3)
}

/// Pushes every branch and tag of `repo` to its `origin`.
fn push_all(repo: &Repo) {
    let mut remote = repo.git.find_remote("origin").unwrap();
    remote
        .push(
            &[
                "+refs/heads/main:refs/heads/main",
                "+refs/heads/other:refs/heads/other",
                "+refs/tags/v1:refs/tags/v1",
                "+refs/tags/v2:refs/tags/v2",
            ],
            None,
        )
        .unwrap();
}

/// `ward plan --rev rev -o json` against `repo_arg`; the commit it planned.
fn planned(env: &Env, cwd: &Path, repo_arg: &str, cache: &Path, rev: &str) -> String {
    let run = env.ward(
        cwd,
        &[
            "--repo",
            repo_arg,
            "--cache-dir",
            &cache.to_string_lossy(),
            "--state",
            &cwd.join("state").to_string_lossy(),
            "plan",
            "--rev",
            rev,
            "--format",
            "json",
        ],
    );
    run.code(EXIT_OK);
    run.json()["head"].as_str().unwrap_or_default().to_owned()
}

fn expectations<'a>(c1: &'a str, c2: &'a str, c3: &'a str) -> Vec<(String, &'a str)> {
    vec![
        ("main".into(), c3),
        ("HEAD".into(), c3),
        ("main~1".into(), c2),
        ("HEAD~2".into(), c1),
        ("other".into(), c2),
        ("refs/heads/other".into(), c2),
        ("v1".into(), c1),
        ("v2".into(), c2),
        ("refs/tags/v2".into(), c2),
        ("v2^{commit}".into(), c2),
        (c1.to_owned(), c1),
        (c2[..10].to_owned(), c2),
    ]
}

#[test]
fn every_revision_resolves_to_its_commit_locally_and_by_url_cold_and_warm() {
    let env = Env::new();
    let mut repo = env.repo("work");
    let (c1, c2, c3) = history(&mut repo);
    let url = repo.bare_clone(&env.path().join("remote.git"));
    push_all(&repo);
    let cwd = env.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let local = repo.path.to_string_lossy().into_owned();
    for (rev, want) in expectations(&c1, &c2, &c3) {
        assert_eq!(
            planned(&env, &cwd, &local, &env.path().join("c0"), &rev),
            want,
            "--rev {rev} of the working tree's repository"
        );
        // Cold: a cache of its own for each revision.
        let cold = env.path().join(format!(
            "cold-{}",
            rev.replace(['/', '~', '^', '{', '}'], "_")
        ));
        assert_eq!(
            planned(&env, &cwd, &url, &cold, &rev),
            want,
            "--rev {rev} by URL, cold cache"
        );
    }
    // Warm: one cache, every revision in turn, and again after the remote moved on.
    let warm = env.path().join("warm");
    for (rev, want) in expectations(&c1, &c2, &c3) {
        assert_eq!(
            planned(&env, &cwd, &url, &warm, &rev),
            want,
            "--rev {rev} by URL, warm cache"
        );
    }
    repo.write("policies/d.yaml", cnp("shop", "d", 80));
    let c4 = repo.commit("c4");
    repo.push();
    assert_eq!(
        planned(&env, &cwd, &url, &warm, "main"),
        c4,
        "a warm cache fetches the new tip"
    );
    assert_eq!(planned(&env, &cwd, &url, &warm, "main~1"), c3);
    assert_eq!(
        planned(&env, &cwd, &url, &warm, "v1"),
        c1,
        "a tag still names its commit"
    );
}

#[test]
fn an_unknown_revision_names_itself_and_changes_nothing() {
    let env = Env::new();
    let mut repo = env.repo("work");
    history(&mut repo);
    let url = repo.bare_clone(&env.path().join("remote.git"));
    let cwd = env.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let state = cwd.join("state");
    for repo_arg in [repo.path.to_string_lossy().into_owned(), url] {
        for rev in ["nope", "main~9", "0123456789abcdef0123456789abcdef01234567"] {
            let run = env.ward(
                &cwd,
                &[
                    "--repo",
                    &repo_arg,
                    "--cache-dir",
                    &env.path().join("cache").to_string_lossy(),
                    "--state",
                    &state.to_string_lossy(),
                    "apply",
                    "--rev",
                    rev,
                ],
            );
            run.code(EXIT_ERROR)
                .stderr_has(&format!("\"{rev}\""))
                .stderr_lacks("class=")
                .stderr_lacks("code=");
            run.check(!state.exists(), "nothing was applied");
        }
    }
}

/// Plan, apply and status name the full commit they used, in text, json and markdown: an
/// abbreviated id can become ambiguous, and a GitOps record must say exactly what ran.
#[test]
fn plan_apply_and_status_name_the_full_commit() {
    let env = Env::new();
    let mut repo = env.repo("work");
    let (c1, c2, _) = history(&mut repo);
    let with_rev = |cmd: &str, rev: &str, format: &str| {
        let run = repo.ward(&[cmd, "--rev", rev, "--format", format]);
        run.code(EXIT_OK);
        run
    };
    with_rev("plan", "v2", "text").stdout_has(&format!("Plan for {c2}:"));
    let json = with_rev("plan", "v2", "json").json();
    assert_eq!(json["head"], c2.as_str());
    assert_eq!(json["plan"]["revision"], c2.as_str());
    with_rev("apply", "main~2", "text").stdout_has(&format!("Applied {c1}:"));
    let status = repo.ward(&["status"]);
    status
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {c1}\n"));
    assert_eq!(
        repo.ward(&["status", "--format", "json"]).json()["appliedRevision"],
        c1.as_str()
    );
    repo.ward(&[
        "diff", "--base", "v1", "--head", "v2", "--format", "markdown",
    ])
    .code(EXIT_OK)
    .stdout_has(&format!("`{c1}` → `{c2}`"));
}
