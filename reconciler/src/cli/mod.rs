//! The `ward` command: settings resolved from arguments and environment, then one function
//! per subcommand. Each returns the process exit code; errors bubble up as `anyhow` chains
//! that `main` prints on one line.

pub mod args;
mod inputs;
#[cfg(feature = "node")]
mod lab;
mod meta;
mod saved;

use crate::report::{self, Format, Report};
use crate::source::verify::Trust;
use crate::source::{RepoRef, Selection, Source, repo_root};
use crate::sync::{self, Loaded as LoadedRevision, Outcome, Request};
use crate::target::kube::{KubeOptions, KubeTarget};
use crate::target::local::LocalTarget;
use crate::target::memory::MemoryTarget;
use crate::target::{ApplyOptions, LiveSet, Status, Target};
use crate::testing::{self, Suite, connectivity, render as test_render};
use anyhow::{Context, Result, bail};
#[cfg(feature = "node")]
use args::ObserveArgs;
use args::{
    Cli, ColorChoice, Command, DiffArgs, ExplainArgs, GlobalArgs, PlanArgs, StatusArgs, TestArgs,
    ValidateArgs,
};
use inputs::{Inputs, Named, load_paths};
use std::io::Write;
use std::path::PathBuf;
use ward_schema::{Diagnostic, Origin, Resource, ResourceSet, Validation, yaml::Limits};

/// Exit code: success, nothing to report.
pub const EXIT_OK: i32 = 0;
/// Exit code: invalid input or a failed command.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: success with changes present (with --detailed-exitcode).
pub const EXIT_CHANGES: i32 = 2;

/// Resolved settings (phase two).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The repository, the files that count, the clone cache.
    pub source: Source,
    /// The local target's state directory.
    pub state_dir: PathBuf,
    /// Output format (the command's `--format`).
    pub format: Format,
    /// Whether text output is coloured.
    pub color: bool,
    /// The most characters of markdown output (0: no limit).
    pub markdown_limit: usize,
    /// The cluster to use instead of the local target (`--kubeconfig`, `--context`).
    pub kube: Option<KubeOptions>,
    /// `--sync` and `--config-namespace`, for the controller without a kubeconfig.
    pub sync: String,
    /// See `sync`.
    pub config_namespace: String,
    /// `--as`: the user to act as on a cluster.
    pub impersonate: Option<String>,
    /// `--as-group`: the groups to act as.
    pub impersonate_groups: Vec<String>,
    /// `--concurrency`: requests to a cluster in flight at once.
    pub concurrency: usize,
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
            impersonate: g.as_user.clone(),
            impersonate_groups: g.as_groups.clone(),
            concurrency: concurrency(g),
        });
        Ok(Settings {
            source: Source {
                repo,
                selection: Selection {
                    strict_kinds: g.strict_kinds,
                    cilium: g.cilium_version,
                    ..Selection::new(&g.include, g.allow_empty, limits)
                },
                cache_dir,
                verify: g
                    .verify_signatures
                    .then(|| Trust::load(g.allowed_signers.as_deref(), g.trusted_keys.as_deref()))
                    .transpose()?,
            },
            state_dir,
            format: Format::Text,
            color,
            markdown_limit: g.markdown_limit,
            kube,
            sync: g.sync.clone(),
            config_namespace: g.config_namespace.clone(),
            impersonate: g.as_user.clone(),
            impersonate_groups: g.as_groups.clone(),
            concurrency: concurrency(g),
        })
    }
}

/// `--concurrency` as a count (clap keeps it within 1..=1024).
fn concurrency(g: &GlobalArgs) -> usize {
    usize::try_from(g.concurrency).unwrap_or(crate::target::kube::DEFAULT_CONCURRENCY)
}

