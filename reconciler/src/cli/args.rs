//! Command-line arguments (phase one: parse). [`super::Settings`] resolves them.

use crate::report::Format;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use ward_schema::CiliumVersion;

/// ward: Cilium network policy from Git to the kernel.
///
/// The exit codes are in [`EXIT_CODES`], which `ward --help` prints.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about, long_about = None, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, as `ward --help` shows them (keep in step with `super::EXIT_*`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (with --detailed-exitcode: and no changes)
  1  errors: invalid input or a failed command
  2  success with changes present (only with --detailed-exitcode): for plan, apply
     and diff, changes; for status, drift, an interrupted apply or an invalid object";

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The repository: a local path (working tree or bare repository) or a URL (file://,
    /// https://, ssh://, user@host:path) that is cloned into the cache.
    #[arg(long, global = true, env = "WARD_REPO", default_value = ".")]
    pub repo: String,

    /// Folders of the repository that hold the desired state (repeatable; WARD_INCLUDE takes
    /// them separated by commas or spaces) [default: policies, cluster-config]. A folder
    /// named here that does not exist is an error.
    #[arg(
        long = "include",
        global = true,
        env = "WARD_INCLUDE",
        value_delimiter = ','
    )]
    pub include: Vec<String>,

    /// Succeed when no file is read (an empty repository, include folders not there yet).
    #[arg(long, global = true, env = "WARD_ALLOW_EMPTY")]
    pub allow_empty: bool,

    /// Objects of kinds ward does not manage (Deployments, Services, Kustomizations) are
    /// errors, like kubeconform's -strict; without it they are skipped and counted.
    #[arg(long, global = true, env = "WARD_STRICT_KINDS")]
    pub strict_kinds: bool,

    /// The Cilium release the cluster runs (1.17, 1.18 or 1.19; a patch release such as
    /// 1.18.4 is read as its minor version): files are validated with the schemas generated
    /// from that release's CRDs and its rules (fromRequires/toRequires before 1.19, the
    /// protocols it knows).
    #[arg(
        long,
        global = true,
        env = "WARD_CILIUM_VERSION",
        value_name = "VERSION",
        default_value_t = CiliumVersion::default(),
        value_parser = parse_cilium_version
    )]
    pub cilium_version: CiliumVersion,

    /// Refuse a revision unless its commit (or the annotated tag named) is signed by a key of
    /// --allowed-signers or --trusted-keys: plan, apply, diff (the head), validate/test/explain
    /// --rev and reconcile. The working tree has no signature and is refused.
    #[arg(long, global = true, env = "WARD_VERIFY_SIGNATURES")]
    pub verify_signatures: bool,

    /// SSH keys trusted to sign (--verify-signatures): an allowed-signers file, as for git's
    /// gpg.ssh.allowedSignersFile (`principals [namespaces="git"] ssh-ed25519 AAAA…`).
    #[arg(
        long,
        global = true,
        env = "WARD_ALLOWED_SIGNERS",
        value_name = "FILE",
        requires = "verify_signatures"
    )]
    pub allowed_signers: Option<PathBuf>,

    /// OpenPGP keys trusted to sign (--verify-signatures): armored public keys, one or more
    /// (`gpg --armor --export KEYID…`).
    #[arg(
        long,
        global = true,
        env = "WARD_TRUSTED_KEYS",
        value_name = "FILE",
        requires = "verify_signatures"
    )]
    pub trusted_keys: Option<PathBuf>,

    /// The local target's state directory [default: <repo>/.ward].
    #[allow(
        rustdoc::invalid_html_tags,
        reason = "clap's help text: <repo> is a placeholder"
    )]
    #[arg(long, global = true, env = "WARD_STATE")]
    pub state: Option<PathBuf>,

    /// Where remote repositories are cached [default: $HOME/.cache/ward].
    #[arg(long, global = true, env = "WARD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// The most characters markdown output may have, so that it fits a pull-request
    /// comment: past it, whole rows and diffs are left out, with a line saying how much
    /// (the summary is always kept whole). 0: no limit.
    #[arg(long, global = true, env = "WARD_MARKDOWN_LIMIT", default_value_t = crate::report::MARKDOWN_LIMIT)]
    pub markdown_limit: usize,

    /// When to colour text output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Use the cluster of this kubeconfig instead of the local state directory (plan, apply,
    /// status). Without --kubeconfig or --context, ward uses the local target.
    #[arg(long, global = true, env = "WARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (implies the kube target; with no --kubeconfig, the
    /// file kubectl would read: KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, env = "WARD_CONTEXT")]
    pub context: Option<String>,

    /// The cluster-scoped WardSync that records what ward applied (kube target).
    #[arg(long, global = true, env = "WARD_SYNC", default_value = "ward")]
    pub sync: String,

    /// The namespace of the ConfigMap that holds the CiliumConfig (kube target).
    #[arg(long, global = true, default_value = "kube-system")]
    pub config_namespace: String,

    /// Largest policy file accepted, in bytes.
    #[arg(long, global = true, env = "WARD_MAX_FILE_BYTES", default_value_t = 4 << 20)]
    pub max_file_bytes: u64,

    /// Act as this user on the cluster (kube target), like kubectl's --as: the cluster's RBAC
    /// for that user decides; the kubeconfig's user needs the `impersonate` verb.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Act as a member of this group too (repeatable; needs --as), like kubectl's --as-group.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_groups: Vec<String>,

    /// Requests to the cluster in flight at once (kube target): dry runs while planning,
    /// writes and deletes while applying, kind by kind in apply order.
    #[arg(
        long,
        global = true,
        env = "WARD_CONCURRENCY",
        value_name = "N",
        default_value_t = crate::target::kube::DEFAULT_CONCURRENCY as u64,
        value_parser = clap::value_parser!(u64).range(1..=1024)
    )]
    pub concurrency: u64,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set (and not empty); CLICOLOR_FORCE forces it.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The formats `ward validate` writes (`plan`, `apply` and `diff` write every format; dot
/// is the graph of the allowed flows, which only they compute).
pub const VALIDATE_FORMATS: &[Format] = &[
    Format::Text,
    Format::Json,
    Format::Markdown,
    Format::Github,
    Format::Sarif,
    Format::Junit,
];
/// The formats `ward test` writes.
pub const TEST_FORMATS: &[Format] = &[Format::Text, Format::Json, Format::Github, Format::Junit];
/// The formats of `ward explain`, `status` and `observe`.
pub const TEXT_JSON: &[Format] = &[Format::Text, Format::Json];

/// A parser for `--format` that accepts exactly `allowed`, so that clap refuses any other
/// value with a usage error listing the possible ones.
fn formats(allowed: &'static [Format]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(allowed.iter().filter_map(ValueEnum::to_possible_value))
        .map(|s| Format::from_str(&s, false).expect("clap passes only the possible values"))
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check files against the schemas and Cilium's rules; exit 1 on any error.
    Validate(ValidateArgs),
    /// Show what `apply` would change in the target.
    Plan(PlanCommandArgs),
    /// Validate, then apply to the target; refuses on any error. With PLANFILE, apply a plan
    /// saved by `ward plan --out`.
    Apply(ApplyArgs),
    /// Compare two Git revisions (no live state): findings of the head, the object diff and
    /// the connectivity diff.
    Diff(DiffArgs),
    /// Run the PolicyTests against the policies: every expectation through the policy
    /// engine; exit 1 when one fails (or on invalid input).
    Test(TestArgs),
    /// Explain one flow's verdict: the rules that decided it in each direction (egress of the
    /// source, ingress of the destination), with their files and lines.
    Explain(ExplainArgs),
    /// Show the target's applied revision, inventory, drift and interrupted applies (with
    /// --detailed-exitcode, the exit code says whether there are any).
    Status(StatusArgs),
    /// Build, remove or list labs: clusters of network namespaces from a topology file
    /// (root only for up and down).
    #[cfg(feature = "node")]
    #[command(subcommand)]
    Lab(LabCommand),
    /// Run the controller: keep the cluster (--kubeconfig/--context, or in a pod its service
    /// account) at a Git ref, woken by a poll interval, webhooks and, for a local repository,
    /// pushes; leader election, status on the WardSync, /healthz, /readyz, /metrics.
    Reconcile(ReconcileArgs),
    /// Print ward's version, the commit it was built from and the Cilium release its schemas
    /// come from.
    Version(VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write ward's man pages (ward.1 and one per command).
    Man(ManArgs),
    /// Follow the datapath's verdict events (drops, and each newly allowed connection) with
    /// the pods, port and deciding rule; root, while `ward-agent` runs or after.
    #[cfg(feature = "node")]
    Observe(ObserveArgs),
}

impl Command {
    /// The output format the command was given; text for a command without `--format`.
    pub fn format(&self) -> Format {
        match self {
            Command::Validate(a) => a.format,
            Command::Plan(a) => a.plan.format,
            Command::Apply(a) => a.plan.format,
            Command::Diff(a) => a.format,
            Command::Test(a) => a.format,
            Command::Explain(a) => a.format,
            Command::Status(a) => a.format,
            Command::Version(a) => a.format,
            #[cfg(feature = "node")]
            Command::Observe(a) => a.format,
            #[cfg(feature = "node")]
            Command::Lab(LabCommand::Up { format, .. } | LabCommand::Down { format, .. }) => {
                *format
            }
            // lab status, reconcile, completions and man write no report.
            _ => Format::Text,
        }
    }
}

/// `ward observe`.
#[cfg(feature = "node")]
#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// Nodes to follow [default: every node with a pinned datapath].
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Only events with this pod (`namespace/name` or `name`) at either end.
    #[arg(long)]
    pub pod: Option<String>,
    /// Only these verdicts.
    #[arg(long, value_parser = ["allowed", "denied", "default-deny", "dropped"])]
    pub verdict: Option<String>,
    /// Only this destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// The lab topology, to name pods by address.
    #[arg(long, default_value = "cluster-config/lab.yaml")]
    pub topology: PathBuf,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// The agent's run directory, for rule names (as given to `ward-agent run --run-dir`;
    /// by default where the node's agent recorded it). Only with one --node.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Output format: text, or JSON Lines (one event per line).
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(TEXT_JSON))]
    pub format: Format,
}

