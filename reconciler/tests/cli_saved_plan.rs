//! Saved plans against the local target, like `terraform plan -out`: `ward plan --out FILE`
//! writes the plan, `ward apply FILE` applies exactly it (the objects in the file, not the
//! branch's newer commits), and refuses, writing nothing, when the branch moved, the target
//! changed, or the file was edited or is of another format version.
#![allow(clippy::unwrap_used, reason = "tests")]

mod util;

use serde_json::Value;
use util::{EXIT_ERROR, EXIT_OK, Env, Repo, cnp, objects, snapshot};

/// `ward plan --out <repo>/../name args` succeeds; the saved plan, parsed.
fn plan_out(repo: &Repo, name: &str, args: &[&str]) -> (String, Value) {
    let file = repo.path.parent().unwrap().join(name);
    let file = file.to_string_lossy().into_owned();
    let mut all = vec!["plan", "--out", &file];
    all.extend(args);
    let run = repo.ward(&all);
    run.code(EXIT_OK).stderr_has("plan saved to");
    let text = std::fs::read_to_string(&file).unwrap();
    (file, serde_json::from_str(&text).unwrap())
}

/// The port the state directory's `shop/extra` policy allows.
fn extra_port(repo: &Repo) -> String {
    let objects = objects(&repo.state());
    let bytes = &objects["CiliumNetworkPolicy/shop/extra.json"];
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_saved_plan_applies_exactly_its_objects() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    repo.write("policies/extra.yaml", cnp("shop", "extra", 80));
    let c1 = repo.commit("extra on 80");
    let (file, doc) = plan_out(&repo, "plan.json", &["--rev", &c1]);
    assert_eq!(doc["kind"], "WardPlan");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["source"]["commit"], c1.as_str(), "the full commit");
    assert_eq!(doc["source"]["rev"], c1.as_str());
    assert_eq!(doc["target"]["identity"]["type"], "local");
    assert_eq!(doc["changes"].as_array().unwrap().len(), 14);
    assert!(
        !repo.state().join("objects").exists(),
        "a plan writes nothing"
    );

    // The branch moves on; the plan was made from a commit, which does not move.
    repo.write("policies/extra.yaml", cnp("shop", "extra", 443));
    repo.commit("extra on 443");
    let apply = repo.ward(&["apply", &file, "--detailed-exitcode"]);
    apply
        .code(util::EXIT_CHANGES)
        .stdout_has(&format!("Applied {c1}: 14 to create"));
    assert_eq!(objects(&repo.state()).len(), 14);
    assert_eq!(
        extra_port(&repo),
        "80",
        "the plan's objects, not the branch tip's"
    );
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has(&format!("applied revision:  {c1}\n"));

    // A plan is applied once: the target it was made against is gone.
    let again = repo.ward(&["apply", &file]);
    again
        .code(EXIT_ERROR)
        .stderr_has("changed since the plan was made")
        .stderr_has(&format!("applied revision was (none), is now {c1}"));
}

#[test]
fn a_changed_target_is_refused_naming_the_change() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let c0 = repo.head();
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.write("policies/extra.yaml", cnp("shop", "extra", 80));
    let c1 = repo.commit("extra");
    let (file, _) = plan_out(&repo, "plan.json", &["--rev", &c1]);

    // Someone else applies another commit meanwhile.
    repo.write("policies/other.yaml", cnp("shop", "other", 80));
    let c2 = repo.commit("other");
    repo.ward(&["apply", "--rev", &c2]).code(EXIT_OK);
    let before = snapshot(&repo.state());
    let refused = repo.ward(&["apply", &file]);
    refused
        .code(EXIT_ERROR)
        .stderr_has("the target (local state ")
        .stderr_has("changed since the plan was made; nothing was applied")
        .stderr_has(&format!("applied revision was {c0}, is now {c2}"))
        .stderr_has("object CiliumNetworkPolicy/shop/extra added")
        .stderr_has("object CiliumNetworkPolicy/shop/other added");
    assert_eq!(snapshot(&repo.state()), before, "nothing was written");
}

#[test]
fn a_moved_branch_is_refused_locally_and_by_url() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    let url = repo.bare_clone(&env.path().join("remote.git"));
    let cache = env.path().join("cache").to_string_lossy().into_owned();
    let planned = repo.head();
    let (local_plan, _) = plan_out(&repo, "local.json", &["--rev", "main"]);
    let (url_plan, doc) = plan_out(
        &repo,
        "url.json",
        &["--repo", &url, "--cache-dir", &cache, "--rev", "main"],
    );
    assert_eq!(doc["source"]["repository"], url.as_str());

    repo.write("policies/extra.yaml", cnp("shop", "extra", 80));
    let moved = repo.commit("moves main");
    repo.push();
    for (file, extra) in [
        (&local_plan, vec![]),
        (&url_plan, vec!["--cache-dir", &cache]),
    ] {
        let mut args = vec!["apply", file.as_str()];
        args.extend(extra);
        repo.ward(&args)
            .code(EXIT_ERROR)
            .stderr_has("the source revision moved since the plan was made")
            .stderr_has("\"main\"")
            .stderr_has(&format!("was {planned}, is now {moved}"))
            .stderr_has("nothing was applied");
        assert!(!repo.state().exists(), "nothing was written");
    }
}

#[test]
fn an_edited_or_foreign_plan_file_is_refused() {
    let env = Env::new();
    let repo = env.fixture_repo();
    let (file, doc) = plan_out(&repo, "plan.json", &[]);
    let write = |v: &Value| std::fs::write(&file, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    let refused = |needle: &str| {
        repo.ward(&["apply", &file])
            .code(EXIT_ERROR)
            .stderr_has(needle);
        assert!(!repo.state().exists(), "nothing was written");
    };

    let mut tampered = doc.clone();
    tampered["changes"][0]["object"]["metadata"]["name"] = "someone-else".into();
    write(&tampered);
    refused("was changed after ward wrote it");

    let mut newer = doc.clone();
    newer["version"] = 2.into();
    write(&newer);
    refused("a plan of format version 2, and this ward");

    let mut foreign = doc.clone();
    foreign["kind"] = "Plan".into();
    write(&foreign);
    refused("is not a ward plan");

    std::fs::write(&file, "not json").unwrap();
    refused("is not a ward plan: not JSON");

    // Options of a fresh plan do not mix with a saved one.
    write(&doc);
    repo.ward(&["apply", &file, "--prune"])
        .code(EXIT_ERROR)
        .stderr_has("cannot be used with");
    repo.ward(&["apply", &file]).code(EXIT_OK);
}

#[test]
fn a_saved_prune_deletes_what_it_planned_to() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    repo.write("policies/extra.yaml", cnp("shop", "extra", 80));
    repo.commit("extra");
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.remove("policies/extra.yaml");
    let without = repo.commit("no extra");
    let (file, doc) = plan_out(&repo, "prune.json", &["--rev", &without, "--prune"]);
    assert_eq!(doc["options"]["prune"], true);
    assert_eq!(doc["changes"][0]["action"], "delete");
    repo.ward(&["apply", &file])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "Applied {without}: 0 to create, 0 to change, 1 to prune"
        ));
    assert!(
        !objects(&repo.state()).contains_key("CiliumNetworkPolicy/shop/extra.json"),
        "pruned as planned"
    );
    assert_eq!(objects(&repo.state()).len(), 13);
}
