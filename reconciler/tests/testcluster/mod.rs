//! A real Kubernetes API server for tests: etcd and kube-apiserver built from their Go modules
//! by `ci/kube/build.sh` (cached under `$HOME/.cache/ward/kube`), started on free loopback
//! ports with freshly generated certificates, and torn down in `Drop` (also on panic).
//!
//! - [`TestCluster::start`] finds the binaries (`WARD_KUBE_BIN`, else the build script's cache),
//!   generates a CA, a serving certificate for 127.0.0.1, an admin client certificate
//!   (`system:masters`) and a service-account key, starts etcd and kube-apiserver, waits for
//!   `/readyz` (polling, never a fixed sleep) and installs the CRDs in `schema/crds/`.
//! - [`TestCluster::namespace`] gives each test its own namespace.
//! - Without the binaries a test is skipped with a message, except in must-run mode (`ward_testkit::must_run`), where
//!   that is a failure (`ci/test.sh` builds them).

#![allow(dead_code, clippy::unwrap_used, clippy::panic, reason = "test harness")]

pub mod kubectl;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running etcd + kube-apiserver pair and the files to reach it.
pub struct TestCluster {
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    /// How kube-apiserver was started (binary and arguments), to start it again.
    apiserver_cmd: (PathBuf, Vec<String>),
    /// A kubeconfig with cluster-admin rights.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
}