/// `ward lab`.
#[cfg(feature = "node")]
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab a topology file describes (e.g. cluster-config/lab.yaml).
    Up {
        /// The topology file.
        topology: PathBuf,
        /// Remove a lab of the same name first instead of refusing.
        #[arg(long)]
        replace: bool,
        /// Output format of the topology's findings, as `ward validate` writes them.
        #[arg(long, short = 'o', default_value = "text", value_parser = formats(VALIDATE_FORMATS))]
        format: Format,
    },
    /// Remove a lab: the one TOPOLOGY names, the one called --name, or the only lab there is.
    Down {
        /// The topology file whose lab to remove.
        #[arg(conflicts_with = "name")]
        topology: Option<PathBuf>,
        /// The lab's name.
        #[arg(long)]
        name: Option<String>,
        /// Output format of the topology's findings, as `ward validate` writes them.
        #[arg(long, short = 'o', default_value = "text", value_parser = formats(VALIDATE_FORMATS))]
        format: Format,
    },
    /// List the labs found (state files and network namespaces).
    Status,
}

/// `ward validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or folders to check [default: the --include folders of --repo]; `-` reads
    /// standard input. A path that does not exist is an error, unless Git knows it as
    /// deleted (in the index, HEAD or HEAD's history of --repo): then it is counted as
    /// deleted. With --rev, folders of the repository at that revision.
    pub paths: Vec<PathBuf>,
    /// A file to check, as kubectl takes it (repeatable; `-` reads standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<PathBuf>,
    /// Check a Git revision of --repo instead of the working tree (no checkout needed).
    #[arg(long)]
    pub rev: Option<String>,
    /// Exit 1 when there are warnings, as when there are errors.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(VALIDATE_FORMATS))]
    pub format: Format,
}

