//! An apply killed with SIGKILL at different moments is reported by `status`, repaired by the
//! next `plan`, leaves no temporary files and no half-written objects, and the inventory then
//! lists exactly what reached the disk; a following apply completes the job.

mod util;

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;
use util::{EXIT_CHANGES, EXIT_OK, Env, Repo, cnp, objects, wait_for};

const FILES: usize = 60;
const PER_FILE: usize = 50;
const TOTAL: usize = FILES * PER_FILE;

/// A repository with `TOTAL` small valid CNPs in `FILES` files, one namespace per file.
fn big_repo(env: &Env) -> Repo {
    let mut repo = env.repo("repo");
    for f in 0..FILES {
        let docs: Vec<String> = (0..PER_FILE)
            .map(|i| {
                cnp(
                    &format!("ns{f:03}"),
                    &format!("p{i:03}"),
                    1000 + (f * PER_FILE + i) as u32,
                )
            })
            .collect();
        repo.write(&format!("policies/ns{f:03}.yaml"), docs.join("---\n"));
    }
    repo.commit("many policies");
    repo
}

/// How many object files the state directory holds now (temporary files not counted).
fn count_objects(state: &Path) -> usize {
    let Ok(namespaces) = std::fs::read_dir(state.join("objects").join("CiliumNetworkPolicy"))
    else {
        return 0;
    };
    namespaces
        .flatten()
        .filter_map(|ns| std::fs::read_dir(ns.path()).ok())
        .map(|files| {
            files
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .sum()
}

/// Files under `dir` whose name marks them as temporary.
fn temp_files(dir: &Path) -> Vec<String> {
    util::snapshot(dir)
        .into_keys()
        .filter(|k| k.contains(".tmp-"))
        .collect()
}

/// Starts `ward apply`, waits until `ready` holds, and kills it with SIGKILL. Returns whether
/// the kill landed mid-apply (false when the apply finished first).
fn kill_apply_when(repo: &Repo, env: &Env, what: &str, mut ready: impl FnMut() -> bool) -> bool {
    let stderr_path = env.path().join("apply.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("create the stderr file");
    let mut child = env
        .runner()
        .command(&repo.path, &["apply"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("cannot start ward apply");
    let mut finished = false;
    let reached = wait_for(Duration::from_secs(60), || {
        if ready() {
            return true;
        }
        finished = matches!(child.try_wait(), Ok(Some(_)));
        finished
    });
    // `Child::kill` sends SIGKILL on Unix.
    let _ = child.kill();
    let status = child.wait().expect("wait for ward apply");
    assert!(
        reached,
        "{what}: not reached within 60 s; ward apply exited with {status:?}\n{}",
        util::list_files(&repo.state(), 20)
    );
    if status.signal() == Some(9) && repo.state().join("journal.json").exists() {
        return true;
    }
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "{what}: ward apply failed on its own ({status:?}):\n{stderr}"
    );
    eprintln!("{what}: the apply finished ({status:?}) before the kill; trying again");
    false
}

fn interrupted_apply_is_repaired(what: &str, ready_at: impl Fn(&Path) -> bool) {
    let env = Env::new();
    let repo = big_repo(&env);
    let state = repo.state();
    let mut killed = false;
    for _attempt in 0..3 {
        let _ = std::fs::remove_dir_all(&state);
        if kill_apply_when(&repo, &env, what, || ready_at(&state)) {
            killed = true;
            break;
        }
    }
    assert!(killed, "{what}: could not interrupt an apply in 3 attempts");
    let written = count_objects(&state);
    eprintln!("{what}: killed with {written} of {TOTAL} objects on disk");

    // status: the interruption is visible, in text and JSON, and in the detailed exit code.
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has("interrupted apply: yes");
    let status = repo.ward(&["status", "--format", "json", "--detailed-exitcode"]);
    status.code(EXIT_CHANGES).check(
        status.json()["interruptedApply"] == true,
        "interruptedApply is true",
    );
    assert!(
        state.join("journal.json").exists(),
        "status is read-only: it does not repair"
    );

    // plan repairs, then plans the rest.
    let plan = repo.ward(&["plan", "--format", "json"]);
    plan.code(EXIT_OK)
        .stderr_has("repaired an interrupted apply");
    let doc = plan.json();
    let creates = doc["plan"]["creates"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(usize::MAX);
    let unchanged = doc["plan"]["unchanged"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(usize::MAX);
    plan.check(
        creates + unchanged == TOTAL,
        "every desired object is either to create or unchanged",
    )
    .check(
        creates == TOTAL - written && unchanged == written,
        format_args!("{written} on disk are unchanged"),
    )
    .check(
        doc["plan"]["updates"].as_array().is_some_and(Vec::is_empty),
        "nothing half-written to update",
    )
    .check(
        doc["plan"]["drifted"].as_array().is_some_and(Vec::is_empty),
        "nothing drifted",
    );

    assert!(
        !state.join("journal.json").exists(),
        "the journal is gone after the repair"
    );
    repo.ward(&["status"])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "last attempt:      {} (did not complete)",
            repo.head()
        ))
        .stdout_lacks("interrupted apply");
    assert_eq!(
        temp_files(&state),
        Vec::<String>::new(),
        "no temporary files are left"
    );
    let on_disk = objects(&state);
    for (path, bytes) in &on_disk {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
            panic!("{path} is not valid JSON after the kill: {e}");
        }
    }

    // The inventory lists exactly the objects on disk, with the fingerprint of what is there.
    let inv = util::inventory(&state);
    let entries = inv["entries"].as_object().expect("inventory entries");
    let inv_files: BTreeSet<String> = entries.keys().map(|k| util::object_file(k)).collect();
    let disk_files: BTreeSet<String> = on_disk.keys().cloned().collect();
    assert_eq!(inv_files, disk_files, "inventory and disk agree");
    for (key, entry) in entries {
        let bytes = &on_disk[&util::object_file(key)];
        let digest: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            entry["fingerprint"].as_str(),
            Some(digest.as_str()),
            "{key}: the inventory records what is on disk"
        );
    }
    let status = repo.ward(&["status", "--format", "json"]);
    let s = status.code(EXIT_OK).json();
    status.check(
        s["interruptedApply"] == false
            && s["drifted"] == serde_json::json!([])
            && s["unmanaged"] == serde_json::json!([]),
        "clean status after repair",
    );

    // Finishing the job.
    repo.ward(&["apply"]).code(EXIT_OK);
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "0 to create, 0 to change, 0 to prune, 0 drifted, {TOTAL} unchanged"
        ));
    let status = repo.ward(&["status"]);
    status
        .code(EXIT_OK)
        .stdout_has(&format!("{TOTAL} in inventory, {TOTAL} live"))
        .stdout_has(&format!("applied revision:  {}\n", repo.head()));
    assert_eq!(temp_files(&state), Vec::<String>::new());
}

#[test]
fn killed_right_after_the_journal_appears() {
    interrupted_apply_is_repaired("kill at journal", |state| {
        state.join("journal.json").exists()
    });
}

#[test]
fn killed_after_a_third_of_the_objects() {
    interrupted_apply_is_repaired("kill at 1000 objects", |state| count_objects(state) >= 1000);
}

#[test]
fn killed_near_the_end() {
    interrupted_apply_is_repaired("kill at 2800 objects", |state| count_objects(state) >= 2800);
}