fn home_cache() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --cache-dir")?;
    Ok(PathBuf::from(home).join(".cache").join("ward"))
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<i32> {
    let mut settings = Settings::resolve(&cli.global)?;
    settings.format = cli.command.format();
    // Clone and fetch progress only for a person: text on a terminal.
    crate::source::show_progress(
        settings.format == Format::Text && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    match cli.command {
        Command::Validate(a) => validate(&settings, &a),
        Command::Plan(a) => {
            plan_against_target(&settings, &a.plan, "plan", a.out.as_deref(), false)
        }
        Command::Apply(a) => match &a.planfile {
            Some(file) => saved::apply(&settings, file, a.plan.detailed_exitcode),
            None => plan_against_target(&settings, &a.plan, "apply", None, false),
        },
        Command::Version(_) => meta::version(&settings),
        Command::Completions(a) => meta::completions(&a),
        Command::Man(a) => meta::man(&a),
        Command::Diff(a) => diff(&settings, &a),
        Command::Test(a) => test(&settings, &a),
        Command::Explain(a) => explain(&settings, &a),
        Command::Status(a) => status(&settings, &a),
        #[cfg(feature = "node")]
        Command::Lab(c) => lab::run(&settings, c),
        #[cfg(feature = "node")]
        Command::Observe(a) => observe(&settings, &a),
        Command::Reconcile(a) => reconcile(&settings, &a),
    }
}

/// Reads and validates the desired state of a revision (or the working tree when `rev` is
/// `None`); `keep_objects` as in [`crate::desired::validate_files`].
fn load_desired(
    settings: &Settings,
    rev: Option<&str>,
    keep_objects: bool,
) -> Result<LoadedRevision> {
    sync::load_validated(&settings.source, rev, keep_objects)
}

fn emit(settings: &Settings, report: &Report<'_>) -> Result<()> {
    let options = report::Options {
        color: settings.color,
        markdown_limit: settings.markdown_limit,
    };
    let text = report::render_with(settings.format, report, options);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn validate(settings: &Settings, a: &ValidateArgs) -> Result<i32> {
    let named = Named::new(&a.paths, &a.filenames);
    let read = load_paths(settings, &named, a.rev.as_deref(), false)?;
    let Inputs {
        validation,
        files,
        deleted,
    } = &read;
    let report = Report {
        command: "validate",
        files,
        documents: validation.documents,
        skipped: &validation.skipped,
        deleted,
        diagnostics: &validation.diagnostics,
        plan: None,
        base: None,
        head: None,
        connectivity: None,
    };
    emit(settings, &report)?;
    let code = if passes(validation, a.fail_on_warn) {
        EXIT_OK
    } else {
        EXIT_ERROR
    };
    // The process exits next: freeing every finding and key one by one would only delay it.
    std::mem::forget(read);
    Ok(code)
}

/// Whether findings let a command succeed: no error, and with `--fail-on-warn` no warning.
fn passes(v: &Validation, fail_on_warn: bool) -> bool {
    v.is_valid() && (!fail_on_warn || v.diagnostics.is_empty())
}

/// Prints findings (and nothing else) as `command`'s report.
fn emit_findings(
    settings: &Settings,
    command: &'static str,
    files: &[String],
    documents: usize,
    diagnostics: &[Diagnostic],
) -> Result<()> {
    let none = std::collections::BTreeMap::new();
    let report = Report {
        command,
        files,
        documents,
        skipped: &none,
        deleted: &[],
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
    named: &Named<'_>,
    rev: Option<&str>,
) -> Result<std::result::Result<Loaded, i32>> {
    let Inputs {
        validation, files, ..
    } = load_paths(settings, named, rev, true)?;
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
    let named = Named::new(&a.paths, &a.filenames);
    let Loaded {
        validation,
        files,
        suite,
    } = match load_suite(settings, "test", &named, a.rev.as_deref())? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let policies = validation
        .resources
        .iter()
        .filter(|r| r.key.kind.is_policy())
        .count();
    if suite.tests.is_empty() {
        eprintln!(
            "ward: no PolicyTest documents in {} file(s); nothing to test",
            files.len()
        );
        // The other formats still write their (empty) document for the tools that read it.
        if settings.format == Format::Text {
            return Ok(EXIT_OK);
        }
    } else if policies == 0 {
        eprintln!(
            "ward: warning: no CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy was loaded, so the tests run against no policy; pass the folders that hold the policies too"
        );
    }
    let options = testing::run::RunOptions { strict: a.strict };
    let run = testing::run::run(&suite.tests, &validation.resources, &suite.cluster, options)
        .context("cannot build the tests' cluster")?;
    #[cfg(feature = "node")]
    let datapath = if a.datapath {
        if !matches!(settings.format, Format::Text | Format::Json) {
            bail!("--datapath writes text or json; drop --format or use --format json");
        }
        Some(testing::datapath::check(
            &suite,
            &validation.resources,
            &run,
            &mut |_| Ok(()),
        )?)
    } else {
        None
    };
    let text = match settings.format {
        Format::Json => {
            #[allow(unused_mut, reason = "the datapath part needs the node feature")]
            let mut doc = serde_json::json!({
                "summary": {"expectations": run.total(), "passed": run.total() - run.failed(), "failed": run.failed(), "tests": run.tests.len(), "ok": run.passed()},
                "diagnostics": validation.diagnostics,
                "endpoints": run.endpoints,
                "policies": run.policies,
                "tests": run.tests,
            });
            #[cfg(feature = "node")]
            if let Some(d) = &datapath {
                doc["datapath"] = serde_json::json!({
                    "summary": {"agree": d.count(testing::datapath::Agreement::Agree), "disagree": d.count(testing::datapath::Agreement::Disagree), "notProbed": d.count(testing::datapath::Agreement::NotProbed)},
                    "lab": d.lab,
                    "checks": d.checks,
                });
            }
            report::json_text("test", &doc)
        }
        Format::Junit => test_render::test_junit(&run),
        Format::Github => {
            let mut text = report::github::annotations(&validation.diagnostics);
            text.push_str(&test_render::test_github(&run));
            text
        }
        _ => {
            let mut text = String::new();
            if !validation.diagnostics.is_empty() {
                let report = Report {
                    command: "test",
                    files: &files,
                    documents: validation.documents,
                    skipped: &validation.skipped,
                    deleted: &[],
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
            #[cfg(feature = "node")]
            if let Some(d) = &datapath {
                text.push_str(&d.text(settings.color));
            }
            text
        }
    };
    write_stdout(&text)?;
    #[cfg(feature = "node")]
    let agree = datapath
        .as_ref()
        .is_none_or(|d| d.count(testing::datapath::Agreement::Disagree) == 0);
    #[cfg(not(feature = "node"))]
    let agree = true;
    Ok(if run.passed() && agree {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

fn explain(settings: &Settings, a: &ExplainArgs) -> Result<i32> {
    let Loaded {
        validation, suite, ..
    } = match load_suite(settings, "explain", &Named::default(), a.rev.as_deref())? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let request = explain_request(a)?;
    let x = testing::explain::explain(
        &validation.resources,
        &suite.cluster,
        &a.from,
        &a.to,
        &a.port,
        request.as_ref(),
    )
    .map_err(anyhow::Error::msg)?;
    let text = match settings.format {
        Format::Json => report::json_text("explain", &x),
        _ => test_render::explain_text(&x, settings.color),
    };
    write_stdout(&text)?;
    Ok(EXIT_OK)
}

/// The request `ward explain --http/--dns` describes.
fn explain_request(a: &ExplainArgs) -> Result<Option<ward_engine::L7Request>> {
    if let Some(name) = &a.dns {
        return Ok(Some(ward_engine::L7Request::Dns { name: name.clone() }));
    }
    let Some(line) = &a.http else {
        return Ok(None);
    };
    let Some((method, path)) = line.trim().split_once(' ') else {
        bail!("--http: give the method and the path, \"GET /api/v1/items\" (got {line:?})");
    };
    let mut headers = std::collections::BTreeMap::new();
    for h in &a.headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header: write it as \"Name: value\" (got {h:?})");
        };
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(Some(ward_engine::L7Request::Http(
        ward_engine::HttpRequest {
            method: method.to_owned(),
            path: path.trim().to_owned(),
            host: a.http_host.clone(),
            headers,
        },
    )))
}

/// The target the settings name: the cluster of `--kubeconfig`/`--context`, else the local
/// state directory.
fn open_target(settings: &Settings) -> Result<Box<dyn Target>> {
    Ok(match &settings.kube {
        Some(k) => Box::new(KubeTarget::connect(k.clone())?),
        None if settings.impersonate.is_some() || !settings.impersonate_groups.is_empty() => {
            bail!("--as and --as-group act on a cluster: pass --kubeconfig or --context too")
        }
        None => Box::new(LocalTarget::new(&settings.state_dir)),
    })
}

/// `plan`, `apply`, or `diff` without `--base`: the revision against what the target holds;
/// with `out`, the plan is saved there too.
/// `strict`: a changed flow past an unresolved rule is an error (`ward diff --strict`).
fn plan_against_target(
    settings: &Settings,
    a: &PlanArgs,
    command: &'static str,
    out: Option<&std::path::Path>,
    strict: bool,
) -> Result<i32> {
    let apply = command == "apply";
    let request = Request {
        rev: a.rev.clone(),
        apply,
        options: ApplyOptions {
            prune: a.prune,
            revision: None,
            force_conflicts: a.force_conflicts,
            adopt: a.adopt,
            max_prune: a.max_prune,
            allow_prune_all: a.allow_prune_all,
        },
        diffs: true,
        keep_desired: true,
        check_health: true,
    };
    let loaded = load_desired(settings, a.rev.as_deref(), true)?;
    let base = (command == "diff").then(|| match &settings.kube {
        Some(k) => format!("live ({})", k.describe()),
        None => format!("live ({})", settings.state_dir.display()),
    });
    let v = &loaded.desired.validation;
    if !v.is_valid() || (apply && !passes(v, a.fail_on_warn)) {
        return report_invalid(settings, command, &loaded);
    }
    let mut target = open_target(settings)?;
    let synced = match sync::sync(loaded, target.as_mut(), &request)? {
        Outcome::Synced(s) => s,
        Outcome::Invalid(loaded) => return report_invalid(settings, command, &loaded),
    };
    if let Some(out) = out {
        saved::save(settings, a, &request.options, target.as_ref(), &synced, out)?;
    }
    for note in &synced.planned.notes {
        eprintln!("ward: {note}");
    }
    for (key, message) in &synced.unhealthy {
        eprintln!("ward: warning: {key} is not valid on the cluster: {message}");
    }
    let sync::Synced {
        loaded: LoadedRevision { desired, files },
        planned,
        ..
    } = *synced;
    let v = &desired.validation;
    let plan = planned.plan;
    let connectivity = connectivity::diff_from_live(
        || live_resources(planned.live),
        &v.resources,
        connectivity_options(settings),
    );
    let report = Report {
        command,
        files: &files,
        documents: v.documents,
        skipped: &v.skipped,
        deleted: &[],
        diagnostics: &v.diagnostics,
        plan: Some(&plan),
        base,
        head: desired.revision.clone(),
        connectivity: Some(&connectivity),
    };
    emit(settings, &report)?;
    let code = if !passes(v, a.fail_on_warn) || (strict && unresolved_changes(&connectivity)) {
        EXIT_ERROR
    } else if a.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    // The process exits next: freeing every object tree one by one would cost a tenth of a
    // second on 10,000 objects for nothing.
    std::mem::forget((desired, plan));
    Ok(code)
}

/// Prints an invalid revision's findings; an apply says that nothing was applied.
fn report_invalid(
    settings: &Settings,
    command: &'static str,
    loaded: &LoadedRevision,
) -> Result<i32> {
    let v = &loaded.desired.validation;
    let report = Report {
        command,
        files: &loaded.files,
        documents: v.documents,
        skipped: &v.skipped,
        deleted: &[],
        diagnostics: &v.diagnostics,
        plan: None,
        base: None,
        head: loaded.desired.revision.clone(),
        connectivity: None,
    };
    emit(settings, &report)?;
    if command == "apply" {
        let why = match v.error_count() {
            0 => format!("{} warning(s) and --fail-on-warn", v.diagnostics.len()),
            n => format!("{n} error(s)"),
        };
        eprintln!(
            "ward: nothing applied: the revision has {why}; the target keeps its last applied state"
        );
    }
    Ok(EXIT_ERROR)
}

fn diff(settings: &Settings, a: &DiffArgs) -> Result<i32> {
    let Some(base_rev) = &a.base else {
        let live = PlanArgs {
            rev: Some(a.head.clone()),
            prune: true,
            max_prune: usize::MAX,
            allow_prune_all: true,
            force_conflicts: false,
            adopt: false,
            detailed_exitcode: a.detailed_exitcode,
            fail_on_warn: a.fail_on_warn,
            format: a.format,
        };
        return plan_against_target(settings, &live, "diff", None, a.strict);
    };
    // Signatures are the head's to carry: the base is only what the head is compared with.
    let mut unverified = settings.clone();
    unverified.source.verify = None;
    let LoadedRevision { desired: base, .. } = load_desired(&unverified, Some(base_rev), true)
        .with_context(|| format!("reading --base {base_rev}"))?;
    let LoadedRevision {
        desired: head,
        files,
    } = load_desired(settings, Some(&a.head), true)
        .with_context(|| format!("reading --head {}", a.head))?;
    let v = &head.validation;
    // The head planned against the base taken as live, with pruning: what merging would do.
    let mut target = MemoryTarget::of_revision(base_rev, &base.validation.resources);
    let options = ApplyOptions {
        prune: true,
        revision: head.revision.clone(),
        ..ApplyOptions::default()
    };
    let plan = sync::plan(&mut target, (&v.resources).into(), &options, true)?.plan;
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
        skipped: &v.skipped,
        deleted: &[],
        diagnostics: &v.diagnostics,
        plan: Some(&plan),
        base: base.revision.clone(),
        head: head.revision.clone(),
        connectivity: connectivity.as_ref(),
    };
    emit(settings, &report)?;
    let unresolved = a.strict && connectivity.as_ref().is_some_and(unresolved_changes);
    Ok(if !passes(v, a.fail_on_warn) || unresolved {
        EXIT_ERROR
    } else if a.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

/// Whether a changed flow passes a rule that names something the head lacks; says so.
fn unresolved_changes(c: &connectivity::Connectivity) -> bool {
    let n = c
        .newly_allowed
        .iter()
        .chain(&c.newly_denied)
        .filter(|f| !f.unresolved.is_empty() || !f.not_evaluated.is_empty())
        .count();
    if n > 0 {
        eprintln!(
            "ward: --strict: {n} changed flow(s) pass a rule that matches nothing here (the \"unresolved\" notes: a CiliumCIDRGroup the revision does not define, toFQDNs without answers, ...) or have a side ward cannot evaluate (the \"not evaluated\" notes); fix the reference, or declare what is missing in a PolicyTest"
        );
    }
    n > 0
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

fn reconcile(settings: &Settings, a: &args::ReconcileArgs) -> Result<i32> {
    release_memory_at_once();
    let kube = settings.kube.clone().unwrap_or_else(|| KubeOptions {
        sync: settings.sync.clone(),
        config_namespace: settings.config_namespace.clone(),
        impersonate: settings.impersonate.clone(),
        impersonate_groups: settings.impersonate_groups.clone(),
        concurrency: settings.concurrency,
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
    crate::controller::run(&settings.source, &kube, &opts)?;
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
        run_dir: a.run_dir.clone(),
    };
    ward_datapath::agent::observe::run(&opts, &mut std::io::stdout().lock())?;
    Ok(EXIT_OK)
}

fn status(settings: &Settings, a: &StatusArgs) -> Result<i32> {
    let facts = open_target(settings)?.status()?;
    let text = match settings.format {
        Format::Json => report::json_text("status", &status_json(&facts)),
        _ => status_text(&facts),
    };
    write_stdout(&text)?;
    let clean = facts.drifted.is_empty() && !facts.interrupted && facts.invalid.is_empty();
    Ok(if a.detailed_exitcode && !clean {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

fn status_json(f: &Status) -> serde_json::Value {
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

fn status_text(f: &Status) -> String {
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