/// `ward plan` and `ward apply`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Use this Git revision instead of the working tree (any revision Git understands:
    /// branch, tag, commit, `main~1`).
    #[arg(long)]
    pub rev: Option<String>,
    /// Delete objects ward applied earlier that are no longer desired.
    #[arg(long)]
    pub prune: bool,
    /// The most objects one apply may prune; more is refused before anything is written.
    #[arg(long, default_value_t = crate::target::DEFAULT_MAX_PRUNE)]
    pub max_prune: usize,
    /// Allow pruning every object ward applied (refused otherwise: usually a wrong path).
    #[arg(long)]
    pub allow_prune_all: bool,
    /// Take over fields that another field manager owns (kube target; like kubectl).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over desired objects that exist but ward did not apply (created with kubectl, or
    /// by hand): field manager ward, into the inventory. Without it they are left alone.
    #[arg(long)]
    pub adopt: bool,
    /// Exit 2 when there are changes (0: none, 1: errors).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Treat warnings like errors: exit 1, and `apply` applies nothing.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(Format::value_variants()))]
    pub format: Format,
}

/// `ward plan`.
#[derive(Debug, Args)]
pub struct PlanCommandArgs {
    /// What to plan.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Also save the plan to FILE (JSON): `ward apply FILE` then applies exactly it, or
    /// refuses when the revision or the target changed since.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ward apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `ward plan --out`: applies exactly its objects (not read from Git
    /// again) with the options it was made with, or refuses, changing nothing, when the
    /// revision moved or the target changed since.
    #[arg(
        value_name = "PLANFILE",
        conflicts_with_all = ["rev", "prune", "max_prune", "allow_prune_all", "force_conflicts", "adopt"]
    )]
    pub planfile: Option<PathBuf>,
    /// What to apply.
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// `ward version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(TEXT_JSON))]
    pub format: Format,
}

