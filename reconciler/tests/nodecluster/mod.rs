//! A real Kubernetes cluster of one or two nodes for end-to-end tests: `ci/cluster/up.sh`
//! (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd with runc, the
//! kubelet, CNI `ptp`; with `NODES=2` a second containerd and kubelet in a network namespace of
//! their own) in a folder of its own, and `ci/cluster/down.sh` in `Drop`, which removes every
//! process, mount, cgroup, network namespace and link it made (also on panic; the logs are
//! kept and named first).
//!
//! Needs root and the binaries of `ci/kube/build.sh` (`WARD_KUBE_BIN`, as `ci/test.sh` sets
//! it); without them a test is skipped with the reason, or fails in must-run mode
//! (`ward_testkit::must_run`). One cluster per machine at a time (the node's address and
//! cgroup root are fixed), so each test file starts one and runs its steps in one test.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, reason = "test harness")]

#[path = "../testcluster/kubectl.rs"]
mod kubectl;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The node's name (`NODE_NAME` of `ci/cluster/up.sh`).
pub const NODE: &str = "ward-node0";
/// The second node (`NODES=2`): its name, and the name of its network namespace and of the
/// host's side of the veth pair between the two (the underlay).
pub const NODE1: &str = "ward-node1";
/// The image of our echo server (`ci/cluster/images.sh`).
pub const TESTPOD_IMAGE: &str = "localhost/ward/testpod:1";

/// A running cluster, stopped and cleaned up on drop.
pub struct NodeCluster {
    dir: PathBuf,
    /// An admin kubeconfig.
    pub kubeconfig: PathBuf,
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the cluster cannot start here (`None`: it can).
fn missing() -> Option<String> {
    if !ward_testkit::is_root() {
        return Some("not root: the kubelet and containerd need root".into());
    }
    let Some(bin) = std::env::var_os("WARD_KUBE_BIN") else {
        return Some("WARD_KUBE_BIN is not set: export WARD_KUBE_BIN=$(ci/kube/build.sh)".into());
    };
    let bin = PathBuf::from(bin);
    [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
    ]
    .iter()
    .find(|c| !bin.join(c).exists())
    .map(|c| format!("{} has no {c}: run ci/kube/build.sh", bin.display()))
}

impl NodeCluster {
    /// Starts the cluster and waits until the node is Ready, or returns `None` (skipped with
    /// the reason) when it cannot run here. Panics with the scripts' output when it fails.
    pub fn start(test: &str) -> Option<NodeCluster> {
        NodeCluster::start_nodes(test, 1)
    }

    /// [`NodeCluster::start`] with `nodes` nodes (1 or 2): the second, [`NODE1`], runs its
    /// containerd and kubelet in a network namespace of its own.
    pub fn start_nodes(test: &str, nodes: u8) -> Option<NodeCluster> {
        if let Some(why) = missing() {
            ward_testkit::skip(test, &why);
            return None;
        }
        let dir = std::env::temp_dir().join(format!("ward-cluster-{}", std::process::id()));
        let started = Instant::now();
        let out = Command::new(repo().join("ci/cluster/up.sh"))
            .arg(&dir)
            .env("NODES", nodes.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let cluster = NodeCluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
        };
        assert!(
            out.status.success(),
            "ci/cluster/up.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        );
        eprintln!("cluster up in {:.1?}", started.elapsed());
        Some(cluster)
    }

    /// The last lines of every component's log.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let body = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            text.push_str(&format!("--- {}\n{tail}\n", e.path().display()));
        }
        text
    }

    /// Runs kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl::run(&self.kubeconfig, args)
    }

    /// Runs kubectl and panics unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl::ok(&self.kubeconfig, args)
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until every pod of `namespace` is Ready; panics with their state and the logs.
    pub fn wait_pods_ready(&self, namespace: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let out = self.kubectl(&[
                "wait",
                "pods",
                "--all",
                "-n",
                namespace,
                "--for=condition=Ready",
                "--timeout=5s",
            ]);
            if out.status.success() {
                return;
            }
            if start.elapsed() > limit {
                let state = self.kubectl(&["describe", "pods", "-n", namespace]);
                panic!(
                    "the pods of {namespace} were not Ready within {limit:?}:\n{}\n{}",
                    String::from_utf8_lossy(&state.stdout),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The IPv4 address of pod `namespace/name`.
    pub fn pod_ip(&self, namespace: &str, name: &str) -> Ipv4Addr {
        let ip = self.kubectl_ok(&[
            "get",
            "pod",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.status.podIP}",
        ]);
        ip.trim()
            .parse()
            .unwrap_or_else(|e| panic!("pod {namespace}/{name} has no IPv4 address ({ip:?}): {e}"))
    }

    /// Runs `command` in pod `namespace/name` (`kubectl exec`).
    pub fn exec(&self, namespace: &str, name: &str, command: &[&str]) -> Output {
        let mut args = vec!["exec", "-n", namespace, name, "--"];
        args.extend_from_slice(command);
        self.kubectl(&args)
    }

    /// Starts `command` in pod `namespace/name` (`kubectl exec`), its output piped.
    pub fn exec_spawn(&self, namespace: &str, name: &str, command: &[&str]) -> Child {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["exec", "-n", namespace, name, "--"])
            .args(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The folder the cluster lives in (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept =
                std::env::temp_dir().join(format!("ward-cluster-logs-{}", std::process::id()));
            let _ = Command::new("cp")
                .arg("-r")
                .arg(self.dir.join("logs"))
                .arg(&kept)
                .status();
            eprintln!("the cluster's logs are kept in {}", kept.display());
        }
        let out = Command::new(repo().join("ci/cluster/down.sh"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "ci/cluster/down.sh failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("ci/cluster/down.sh cannot run: {e}"),
        }
    }
}
