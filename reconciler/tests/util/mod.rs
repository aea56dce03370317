//! Harness for tests that run the real `ward` binary against real Git repositories.
//!
//! - The binary comes from `CARGO_BIN_EXE_ward`.
//! - Every test gets its own temporary directory ([`Env`]); `HOME` points into it, every
//!   `WARD_*` and `GIT_*` variable is removed and `NO_COLOR=1` is set, so nothing from the
//!   developer's machine leaks in.
//! - Repositories are made with `git2` ([`Repo`]): files are committed with a fixed author and
//!   fixed timestamps, so commit ids are the same on every run.
//! - [`Run`] holds the exit code, both outputs and the wall time of one invocation; every
//!   assertion on it prints the command, its working directory, the files there and both
//!   outputs when it fails.
//!
//! Teardown is `Drop` (the temporary directory), which also runs during a panic.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod sign;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// Exit codes as `ward --help` documents them.
pub const EXIT_OK: i32 = 0;
/// Errors: invalid input or a failed command.
pub const EXIT_ERROR: i32 = 1;
/// Changes present (with `--detailed-exitcode`), drift or an interrupted apply (`status`).
pub const EXIT_CHANGES: i32 = 2;

/// The workspace root (fixtures live in `policies/`, `cluster-config/` and `ci/testdata/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// The text of a fixture file, relative to the workspace root.
pub fn fixture(rel: &str) -> String {
    let p = workspace().join(rel);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
}

/// One test's sandbox: a temporary directory with a home folder inside.
pub struct Env {
    tmp: tempfile::TempDir,
    runner: Runner,
}

impl Env {
    /// A fresh sandbox.
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("ward-it-")
            .tempdir()
            .expect("cannot create a temp dir");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).expect("cannot create the test home");
        Env {
            runner: Runner { home },
            tmp,
        }
    }

    /// The sandbox folder.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A new, empty Git repository (branch `main`) in the sandbox folder `name`.
    pub fn repo(&self, name: &str) -> Repo {
        Repo::init(self.path().join(name), self.runner.clone())
    }

    /// A repository holding the example policies and cluster config, committed once.
    pub fn fixture_repo(&self) -> Repo {
        let mut r = self.repo("repo");
        r.copy_fixtures();
        r.commit("example policies");
        r
    }

    /// Runs `ward args` in `cwd`.
    pub fn ward(&self, cwd: &Path, args: &[&str]) -> Run {
        self.runner.run(cwd, args)
    }

    /// The runner (for spawning `ward` as a child process).
    pub fn runner(&self) -> &Runner {
        &self.runner
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Builds `ward` commands with the scrubbed environment.
#[derive(Debug, Clone)]
pub struct Runner {
    home: PathBuf,
}

impl Runner {
    /// A `ward` command in `cwd` with a scrubbed environment; not started.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(WARD);
        cmd.args(args);
        self.scrub(&mut cmd, cwd);
        cmd
    }

    /// Runs `script` with bash in `cwd`, in the same scrubbed environment as `ward`, with
    /// the binary under test first on `PATH` (so the script says `ward ...` as a user would).
    pub fn shell(&self, cwd: &Path, script: &str) -> Run {
        let bin = Path::new(WARD).parent().expect("the binary has a folder");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script);
        self.scrub(&mut cmd, cwd);
        cmd.env("PATH", std::env::join_paths(paths).expect("a PATH"));
        let cmdline = format!("bash -c {script:?}");
        let start = Instant::now();
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}` in {}: {e}", cwd.display()));
        Run::of(out, start, cmdline, cwd)
    }

    /// `cwd`, and an environment without the developer's WARD_*, GIT_* and colour settings.
    fn scrub(&self, cmd: &mut Command, cwd: &Path) {
        cmd.current_dir(cwd);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("WARD_")
                || k.starts_with("GIT_")
                || k == "RUST_LOG"
                || k.starts_with("CLICOLOR")
                || k.starts_with("XDG_")
            {
                cmd.env_remove(&*k);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb");
        cmd.stdin(Stdio::null());
    }

    /// Runs `ward args` in `cwd` to completion and captures everything.
    pub fn run(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run_with(cwd, args, &[])
    }

    /// [`Runner::run`] with environment variables `vars` set.
    pub fn run_with(&self, cwd: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Run {
        let cmdline = cmdline(args);
        let start = Instant::now();
        let out = self
            .command(cwd, args)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}` in {}: {e}", cwd.display()));
        Run::of(out, start, cmdline, cwd)
    }
}

