//! Output formats for findings, plans and connectivity diffs: text (colour on a terminal),
//! json, markdown (a PR comment), github (workflow annotations), sarif 2.1.0, junit and dot
//! (a Graphviz graph of the allowed flows).
//!
//! Every renderer takes a [`Report`] and returns a `String`, so each is tested into memory.
//! Markdown is capped (see [`MARKDOWN_LIMIT`]): it is cut between whole parts, never inside
//! a code fence or a `<details>` block.

mod dot;
pub(crate) mod github;
mod junit;
mod markdown;
mod sarif;
pub(crate) mod text;

use crate::plan::Plan;
use crate::testing::Connectivity;
use crate::testing::connectivity::FlowChange;
use serde::Serialize;
use ward_schema::Diagnostic;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text; colour on a terminal unless NO_COLOR is set (and not empty).
    Text,
    /// One JSON document with `"version": 1` (schema/json/output/v1.schema.json).
    Json,
    /// Markdown for a pull-request comment.
    Markdown,
    /// GitHub Actions workflow commands (`::error file=…`).
    Github,
    /// SARIF 2.1.0, for code-scanning uploads.
    Sarif,
    /// JUnit XML, one test case per file (per expectation for `ward test`).
    Junit,
    /// A Graphviz digraph of the head's allowed flows, changes coloured (`diff`, `plan`).
    Dot,
}

/// What a command has to say.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The command (`validate`, `plan`, `diff`, `apply`).
    pub command: &'static str,
    /// Files read, relative to the repository.
    pub files: &'a [String],
    /// How many YAML documents were read.
    pub documents: usize,
    /// Objects of kinds ward does not manage, skipped: how many of each kind.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub skipped: &'a std::collections::BTreeMap<String, usize>,
    /// Paths named on the command line that Git knows as deleted: not checked.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub deleted: &'a [String],
    /// All findings, sorted.
    pub diagnostics: &'a [Diagnostic],
    /// The plan, when the command computes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a Plan>,
    /// Base revision, for `diff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Head (or desired) revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// What becomes newly allowed or denied between the endpoints the PolicyTests declare
    /// (`diff`, `plan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<&'a Connectivity>,
}

impl Report<'_> {
    /// How many errors.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// How many warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// How to render, besides the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Colour text output.
    pub color: bool,
    /// The most characters markdown may have (0: no limit); see [`MARKDOWN_LIMIT`].
    pub markdown_limit: usize,
}

/// The default cap of markdown output: a pull-request comment must fit GitHub's 65,536
/// characters, with room for what CI adds around it.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Renders `report` in `format`. `color` only affects text; markdown is capped at
/// [`MARKDOWN_LIMIT`] characters.
pub fn render(format: Format, report: &Report<'_>, color: bool) -> String {
    render_with(
        format,
        report,
        Options {
            color,
            markdown_limit: MARKDOWN_LIMIT,
        },
    )
}

/// Renders `report` in `format` with `options`.
pub fn render_with(format: Format, report: &Report<'_>, options: Options) -> String {
    match format {
        Format::Text => text::render(report, options.color),
        Format::Json => json_text(report.command, &json_view(report)),
        Format::Markdown => markdown::render(report, options.markdown_limit),
        Format::Github => github::render(report),
        Format::Sarif => sarif::render(report),
        Format::Junit => junit::render(report),
        Format::Dot => dot::render(report),
    }
}

/// The version of every command's `--format json` document, its top-level `"version"`. It
/// changes only when a field changes meaning or goes away (new fields may appear at any
/// time); `schema/json/output/` holds the JSON Schema of each version.
pub const JSON_VERSION: u32 = 1;

/// A JSON document as every command writes it: `version` and `command` first, then the
/// command's own fields.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    version: u32,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` (which serialises as an object without `version` and `command`) as `command`'s
/// JSON document, pretty-printed with a final newline.
pub fn json_text<T: Serialize>(command: &str, body: &T) -> String {
    let doc = Versioned {
        version: JSON_VERSION,
        command,
        body,
    };
    serde_json::to_string_pretty(&doc).expect("JSON documents serialise") + "\n"
}

