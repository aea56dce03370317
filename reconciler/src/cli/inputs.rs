//! What `ward validate` and `ward test` read: the --include folders of the repository, or
//! the paths the command line names (`-` and `-f -` for standard input), at a revision or in
//! the working tree.
//!
//! A named path that does not exist is a finding for that path ([`codes::PATH_NOT_FOUND`])
//! while every other path is still read, unless Git knows it as deleted (see
//! [`known_deleted`]): then it is only counted, so that `ward validate $(git diff
//! --name-only)` works on a change that deletes files.

use super::Settings;
use crate::desired::validate_files;
use crate::source::{
    Content, RepoRef, SourceFile, known_deleted, open_repo, read_worktree, repo_root,
};
use anyhow::{Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use ward_schema::diagnostic::{self, codes};
use ward_schema::yaml::Limits;
use ward_schema::{Diagnostic, Validation};

/// How findings and the file list name standard input.
pub const STDIN: &str = "<stdin>";

/// The paths a command names: its positional PATHS and its `-f FILE`s.
#[derive(Debug, Default)]
pub struct Named<'a> {
    /// Files or folders; `-` is standard input.
    pub paths: Vec<&'a Path>,
}

impl<'a> Named<'a> {
    /// PATHS followed by the FILEs of `-f`.
    pub fn new(paths: &'a [PathBuf], filenames: &'a [PathBuf]) -> Named<'a> {
        Named {
            paths: paths
                .iter()
                .chain(filenames)
                .map(PathBuf::as_path)
                .collect(),
        }
    }

    fn stdin(&self) -> bool {
        self.paths.iter().any(|p| is_stdin(p))
    }
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// What a command read and validated.
#[derive(Debug)]
pub struct Inputs {
    /// Resources and findings (a missing path's finding among them).
    pub validation: Validation,
    /// The files read, as findings name them.
    pub files: Vec<String>,
    /// Named paths that do not exist but that Git knows as deleted: not checked.
    pub deleted: Vec<String>,
}

/// Loads and validates the named paths (files or folders anywhere, standard input), or the
/// --include folders of the repository when none is named, at `rev` or in the working tree.
pub fn load_paths(
    settings: &Settings,
    named: &Named<'_>,
    rev: Option<&str>,
    keep_objects: bool,
) -> Result<Inputs> {
    if named.paths.is_empty() || rev.is_some() {
        if named.stdin() {
            bail!("standard input (-) cannot be read at a revision; drop --rev or the -");
        }
        let mut settings = settings.clone();
        if !named.paths.is_empty() {
            settings.source.selection.include = named
                .paths
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches('/').to_owned())
                .collect();
            settings.source.selection.named = true;
        }
        let loaded = super::load_desired(&settings, rev, keep_objects)?;
        return Ok(Inputs {
            validation: loaded.desired.validation,
            files: loaded.files,
            deleted: Vec::new(),
        });
    }
    // Files named in the working tree (or standard input) carry no signature.
    if settings.source.verify.is_some() {
        bail!(crate::source::NO_REVISION);
    }
    load_worktree_paths(settings, named, keep_objects)
}

/// The named paths of the working tree, sorted into what exists, what Git knows as deleted
/// and what is missing.
fn load_worktree_paths(
    settings: &Settings,
    named: &Named<'_>,
    keep_objects: bool,
) -> Result<Inputs> {
    let selection = &settings.source.selection;
    let mut existing = Vec::new();
    let mut absent = Vec::new();
    for p in named.paths.iter().filter(|p| !is_stdin(p)) {
        if std::fs::symlink_metadata(p).is_ok() {
            existing.push(p.to_path_buf());
        } else {
            absent.push(*p);
        }
    }
    let (deleted, missing) = sort_absent(settings, &absent);
    let mut files = if existing.is_empty() {
        Vec::new()
    } else {
        read_worktree(&std::env::current_dir()?, selection, &existing)?
    };
    if named.stdin() {
        files.insert(0, read_stdin(&selection.limits));
    }
    if missing.is_empty() && deleted.is_empty() {
        selection.check_found(&files, |_| true, "the paths given")?;
    }
    let names = files
        .iter()
        .filter(|f| f.skipped().is_none())
        .map(|f| f.path.clone())
        .collect();
    let mut validation = validate_files(files, selection, keep_objects);
    validation.diagnostics.extend(missing);
    diagnostic::sort(&mut validation.diagnostics);
    Ok(Inputs {
        validation,
        files: names,
        deleted,
    })
}

/// Paths that do not exist: those Git knows (deleted, by their names as given) and the
/// findings for the others.
fn sort_absent(settings: &Settings, absent: &[&Path]) -> (Vec<String>, Vec<Diagnostic>) {
    let repo = match (&settings.source.repo, absent.is_empty()) {
        (RepoRef::Local(dir), false) => open_repo(&repo_root(dir)).ok(),
        _ => None,
    };
    let mut deleted = Vec::new();
    let mut missing = Vec::new();
    for p in absent {
        let shown = p.to_string_lossy().into_owned();
        if repo.as_ref().is_some_and(|r| known_deleted(r, p)) {
            deleted.push(shown);
        } else {
            missing.push(not_found(shown));
        }
    }
    (deleted, missing)
}

/// The finding for a named path that does not exist.
fn not_found(shown: String) -> Diagnostic {
    Diagnostic::error(codes::PATH_NOT_FOUND, "no such file or folder")
        .at(shown, 0, 0)
        .with_hint(
            "check the path; a file deleted in Git is counted as deleted only when --repo is its repository",
        )
}

/// Standard input as one file named [`STDIN`], read up to the size limit.
fn read_stdin(limits: &Limits) -> SourceFile {
    let max = limits.max_file_bytes;
    let mut buf = Vec::new();
    let content = match std::io::stdin().lock().take(max + 1).read_to_end(&mut buf) {
        Err(e) => Content::Unreadable(
            Diagnostic::error(
                codes::FILE_UNREADABLE,
                format!("cannot read standard input: {e}"),
            )
            .at(STDIN, 0, 0),
        ),
        Ok(_) if buf.len() as u64 > max => Content::Unreadable(
            ward_schema::yaml::too_large(buf.len() as u64, limits).at(STDIN, 0, 0),
        ),
        Ok(_) => Content::Bytes(buf),
    };
    SourceFile {
        path: STDIN.to_owned(),
        content,
    }
}