/// Where the binaries are, or why there are none.
fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("WARD_KUBE_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("kube-apiserver").exists() && dir.join("etcd").exists() {
            Ok(dir)
        } else {
            Err(format!(
                "WARD_KUBE_BIN={} has no kube-apiserver and etcd",
                dir.display()
            ))
        };
    }
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let cache = Path::new(&home).join(".cache/ward/kube");
    let found = std::fs::read_dir(&cache)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|b| b.join(".done").exists());
    found.ok_or_else(|| {
        format!(
            "no test-cluster binaries under {}; build them with ci/kube/build.sh",
            cache.display()
        )
    })
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// CA, serving certificate, admin client certificate and service-account key, as PEM files.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "ward test cluster CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    write(&dir.join("ca.crt"), &ca_cert.pem());
    let issuer = Issuer::new(ca, ca_key);

    let names = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    .map(String::from)
    .to_vec();
    let mut serving = CertificateParams::new(names).unwrap();
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_key = KeyPair::generate().unwrap();
    write(
        &dir.join("apiserver.crt"),
        &serving.signed_by(&serving_key, &issuer).unwrap().pem(),
    );
    write(&dir.join("apiserver.key"), &serving_key.serialize_pem());

    let mut admin = CertificateParams::new(Vec::<String>::new()).unwrap();
    admin
        .distinguished_name
        .push(DnType::CommonName, "ward-test-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_key = KeyPair::generate().unwrap();
    write(
        &dir.join("admin.crt"),
        &admin.signed_by(&admin_key, &issuer).unwrap().pem(),
    );
    write(&dir.join("admin.key"), &admin_key.serialize_pem());

    let sa = KeyPair::generate().unwrap();
    write(&dir.join("sa.key"), &sa.serialize_pem());
    write(&dir.join("sa.pub"), &sa.public_key_pem());
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .stdin(Stdio::null());
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

impl TestCluster {
    /// Starts a cluster, or returns `None` (with a message) when the binaries are missing
    /// outside CI. Panics in must-run mode (`ward_testkit::must_run`) when they are missing, and whenever the cluster
    /// does not become ready (with the end of both logs).
    pub fn start() -> Option<TestCluster> {
        let bin = match binaries() {
            Ok(b) => b,
            Err(why) => {
                ward_testkit::skip("test cluster", &why);
                return None;
            }
        };
        // The ports are picked free, then bound by etcd and kube-apiserver: another process
        // can take one in between (seen in CI: etcd's "address already in use"). A start
        // that lost a port is tried again with new ones.
        let mut attempt = 1;
        let cluster = loop {
            let mut cluster = TestCluster::boot(&bin);
            match cluster.ready(Duration::from_secs(90)) {
                Ok(()) => break cluster,
                Err(why) if attempt < 3 && why.contains("address already in use") => {
                    eprintln!("test cluster: a port was taken meanwhile; starting again");
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        };
        Some(cluster.with_crds())
    }

    /// etcd and kube-apiserver started on free ports, not yet ready.
    fn boot(bin: &Path) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        certificates(d);
        let (client, peer, secure) = (free_port(), free_port(), free_port());
        let etcd = spawn(
            Command::new(bin.join("etcd"))
                .arg("--data-dir")
                .arg(d.join("etcd"))
                .args(["--name", "ward-test", "--log-level", "warn"])
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!(
                    "--initial-cluster=ward-test=http://127.0.0.1:{peer}"
                ))
                .args(["--unsafe-no-fsync"]),
            &d.join("etcd.log"),
        );
        let path = |f: &str| d.join(f).display().to_string();
        let apiserver_args: Vec<String> = vec![
            format!("--etcd-servers=http://127.0.0.1:{client}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={secure}"),
            format!("--tls-cert-file={}", path("apiserver.crt")),
            format!("--tls-private-key-file={}", path("apiserver.key")),
            format!("--client-ca-file={}", path("ca.crt")),
            format!("--service-account-key-file={}", path("sa.pub")),
            format!("--service-account-signing-key-file={}", path("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=RBAC".into(),
            format!("--cert-dir={}", path("certs")),
            "--enable-priority-and-fairness=false".into(),
            // As kubeadm and every distribution set it: the agent's DaemonSet is privileged.
            "--allow-privileged=true".into(),
            // The advertised address is loopback, which the default endpoint reconciler refuses.
            "--endpoint-reconciler-type=none".into(),
            "--v=0".into(),
        ];
        let apiserver_cmd = (bin.join("kube-apiserver"), apiserver_args);
        let apiserver = spawn(
            Command::new(&apiserver_cmd.0).args(&apiserver_cmd.1),
            &d.join("apiserver.log"),
        );
        let server = format!("https://127.0.0.1:{secure}");
        let kubeconfig = d.join("kubeconfig");
        write(
            &kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: ward-test\n  cluster: {{server: \"{server}\", certificate-authority: \"{}\"}}\nusers:\n- name: admin\n  user: {{client-certificate: \"{}\", client-key: \"{}\"}}\ncontexts:\n- name: ward-test\n  context: {{cluster: ward-test, user: admin}}\ncurrent-context: ward-test\n",
                path("ca.crt"),
                path("admin.crt"),
                path("admin.key")
            ),
        );
        TestCluster {
            dir,
            etcd,
            apiserver,
            apiserver_cmd,
            kubeconfig,
            server,
        }
    }

    /// Cilium's CRDs and ward's own applied, and Established.
    fn with_crds(self) -> TestCluster {
        // Cilium's CRDs and ward's own (paths that work from every crate that includes this).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reconciler");
        let mut apply = vec!["apply".to_owned(), "--server-side".to_owned()];
        let cilium = root
            .join("../schema/crds")
            .join(ward_testkit::newest_cilium_minor());
        for crds in [cilium, root.join("deploy/crds")] {
            for e in std::fs::read_dir(&crds)
                .unwrap()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            {
                apply.push("-f".into());
                apply.push(e.path().display().to_string());
            }
        }
        let args: Vec<&str> = apply.iter().map(String::as_str).collect();
        self.kubectl_ok(&args);
        self.wait_crds_established(Duration::from_secs(90));
        self
    }

    /// Waits until every CRD is Established. A loaded machine (tests starting several clusters
    /// at once) can make `kubectl wait` fail outright on a transient server error, so it is
    /// asked again until `limit`.
    fn wait_crds_established(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let out = self.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=30s",
                "crd",
                "--all",
            ]);
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "the CRDs were not Established within {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Kills kube-apiserver (SIGKILL); etcd and the data stay.
    pub fn kill_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
    }

    /// Starts kube-apiserver again on the same port and waits until it is ready.
    pub fn restart_apiserver(&mut self) {
        let log = self.dir.path().join("apiserver.log");
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(&self.apiserver_cmd.0);
        cmd.args(&self.apiserver_cmd.1)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .stdin(Stdio::null());
        self.apiserver = cmd.spawn().unwrap();
        self.wait_ready(Duration::from_secs(90));
    }

    /// Polls `/readyz` until it answers `ok`; panics with both logs after `limit`.
    fn wait_ready(&mut self, limit: Duration) {
        self.ready(limit).unwrap_or_else(|why| panic!("{why}"));
    }

    /// Polls `/readyz` until it answers `ok`; the reason with both logs when kube-apiserver
    /// exits first, or after `limit`.
    fn ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.apiserver.try_wait() {
                return Err(format!(
                    "kube-apiserver exited ({status}) before it was ready:\n{}",
                    self.logs()
                ));
            }
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            if start.elapsed() >= limit {
                return Err(format!(
                    "kube-apiserver not ready after {limit:?}:\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of both logs.
    pub fn logs(&self) -> String {
        let tail = |f: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let important: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with('E') || l.starts_with('F') || l.contains("error"))
                .collect();
            format!(
                "{}\n(errors:)\n{}",
                lines[lines.len().saturating_sub(15)..].join("\n"),
                important[important.len().saturating_sub(15)..].join("\n")
            )
        };
        format!(
            "--- etcd.log\n{}\n--- apiserver.log\n{}",
            tail("etcd.log"),
            tail("apiserver.log")
        )
    }

    /// Runs kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl::run(&self.kubeconfig, args)
    }

    /// Runs kubectl and panics unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl::ok(&self.kubeconfig, args)
    }

    /// The field managers of the `kind` object `namespace/name`, separated by spaces.
    pub fn field_managers(&self, kind: &str, namespace: &str, name: &str) -> String {
        self.kubectl_ok(&[
            "get",
            kind,
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
    }

    /// A kubeconfig at `path` holding nothing but a token of ServiceAccount `namespace/name`,
    /// for running a component with exactly its RBAC.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str, path: &Path) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace]);
        let ca = self.dir.path().join("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: sa\n  user: {{token: \"{}\"}}\ncontexts:\n- name: sa\n  context: {{cluster: c, user: sa}}\ncurrent-context: sa\n",
            self.server,
            ca.display(),
            token.trim()
        );
        write(path, &text);
        path.to_path_buf()
    }

    /// Asserts that ServiceAccount `namespace/name` may do none of `denied` ((verb, resource,
    /// namespace or "" for cluster scope)).
    pub fn assert_cannot(&self, namespace: &str, name: &str, denied: &[(&str, &str, &str)]) {
        let sa = format!("system:serviceaccount:{namespace}:{name}");
        for (verb, resource, ns) in denied {
            let mut args = vec!["auth", "can-i", verb, resource, "--as", &sa];
            if !ns.is_empty() {
                args.extend(["-n", ns]);
            }
            let out = self.kubectl(&args);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "no",
                "{sa} may {verb} {resource}"
            );
        }
    }

    /// Creates the namespaces of the example policies (one per folder under
    /// `policies/namespaces/`), which ward expects to exist before it applies into them.
    pub fn create_fixture_namespaces(&self) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/namespaces");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            self.kubectl_ok(&["create", "namespace", &name]);
        }
    }

    /// A new namespace of this test's own (`<prefix>-<n>`).
    pub fn namespace(&self, prefix: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed));
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for c in [&mut self.apiserver, &mut self.etcd] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