fn json_view(report: &Report<'_>) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("reports serialise");
    if let Some(obj) = v.as_object_mut() {
        obj.remove("command");
        obj.remove("files");
        obj.insert("files".into(), report.files.len().into());
        obj.insert(
            "summary".into(),
            serde_json::json!({
                "errors": report.errors(),
                "warnings": report.warnings(),
                "valid": report.errors() == 0,
                "changes": report.plan.map(Plan::has_changes),
                "connectivityChanges": report.connectivity.filter(|c| c.skipped.is_none()).map(Connectivity::has_changes),
            }),
        );
    }
    v
}

/// `5 endpoints in 4 workloads, world and host, on TCP/80, UDP/53 and declared ports` (with
/// `world, host and 2 node(s)` when PolicyTests declare nodes).
pub(crate) fn connectivity_scope(c: &Connectivity) -> String {
    let ports = if c.ports.is_empty() {
        "their declared ports".to_owned()
    } else {
        format!("{} and declared ports", c.ports.join(", "))
    };
    let ends = match c.nodes {
        0 => "world and host".to_owned(),
        n => format!("world, host and {n} node(s)"),
    };
    format!(
        "{} endpoint(s) in {} workload(s), {ends}, on {ports}",
        c.endpoints, c.workloads
    )
}

/// Why the head decides a changed flow as it does: `allowed by <rule> (file:line)`, `no rule
/// restricts it`, ...
pub(crate) fn flow_reason(f: &FlowChange) -> String {
    let reason = match (&f.rule, f.verdict.as_str()) {
        (Some(r), "allow") => format!("allowed by {}", r.located()),
        (Some(r), "deny") => format!("denied by {}", r.located()),
        (Some(r), _) => format!("default deny enabled by {}", r.located()),
        (None, "allow") => "no rule restricts it".to_owned(),
        (None, _) => "default deny (policy-enforcement-mode: always)".to_owned(),
    };
    // A rule on the path that matches nothing because the revision lacks what it names,
    // and a side whose own policy is not evaluated.
    let mut out = reason;
    if !f.unresolved.is_empty() {
        out = format!("{out}; unresolved: {}", f.unresolved.join("; "));
    }
    if !f.not_evaluated.is_empty() {
        out = format!("{out}; not evaluated: {}", f.not_evaluated.join("; "));
    }
    out
}

/// One line per change, newly allowed first: (allowed?, `newly allowed: a → b TCP/80 (rule)`).
pub(crate) fn connectivity_lines(c: &Connectivity) -> Vec<(bool, String)> {
    let line = |what: &str, f: &FlowChange| {
        format!(
            "{what}: {} → {} {} — {}",
            f.from,
            f.to,
            f.ports.join(", "),
            flow_reason(f)
        )
    };
    let allowed = c
        .newly_allowed
        .iter()
        .map(|f| (true, line("newly allowed", f)));
    let denied = c
        .newly_denied
        .iter()
        .map(|f| (false, line("newly denied", f)));
    allowed.chain(denied).collect()
}

/// `s` with every control character but those in `keep` written as `\u{…}`: a name, path
/// or message read from a repository can then neither break a line-based format nor send
/// escape sequences to a terminal. `keep` lists the controls a format escapes its own way.
pub(crate) fn printable<'a>(s: &'a str, keep: &[char]) -> std::borrow::Cow<'a, str> {
    if !s.chars().any(|c| c.is_control() && !keep.contains(&c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() && !keep.contains(&c) {
                    format!("\\u{{{:x}}}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `, 3 object(s) of other kinds skipped (Deployment: 2, Service: 1)`, or nothing.
pub(crate) fn skipped_note(skipped: &std::collections::BTreeMap<String, usize>) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = skipped.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!(
        ", {} object(s) of other kinds skipped ({})",
        skipped.values().sum::<usize>(),
        kinds.join(", ")
    )
}

/// `, 2 deleted file(s) not checked`, or nothing.
pub(crate) fn deleted_note(deleted: &[String]) -> String {
    if deleted.is_empty() {
        return String::new();
    }
    format!(", {} deleted file(s) not checked", deleted.len())
}

/// A revision as headings name it: the full commit id (never abbreviated: a reader must be
/// able to tell exactly which commit was planned or applied), `<commit>-dirty` for a
/// working tree with changes, or `working tree` outside Git.
pub(crate) fn rev_label(rev: &Option<String>) -> String {
    match rev {
        Some(r) => r.clone(),
        None => "working tree".into(),
    }
}
