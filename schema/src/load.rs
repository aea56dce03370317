//! From file bytes to resources and findings.
//!
//! [`load_file`] does everything that needs one file only (parse, envelope, JSON Schema,
//! semantic rules) and drops the YAML trees before it returns, so memory stays proportional
//! to the resources kept, not to the source text. [`assemble`] then does what needs every
//! file: duplicate objects, the CiliumConfig flags that some rules depend on, ordering.
//! Callers may run [`load_file`] on many threads.

use crate::diagnostic::{self, Diagnostic, codes};
use crate::envelope;
use crate::release::CiliumVersion;
use crate::resource::{Kind, Origin, Resource, ResourceKey};
use crate::schemas::Schemas;
use crate::semantic::{self, Finding, Unless};
use crate::yaml::{self, Limits, Node, NodeValue, Seg, path_string};
use serde_json::Value;
use std::collections::btree_map::{self, BTreeMap};

/// How files are loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Bounds on the file.
    pub limits: Limits,
    /// Objects of kinds ward does not manage are errors instead of skipped.
    pub strict_kinds: bool,
    /// The Cilium release whose schemas and rules apply.
    pub cilium: CiliumVersion,
}

/// What one file yielded.
#[derive(Debug, Default)]
pub struct FileReport {
    /// How many non-empty YAML documents the file holds.
    pub documents: usize,
    /// Objects of kinds ward does not manage, skipped: their kinds, one entry per object.
    pub skipped: Vec<String>,
    /// Documents that are valid apart from findings that depend on agent flags.
    pub resources: Vec<Resource>,
    /// Findings, each with the flag it depends on, if any.
    pub findings: Vec<(Diagnostic, Option<Unless>)>,
}

/// Loads one file. `file` labels findings and origins (a path relative to the repository).
/// Objects of kinds ward does not manage are skipped ([`load_file_with`] to be strict).
pub fn load_file(file: &str, bytes: &[u8], limits: &Limits) -> FileReport {
    load_file_with(
        file,
        bytes,
        &LoadOptions {
            limits: *limits,
            ..LoadOptions::default()
        },
    )
}

/// [`load_file`] with options.
pub fn load_file_with(file: &str, bytes: &[u8], options: &LoadOptions) -> FileReport {
    let parsed = yaml::parse_bytes(file, bytes, &options.limits);
    let mut report = FileReport {
        documents: parsed.docs.len(),
        findings: parsed.diagnostics.into_iter().map(|d| (d, None)).collect(),
        ..FileReport::default()
    };
    let syntax_ok = report.findings.is_empty();
    if !syntax_ok && bytes.windows(2).any(|w| w == b"{{") {
        for (d, _) in &mut report.findings {
            let parse_error = d.code == codes::YAML_SYNTAX || d.code == codes::NON_STRING_KEY;
            if parse_error && d.hint.is_none() {
                d.hint = Some(
                    "this looks like a Helm or Go template: render it first (`helm template`) and check the output, or list it in .wardignore".into(),
                );
            }
        }
    }
    for doc in parsed.docs {
        load_document(file, doc.index, doc.root, &mut report, syntax_ok, options);
    }
    report
}

fn load_document(
    file: &str,
    index: usize,
    mut root: Node,
    report: &mut FileReport,
    syntax_ok: bool,
    options: &LoadOptions,
) {
    // The tree keeps its keys and positions, enough to locate findings.
    let object = root.take_json();
    let env = envelope::check(&object);
    if let Some(kind) = env.foreign {
        if options.strict_kinds {
            report
                .findings
                .push(locate(file, &root, envelope::strict_kind(&kind)));
        } else {
            report.skipped.push(kind);
        }
        return;
    }
    let mut findings = env.findings;
    let kind = env.key.as_ref().map(|k| k.kind).or_else(|| {
        object
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::parse)
    });
    if let Some(kind) = kind {
        findings.extend(envelope::check_release(kind, &object, options.cilium));
        findings.extend(Schemas::for_version(options.cilium).validate(kind, &object));
        findings.extend(semantic::check_for(kind, &object, options.cilium));
    }
    let blocking = findings
        .iter()
        .any(|f| f.unless.is_none() && f.severity == diagnostic::Severity::Error);
    for f in findings {
        report.findings.push(locate(file, &root, f));
    }
    if let (Some(key), false, true) = (env.key, blocking, syntax_ok) {
        let object = with_namespace(object, &key);
        report.resources.push(Resource {
            key,
            object,
            origin: Origin {
                file: file.to_owned(),
                line: root.pos.line,
                document: index,
                item_lines: item_lines(&root, kind),
            },
        });
    }
}

