//! `ward reconcile`, the controller, against a real kube-apiserver and etcd: a push to a bare
//! repository is applied when the webhook (or notify) fires; unsigned hooks are refused; an
//! invalid commit is not applied and the WardSync says which file and line; /healthz,
//! /readyz and /metrics answer; of two controllers only the Lease holder writes, and the
//! other takes over when the holder stops. Fails rather than skips in must-run mode (`ward_testkit::must_run`) when the
//! test cluster is missing.

#![allow(clippy::unwrap_used, reason = "tests")]

mod testcluster;
mod util;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testcluster::TestCluster;
use util::{Env, Repo};

const SECRET: &str = "hook-secret-for-tests";

/// A controller process, stopped with SIGTERM on drop.
struct Controller {
    child: Child,
    port: u16,
}

impl Controller {
    fn start(env: &Env, cluster: &TestCluster, bare: &Path, identity: &str) -> Controller {
        Controller::start_with(env, cluster, bare, identity, &[])
    }

    /// [`Controller::start`] with extra environment variables.
    fn start_with(
        env: &Env,
        cluster: &TestCluster,
        bare: &Path,
        identity: &str,
        vars: &[(&str, &str)],
    ) -> Controller {
        let port = testcluster::free_port();
        let secret = env.path().join("secret");
        std::fs::write(&secret, SECRET).unwrap();
        let child = env
            .runner()
            .command(env.path(), &[])
            .args([
                "reconcile",
                "--rev",
                "main",
                "--interval",
                "1h",
                "--prune",
                "--identity",
                identity,
            ])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--webhook-secret-file",
            ])
            .arg(&secret)
            .arg("--repo")
            .arg(bare)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .env("WARD_LOG", "info")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Controller { child, port }
    }

    /// `(status, body)` of a request to the controller.
    fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        // The server may answer (413) before taking the whole body.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let out = String::from_utf8_lossy(&raw).into_owned();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            status,
            out.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default(),
        )
    }

    fn up(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.http("GET", "/metrics", &[], b"");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
    }

    fn hook(&self) -> u16 {
        let body = br#"{"ref":"refs/heads/main"}"#;
        self.http(
            "POST",
            "/hook",
            &[(
                "X-Hub-Signature-256",
                ward_reconciler::controller::http::sign(SECRET.as_bytes(), body),
            )],
            body,
        )
        .0
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the controller did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(
        util::wait_for(limit, cond),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// A bare clone of `repo` (what a Git server holds) and a push helper.
fn bare_of(env: &Env, repo: &Repo) -> PathBuf {
    let bare = env.path().join("server.git");
    repo.clone_bare(&bare);
    bare
}

/// A cluster with the `shop` namespace, a repository of the fixtures and its bare clone (what
/// the controller follows); `None` when the test cluster is missing outside CI.
fn setup() -> Option<(TestCluster, Env, Repo, PathBuf)> {
    let cluster = TestCluster::start()?;
    cluster.create_fixture_namespaces();
    let env = Env::new();
    let repo = env.fixture_repo();
    let bare = bare_of(&env, &repo);
    Some((cluster, env, repo, bare))
}

fn push(repo: &Repo, bare: &Path) {
    repo.push_to(bare, &[]);
}

fn port_of(cluster: &TestCluster) -> String {
    let out = cluster.kubectl(&[
        "get",
        "cnp",
        "-n",
        "shop",
        "backend-ingress",
        "-o",
        "jsonpath={.spec.ingress[0].toPorts[0].ports[0].port}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// When the holder last renewed the Lease (its `ward.dev/renewed-unix-ms` annotation), if the
/// Lease exists and says so.
fn lease_renewed_ms(cluster: &TestCluster) -> Option<u64> {
    let out = cluster.kubectl(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "ward-ward",
        "-o",
        "jsonpath={.metadata.annotations.ward\\.dev/renewed-unix-ms}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|v| *v > 0)
}

/// Waits until the Lease holder has renewed the Lease `times` more times.
fn wait_for_renewals(cluster: &TestCluster, times: usize) {
    let mut seen = std::collections::BTreeSet::new();
    seen.extend(lease_renewed_ms(cluster));
    let first = seen.len();
    // Renewals come every 3 s (controller::lease::RENEW).
    let limit = Duration::from_secs(5 * times as u64 + 10);
    wait_for(&format!("{times} renewal(s) of the Lease"), limit, || {
        seen.extend(lease_renewed_ms(cluster));
        seen.len() >= first + times
    });
}

fn sync_status(cluster: &TestCluster) -> Value {
    let out = cluster.kubectl(&["get", "wardsync", "ward", "-o", "json"]);
    serde_json::from_slice::<Value>(&out.stdout)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition(status: &Value, ty: &str) -> Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn pushes_are_applied_invalid_commits_are_not_and_the_status_says_why() {
    let Some((cluster, env, mut repo, bare)) = setup() else {
        return;
    };
    let mut c = Controller::start(&env, &cluster, &bare, "controller-a");

    wait_for("/healthz", Duration::from_secs(20), || {
        c.up() && c.http("GET", "/healthz", &[], b"").0 == 200
    });
    wait_for(
        "the first revision to be applied",
        Duration::from_secs(30),
        || port_of(&cluster) == "80",
    );
    wait_for("/readyz", Duration::from_secs(10), || {
        c.http("GET", "/readyz", &[], b"").0 == 200
    });
    wait_for("Ready=True", Duration::from_secs(10), || {
        condition(&sync_status(&cluster), "Ready")["status"] == "True"
    });
    let st = sync_status(&cluster);
    assert_eq!(
        st["lastAppliedRevision"],
        Value::String(repo.head()),
        "{st}"
    );
    assert!(
        condition(&st, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains(&format!("main@sha1:{}", repo.head())),
        "the condition names the ref and the full commit: {st}"
    );

    // Unsigned, wrongly signed and oversized hooks are refused.
    assert_eq!(c.http("POST", "/hook", &[], b"{}").0, 401);
    assert_eq!(
        c.http(
            "POST",
            "/hook",
            &[("X-Hub-Signature-256", "sha256=00".into())],
            b"{}"
        )
        .0,
        401
    );
    assert_eq!(
        c.http(
            "POST",
            "/hook",
            &[("X-Gitlab-Token", "wrong".into())],
            b"{}"
        )
        .0,
        401
    );
    assert_eq!(
        c.http("POST", "/hook", &[], &vec![b'x'; (1 << 20) + 1]).0,
        413
    );

    // A push, then the hook: applied.
    let file = "policies/namespaces/shop/backend-ingress.yaml";
    repo.write(
        file,
        repo.read(file).replace("port: \"80\"", "port: \"8080\""),
    );
    let good = repo.commit("backend on 8080");
    push(&repo, &bare);
    assert_eq!(c.hook(), 202);
    wait_for(
        "the pushed commit to be applied",
        Duration::from_secs(10),
        || port_of(&cluster) == "8080",
    );
    wait_for(
        "the status to name the commit",
        Duration::from_secs(5),
        || sync_status(&cluster)["lastAppliedRevision"] == Value::String(good.clone()),
    );

    // An invalid commit: nothing applied; the status names the file and line.
    repo.write(
        file,
        repo.read(file)
            .replace("apiVersion: cilium.io/v2", "apiVersion: cilium.io/v1alpha1")
            .replace("port: \"8080\"", "port: \"9090\""),
    );
    let bad = repo.commit("broken");
    push(&repo, &bare);
    assert_eq!(c.hook(), 202);
    wait_for(
        "the invalid commit to be reported",
        Duration::from_secs(10),
        || {
            let st = sync_status(&cluster);
            st["lastAttemptedRevision"] == Value::String(bad.clone())
                && condition(&st, "Ready")["reason"] == "ValidationFailed"
        },
    );
    let st = sync_status(&cluster);
    let ready = condition(&st, "Ready");
    assert_eq!(ready["status"], "False", "{st}");
    assert_eq!(ready["reason"], "ValidationFailed", "{st}");
    let msg = ready["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("revision main@sha1:{bad} is invalid")),
        "the condition names the full commit: {msg}"
    );
    assert!(
        msg.contains("policies/namespaces/shop/backend-ingress.yaml:")
            && msg.contains("cilium.io/v2"),
        "{msg}"
    );
    assert_eq!(condition(&st, "Stalled")["status"], "True", "{st}");
    assert_eq!(
        st["lastAppliedRevision"],
        Value::String(good.clone()),
        "the last good revision stays"
    );
    assert_eq!(
        port_of(&cluster),
        "8080",
        "nothing of the invalid commit applied"
    );
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "reason=ValidationFailed",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a Warning event is recorded");

    // Metrics, bounded labels.
    assert!(
        c.metric("ward_reconcile_total{outcome=\"invalid\"}")
            .unwrap()
            >= 1.0
    );
    assert!(
        c.metric("ward_reconcile_total{outcome=\"success\"}")
            .unwrap()
            >= 2.0
    );
    assert_eq!(c.metric("ward_leader"), Some(1.0));
    // Renewing the Lease (every 3 s) is not a reason to reconcile; the interval (1 h) is.
    let before = c.metric("ward_reconcile_total{outcome=\"success\"}");
    wait_for_renewals(&cluster, 2);
    assert_eq!(
        c.metric("ward_reconcile_total{outcome=\"success\"}"),
        before,
        "no reconcile without a trigger"
    );

    assert!(c.stop().success(), "SIGTERM ends the controller cleanly");
}

#[test]
fn only_the_lease_holder_writes_and_a_follower_takes_over() {
    let Some((cluster, env, mut repo, bare)) = setup() else {
        return;
    };
    let mut a = Controller::start(&env, &cluster, &bare, "controller-a");
    wait_for("a to apply", Duration::from_secs(30), || {
        port_of(&cluster) == "80"
    });
    let b = Controller::start(&env, &cluster, &bare, "controller-b");
    wait_for("b to serve", Duration::from_secs(20), || {
        b.up() && b.http("GET", "/healthz", &[], b"").0 == 200
    });
    // b asks for the Lease as soon as it serves and again every 2 s; a renews every 3 s.
    // Two renewals by a after b is up: b has asked at least once in between and lost.
    wait_for_renewals(&cluster, 2);
    assert_eq!(a.metric("ward_leader"), Some(1.0));
    assert_eq!(b.metric("ward_leader"), Some(0.0), "b follows");
    let holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "ward-ward",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "controller-a");
    let writers = cluster.field_managers("cnp", "shop", "backend-ingress");
    assert_eq!(writers.trim(), "ward");

    // The holder stops; the follower takes over and applies the next push.
    assert!(a.stop().success());
    let file = "policies/namespaces/shop/backend-ingress.yaml";
    repo.write(
        file,
        repo.read(file).replace("port: \"80\"", "port: \"8443\""),
    );
    repo.commit("8443");
    push(&repo, &bare);
    wait_for(
        "b to lead and apply the push",
        Duration::from_secs(20),
        || {
            let _ = b.hook();
            port_of(&cluster) == "8443"
        },
    );
    assert_eq!(b.metric("ward_leader"), Some(1.0));
    let holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "ward-ward",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "controller-b");
}

#[test]
fn the_controller_backs_off_while_the_api_server_is_gone_and_the_inventory_stays_right() {
    let Some((mut cluster, env, mut repo, bare)) = setup() else {
        return;
    };
    let c = Controller::start(&env, &cluster, &bare, "controller-a");
    wait_for(
        "the first revision to be applied",
        Duration::from_secs(30),
        || port_of(&cluster) == "80",
    );
    wait_for("Ready=True", Duration::from_secs(10), || {
        condition(&sync_status(&cluster), "Ready")["status"] == "True"
    });

    // The API server goes away; a push arrives: reconciles fail and back off.
    cluster.kill_apiserver();
    let file = "policies/namespaces/shop/backend-ingress.yaml";
    repo.write(
        file,
        repo.read(file).replace("port: \"80\"", "port: \"8080\""),
    );
    repo.write("policies/namespaces/shop/extra.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: extra, namespace: shop}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n");
    repo.remove("policies/namespaces/shop/frontend-egress.yaml");
    let head = repo.commit("while the API server is down");
    push(&repo, &bare);
    assert_eq!(c.hook(), 202);
    wait_for("failed reconciles", Duration::from_secs(20), || {
        c.metric("ward_reconcile_total{outcome=\"failure\"}")
            .unwrap_or(0.0)
            >= 2.0
    });
    assert_eq!(
        c.http("GET", "/healthz", &[], b"").0,
        200,
        "alive while the API server is gone"
    );

    // It comes back: the controller recovers by itself (backoff, no new trigger).
    cluster.restart_apiserver();
    wait_for(
        "the commit to be applied after the outage",
        Duration::from_secs(60),
        || sync_status(&cluster)["lastAppliedRevision"] == Value::String(head.clone()),
    );
    assert_eq!(port_of(&cluster), "8080");
    let cnps = cluster.kubectl_ok(&[
        "get",
        "cnp",
        "-n",
        "shop",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut cnps: Vec<&str> = cnps.split_whitespace().collect();
    cnps.sort();
    assert_eq!(
        cnps,
        [
            "admin-from-office",
            "backend-egress-deny-all",
            "backend-ingress",
            "extra"
        ],
        "pruned exactly the removed policy, created the new one"
    );
    // The inventory lists exactly what is there, every write confirmed (nothing orphaned).
    let st = sync_status(&cluster);
    let mut ids: Vec<String> = st["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    // The fixtures' objects, less the removed policy, plus the new one.
    let mut want: Vec<String> = util::FIXTURE_OBJECTS
        .iter()
        .filter(|k| !k.ends_with("/frontend-egress"))
        .map(|k| (*k).to_owned())
        .collect();
    want.push("CiliumNetworkPolicy/shop/extra".into());
    want.sort();
    assert_eq!(ids, want);
    assert!(
        st["inventory"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["seen"].as_str().unwrap().is_empty()),
        "{st}"
    );
    assert_eq!(condition(&st, "Ready")["status"], "True", "{st}");
}

/// A reconcile longer than the renewal period keeps renewing the Lease while it runs, so a
/// follower never sees it lapse mid-apply (the first apply of thousands of objects outlasts
/// the Lease's 15 s).
#[test]
fn a_long_reconcile_keeps_renewing_the_lease() {
    let Some((cluster, env, mut repo, bare)) = setup() else {
        return;
    };
    let many: String = (0..800)
        .map(|i| format!("---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: bulk-{i}, namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: bulk-{i}}}}}\n  ingress: [{{fromEndpoints: [{{matchLabels: {{app: frontend}}}}]}}]\n"))
        .collect();
    repo.write("policies/namespaces/shop/bulk.yaml", many);
    repo.commit("800 policies");
    push(&repo, &bare);
    let renewed = || lease_renewed_ms(&cluster);
    // One write at a time, so that the first apply outlasts several renewals
    // whatever the API server's speed (with the default concurrency it takes ~4 s).
    let _a = Controller::start_with(
        &env,
        &cluster,
        &bare,
        "controller-a",
        &[("WARD_CONCURRENCY", "1")],
    );
    let start = std::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    // Renewals seen while the first reconcile is still applying (the WardSync not yet Ready).
    while condition(&sync_status(&cluster), "Ready")["status"] != "True" {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the first reconcile did not finish in 3 minutes"
        );
        if let Some(v) = renewed() {
            seen.insert(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = start.elapsed();
    assert!(
        took > Duration::from_secs(5),
        "the reconcile took only {took:?}: too short to show renewals (raise the number of policies)"
    );
    assert!(
        seen.len() >= 2,
        "the Lease was not renewed during a {took:?} reconcile: {seen:?}"
    );
    let holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "ward-ward",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "controller-a");
    // 810 objects take two LIST pages: a plan still finds every one of them unchanged.
    let kc = cluster.kubeconfig.display().to_string();
    repo.ward(&["plan", "--detailed-exitcode", "--kubeconfig", &kc])
        .code(0)
        .stdout_has("0 to create, 0 to change, 0 to prune, 0 drifted, 813 unchanged");
}