impl Runner {
    /// Runs `ward args` in `cwd` with `input` on standard input, to completion.
    pub fn run_with_stdin(&self, cwd: &Path, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write as _;
        let cmdline = format!("{} < ({} bytes)", cmdline(args), input.len());
        let start = Instant::now();
        let mut child = self
            .command(cwd, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}` in {}: {e}", cwd.display()));
        let mut stdin = child.stdin.take().expect("a piped stdin");
        let input = input.to_vec();
        // Written from a thread, so a child that does not read cannot block the test.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for ward");
        writer.join().expect("the stdin writer");
        Run::of(out, start, cmdline, cwd)
    }
}

/// `ward a b c`, quoted where needed, for failure messages.
fn cmdline(args: &[&str]) -> String {
    let mut s = String::from("ward");
    for a in args {
        if a.is_empty() || a.contains([' ', '"', '\'', '$']) {
            let _ = write!(s, " '{}'", a.replace('\'', "'\\''"));
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

/// One finished `ward` run.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
    cmdline: String,
    cwd: PathBuf,
}

impl Run {
    /// The run that ended with `out`, started at `start`.
    fn of(out: std::process::Output, start: Instant, cmdline: String, cwd: &Path) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
            cmdline,
            cwd: cwd.to_path_buf(),
        }
    }

    /// Everything needed to debug a failure without rerunning it.
    pub fn context(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "command: {}", self.cmdline);
        let _ = writeln!(s, "cwd:     {}", self.cwd.display());
        let _ = writeln!(s, "exit:    {:?} after {:?}", self.code, self.elapsed);
        let _ = writeln!(s, "files:\n{}", list_files(&self.cwd, 60));
        let _ = writeln!(s, "--- stdout ---\n{}", truncate(&self.stdout, 12_000));
        let _ = writeln!(s, "--- stderr ---\n{}", truncate(&self.stderr, 6_000));
        s
    }

    /// Panics with the context unless `cond` holds.
    #[track_caller]
    pub fn check(&self, cond: bool, what: impl std::fmt::Display) -> &Self {
        if !cond {
            panic!("assertion failed: {what}\n{}", self.context());
        }
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        self.check(
            self.code == Some(expected),
            format_args!("exit code {expected} expected, got {:?}", self.code),
        )
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        self.check(
            self.stdout.contains(needle),
            format_args!("stdout should contain {needle:?}"),
        )
    }

    /// Asserts that stdout does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        self.check(
            !self.stdout.contains(needle),
            format_args!("stdout should not contain {needle:?}"),
        )
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    /// Asserts stderr does not contain `needle`.
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        self.check(
            !self.stderr.contains(needle),
            format_args!("stderr should not contain {needle:?}"),
        )
    }

    pub fn stderr_has(&self, needle: &str) -> &Self {
        self.check(
            self.stderr.contains(needle),
            format_args!("stderr should contain {needle:?}"),
        )
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("stdout is not JSON: {e}\n{}", self.context()),
        }
    }

    /// The lines of stdout that start with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[... {} more bytes]", &s[..cut], s.len() - cut)
}

/// Up to `max` files under `dir` (not `.git`), with sizes.
pub fn list_files(dir: &Path, max: usize) -> String {
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    let mut s = String::new();
    for (rel, len) in files.iter().take(max) {
        let _ = writeln!(s, "  {rel} ({len} bytes)");
    }
    if files.len() > max {
        let _ = writeln!(s, "  ... and {} more", files.len() - max);
    }
    s
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name() == ".git" {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((rel, meta.len()));
        }
    }
}

/// Every file under `dir` with its bytes (symlinks as their target), keyed by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files
        .into_iter()
        .map(|(rel, _)| {
            let p = dir.join(&rel);
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (rel, bytes)
        })
        .collect()
}

/// The object files of a state directory: `Kind/namespace/name.json` → bytes.
pub fn objects(state: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(&state.join("objects"))
}

/// The state directory's inventory, parsed.
pub fn inventory(state: &Path) -> Value {
    let p = state.join("inventory.json");
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", p.display()))
}

/// The object file path (relative to `objects/`) for an inventory key such as
/// `CiliumNetworkPolicy/shop/backend-ingress` or `CiliumConfig/cilium-config`.
pub fn object_file(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [kind, name] => format!("{kind}/_cluster/{name}.json"),
        [kind, ns, name] => format!("{kind}/{ns}/{name}.json"),
        _ => panic!("not an inventory key: {key}"),
    }
}

/// Waits for `cond`, checking every few milliseconds, until `deadline` passes.
pub fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A Git repository with a working tree, committed to with a fixed author.
pub struct Repo {
    /// The working tree.
    pub path: PathBuf,
    /// The repository.
    pub git: git2::Repository,
    runner: Runner,
    commits: i64,
}

impl Repo {
    fn init(path: PathBuf, runner: Runner) -> Repo {
        std::fs::create_dir_all(&path).expect("cannot create the repository folder");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let git = git2::Repository::init_opts(&path, &opts).expect("git init");
        Repo {
            path,
            git,
            runner,
            commits: 0,
        }
    }

    /// Writes a file of the working tree (folders created as needed).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("cannot create folders");
        }
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        self
    }

    /// Reads a file of the working tree.
    pub fn read(&self, rel: &str) -> String {
        let p = self.path.join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
    }

    /// Removes a file of the working tree.
    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path.join(rel);
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("cannot remove {}: {e}", p.display()));
        self
    }

    /// Copies the workspace's example `policies/` and `cluster-config/` into the working tree.
    pub fn copy_fixtures(&self) -> &Self {
        for dir in ["policies", "cluster-config"] {
            copy_dir(&workspace().join(dir), &self.path.join(dir));
        }
        self
    }

    /// Copies every file under `from` into the working tree at `to` (relative; "" for the top).
    pub fn copy_tree(&self, from: &Path, to: &str) -> &Self {
        copy_dir(from, &self.path.join(to));
        self
    }

    /// Stages everything (additions, changes, deletions, symlinks) and commits it with a fixed
    /// author and a timestamp that only depends on how many commits came before. Returns the
    /// commit id.
    pub fn commit(&mut self, message: &str) -> String {
        let mut index = self.git.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("git add");
        index.update_all(["*"], None).expect("git add -u");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("write tree");
        let tree = self.git.find_tree(tree_id).expect("tree");
        self.commits += 1;
        let time = git2::Time::new(1_700_000_000 + self.commits * 60, 0);
        let sig = git2::Signature::new("Ward Test", "test@ward.invalid", &time).expect("signature");
        let parent = self.git.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let id = self
            .git
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("git commit");
        id.to_string()
    }

    /// A bare clone at `to` (what a Git server holds).
    pub fn clone_bare(&self, to: &Path) {
        let ok = Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&self.path)
            .arg(to)
            .status()
            .expect("git clone --bare");
        assert!(ok.success(), "git clone --bare {}", to.display());
    }

    /// `git push` of HEAD to branch main of `bare`, with `vars` in git's environment.
    pub fn push_to(&self, bare: &Path, vars: &[(&str, &Path)]) {
        let out = Command::new("git")
            .envs(vars.iter().copied())
            .arg("-C")
            .arg(&self.path)
            .args(["push", "-q"])
            .arg(bare)
            .arg("HEAD:main")
            .output()
            .expect("git push");
        assert!(
            out.status.success(),
            "git push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The commit HEAD points to.
    pub fn head(&self) -> String {
        self.git
            .head()
            .expect("HEAD")
            .peel_to_commit()
            .expect("a commit")
            .id()
            .to_string()
    }

    /// Whether the working tree has changes Git would show (untracked files included).
    pub fn is_dirty(&self) -> bool {
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true).include_ignored(false);
        !self
            .git
            .statuses(Some(&mut opts))
            .expect("git status")
            .is_empty()
    }

    /// The default state directory of the local target.
    pub fn state(&self) -> PathBuf {
        self.path.join(".ward")
    }

    /// Runs `ward args` in the working tree.
    pub fn ward(&self, args: &[&str]) -> Run {
        self.runner.run(&self.path, args)
    }

    /// Runs `ward args --kubeconfig KUBECONFIG` in the working tree (the kube target).
    pub fn ward_on(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let kc = kubeconfig.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &kc]);
        self.ward(&all)
    }

    /// Runs `ward args` in the working tree with `input` on standard input.
    pub fn ward_stdin(&self, args: &[&str], input: &str) -> Run {
        self.runner
            .run_with_stdin(&self.path, args, input.as_bytes())
    }

    /// Creates a bare clone of this repository in `dest` (HEAD on `main`) and adds it as the
    /// remote `origin`. Returns the bare repository's `file://` URL.
    pub fn bare_clone(&self, dest: &Path) -> String {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.bare(true).initial_head("main");
        git2::Repository::init_opts(dest, &opts).expect("git init --bare");
        let url = format!("file://{}", dest.display());
        self.git.remote("origin", &url).expect("git remote add");
        self.push();
        url
    }

    /// Pushes `main` to `origin`.
    pub fn push(&self) {
        let mut remote = self.git.find_remote("origin").expect("origin");
        remote
            .push(&["refs/heads/main:refs/heads/main"], None)
            .expect("git push");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("cannot create folder");
    for e in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()))
    {
        let e = e.expect("dir entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest)
                .unwrap_or_else(|err| panic!("cannot copy {}: {err}", e.path().display()));
        }
    }
}

