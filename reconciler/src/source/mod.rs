//! Where the desired state comes from: a working tree, a local Git repository at any
//! revision, or a remote repository cloned into a cache. A [`Source`] names the repository
//! and the files that count; both the CLI and the controller read revisions through it.
//!
//! Every source yields a [`Snapshot`]: the selected files' bytes (or a finding saying why a
//! file could not be read) and the revision they came from. Only the folders in
//! [`Selection::include`] count, minus what `.wardignore` files (gitignore syntax, at the
//! repository root and in any folder) exclude, and minus Helm charts (folders with a
//! `Chart.yaml`), which are skipped and counted. Files are size-checked before they are read; a symlink whose
//! target lies outside the repository is refused. With [`Source::verify`] set, a revision's
//! signature is checked ([`verify`]) before any of its files is read.

mod git;
mod repo;
pub mod verify;
mod worktree;

pub use git::{GitSource, RemoteCache, known_deleted, open_repo, resolve_rev, show_progress};
pub use repo::{NO_REVISION, RepoRef, Source, repo_root};
pub use worktree::read_worktree;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::Path;
use ward_schema::diagnostic::codes;
use ward_schema::{CiliumVersion, Diagnostic, yaml::Limits};

/// The name of the ignore file at the repository root.
pub const IGNORE_FILE: &str = ".wardignore";

/// The include folders when none are named.
pub const DEFAULT_INCLUDE: [&str; 2] = ["policies", "cluster-config"];

/// Which files of a repository make up the desired state.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Folders (or files) relative to the repository root.
    pub include: Vec<String>,
    /// Bounds on each file.
    pub limits: Limits,
    /// Whether the include folders were named by the user: each must then exist. (Of the
    /// defaults, a repository may have either.)
    pub named: bool,
    /// Whether reading no file at all is fine.
    pub allow_empty: bool,
    /// Whether objects of kinds ward does not manage are errors (else skipped and counted).
    pub strict_kinds: bool,
    /// The Cilium release whose schemas and rules validate the files.
    pub cilium: CiliumVersion,
}

impl Default for Selection {
    fn default() -> Self {
        Selection::new(&[], false, Limits::default())
    }
}

