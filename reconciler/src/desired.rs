//! From a source snapshot to the validated desired state, files validated in parallel.

use crate::source::{Selection, Snapshot, SourceFile};
use rayon::prelude::*;
use ward_schema::topology::Topology;
use ward_schema::{FileReport, Kind, LoadOptions, Validation, assemble, load_file_with};

/// The validated desired state of one revision.
#[derive(Debug)]
pub struct Desired {
    /// Resources and findings.
    pub validation: Validation,
    /// The commit, when it came from Git.
    pub revision: Option<String>,
}

/// Validates every file of `snapshot` (see [`validate_files`] for `keep_objects`).
pub fn validate_snapshot(snapshot: Snapshot, selection: &Selection, keep_objects: bool) -> Desired {
    let Snapshot {
        files, revision, ..
    } = snapshot;
    Desired {
        validation: validate_files(files, selection, keep_objects),
        revision,
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
    let reports: Vec<FileReport> = files
        .into_par_iter()
        .map(|f| {
            let path = f.path.clone();
            if let Some(what) = f.skipped() {
                return FileReport {
                    skipped: vec![what.to_owned()],
                    ..FileReport::default()
                };
            }
            let mut report = match f.bytes(selection) {
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
            };
            if !keep_objects {
                // The CiliumConfig stays whole: its flags decide which findings apply.
                report
                    .resources
                    .iter_mut()
                    .filter(|r| r.key.kind != Kind::CiliumConfig)
                    .for_each(|r| r.object = serde_json::Value::Null);
            }
            report
        })
        .collect();
    assemble(reports)
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
