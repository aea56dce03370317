//! From a source snapshot to the validated desired state, files validated in parallel.

use crate::live::Body;
use crate::source::{Selection, Snapshot, SourceFile};
use rayon::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use ward_schema::topology::Topology;
use ward_schema::{
    FileReport, Kind, LoadOptions, ResourceKey, Validation, assemble, load_file_with,
};

/// The validated desired state of one revision.
#[derive(Debug)]
pub struct Desired {
    /// Resources and findings.
    pub validation: Validation,
    /// The commit, when it came from Git.
    pub revision: Option<String>,
    /// The objects' bodies as bytes when validated with [`Keep::Bodies`] (their resources
    /// then hold `null`); empty otherwise.
    pub bodies: Bodies,
}

/// Desired objects' bodies as JSON bytes, by key (see [`Keep::Bodies`]).
pub type Bodies = BTreeMap<ResourceKey, Body>;

/// What a validation keeps of each object besides its key and origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The parsed object (what plans, tests and diffs read).
    Objects,
    /// Nothing (`ward validate`): memory stays flat.
    Keys,
    /// The object as bytes in [`Desired::bodies`], parsed again only by the target that
    /// sends it: a tenth of the memory of parsed objects, for a controller's first apply of
    /// thousands.
    Bodies,
}

impl Keep {
    /// [`Keep::Objects`] or, when `keep_objects` is false, [`Keep::Keys`].
    pub fn objects_or_keys(keep_objects: bool) -> Keep {
        if keep_objects {
            Keep::Objects
        } else {
            Keep::Keys
        }
    }
}

/// Validates every file of `snapshot` (see [`validate_files`] for `keep_objects`).
pub fn validate_snapshot(snapshot: Snapshot, selection: &Selection, keep_objects: bool) -> Desired {
    validate_snapshot_keeping(snapshot, selection, Keep::objects_or_keys(keep_objects))
}

/// Validates every file of `snapshot`, keeping of each object what `keep` says.
pub fn validate_snapshot_keeping(snapshot: Snapshot, selection: &Selection, keep: Keep) -> Desired {
    let Snapshot {
        files, revision, ..
    } = snapshot;
    let (validation, bodies) = validate_keeping(files, selection, keep);
    Desired {
        validation,
        revision,
        bodies,
    }
}

/// Validates files on all cores and joins the results. With `keep_objects` false the
/// resources keep only their keys and origins (enough to find duplicates), which is all
/// `ward validate` needs and keeps its memory flat; the CiliumConfig is kept whole, since
/// its flags decide which findings apply.
pub fn validate_files(
    files: Vec<SourceFile>,
    selection: &Selection,
    keep_objects: bool,
) -> Validation {
    validate_keeping(files, selection, Keep::objects_or_keys(keep_objects)).0
}

/// [`validate_files`], keeping of each object what `keep` says; each file's objects are
/// reduced as soon as the file is checked, so the whole revision is never held parsed.
fn validate_keeping(
    files: Vec<SourceFile>,
    selection: &Selection,
    keep: Keep,
) -> (Validation, Bodies) {
    let (reports, bodies): (Vec<FileReport>, Vec<Vec<(ResourceKey, Body)>>) = files
        .into_par_iter()
        .map(|f| {
            let mut report = validate_file(f, selection);
            let mut bodies = Vec::new();
            // The CiliumConfig stays whole: its flags decide which findings apply.
            let reduced = report
                .resources
                .iter_mut()
                .filter(|r| r.key.kind != Kind::CiliumConfig);
            match keep {
                Keep::Objects => {}
                Keep::Keys => reduced.for_each(|r| r.object = Value::Null),
                Keep::Bodies => reduced.for_each(|r| {
                    bodies.push((r.key.clone(), Body::new(&r.object)));
                    r.object = Value::Null;
                }),
            }
            (report, bodies)
        })
        .unzip();
    let mut all = Bodies::new();
    for (key, body) in bodies.into_iter().flatten() {
        // The first definition counts, as in `assemble` (a second one is an error anyway).
        all.entry(key).or_insert(body);
    }
    (assemble(reports), all)
}

/// One file's findings and objects.
fn validate_file(f: SourceFile, selection: &Selection) -> FileReport {
    let path = f.path.clone();
    if let Some(what) = f.skipped() {
        return FileReport {
            skipped: vec![what.to_owned()],
            ..FileReport::default()
        };
    }
    match f.bytes(selection) {
        Ok(bytes) => {
            let options = LoadOptions {
                limits: selection.limits,
                strict_kinds: selection.strict_kinds,
                cilium: selection.cilium,
            };
            let mut report = load_file_with(&path, &bytes, &options);
            check_lab_topology(&path, &bytes, &mut report);
            report
        }
        Err(d) => FileReport {
            findings: vec![(d, None)],
            ..FileReport::default()
        },
    }
}

/// A lab topology that passed the schema gets the lab loader's full checks (addresses,
/// overlaps, nodes, interface names), so `ward validate` reports what `ward lab up` would.
fn check_lab_topology(path: &str, bytes: &[u8], report: &mut FileReport) {
    let has_lab = report
        .resources
        .iter()
        .any(|r| r.key.kind == Kind::LabTopology);
    if has_lab
        && report.findings.iter().all(|(d, _)| !d.is_error())
        && let Err(diagnostics) = Topology::parse(path, bytes)
    {
        report.resources.retain(|r| r.key.kind != Kind::LabTopology);
        report
            .findings
            .extend(diagnostics.into_iter().map(|d| (d, None)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::source::Content;

    fn ccnp(name: &str) -> String {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {name}\nspec:\n  endpointSelector: {{}}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: \"80\"\n"
        )
    }

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: Content::Bytes(text.as_bytes().to_vec()),
        }
    }

    /// Kept as bytes, each object parses back to what a parsed validation holds, and the
    /// findings are the same.
    #[test]
    fn bodies_hold_the_objects_a_parsed_validation_holds() {
        let files = || vec![file("a.yaml", &ccnp("a")), file("b.yaml", &ccnp("b"))];
        let selection = Selection::default();
        let (parsed, none) = validate_keeping(files(), &selection, Keep::Objects);
        let (compact, bodies) = validate_keeping(files(), &selection, Keep::Bodies);
        assert!(none.is_empty());
        assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        assert_eq!(parsed.diagnostics, compact.diagnostics);
        assert_eq!(bodies.len(), 2);
        for r in parsed.resources.iter() {
            assert_eq!(compact.resources.get(&r.key).unwrap().object, Value::Null);
            assert_eq!(bodies[&r.key].value(), r.object);
        }
    }
}