impl Selection {
    /// The folders `include` names (each value may hold several, separated by commas or
    /// spaces, as `WARD_INCLUDE="policies cluster-config"` does), or the defaults.
    pub fn new(include: &[String], allow_empty: bool, limits: Limits) -> Selection {
        let named: Vec<String> = include
            .iter()
            .flat_map(|v| v.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        Selection {
            named: !named.is_empty(),
            include: if named.is_empty() {
                DEFAULT_INCLUDE.map(String::from).to_vec()
            } else {
                named
            },
            limits,
            allow_empty,
            strict_kinds: false,
            cilium: CiliumVersion::default(),
        }
    }

    /// Checks what a read found against the selection: a named include folder that `exists`
    /// says is not there, or no file at all (unless [`Selection::allow_empty`]), is an
    /// error naming the folders and `where_` (the working tree, or a revision).
    pub fn check_found(
        &self,
        files: &[SourceFile],
        exists: impl Fn(&str) -> bool,
        where_: &str,
    ) -> anyhow::Result<()> {
        if self.allow_empty {
            return Ok(());
        }
        let missing: Vec<&str> = self
            .include
            .iter()
            .map(String::as_str)
            .filter(|inc| !matches!(*inc, "" | "."))
            .filter(|inc| !exists(inc))
            .collect();
        if self.named && !missing.is_empty() {
            anyhow::bail!(
                "include folder(s) {} do not exist in {where_}; check --include (WARD_INCLUDE), or pass --allow-empty if that is expected",
                quoted(&missing)
            );
        }
        if files.is_empty() {
            anyhow::bail!(
                "no manifest (.yaml, .yml, .json) found in {} of {where_}; check --repo and --include (WARD_INCLUDE), or pass --allow-empty if that is expected",
                quoted(&self.include.iter().map(String::as_str).collect::<Vec<_>>())
            );
        }
        Ok(())
    }

    /// Whether `rel` (a path relative to the root, `/`-separated) lies in an included folder.
    pub fn includes(&self, rel: &str) -> bool {
        self.include.iter().any(|inc| {
            let inc = inc.trim_end_matches('/');
            inc.is_empty() || inc == "." || rel == inc || rel.starts_with(&format!("{inc}/"))
        })
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a file name is one ward reads.
pub fn is_manifest(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// One selected file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// The bytes, where to read them, or why they cannot be read.
    pub content: Content,
}

/// A file's content. Files on disk are read when they are validated, on the worker thread
/// that validates them, so a large tree is never held in memory whole.
#[derive(Debug, Clone)]
pub enum Content {
    /// Already read (Git blobs).
    Bytes(Vec<u8>),
    /// To be read from disk, with every guard, relative to the repository root.
    OnDisk {
        /// The repository root (canonical).
        root: std::path::PathBuf,
        /// The file.
        path: std::path::PathBuf,
    },
    /// Cannot be read.
    Unreadable(Diagnostic),
    /// Not read on purpose: a Helm chart's folder (its templates are not YAML until
    /// rendered). The path names the folder; the string says what it is.
    Skipped(&'static str),
}

/// What a folder holding a `Chart.yaml` is skipped as.
pub const HELM_CHART: &str = "Helm chart";

/// The file whose presence makes a folder a Helm chart.
pub const CHART_FILE: &str = "Chart.yaml";

impl SourceFile {
    /// The file's bytes, read now if they are on disk.
    #[allow(
        clippy::result_large_err,
        reason = "the finding for one unreadable file: built once per bad file, never on the hot path"
    )]
    pub fn bytes(self, selection: &Selection) -> Result<Vec<u8>, Diagnostic> {
        match self.content {
            Content::Bytes(b) => Ok(b),
            Content::OnDisk { root, path } => {
                worktree::read_guarded(&root, &path, &self.path, selection)
            }
            Content::Unreadable(d) => Err(d),
            Content::Skipped(what) => Err(Diagnostic::warning(
                codes::FILE_UNREADABLE,
                format!("{what} {} was skipped, not read", self.path),
            )),
        }
    }

    /// Whether the entry stands for a folder skipped on purpose ([`Content::Skipped`]).
    pub fn skipped(&self) -> Option<&'static str> {
        match self.content {
            Content::Skipped(what) => Some(what),
            _ => None,
        }
    }
}

/// The selected files of one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Files in path order.
    pub files: Vec<SourceFile>,
    /// The commit id, or `None` for a working tree.
    pub revision: Option<String>,
    /// Whether a working tree had uncommitted changes (`None` when not known).
    pub dirty: Option<bool>,
}

/// Builds the `.wardignore` matcher of folder `root` from its text (empty when there is none).
fn ignore_matcher(root: &Path, text: Option<&str>) -> Gitignore {
    let mut b = GitignoreBuilder::new(root);
    if let Some(text) = text {
        for line in text.lines() {
            // A bad pattern is skipped; gitignore does the same.
            let _ = b.add_line(None, line);
        }
    }
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The `.wardignore` files that apply at one place of a tree: the root's and those of every
/// folder on the way down. As with `.gitignore`, a deeper file's patterns (negations
/// included) win over a shallower one's.
#[derive(Clone, Default)]
pub(crate) struct Ignores {
    layers: Vec<std::rc::Rc<Gitignore>>,
}

impl Ignores {
    /// These ignores and, when `text` is a `.wardignore`'s content, the one of folder `dir`.
    pub(crate) fn with(&self, dir: &Path, text: Option<&str>) -> Ignores {
        let mut next = self.clone();
        if text.is_some() {
            next.layers
                .push(std::rc::Rc::new(ignore_matcher(dir, text)));
        }
        next
    }

    /// Whether `path` (absolute, or under the same virtual root as the folders given) is
    /// ignored.
    pub(crate) fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        for gi in self.layers.iter().rev() {
            if !path.starts_with(gi.path()) {
                continue;
            }
            let m = gi.matched_path_or_any_parents(path, is_dir);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        false
    }
}

/// The finding for a symlink that leaves the repository.
pub(crate) fn symlink_outside(path: &str, target: &str) -> Diagnostic {
    Diagnostic::error(
        ward_schema::diagnostic::codes::FILE_UNREADABLE,
        format!("symlink points outside the repository (to {target}); refused"),
    )
    .at(path, 0, 0)
    .with_hint("copy the file into the repository instead of linking to it")
}