/// The PolicyTest of the example policies.
pub const SEED: &str = "policies/tests/shop-seed.yaml";

/// Flips the seed's first expectation (frontend → backend:80 allowed) to `deny`, so that
/// exactly one expectation fails.
pub fn flip_first_expectation(repo: &Repo) {
    let text = repo.read(SEED);
    let flipped = text.replacen(
        "port: 80, protocol: TCP, expect: allow,",
        "port: 80, protocol: TCP, expect: deny,",
        1,
    );
    assert_ne!(
        text, flipped,
        "the seed's first expectation is where this test expects it"
    );
    repo.write(SEED, flipped);
}

/// A valid CiliumNetworkPolicy without a namespace: one warning (WARD-K007).
pub const NO_NAMESPACE: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: no-namespace
spec:
  endpointSelector: {}
  ingress:
    - fromEntities: [cluster]
";

/// Three problems in one CiliumNetworkPolicy: a misspelt field (did-you-mean), two peer kinds
/// in one rule, and a port out of range. The README shows it as `bad.yaml`.
pub const BAD: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bad
  namespace: shop
spec:
  endpointSelecter:
    matchLabels:
      app: x
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: y
      fromEntities: [world]
      toPorts:
        - ports:
            - port: \"65536\"
              protocol: TCP
