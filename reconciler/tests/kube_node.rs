//! The two-node cluster of `ci/cluster/` (see `tests/nodecluster`): a real kubelet runs
//! real pods from our own image in containerd, the CNI (`ptp`) gives each a /32 route on the
//! node (what ward-agent's kube mode attaches to), pods reach each other and the node reaches
//! them over their pod IPs, on one node and across the two, and after a crash (every process
//! up.sh started killed at once) `ci/cluster/down.sh` leaves nothing behind, of either node. Root and the cluster's binaries; fails rather
//! than skips in must-run mode.

#![allow(clippy::unwrap_used, reason = "tests")]

mod nodecluster;

use nodecluster::{NODE, NODE1, NodeCluster, TESTPOD_IMAGE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const NS: &str = "node-test";

/// The namespace and three pods: `echo` and `client` on the first node, `far` on the second.
fn pods() -> String {
    let pod = |name: &str, node: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {NS}, labels: {{app: {name}}}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: main, image: \"{TESTPOD_IMAGE}\", args: [serve], readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}}}\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n{}{}{}",
        pod("echo", NODE),
        pod("client", NODE),
        pod("far", NODE1)
    )
}

/// `GET /` from the node itself, straight to the pod's address.
fn get_from_node(ip: std::net::Ipv4Addr) -> String {
    let mut s = TcpStream::connect_timeout(&(ip, 80).into(), Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: echo\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// What the machine still holds of a cluster in `dir`: the node's address, mounts, cgroups,
/// processes, the folder, the second node's network namespace and veth pair.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    let mut left = Vec::new();
    let lo = Command::new("ip")
        .args(["-4", "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&lo.stdout).contains("10.250.0.1/32") {
        left.push("the node's address 10.250.0.1 on lo".to_owned());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.display().to_string();
    left.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&d))
            .map(|l| format!("mount {l}")),
    );
    for path in [
        "/sys/fs/cgroup/pids/ward-cluster",
        "/sys/fs/cgroup/pids/ward-cluster-node1",
        "/run/netns/ward-node1",
        "/sys/class/net/ward-node1",
    ] {
        if std::path::Path::new(path).exists() {
            left.push(path.to_owned());
        }
    }
    if dir.exists() {
        left.push(format!("folder {d}"));
    }
    let ps = Command::new("pgrep").args(["-f", &d]).output().unwrap();
    left.extend(
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .map(|p| format!("process {p}")),
    );
    left
}

/// The pod sandboxes the nodes' containerd recorded for the cluster in `dir`.
fn sandboxes(dir: &std::path::Path) -> Vec<String> {
    let state = "containerd/state/io.containerd.grpc.v1.cri/sandboxes";
    [dir.join(state), dir.join("node1").join(state)]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// SIGKILL to every process `ci/cluster/up.sh` started (`dir/pids`), as a crash would.
fn crash(dir: &std::path::Path) {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap();
    let ok = Command::new("kill")
        .arg("-KILL")
        .args(pids.split_whitespace())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -KILL {pids}");
    let shims = Command::new("pgrep")
        .arg("-f")
        .arg(format!("containerd-shim.*{}/containerd", dir.display()))
        .output()
        .unwrap();
    assert!(
        !shims.stdout.is_empty(),
        "the pods' shims went with containerd"
    );
}

#[test]
fn our_pods_run_on_a_real_kubelet_and_answer_over_their_pod_ips() {
    let Some(cluster) = NodeCluster::start_nodes("kube_node", 2) else {
        return;
    };
    cluster.apply(&pods());
    cluster.wait_pods_ready(NS, Duration::from_secs(120));
    let ip = cluster.pod_ip(NS, "echo");

    // The CNI routes the pod's /32 to its host-side veth: where ward-agent attaches.
    let route = Command::new("ip")
        .args(["route", "show", &format!("{ip}/32")])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains("dev veth"),
        "no /32 route to {ip} via a veth: {route:?}"
    );

    let answer = get_from_node(ip);
    assert!(
        answer.starts_with("HTTP/1.0 200") && answer.ends_with("\necho\n"),
        "{answer}"
    );

    // Pod to pod: the client pod fetches from the echo pod's address.
    let out = cluster.exec(NS, "client", &["/testpod", "get", &format!("http://{ip}/")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo\n");

    // Across the nodes: the host reaches the second node's pod through the veth pair, and
    // that pod the first node's (no policy and no WireGuard yet: in clear).
    let far = cluster.pod_ip(NS, "far");
    let answer = get_from_node(far);
    assert!(answer.ends_with("\nfar\n"), "{answer}");
    let out = cluster.exec(NS, "far", &["/testpod", "get", &format!("http://{ip}/")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo\n",
        "{NODE1} → {NODE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A crash: every process up.sh started killed at once, the pods' shims and containers,
    // mounts and network namespaces left running. down.sh (on drop) still removes it all.
    let dir = cluster.dir().to_path_buf();
    let sandboxes = sandboxes(&dir);
    assert_eq!(sandboxes.len(), 3, "{sandboxes:?}");
    crash(&dir);
    drop(cluster);
    let left = leftovers(&dir);
    assert!(left.is_empty(), "ci/cluster/down.sh left {left:#?}");
    let cached: Vec<String> = std::fs::read_dir("/var/lib/cni/results")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| sandboxes.iter().any(|id| f.contains(id.as_str())))
        .collect();
    assert!(
        cached.is_empty(),
        "CNI results of our pods are left: {cached:?}"
    );
    let route = Command::new("ip")
        .args(["route", "show", &format!("{ip}/32")])
        .output()
        .unwrap();
    assert!(route.stdout.is_empty(), "the pod's route is still there");
}