/// The lines of a PolicyTest's expectations (see [`Origin::item_lines`]).
fn item_lines(root: &Node, kind: Option<Kind>) -> Vec<usize> {
    if kind != Some(Kind::PolicyTest) {
        return Vec::new();
    }
    let path = [Seg::Key("spec".into()), Seg::Key("expectations".into())];
    let mut node = root;
    for seg in &path {
        let (Seg::Key(k), NodeValue::Map(entries)) = (seg, &node.value) else {
            return Vec::new();
        };
        match entries.iter().find(|e| &e.key == k) {
            Some(e) => node = &e.value,
            None => return Vec::new(),
        }
    }
    match &node.value {
        NodeValue::Seq(items) => items.iter().map(|i| i.pos.line).collect(),
        _ => Vec::new(),
    }
}

/// Fills in the defaulted namespace so the stored object says where it lives.
fn with_namespace(mut object: Value, key: &ResourceKey) -> Value {
    if let (Some(ns), Some(meta)) = (
        &key.namespace,
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(ns.clone()));
    }
    object
}

fn locate(file: &str, root: &Node, f: Finding) -> (Diagnostic, Option<Unless>) {
    let pos = root.locate(&f.path, f.at_key);
    let mut d = Diagnostic {
        severity: f.severity,
        code: f.code,
        message: f.message,
        file: file.to_owned(),
        line: pos.line,
        column: pos.column,
        path: path_string(&f.path),
        hint: f.hint,
    };
    if d.line == 0 {
        d.line = root.pos.line;
        d.column = root.pos.column;
    }
    (d, f.unless)
}

/// Every valid object of a revision, keyed and ordered for applying.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSet {
    items: BTreeMap<ResourceKey, Resource>,
}

impl ResourceSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a resource, returning the one it replaced.
    pub fn insert(&mut self, r: Resource) -> Option<Resource> {
        self.items.insert(r.key.clone(), r)
    }

    /// The resource with `key`.
    pub fn get(&self, key: &ResourceKey) -> Option<&Resource> {
        self.items.get(key)
    }

    /// Resources in apply order.
    pub fn iter(&self) -> btree_map::Values<'_, ResourceKey, Resource> {
        self.items.values()
    }

    /// Keys in apply order.
    pub fn keys(&self) -> btree_map::Keys<'_, ResourceKey, Resource> {
        self.items.keys()
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The repository's CiliumConfig, if it has one.
    pub fn config(&self) -> Option<&Resource> {
        self.iter().find(|r| r.key.kind == Kind::CiliumConfig)
    }
}

impl IntoIterator for ResourceSet {
    type Item = Resource;
    type IntoIter = btree_map::IntoValues<ResourceKey, Resource>;

    /// The resources in apply order, moved out of the set.
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_values()
    }
}

/// The outcome of validating a whole revision.
#[derive(Debug, Default)]
pub struct Validation {
    /// The valid objects. Meaningful for applying only when [`Validation::is_valid`].
    pub resources: ResourceSet,
    /// Every finding, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// How many files were read.
    pub files: usize,
    /// How many documents were read.
    pub documents: usize,
    /// Objects of kinds ward does not manage, skipped: how many of each kind.
    pub skipped: BTreeMap<String, usize>,
}

impl Validation {
    /// How many objects were skipped.
    pub fn skipped_count(&self) -> usize {
        self.skipped.values().sum()
    }

