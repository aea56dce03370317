//! `ward plan`, `apply` and `status` against the local target: the Terraform-style loop, one
//! changed line in a commit, pruning a deleted file, drift correction, and a remote
//! repository cloned into the cache.

mod util;

use util::{EXIT_CHANGES, EXIT_OK, Env, FIXTURE_OBJECTS, Repo, object_file, objects};

/// Applies HEAD of `repo` (which must have changes) and checks the state it leaves.
fn apply_all(repo: &Repo) {
    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    let on_disk: Vec<String> = objects(&repo.state()).into_keys().collect();
    let expected: Vec<String> = {
        let mut v: Vec<String> = FIXTURE_OBJECTS.iter().map(|k| object_file(k)).collect();
        v.sort();
        v
    };
    assert_eq!(on_disk, expected, "the applied objects");
}

/// The diff lines of a text plan (indented by four spaces) that start with `sign`.
fn diff_lines(stdout: &str, sign: char) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(sign))
        .collect()
}

#[test]
fn plan_apply_plan_converges_and_status_shows_the_commit() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let head = repo.head();

    let plan = repo.ward(&["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has("13 to create, 0 to change, 0 to prune, 0 drifted, 0 unchanged");
    for key in FIXTURE_OBJECTS {
        plan.stdout_has(&format!("+ {key} create ("));
    }
    plan.check(
        !repo.state().join("objects").exists(),
        "plan writes no objects",
    );

    // Documented: apply exits 2 with --detailed-exitcode when it changed something, else 0.
    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("13 to create");
    assert_eq!(objects(&repo.state()).len(), 13);

    let again = repo.ward(&["plan", "--detailed-exitcode"]);
    again
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 13 unchanged");
    again.check(
        again.stdout.contains(&format!("Plan for {head}:")),
        "the plan names the clean commit",
    );

    let status = repo.ward(&["status"]);
    status
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {head}\n"))
        .stdout_has("13 in inventory, 13 live")
        .stdout_has("drift:             none");
    let json = repo.ward(&["status", "--format", "json"]);
    json.code(EXIT_OK);
    let doc = json.json();
    json.check(
        doc["appliedRevision"] == head.as_str(),
        "appliedRevision is the commit id",
    )
    .check(doc["interruptedApply"] == false, "not interrupted")
    .check(doc["inventory"] == 13 && doc["live"] == 13, "13 objects");

    // Applying again changes nothing and keeps the revision clean (the state directory in the
    // working tree must not make it look modified).
    let before = util::snapshot(&repo.state().join("objects"));
    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to create, 0 to change");
    assert_eq!(
        util::snapshot(&repo.state().join("objects")),
        before,
        "a no-op apply rewrites nothing"
    );
    assert!(!repo.is_dirty(), "the state directory is ignored by Git");
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {head}\n"));
}

#[test]
fn a_changed_line_in_a_commit_is_exactly_one_change() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    apply_all(&repo);
    let before = objects(&repo.state());

    let path = "policies/namespaces/shop/backend-ingress.yaml";
    let text = repo.read(path);
    repo.write(path, text.replace("port: \"80\"", "port: \"8080\""));
    let second = repo.commit("backend listens on 8080");

    let plan = repo.ward(&["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has("0 to create, 1 to change, 0 to prune, 0 drifted, 12 unchanged");
    plan.stdout_has("~ CiliumNetworkPolicy/shop/backend-ingress change (policies/namespaces/shop/backend-ingress.yaml:");
    let removed = diff_lines(&plan.stdout, '-');
    let added = diff_lines(&plan.stdout, '+');
    plan.check(
        removed.len() == 1 && removed[0].contains("port: \"80\""),
        format_args!("one removed line, the old port: {removed:?}"),
    )
    .check(
        added.len() == 1 && added[0].contains("port: \"8080\""),
        format_args!("one added line, the new port: {added:?}"),
    );

    let json = repo.ward(&["plan", "--format", "json"]);
    json.code(EXIT_OK);
    let doc = json.json();
    let p = &doc["plan"];
    let updates = p["updates"].as_array().expect("updates");
    json.check(updates.len() == 1, "exactly one update")
        .check(
            p["creates"].as_array().is_some_and(Vec::is_empty),
            "no creates",
        )
        .check(
            p["deletes"].as_array().is_some_and(Vec::is_empty),
            "no deletes",
        )
        .check(
            p["unchanged"].as_array().map(Vec::len) == Some(12),
            "twelve unchanged",
        )
        .check(
            updates[0]["key"]["name"] == "backend-ingress"
                && updates[0]["key"]["namespace"] == "shop",
            "the changed object",
        )
        .check(updates[0]["action"] == "update", "an update")
        .check(
            updates[0]["diff"]
                .as_str()
                .is_some_and(|d| d.contains("\n+            - port: \"8080\"\n")),
            "the diff has the new line",
        )
        .check(
            doc["head"] == second.as_str(),
            "the plan is for the new commit",
        )
        .check(doc["summary"]["changes"] == true, "changes");

    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    let after = objects(&repo.state());
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        changed,
        ["CiliumNetworkPolicy/shop/backend-ingress.json"],
        "only the changed object was rewritten"
    );
    repo.ward(&["plan", "--detailed-exitcode"]).code(EXIT_OK);
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {second}\n"));
}

#[test]
fn a_deleted_file_is_pruned_only_with_prune() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    apply_all(&repo);
    let gone = "CiliumNetworkPolicy/shop/frontend-egress";
    let gone_file = object_file(gone);

    repo.remove("policies/namespaces/shop/frontend-egress.yaml");
    let second = repo.commit("drop frontend-egress");
    let before = objects(&repo.state());

    let plan = repo.ward(&["plan", "--detailed-exitcode"]);
    // Deletes without --prune are not changes an apply would make.
    plan.code(EXIT_OK)
        .stdout_has("0 to create, 0 to change, 1 to prune (with --prune), 0 drifted, 12 unchanged");
    plan.stdout_has(&format!("- {gone} prune (with --prune)"));
    assert_eq!(objects(&repo.state()), before, "plan deletes nothing");

    repo.ward(&["plan", "--prune", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("1 to prune, 0 drifted");

    repo.ward(&["apply"])
        .code(EXIT_OK)
        .stdout_has("1 to prune (with --prune)");
    assert_eq!(
        objects(&repo.state()),
        before,
        "apply without --prune keeps the object"
    );
    let inv = util::inventory(&repo.state());
    assert!(
        inv["entries"].get(gone).is_some(),
        "still in the inventory, so a later prune finds it"
    );

    let apply = repo.ward(&["apply", "--prune", "--detailed-exitcode"]);
    apply
        .code(EXIT_CHANGES)
        .stdout_has("0 to create, 0 to change, 1 to prune, 0 drifted, 12 unchanged");
    let after = objects(&repo.state());
    let mut expected = before.clone();
    expected.remove(&gone_file).expect("the object existed");
    assert_eq!(
        after, expected,
        "exactly that object is removed, the others are byte-identical"
    );
    let inv = util::inventory(&repo.state());
    assert!(
        inv["entries"].get(gone).is_none(),
        "pruned from the inventory"
    );
    assert_eq!(inv["entries"].as_object().map(|m| m.len()), Some(12));

    let status = repo.ward(&["status"]);
    status
        .code(EXIT_OK)
        .stdout_has("12 in inventory, 12 live")
        .stdout_has(&format!("applied revision:  {second}\n"))
        .stdout_lacks("frontend-egress");
    repo.ward(&["plan", "--prune", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 to prune");
}

#[test]
fn drift_is_reported_and_apply_restores_it() {
    let env = Env::new();
    let repo = env.fixture_repo();
    apply_all(&repo);
    let key = "CiliumNetworkPolicy/shop/backend-ingress";
    let file = repo.state().join("objects").join(object_file(key));
    let original = std::fs::read(&file).expect("the applied object");
    let text = String::from_utf8(original.clone()).expect("UTF-8");
    let edited = text.replace("\"port\":\"80\"", "\"port\":\"81\"");
    assert_ne!(
        edited, text,
        "the object file holds the port as written: {text}"
    );
    std::fs::write(&file, &edited).expect("edit by hand");

    let plan = repo.ward(&["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has("0 to create, 1 to change, 0 to prune, 1 drifted, 12 unchanged")
        .stdout_has(&format!("~ {key} change ("))
        .stdout_has("[drifted]")
        .stdout_has("Drifted (changed outside ward since it was applied):")
        .stdout_has(&format!("\n  {key}\n"));
    let (minus, plus) = (diff_lines(&plan.stdout, '-'), diff_lines(&plan.stdout, '+'));
    plan.check(
        minus.len() == 1 && minus[0].contains("port: \"81\""),
        "the diff removes the live port",
    )
    .check(
        plus.len() == 1 && plus[0].contains("port: \"80\""),
        "and puts the desired one back",
    );

    let status = repo.ward(&["status", "--detailed-exitcode"]);
    status
        .code(EXIT_CHANGES)
        .stdout_has("drift:             1 object(s) changed outside ward")
        .stdout_has(&format!("  {key}\n"));
    let json = repo.ward(&["status", "--format", "json"]);
    json.code(EXIT_OK);
    json.check(
        json.json()["drifted"] == serde_json::json!([key]),
        "drifted lists the object",
    );

    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("1 to change");
    assert_eq!(
        std::fs::read(&file).expect("restored object"),
        original,
        "apply writes the desired content back"
    );
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has("drift:             none");
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("0 drifted, 13 unchanged");

    // A deleted object is drift too.
    std::fs::remove_file(&file).expect("delete by hand");
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_CHANGES)
        .stdout_has("1 to create, 0 to change, 0 to prune, 1 drifted");
    repo.ward(&["status"]).code(EXIT_OK);
    repo.ward(&["status", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    repo.ward(&["apply"]).code(EXIT_OK);
    assert_eq!(std::fs::read(&file).expect("recreated object"), original);
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has("drift:             none");
}

#[test]
fn a_remote_repository_is_cloned_into_the_cache_and_fetched_again() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let bare = env.path().join("remote.git");
    let url = repo.bare_clone(&bare);
    let cache = env.path().join("cache");
    let state = env.path().join("state");
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--repo",
            &url,
            "--cache-dir",
            &cache.to_string_lossy(),
            "--state",
            &state.to_string_lossy(),
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        env.ward(&elsewhere, &refs)
    };

    let first = repo.head();
    let plan = run(&["plan", "--format", "json"]);
    plan.code(EXIT_OK);
    plan.check(
        plan.json()["head"] == first.as_str(),
        "plans the remote's HEAD",
    )
    .check(
        plan.json()["plan"]["creates"].as_array().map(Vec::len) == Some(13),
        "13 creates",
    );
    let cached: Vec<_> = std::fs::read_dir(cache.join("repos"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    plan.check(cached.len() == 1, "one clone in the cache");
    run(&["apply"]).code(EXIT_OK);
    run(&["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("13 unchanged");

    // A new commit on the remote is fetched by the next plan.
    let path = "policies/namespaces/shop/backend-ingress.yaml";
    repo.write(
        path,
        repo.read(path).replace("port: \"80\"", "port: \"8080\""),
    );
    let second = repo.commit("backend on 8080");
    repo.push();
    let plan = run(&["plan", "--detailed-exitcode"]);
    plan.code(EXIT_CHANGES)
        .stdout_has(&format!("Plan for {second}:"))
        .stdout_has("0 to create, 1 to change, 0 to prune");
    run(&["apply"]).code(EXIT_OK);
    run(&["status"])
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {second}\n"));
    assert!(!elsewhere.join(".ward").exists(), "--state was honoured");
    let cached: Vec<_> = std::fs::read_dir(cache.join("repos"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert_eq!(cached.len(), 1, "fetched into the same clone");
    assert!(
        !env.path().join("home").join(".cache").exists(),
        "--cache-dir was honoured"
    );
}

#[test]
fn an_object_ward_did_not_apply_is_left_alone_until_adopted() {
    let env = Env::new();
    let repo = env.fixture_repo();
    // Written by hand into the state directory, as ward would have written it.
    let key = FIXTURE_OBJECTS[0];
    repo.ward(&["apply"]).code(EXIT_OK);
    let file = repo.state().join("objects").join(object_file(key));
    let bytes = std::fs::read(&file).expect("applied object");
    let inventory = util::inventory(&repo.state());
    std::fs::remove_dir_all(repo.state()).expect("fresh state");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &bytes).expect("write by hand");
    assert!(inventory["entries"].get(key).is_some(), "{inventory}");

    let plan = repo.ward(&["plan"]);
    plan.code(EXIT_OK)
        .stdout_has("12 to create, 0 to change, 0 to prune, 0 drifted, 0 unchanged, 1 exist(s) not managed by ward")
        .stdout_has(&format!("Exist, not managed by ward (left alone; --adopt takes them over):\n  {key}"));
    repo.ward(&["apply"]).code(EXIT_OK);
    let inv = util::inventory(&repo.state());
    assert!(inv["entries"].get(key).is_none(), "not adopted: {inv}");
    assert_eq!(inv["entries"].as_object().map(|e| e.len()), Some(12));

    repo.ward(&["apply", "--adopt"])
        .code(EXIT_OK)
        .stdout_has(&format!("~ {key} adopt"));
    let inv = util::inventory(&repo.state());
    assert!(inv["entries"].get(key).is_some(), "adopted: {inv}");
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has("13 unchanged");
}

/// Outside Git there is no commit: an apply records a digest of the content as the applied
/// revision, the same for the same files, another one after a change, so agents and
/// `ward status` can tell one apply from the next.
#[test]
fn an_apply_outside_git_records_a_content_digest() {
    let env = Env::new();
    let dir = env.path().join("plain");
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    std::fs::write(dir.join("policies/web.yaml"), util::cnp("shop", "web", 80)).expect("write");
    let applied = |expect_changes: bool| -> String {
        let run = env.ward(&dir, &["apply", "--detailed-exitcode"]);
        run.code(if expect_changes {
            EXIT_CHANGES
        } else {
            EXIT_OK
        });
        let status = env.ward(&dir, &["status", "-o", "json"]);
        let doc = status.code(EXIT_OK).json();
        doc["appliedRevision"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let first = applied(true);
    assert!(
        first.starts_with("sha256:") && first.len() == "sha256:".len() + 16,
        "applied revision {first:?}"
    );
    assert_eq!(applied(false), first, "the same files: the same digest");
    std::fs::write(
        dir.join("policies/web.yaml"),
        util::cnp("shop", "web", 8080),
    )
    .expect("write");
    let second = applied(true);
    assert!(
        second.starts_with("sha256:") && second != first,
        "{first} then {second}"
    );
    // A plan names commits only: none here.
    env.ward(&dir, &["plan", "-o", "json"])
        .code(EXIT_OK)
        .stdout_lacks("sha256:");
}
