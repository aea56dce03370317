//! The `ward` command: settings resolved from arguments and environment, then one function
//! per subcommand. Each returns the process exit code; errors bubble up as `anyhow` chains
//! that `main` prints on one line.

pub mod args;
#[cfg(feature = "node")]
mod lab;

use crate::desired::{Desired, validate_files, validate_snapshot};
use crate::normalize::{fingerprint, normalize};
use crate::plan::{self, Plan};
use crate::report::{self, Format, Report};
use crate::source::{GitSource, RemoteCache, Selection, Snapshot, open_repo, read_worktree};
use crate::target::kube::{KubeOptions, KubeTarget};
use crate::target::local::LocalTarget;
use crate::target::{ApplyOptions, Inventory, LiveObject, LiveSet, Target, check_prune};
use crate::testing::{self, Suite, connectivity, render as test_render};
use anyhow::{Context, Result, bail};
#[cfg(feature = "node")]
use args::ObserveArgs;
use args::{
    Cli, ColorChoice, Command, DiffArgs, ExplainArgs, GlobalArgs, PlanArgs, TestArgs, ValidateArgs,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use ward_schema::{Diagnostic, Origin, Resource, ResourceSet, Validation, yaml::Limits};

/// Exit code: success, nothing to report.
pub const EXIT_OK: i32 = 0;
/// Exit code: invalid input or a failed command.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: success with changes present (with --detailed-exitcode).
pub const EXIT_CHANGES: i32 = 2;

/// Where the desired state comes from.
#[derive(Debug, Clone)]
pub enum RepoRef {
    /// A folder on disk (a Git working tree, a bare repository, or any folder).
    Local(PathBuf),
    /// A URL cloned into the cache.
    Remote(String),
}

impl RepoRef {
    fn parse(s: &str) -> RepoRef {
        let is_url =
            s.contains("://") || (s.contains('@') && s.contains(':') && !Path::new(s).exists());
        if is_url {
            RepoRef::Remote(s.to_owned())
        } else {
            RepoRef::Local(PathBuf::from(s))
        }
    }
}

/// Resolved settings (phase two).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The repository.
    pub repo: RepoRef,
    /// Which files count.
    pub selection: Selection,
    /// The local target's state directory.
    pub state_dir: PathBuf,
    /// Cache root (remote clones go under `repos/`).
    pub cache_dir: PathBuf,
    /// Output format.
    pub format: Format,
    /// Whether text output is coloured.
    pub color: bool,
    /// The cluster to use instead of the local target (`--kubeconfig`, `--context`).
    pub kube: Option<KubeOptions>,
    /// `--sync` and `--config-namespace`, for the controller without a kubeconfig.
    pub sync: String,
    /// See `sync`.
    pub config_namespace: String,
}

impl Settings {
    /// Resolves arguments (already merged with the environment by clap) into settings.
    pub fn resolve(g: &GlobalArgs) -> Result<Settings> {
        let repo = RepoRef::parse(&g.repo);
        let state_dir = match (&g.state, &repo) {
            (Some(s), _) => s.clone(),
            (None, RepoRef::Local(p)) => repo_root(p).join(".ward"),
            (None, RepoRef::Remote(_)) => PathBuf::from(".ward"),
        };
        let cache_dir = match &g.cache_dir {
            Some(d) => d.clone(),
            None => home_cache()?,
        };
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            // anstream's decision: NO_COLOR (when not empty) and CLICOLOR=0 turn colour off,
            // CLICOLOR_FORCE turns it on, else a terminal that is not TERM=dumb.
            ColorChoice::Auto => {
                anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
            }
        };
        let limits = Limits {
            max_file_bytes: g.max_file_bytes,
            ..Limits::default()
        };
        let kube = (g.kubeconfig.is_some() || g.context.is_some()).then(|| KubeOptions {
            kubeconfig: g.kubeconfig.clone(),
            context: g.context.clone(),
            sync: g.sync.clone(),
            config_namespace: g.config_namespace.clone(),
        });
        Ok(Settings {
            repo,
            selection: Selection {
                include: g.include.clone(),
                limits,
            },
            state_dir,
            cache_dir,
            format: g.format,
            color,
            kube,
            sync: g.sync.clone(),
            config_namespace: g.config_namespace.clone(),
        })
    }
}