    /// No errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// How many errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Agent flags that decide whether some findings stand, from the CiliumConfig.
#[derive(Debug, Clone, Copy)]
struct Flags {
    node_selector_labels: bool,
    icmp_rules: bool,
    l7_proxy: bool,
}

impl Flags {
    fn from_config(config: Option<&Resource>) -> Flags {
        let spec = config.map(Resource::spec);
        let flag = |key: &str, default: bool| {
            spec.and_then(|s| s.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        Flags {
            node_selector_labels: flag("enable-node-selector-labels", false),
            icmp_rules: flag("enable-icmp-rules", true),
            l7_proxy: flag("enable-l7-proxy", true),
        }
    }

    fn is_on(self, flag: Unless) -> bool {
        match flag {
            Unless::NodeSelectorLabels => self.node_selector_labels,
            Unless::IcmpRules => self.icmp_rules,
            Unless::L7Proxy => self.l7_proxy,
        }
    }
}

/// Joins per-file reports: duplicates across files, flag-dependent findings, ordering.
pub fn assemble(reports: Vec<FileReport>) -> Validation {
    let mut v = Validation {
        files: reports.len(),
        ..Validation::default()
    };
    let mut conditional = Vec::new();
    let mut candidates = Vec::new();
    for report in reports {
        v.documents += report.documents;
        for kind in report.skipped {
            *v.skipped.entry(kind).or_default() += 1;
        }
        for (d, unless) in report.findings {
            match unless {
                Some(flag) => conditional.push((d, flag)),
                None => v.diagnostics.push(d),
            }
        }
        candidates.extend(report.resources);
    }
    let (resources, duplicates) = first_definitions(candidates);
    v.resources = resources;
    v.diagnostics.extend(duplicates);
    check_single_config(&v.resources, &mut v.diagnostics);
    let flags = Flags::from_config(v.resources.config());
    for (d, flag) in conditional {
        if !flags.is_on(flag) {
            v.diagnostics.push(d);
        }
    }
    diagnostic::sort(&mut v.diagnostics);
    v
}

/// Keeps the first definition of every object, in file order, and reports the others as
/// duplicates. Sorting once and building the set from sorted keys costs a fraction of
/// inserting 10,000 objects into the map one by one.
fn first_definitions(candidates: Vec<Resource>) -> (ResourceSet, Vec<Diagnostic>) {
    let mut order: Vec<(&ResourceKey, usize)> =
        candidates.iter().map(|r| &r.key).zip(0..).collect();
    // Stable: among equal keys, the first in file order stays first.
    order.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    let mut duplicates = Vec::new();
    for (key, i) in order {
        match kept.last() {
            Some(&first) if candidates[first].key == *key => {
                duplicates.push(duplicate(&candidates[i], &candidates[first]));
            }
            _ => kept.push(i),
        }
    }
    let mut slots: Vec<Option<Resource>> = candidates.into_iter().map(Some).collect();
    let items = kept
        .into_iter()
        .filter_map(|i| slots[i].take())
        .map(|r| (r.key.clone(), r))
        .collect();
    (ResourceSet { items }, duplicates)
}

fn duplicate(again: &Resource, first: &Resource) -> Diagnostic {
    Diagnostic::error(
        codes::DUPLICATE_OBJECT,
        format!("{} is defined more than once", again.key),
    )
    .at(&again.origin.file, again.origin.line, 1)
    .with_path("metadata.name")
    .with_hint(format!(
        "it is first defined at {}; rename one or delete it",
        first.origin
    ))
}

fn check_single_config(set: &ResourceSet, out: &mut Vec<Diagnostic>) {
    let configs: Vec<&Resource> = set
        .iter()
        .filter(|r| r.key.kind == Kind::CiliumConfig)
        .collect();
    if let [first, rest @ ..] = configs.as_slice() {
        for r in rest {
            out.push(
                Diagnostic::error(
                    codes::CONFIG,
                    format!(
                        "more than one CiliumConfig: {} and {}",
                        first.key.name, r.key.name
                    ),
                )
                .at(&r.origin.file, r.origin.line, 1)
                .with_hint(format!(
                    "a cluster has one CiliumConfig; keep {}",
                    first.origin
                )),
            );
        }
    }
}
