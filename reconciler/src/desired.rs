//! From a source snapshot to the validated desired state, files validated in parallel.

use crate::source::{Selection, Snapshot, SourceFile};
use rayon::prelude::*;
use ward_schema::{assemble, load_file, FileReport, Validation};

/// The validated desired state of one revision.
#[derive(Debug)]
pub struct Desired {
    /// Resources and findings.
    pub validation: Validation,
    /// The commit, when it came from Git.
    pub revision: Option<String>,
}

/// Validates every file of `snapshot`.
pub fn validate_snapshot(snapshot: Snapshot, selection: &Selection) -> Desired {
    let Snapshot { files, revision, .. } = snapshot;
    Desired { validation: validate_files(files, selection), revision }
}

/// Validates files on all cores and joins the results.
pub fn validate_files(files: Vec<SourceFile>, selection: &Selection) -> Validation {
    let reports: Vec<FileReport> = files
        .into_par_iter()
        .map(|f| match f.content {
            Ok(bytes) => load_file(&f.path, &bytes, &selection.limits),
            Err(d) => FileReport { documents: 0, resources: Vec::new(), findings: vec![(d, None)] },
        })
        .collect();
    assemble(reports)
}
