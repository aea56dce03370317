//! `ward lab`: a bad topology is reported like `ward validate` reports a policy (file:line:col,
//! code, exit 1); a user without root is told what is missing; as root, `up` prints what it
//! built, `status` lists the lab, `down` removes it and is idempotent.
//!
//! The tests that build labs need root and iproute2: without them they print
//! `SKIPPED: <test>: <reason>` to stderr and pass, except in must-run mode (`ward_testkit::must_run`), where they fail.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use util::{EXIT_ERROR, EXIT_OK, Env, WARD};

fn privileged(test: &str) -> bool {
    ward_testkit::can_run(test, ward_testkit::lab_missing().as_deref())
}

fn topology(lab: &str) -> String {
    format!(
        "apiVersion: ward.dev/v1alpha1
kind: LabTopology
metadata: {{name: {lab}}}
spec:
  underlay: 172.31.0.0/24
  nodes:
    - {{name: n1, ip: 172.31.0.1, podCIDR: 10.201.1.0/24}}
    - {{name: n2, ip: 172.31.0.2, podCIDR: 10.201.2.0/24}}
  world: {{name: world, ip: 198.51.100.10}}
  pods:
    - {{name: web, namespace: demo, labels: {{app: web}}, ip: 10.201.1.10, node: n1}}
    - {{name: db, namespace: demo, labels: {{app: db}}, ip: 10.201.2.10, node: n2}}
"
    )
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn a_bad_topology_is_reported_with_file_line_and_code() {
    let env = Env::new();
    let text = topology("bad")
        .replace("node: n2}", "node: n3}")
        .replace("ip: 10.201.1.10", "ip: 10.201.2.77");
    std::fs::write(env.path().join("lab.yaml"), text).expect("write");
    let run = env.ward(env.path(), &["lab", "up", "lab.yaml"]);
    run.code(EXIT_ERROR)
        .stdout_has("lab.yaml:11:")
        .stdout_has("error[WARD-L003]: pod demo/web: ip 10.201.2.77 is outside podCIDR 10.201.1.0/24 of its node n1")
        .stdout_has("lab.yaml:12:")
        .stdout_has("error[WARD-L004]: pod demo/db: node \"n3\" is not declared")
        .stdout_has("hint: the nodes are: n1, n2")
        .stdout_has("invalid: 1 file(s), 1 document(s), 2 error(s)");
    // The same findings in the machine formats `ward validate` offers.
    let json = env.ward(env.path(), &["lab", "down", "lab.yaml", "--format", "json"]);
    json.code(EXIT_ERROR);
    let v = json.json();
    let codes: Vec<&str> = v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    json.check(
        codes == ["WARD-L003", "WARD-L004"],
        format_args!("codes {codes:?}"),
    );
    env.ward(env.path(), &["lab", "up", "missing.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("missing.yaml: error[WARD-Y001]: cannot read the topology");
}

#[test]
fn without_root_lab_up_says_what_it_needs() {
    // As root, drop to nobody with setpriv; a copy of the binary and the topology live where
    // nobody can read them.
    let dir = std::env::temp_dir().join(format!("ward-cli-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let _cleanup = RemoveDir(dir.clone());
    std::fs::write(dir.join("lab.yaml"), topology("nonroot")).expect("write");
    let mut cmd = if ward_testkit::is_root() {
        let ward = dir.join("ward");
        std::fs::copy(WARD, &ward).expect("copy ward");
        for (p, mode) in [
            (&dir, 0o755),
            (&ward, 0o755),
            (&dir.join("lab.yaml"), 0o644),
        ] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&ward);
        c
    } else {
        Command::new(WARD)
    };
    let out = cmd
        .args(["lab", "up", "lab.yaml"])
        .current_dir(&dir)
        .env("HOME", &dir)
        .env("NO_COLOR", "1")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return ward_testkit::skip(
                "without_root",
                &format!("cannot run setpriv (util-linux): {e}"),
            );
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_ERROR), "{stderr}");
    assert!(
        stderr.contains("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"),
        "{stderr}"
    );
    assert!(!netns_exists("w-nonroot.underlay"));
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ward lab down --name` when the test ends, also when it panics.
struct LabDown(String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(WARD)
            .args(["lab", "down", "--name", &self.0])
            .output();
    }
}

#[test]
fn up_status_down_as_root() {
    if !privileged("up_status_down") {
        return;
    }
    let env = Env::new();
    let lab = format!("c{}-cli", std::process::id());
    let _cleanup = LabDown(lab.clone());
    std::fs::write(env.path().join("lab.yaml"), topology(&lab)).expect("write");

    let up = env.ward(env.path(), &["lab", "up", "lab.yaml"]);
    up.code(EXIT_OK)
        .stdout_has(&format!(
            "lab {lab} is up: 2 node(s), 2 pod(s), world 198.51.100.10"
        ))
        .stdout_has("node n1  172.31.0.1  podCIDR 10.201.1.0/24")
        .stdout_has("pod demo/web  10.201.1.10")
        .stdout_has(&format!("netns w-{lab}.pod.demo.db"))
        .stdout_has("world world  198.51.100.10");
    up.check(
        netns_exists(&format!("w-{lab}.node.n2")) && netns_exists(&format!("w-{lab}.world")),
        "namespaces exist",
    );

    env.ward(env.path(), &["lab", "status"])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "lab {lab}: up, 6 network namespace(s), 2 node(s), 2 pod(s)"
        ));
    env.ward(env.path(), &["lab", "up", "lab.yaml"])
        .code(EXIT_ERROR)
        .stderr_has("already exists");
    // Replacing starts clean: a node's pins from the old lab (an agent's conntrack and
    // events) are removed. (bpffs holds directories, not files: a directory stands in.)
    let pins = std::path::Path::new("/sys/fs/bpf/ward/n1");
    std::fs::create_dir_all(pins).expect("a pin directory for node n1");
    let replaced = env.ward(env.path(), &["lab", "up", "--replace", "lab.yaml"]);
    replaced
        .code(EXIT_OK)
        .stdout_has("is up")
        .stdout_has("removed the pinned datapath of node n1 (/sys/fs/bpf/ward/n1)");
    replaced.check(!pins.exists(), "the old pins are gone");

    // down by topology file, then by name: idempotent.
    env.ward(env.path(), &["lab", "down", "lab.yaml"])
        .code(EXIT_OK)
        .stdout_has(&format!(
            "lab {lab}: removed 6 network namespace(s) and its state file"
        ));
    let again = env.ward(env.path(), &["lab", "down", "--name", &lab]);
    again
        .code(EXIT_OK)
        .stdout_has(&format!("lab {lab}: nothing to remove"));
    again.check(
        !netns_exists(&format!("w-{lab}.underlay")),
        "namespaces are gone",
    );
    env.ward(env.path(), &["lab", "status"])
        .code(EXIT_OK)
        .stdout_lacks(&format!("lab {lab}:"));
}