fn home_cache() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --cache-dir")?;
    Ok(PathBuf::from(home).join(".cache").join("ward"))
}

/// The top of the working tree that contains `p` (the nearest folder with a `.git` entry,
/// a folder or a worktree's file), or `p` itself outside Git.
///
/// A plain walk up rather than `git2::Repository::discover`: initialising libgit2 (and its
/// TLS library) costs about 50 ms, which a `ward validate` of a few files should not pay.
fn repo_root(p: &Path) -> PathBuf {
    let start = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let start = if start.is_file() {
        start.parent().map(Path::to_path_buf).unwrap_or(start)
    } else {
        start
    };
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.to_path_buf())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<i32> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Validate(a) => validate(&settings, &a),
        Command::Plan(a) => plan_or_apply(&settings, &a, false),
        Command::Apply(a) => plan_or_apply(&settings, &a, true),
        Command::Diff(a) => diff(&settings, &a),
        Command::Test(a) => test(&settings, &a),
        Command::Explain(a) => explain(&settings, &a),
        Command::Status(_) => status(&settings),
        #[cfg(feature = "node")]
        Command::Lab(c) => lab::run(&settings, c),
        #[cfg(feature = "node")]
        Command::Observe(a) => observe(&settings, &a),
        Command::Reconcile(a) => reconcile(&settings, &a),
    }
}

/// Reads and validates the desired state of a revision (or the working tree when `rev` is
/// `None`); `keep_objects` as in [`validate_files`].
pub fn load_desired(
    settings: &Settings,
    rev: Option<&str>,
    keep_objects: bool,
) -> Result<(Desired, Vec<String>)> {
    let snapshot = snapshot(settings, rev)?;
    let files = snapshot.files.iter().map(|f| f.path.clone()).collect();
    Ok((
        validate_snapshot(snapshot, &settings.selection, keep_objects),
        files,
    ))
}

fn snapshot(settings: &Settings, rev: Option<&str>) -> Result<Snapshot> {
    match (&settings.repo, rev) {
        (RepoRef::Local(path), None) => {
            let root = repo_root(path);
            let files = read_worktree(&root, &settings.selection, &[])
                .with_context(|| format!("cannot read the working tree at {}", root.display()))?;
            let (revision, dirty) = worktree_revision(&root);
            Ok(Snapshot {
                files,
                revision,
                dirty,
            })
        }
        (RepoRef::Local(path), Some(rev)) => {
            let repo = open_repo(path)?;
            let (oid, files) = GitSource::new(&repo).read(rev, &settings.selection)?;
            Ok(Snapshot {
                files,
                revision: Some(oid.to_string()),
                dirty: Some(false),
            })
        }
        (RepoRef::Remote(url), rev) => {
            let cache = RemoteCache::new(RemoteCache::default_dir(&settings.cache_dir));
            let (repo, oid) = cache.fetch(url, rev.unwrap_or("HEAD"))?;
            let (oid, files) = GitSource::new(&repo).read(&oid.to_string(), &settings.selection)?;
            Ok(Snapshot {
                files,
                revision: Some(oid.to_string()),
                dirty: Some(false),
            })
        }
    }
}

/// HEAD's commit and whether the working tree differs from it; `(None, None)` outside Git.
fn worktree_revision(root: &Path) -> (Option<String>, Option<bool>) {
    if !root.join(".git").exists() {
        return (None, None); // not a repository: spare libgit2's start-up (it loads every CA certificate)
    }
    let Ok(repo) = git2::Repository::open(root) else {
        return (None, None);
    };
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    let dirty = repo.statuses(Some(&mut opts)).ok().map(|s| !s.is_empty());
    let revision = match (head, dirty) {
        (Some(h), Some(true)) => Some(format!("{h}-dirty")),
        (h, _) => h,
    };
    (revision, dirty)
}