/// `ward completions`.
#[derive(Debug, Args)]
#[command(after_help = "\
Install:
  bash:  ward completions bash > ~/.local/share/bash-completion/completions/ward
  zsh:   ward completions zsh > \"${fpath[1]}/_ward\"
  fish:  ward completions fish > ~/.config/fish/completions/ward.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `ward man`.
#[derive(Debug, Args)]
#[command(after_help = "\
Install:
  ward man --out-dir ~/.local/share/man/man1    # then: man ward, man ward-plan
  sudo ward man --out-dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write ward.1 and ward-<command>.1 into this folder; without it, ward.1 goes to standard
    /// output.
    #[allow(
        rustdoc::invalid_html_tags,
        reason = "clap's help text: <command> is a placeholder"
    )]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `ward diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The base revision (e.g. origin/main). Without it, the base is what is live in the
    /// target: the cluster of --kubeconfig/--context, else the local state directory (like
    /// `kubectl diff`; prunes are shown).
    #[arg(long)]
    pub base: Option<String>,
    /// The head revision.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Exit 2 when there are changes (0: none, 1: errors).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Exit 1 when the head has warnings, as when it has errors.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Exit 1 when a changed flow of the connectivity diff passes a rule that names something
    /// the head does not define (a CiliumCIDRGroup), instead of only noting it.
    #[arg(long)]
    pub strict: bool,
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(Format::value_variants()))]
    pub format: Format,
}

/// `ward test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Files or folders to load, policies and tests alike [default: the --include folders
    /// of --repo]; `-` reads standard input. The tests run against the policies loaded with
    /// them.
    pub paths: Vec<PathBuf>,
    /// A file to load, as kubectl takes it (repeatable; `-` reads standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<PathBuf>,
    /// Test a Git revision of --repo instead of the working tree (PATHS are then folders of
    /// the repository at that revision).
    #[arg(long)]
    pub rev: Option<String>,
    /// Output format (github: an annotation at each failed expectation).
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(TEST_FORMATS))]
    pub format: Format,
    /// Fail an expectation whose flow meets a rule that names something the revision does
    /// not define (a CiliumCIDRGroup), instead of only noting it beside the verdict.
    #[arg(long)]
    pub strict: bool,
    /// Also send every expectation as real packets through ward's eBPF programs, in a lab
    /// built from the tests' endpoints with an agent per node, and report each flow where
    /// the kernel and the engine disagree (root; text and json output).
    #[cfg(feature = "node")]
    #[arg(long)]
    pub datapath: bool,
}