";

/// A small valid CiliumNetworkPolicy allowing ingress to `app: <name>` on `port`.
pub fn cnp(namespace: &str, name: &str, port: u32) -> String {
    format!(
        "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  endpointSelector:
    matchLabels:
      app: {name}
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: client
      toPorts:
        - ports:
            - port: \"{port}\"
              protocol: TCP
"
    )
}

/// The example objects ward applies from the fixtures (the PolicyTest is never applied).
pub const FIXTURE_OBJECTS: [&str; 13] = [
    "CiliumCIDRGroup/office-networks",
    "CiliumClusterwideNetworkPolicy/allow-kube-dns",
    "CiliumClusterwideNetworkPolicy/deny-world-egress",
    "CiliumClusterwideNetworkPolicy/host-firewall",
    "CiliumConfig/cilium-config",
    "CiliumEnvoyConfig/shop/envoy-frontend-l7lb",
    "CiliumNetworkPolicy/payments/api-ingress",
    "CiliumNetworkPolicy/payments/egress",
    "CiliumNetworkPolicy/shop/admin-from-office",
    "CiliumNetworkPolicy/shop/backend-egress-deny-all",
    "CiliumNetworkPolicy/shop/backend-ingress",
    "CiliumNetworkPolicy/shop/frontend-egress",
    "NetworkPolicy/shop/admin-ingress",
];

/// The output schema, compiled.
pub fn output_schema() -> jsonschema::Validator {
    let path = workspace().join("schema/json/output/v1.schema.json");
    let text = std::fs::read_to_string(&path).expect("the output schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::options()
        .build(&schema)
        .expect("the output schema compiles")
}

/// Checks one run's JSON against the schema and its version and command.
#[track_caller]
pub fn check_json(schema: &jsonschema::Validator, run: &Run, command: &str) {
    let doc = run.json();
    let errors: Vec<String> = schema
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path().as_str()))
        .collect();
    run.check(
        errors.is_empty(),
        format_args!("the JSON of {command} violates the schema: {errors:?}"),
    );
    run.check(doc["version"] == 1, "\"version\": 1");
    run.check(
        doc["command"] == command,
        format_args!("\"command\": {command}"),
    );
}