fn emit(settings: &Settings, report: &Report<'_>) -> Result<()> {
    let text = report::render(settings.format, report, settings.color);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn validate(settings: &Settings, a: &ValidateArgs) -> Result<i32> {
    let (validation, files) = load_paths(settings, &a.paths, a.rev.as_deref(), false)?;
    let report = Report {
        command: "validate",
        files: &files,
        documents: validation.documents,
        diagnostics: &validation.diagnostics,
        plan: None,
        base: None,
        head: None,
        connectivity: None,
    };
    emit(settings, &report)?;
    let code = if validation.is_valid() {
        EXIT_OK
    } else {
        EXIT_ERROR
    };
    // The process exits next: freeing every finding and key one by one would only delay it.
    std::mem::forget((validation, files));
    Ok(code)
}

/// Loads and validates `paths` (files or folders anywhere), or the --include folders of the
/// repository when there are none, at `rev` or in the working tree, as `ward validate` does.
fn load_paths(
    settings: &Settings,
    paths: &[PathBuf],
    rev: Option<&str>,
    keep_objects: bool,
) -> Result<(Validation, Vec<String>)> {
    if paths.is_empty() || rev.is_some() {
        let mut settings = settings.clone();
        if !paths.is_empty() {
            settings.selection.include = paths
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches('/').to_owned())
                .collect();
        }
        let (d, files) = load_desired(&settings, rev, keep_objects)?;
        return Ok((d.validation, files));
    }
    let root = std::env::current_dir()?;
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            bail!("{} does not exist", p.display());
        }
    }
    let files = read_worktree(&root, &settings.selection, paths)?;
    let names = files.iter().map(|f| f.path.clone()).collect();
    Ok((
        validate_files(files, &settings.selection, keep_objects),
        names,
    ))
}