/// `ward explain`.
#[derive(Debug, Args)]
#[command(after_help = "\
Flow ends:
  shop/app=frontend,tier=web   a pod in namespace shop with these labels
  shop/frontend, frontend      an endpoint a PolicyTest declares
  world, host, kube-apiserver  an entity (world is 203.0.113.10)
  203.0.113.7, 10.0.0.0/8      an address; a CIDR stands for its first host address (--to)

Example:
  ward explain --from shop/app=frontend --to shop/app=backend --port 80/TCP")]
pub struct ExplainArgs {
    /// The source.
    #[arg(long)]
    pub from: String,
    /// The destination.
    #[arg(long)]
    pub to: String,
    /// Port and protocol: 80/TCP, 53/UDP, http/TCP (a named port of the destination), ICMP/8.
    #[arg(long)]
    pub port: String,
    /// An HTTP request the flow carries, "METHOD PATH" ("GET /api/v1/items"): the HTTP rules
    /// on its path decide it too.
    #[arg(long, conflicts_with = "dns")]
    pub http: Option<String>,
    /// The Host header of --http.
    #[arg(long, requires = "http")]
    pub http_host: Option<String>,
    /// A header of --http, "Name: value" (repeat for more).
    #[arg(long = "header", requires = "http")]
    pub headers: Vec<String>,
    /// A DNS query the flow carries (its name): the DNS rules on its path decide it too.
    #[arg(long)]
    pub dns: Option<String>,
    /// Use the policies of a Git revision of --repo instead of the working tree.
    #[arg(long)]
    pub rev: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(TEXT_JSON))]
    pub format: Format,
}

/// `ward status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 2 on drift, an interrupted apply or an object the cluster marked invalid (0
    /// otherwise, 1 when the target cannot be read).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(long, short = 'o', default_value = "text", value_parser = formats(TEXT_JSON))]
    pub format: Format,
}

/// `ward reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The ref to follow: a branch, tag or commit.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// How often to read the repository without being woken (e.g. 30s, 5m, 1h).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Address of /healthz, /readyz, /metrics and /hook.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: std::net::SocketAddr,
    /// A file holding the webhook secret (GitHub/generic HMAC-SHA256 key, GitLab token);
    /// without it /hook is off.
    #[arg(long, env = "WARD_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The largest webhook body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Delete objects ward applied that are no longer desired.
    #[arg(long)]
    pub prune: bool,
    /// The most objects one reconcile may prune.
    #[arg(long, default_value_t = crate::target::DEFAULT_MAX_PRUNE)]
    pub max_prune: usize,
    /// This controller's name in the Lease [default: host name and process id].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The namespace of the leader-election Lease.
    #[arg(long, default_value = "kube-system")]
    pub lease_namespace: String,
    /// Reconcile once (as the Lease holder, waiting for it if needed) and exit: 0 when the
    /// revision was applied, 1 when it was invalid, suspended or failed.
    #[arg(long)]
    pub once: bool,
}

/// `--cilium-version`: a minor version ward has schemas for.
fn parse_cilium_version(s: &str) -> Result<CiliumVersion, String> {
    s.parse()
}

/// Parses a Go duration (`90s`, `1m30s`, `1.5h`, `250ms`), as Flux's `interval` does.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    ward_schema::duration::parse(s)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