/// Prints findings (and nothing else) as `command`'s report.
fn emit_findings(
    settings: &Settings,
    command: &'static str,
    files: &[String],
    documents: usize,
    diagnostics: &[Diagnostic],
) -> Result<()> {
    let report = Report {
        command,
        files,
        documents,
        diagnostics,
        plan: None,
        base: None,
        head: None,
        connectivity: None,
    };
    emit(settings, &report)
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A validated revision with its PolicyTest suite.
struct Loaded {
    validation: Validation,
    files: Vec<String>,
    suite: Suite,
}

/// The repository (or `paths`) validated, with the PolicyTest suite; `Err(code)` when the
/// findings were printed and the command must stop.
fn load_suite(
    settings: &Settings,
    command: &'static str,
    paths: &[PathBuf],
    rev: Option<&str>,
) -> Result<std::result::Result<Loaded, i32>> {
    let (validation, files) = load_paths(settings, paths, rev, true)?;
    if !validation.is_valid() {
        emit_findings(
            settings,
            command,
            &files,
            validation.documents,
            &validation.diagnostics,
        )?;
        return Ok(Err(EXIT_ERROR));
    }
    match Suite::of(&validation.resources) {
        Ok(suite) => Ok(Ok(Loaded {
            validation,
            files,
            suite,
        })),
        Err(problems) => {
            let mut all = validation.diagnostics.clone();
            all.extend(problems);
            ward_schema::diagnostic::sort(&mut all);
            emit_findings(settings, command, &files, validation.documents, &all)?;
            Ok(Err(EXIT_ERROR))
        }
    }
}

fn test(settings: &Settings, a: &TestArgs) -> Result<i32> {
    if !matches!(settings.format, Format::Text | Format::Json | Format::Junit) {
        bail!("ward test prints --format text, json or junit");
    }
    let Loaded {
        validation,
        files,
        suite,
    } = match load_suite(settings, "test", &a.paths, a.rev.as_deref())? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if suite.tests.is_empty() {
        eprintln!(
            "ward: no PolicyTest documents in {} file(s); nothing to test",
            files.len()
        );
        return Ok(EXIT_OK);
    }
    let policies = validation
        .resources
        .iter()
        .filter(|r| r.key.kind.is_policy())
        .count();
    if policies == 0 {
        eprintln!(
            "ward: warning: no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy was loaded, so the tests run against no policy; pass the folders that hold the policies too"
        );
    }
    let run = testing::run::run(&suite.tests, &validation.resources, &suite.cluster)
        .context("cannot build the tests' cluster")?;
    let text = match settings.format {
        Format::Json => {
            let doc = serde_json::json!({
                "command": "test",
                "summary": {"expectations": run.total(), "passed": run.total() - run.failed(), "failed": run.failed(), "tests": run.tests.len(), "ok": run.passed()},
                "diagnostics": validation.diagnostics,
                "endpoints": run.endpoints,
                "policies": run.policies,
                "tests": run.tests,
            });
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        Format::Junit => test_render::test_junit(&run),
        _ => {
            let mut text = String::new();
            if !validation.diagnostics.is_empty() {
                let report = Report {
                    command: "test",
                    files: &files,
                    documents: validation.documents,
                    diagnostics: &validation.diagnostics,
                    plan: None,
                    base: None,
                    head: None,
                    connectivity: None,
                };
                text.push_str(&report::render(Format::Text, &report, settings.color));
                text.push('\n');
            }
            text.push_str(&test_render::test_text(&run, settings.color));
            text
        }
    };
    write_stdout(&text)?;
    Ok(if run.passed() { EXIT_OK } else { EXIT_ERROR })
}

fn explain(settings: &Settings, a: &ExplainArgs) -> Result<i32> {
    if !matches!(settings.format, Format::Text | Format::Json) {
        bail!("ward explain prints --format text or json");
    }
    let Loaded {
        validation, suite, ..
    } = match load_suite(settings, "explain", &[], a.rev.as_deref())? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let x = testing::explain::explain(
        &validation.resources,
        &suite.cluster,
        &a.from,
        &a.to,
        &a.port,
    )
    .map_err(anyhow::Error::msg)?;
    let text = match settings.format {
        Format::Json => serde_json::to_string_pretty(&x)? + "\n",
        _ => test_render::explain_text(&x, settings.color),
    };
    write_stdout(&text)?;
    Ok(EXIT_OK)
}

fn plan_or_apply(settings: &Settings, a: &PlanArgs, apply: bool) -> Result<i32> {
    plan_against_target(settings, a, if apply { "apply" } else { "plan" })
}

/// `plan`, `apply`, or `diff` without `--base`: the revision against what the target holds.
fn plan_against_target(settings: &Settings, a: &PlanArgs, command: &'static str) -> Result<i32> {
    let apply = command == "apply";
    let (desired, files) = load_desired(settings, a.rev.as_deref(), true)?;
    let v = &desired.validation;
    if !v.is_valid() {
        let report = Report {
            command,
            files: &files,
            documents: v.documents,
            diagnostics: &v.diagnostics,
            plan: None,
            base: None,
            head: desired.revision.clone(),
            connectivity: None,
        };
        emit(settings, &report)?;
        if apply {
            eprintln!(
                "ward: nothing applied: the revision has {} error(s); the target keeps its last applied state",
                v.error_count()
            );
        }
        return Ok(EXIT_ERROR);
    }
    let options = ApplyOptions {
        prune: a.prune,
        revision: desired.revision.clone(),
        force_conflicts: a.force_conflicts,
        max_prune: a.max_prune,
        allow_prune_all: a.allow_prune_all,
    };
    let (plan, live) = match &settings.kube {
        Some(k) => kube_plan_or_apply(k, &desired, &options, apply)?,
        None => local_plan_or_apply(settings, &desired, &options, apply)?,
    };
    let connectivity = connectivity::diff_from_live(
        || live_resources(live),
        &v.resources,
        connectivity_options(settings),
    );
    let base = (command == "diff").then(|| match &settings.kube {
        Some(k) => format!("live ({})", k.describe()),
        None => format!("live ({})", settings.state_dir.display()),
    });
    let report = Report {
        command,
        files: &files,
        documents: v.documents,
        diagnostics: &v.diagnostics,
        plan: Some(&plan),
        base,
        head: desired.revision.clone(),
        connectivity: Some(&connectivity),
    };
    emit(settings, &report)?;
    let code = if a.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    // The process exits next: freeing every object tree one by one would cost a tenth of a
    // second on 10,000 objects for nothing.
    std::mem::forget((desired, plan));
    Ok(code)
}

/// Plans (and applies) against the local state directory; the plan and what was live before.
fn local_plan_or_apply(
    settings: &Settings,
    desired: &Desired,
    options: &ApplyOptions,
    apply: bool,
) -> Result<(Plan, LiveSet)> {
    let mut target = LocalTarget::new(&settings.state_dir);
    if target.repair_if_needed()? {
        eprintln!(
            "ward: repaired an interrupted apply in {}",
            settings.state_dir.display()
        );
    }
    let live = target.live()?;
    let plan = plan::compute(
        &desired.validation.resources,
        &live,
        options.prune,
        desired.revision.clone(),
    );
    if apply && plan.has_changes() {
        check_prune(&plan, live.inventory.entries.len(), options)?;
        target.apply(&plan, options)?;
    } else if apply {
        record_unchanged(&mut target, &plan, desired)?;
    }
    Ok((plan, live))
}

/// Plans (and applies) against a cluster; the plan and what was live before.
fn kube_plan_or_apply(
    k: &KubeOptions,
    desired: &Desired,
    options: &ApplyOptions,
    apply: bool,
) -> Result<(Plan, LiveSet)> {
    let mut target = KubeTarget::connect(k.clone())?;
    let (plan, live) = target.plan(
        &desired.validation.resources,
        options.prune,
        desired.revision.clone(),
        options.force_conflicts,
    )?;
    for key in target.kept() {
        eprintln!(
            "ward: {key} is no longer desired but annotated {}: disabled; left in place",
            crate::target::kube::PRUNE_ANNOTATION
        );
    }
    let stale = live.inventory.applied_revision != desired.revision;
    if apply && (plan.has_changes() || stale || (options.prune && !target.kept().is_empty())) {
        check_prune(&plan, live.inventory.entries.len(), options)?;
        target.apply(&plan, options)?;
        for (key, message) in target.unhealthy()? {
            eprintln!("ward: warning: {key} is not valid on the cluster: {message}");
        }
    }
    Ok((plan, live))
}

/// An apply with nothing to change still records the revision as applied.
fn record_unchanged(target: &mut LocalTarget, plan: &Plan, desired: &Desired) -> Result<()> {
    let inv = target.inventory()?;
    let complete = plan.unchanged.iter().all(|k| inv.get(k).is_some());
    if inv.applied_revision != desired.revision || !complete {
        target.apply(
            plan,
            &ApplyOptions {
                prune: plan.prune,
                revision: desired.revision.clone(),
                ..ApplyOptions::default()
            },
        )?;
    }
    Ok(())
}

fn diff(settings: &Settings, a: &DiffArgs) -> Result<i32> {
    let Some(base_rev) = &a.base else {
        let live = PlanArgs {
            rev: Some(a.head.clone()),
            prune: true,
            max_prune: usize::MAX,
            allow_prune_all: true,
            force_conflicts: false,
            detailed_exitcode: a.detailed_exitcode,
        };
        return plan_against_target(settings, &live, "diff");
    };
    let (base, _) = load_desired(settings, Some(base_rev), true)
        .with_context(|| format!("reading --base {base_rev}"))?;
    let (head, files) = load_desired(settings, Some(&a.head), true)
        .with_context(|| format!("reading --head {}", a.head))?;
    let v = &head.validation;
    let live = live_from(&base.validation.resources);
    let plan = plan::compute(&v.resources, &live, true, head.revision.clone());
    let connectivity = v.is_valid().then(|| {
        connectivity::diff(
            &base.validation.resources,
            &v.resources,
            connectivity_options(settings),
        )
    });
    let report = Report {
        command: "diff",
        files: &files,
        documents: v.documents,
        diagnostics: &v.diagnostics,
        plan: Some(&plan),
        base: base.revision.clone(),
        head: head.revision.clone(),
        connectivity: connectivity.as_ref(),
    };
    emit(settings, &report)?;
    Ok(if !v.is_valid() {
        EXIT_ERROR
    } else if a.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

fn connectivity_options(settings: &Settings) -> connectivity::Options {
    connectivity::Options {
        graph: settings.format == Format::Dot,
    }
}

/// The target's objects as a resource set: the policies in force before an apply.
fn live_resources(live: LiveSet) -> ResourceSet {
    let mut set = ResourceSet::new();
    for (key, l) in live.objects {
        set.insert(Resource {
            key,
            object: l.into_object(),
            origin: Origin::default(),
        });
    }
    set
}

/// The controller runs for weeks and each reconcile allocates and frees the whole desired
/// state: with mimalloc's default (freed memory goes back to the system only after a
/// second), its RSS at 10,000 policies stayed near 170 MiB between reconciles; returning
/// freed memory at once keeps it well under 100 MiB (BENCHMARKS.md). The one-shot commands
/// keep the default, which is faster for them.
/// `mi_option_purge_delay` in the `mimalloc.h` of mimalloc v3 (libmimalloc-sys' default;
/// the same index in v2), not exported by the bindings.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn release_memory_at_once() {
    #[allow(unsafe_code, reason = "one mimalloc option, set before any reconcile")]
    // SAFETY: mi_option_set stores an integer in mimalloc's option table; any value is valid
    // for this option (0: purge at once) and mimalloc reads it on its next purge.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// A revision's objects as if they were live and applied by ward, so a diff between two
/// revisions is a plan with pruning.
fn live_from(set: &ResourceSet) -> LiveSet {
    let mut live = LiveSet::default();
    for r in set.iter().filter(|r| r.key.kind.is_applied()) {
        let object = normalize(&r.object);
        let fp = fingerprint(&object);
        live.inventory.entries.insert(
            Inventory::id(&r.key),
            crate::target::InventoryEntry {
                key: r.key.clone(),
                fingerprint: fp.clone(),
                origin: r.origin.to_string(),
            },
        );
        live.objects
            .insert(r.key.clone(), LiveObject::new(object, fp));
    }
    live
}

fn reconcile(settings: &Settings, a: &args::ReconcileArgs) -> Result<i32> {
    release_memory_at_once();
    let kube = settings.kube.clone().unwrap_or_else(|| KubeOptions {
        sync: settings.sync.clone(),
        config_namespace: settings.config_namespace.clone(),
        ..KubeOptions::default()
    });
    let webhook_secret = match &a.webhook_secret_file {
        Some(f) => {
            let s = std::fs::read(f)
                .with_context(|| format!("cannot read the webhook secret {}", f.display()))?;
            let s = s.trim_ascii().to_vec();
            if s.is_empty() {
                bail!("the webhook secret {} is empty", f.display());
            }
            Some(s)
        }
        None => None,
    };
    let identity = a.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let opts = crate::controller::ControllerOptions {
        rev: a.rev.clone(),
        interval: a.interval,
        listen: a.listen,
        webhook_secret,
        max_body: a.max_body,
        prune: a.prune,
        max_prune: a.max_prune,
        identity,
        lease_namespace: a.lease_namespace.clone(),
        once: a.once,
    };
    crate::controller::run(settings, &kube, &opts)?;
    Ok(EXIT_OK)
}

#[cfg(feature = "node")]
fn observe(settings: &Settings, a: &ObserveArgs) -> Result<i32> {
    // Names are a convenience: without a readable topology, events show addresses.
    let topology = ward_datapath::lab::Topology::load(&a.topology).ok();
    let opts = ward_datapath::agent::observe::ObserveOptions {
        nodes: a.nodes.clone(),
        pod: a.pod.clone(),
        verdict: a.verdict.clone(),
        port: a.port,
        json: settings.format == Format::Json,
        count: a.count,
        duration: a.seconds.map(std::time::Duration::from_secs),
        topology,
    };
    ward_datapath::agent::observe::run(&opts, &mut std::io::stdout().lock())?;
    Ok(EXIT_OK)
}

/// What `ward status` reports, from either target.
struct StatusFacts {
    target: String,
    inventory: Inventory,
    live: usize,
    /// Inventory objects changed or deleted outside ward.
    drifted: Vec<String>,
    /// Live objects ward never applied.
    unmanaged: Vec<String>,
    /// Local target: the pid of a running apply, and whether one was interrupted.
    writer: Option<u32>,
    interrupted: bool,
    /// Kube target: objects whose `Valid` condition is False, with the message.
    invalid: Vec<(String, String)>,
}

fn status(settings: &Settings) -> Result<i32> {
    let facts = match &settings.kube {
        Some(k) => kube_status_facts(k)?,
        None => local_status_facts(settings)?,
    };
    let text = match settings.format {
        Format::Json => serde_json::to_string_pretty(&status_json(&facts))? + "\n",
        _ => status_text(&facts),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(
        if facts.drifted.is_empty() && !facts.interrupted && facts.invalid.is_empty() {
            EXIT_OK
        } else {
            EXIT_CHANGES
        },
    )
}

fn local_status_facts(settings: &Settings) -> Result<StatusFacts> {
    let target = LocalTarget::new(&settings.state_dir);
    let interrupted = target.interrupted();
    let live = target.live()?;
    let inv = &live.inventory;
    let drifted: Vec<String> = inv
        .entries
        .values()
        .filter(|e| {
            live.objects
                .get(&e.key)
                .is_none_or(|l| l.fingerprint != e.fingerprint)
        })
        .map(|e| e.key.to_string())
        .collect();
    let unmanaged: Vec<String> = live
        .objects
        .keys()
        .filter(|k| inv.get(k).is_none())
        .map(ToString::to_string)
        .collect();
    Ok(StatusFacts {
        target: target.describe(),
        live: live.objects.len(),
        inventory: live.inventory.clone(),
        drifted,
        unmanaged,
        writer: target.writer(),
        interrupted,
        invalid: Vec::new(),
    })
}

/// Drift by revision marker, and health from the objects' `Valid` conditions.
fn kube_status_facts(k: &KubeOptions) -> Result<StatusFacts> {
    let target = KubeTarget::connect(k.clone())?;
    let crate::target::kube::KubeStatus {
        live,
        drifted,
        invalid,
    } = target.status()?;
    let unmanaged: Vec<String> = live
        .objects
        .keys()
        .filter(|key| live.inventory.get(key).is_none())
        .map(ToString::to_string)
        .collect();
    let invalid = invalid
        .into_iter()
        .map(|(key, m)| (key.to_string(), m))
        .collect();
    Ok(StatusFacts {
        target: target.describe(),
        live: live.objects.len(),
        inventory: live.inventory,
        drifted,
        unmanaged,
        writer: None,
        interrupted: false,
        invalid,
    })
}

fn status_json(f: &StatusFacts) -> serde_json::Value {
    let inv = &f.inventory;
    serde_json::json!({
        "target": f.target,
        "appliedRevision": inv.applied_revision,
        "attemptedRevision": inv.attempted_revision,
        "appliedAt": inv.applied_at,
        "inventory": inv.entries.len(),
        "live": f.live,
        "drifted": f.drifted,
        "unmanaged": f.unmanaged,
        "interruptedApply": f.interrupted,
        "applyRunning": f.writer,
        "invalid": f.invalid.iter().map(|(o, m)| serde_json::json!({"object": o, "message": m})).collect::<Vec<_>>(),
    })
}

fn status_text(f: &StatusFacts) -> String {
    use std::fmt::Write as _;
    let inv = &f.inventory;
    let mut s = String::new();
    let _ = writeln!(s, "target:            {}", f.target);
    let _ = writeln!(
        s,
        "applied revision:  {}",
        inv.applied_revision.as_deref().unwrap_or("(none)")
    );
    if inv.attempted_revision != inv.applied_revision {
        let _ = writeln!(
            s,
            "last attempt:      {} (did not complete)",
            inv.attempted_revision.as_deref().unwrap_or("(none)")
        );
    }
    let _ = writeln!(
        s,
        "applied at:        {}",
        inv.applied_at.as_deref().unwrap_or("(never)")
    );
    let _ = writeln!(
        s,
        "objects:           {} in inventory, {} live",
        inv.entries.len(),
        f.live
    );
    let mut by_kind = std::collections::BTreeMap::new();
    for e in inv.entries.values() {
        *by_kind.entry(e.key.kind.as_str()).or_insert(0usize) += 1;
    }
    for (k, n) in by_kind {
        let _ = writeln!(s, "  {k}: {n}");
    }
    if let Some(pid) = f.writer {
        let _ = writeln!(s, "apply running:     yes (pid {pid})");
    } else if f.interrupted {
        let _ = writeln!(
            s,
            "interrupted apply: yes; the next plan or apply repairs it"
        );
    }
    if f.drifted.is_empty() {
        let _ = writeln!(s, "drift:             none");
    } else {
        let _ = writeln!(
            s,
            "drift:             {} object(s) changed outside ward; `ward apply` restores them",
            f.drifted.len()
        );
        for d in &f.drifted {
            let _ = writeln!(s, "  {d}");
        }
    }
    for (object, message) in &f.invalid {
        let _ = writeln!(s, "invalid:           {object}: {message}");
    }
    if !f.unmanaged.is_empty() {
        let _ = writeln!(
            s,
            "unmanaged:         {} object(s) not applied by ward (never pruned)",
            f.unmanaged.len()
        );
    }
    s
}

#[cfg(test)]
mod allocator_tests {
    /// The option index is mimalloc's purge delay: its default in v3 is 1000 (ms), which no
    /// neighbouring option has; a mimalloc upgrade that renumbers options fails here.
    #[test]
    #[allow(unsafe_code, reason = "reads one mimalloc option")]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: mi_option_get only reads mimalloc's option table.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "mimalloc v3's purge_delay default is 1000 ms"
        );
    }
}
