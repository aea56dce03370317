//! A repository as the user names it (`--repo`), and reading one revision of it.

use super::verify::Trust;
use super::{GitSource, RemoteCache, Selection, Snapshot, open_repo, read_worktree, resolve_rev};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Where the desired state comes from.
#[derive(Debug, Clone)]
pub enum RepoRef {
    /// A folder on disk (a Git working tree, a bare repository, or any folder).
    Local(PathBuf),
    /// A URL cloned into the cache.
    Remote(String),
}

impl RepoRef {
    /// A URL (`scheme://…`, or scp-like `user@host:path` that is not a local path) or a folder.
    pub fn parse(s: &str) -> RepoRef {
        let is_url =
            s.contains("://") || (s.contains('@') && s.contains(':') && !Path::new(s).exists());
        if is_url {
            RepoRef::Remote(s.to_owned())
        } else {
            RepoRef::Local(PathBuf::from(s))
        }
    }
}

/// A repository, the files of it that count, and where remote clones are cached: everything
/// needed to read a revision's files.
#[derive(Debug, Clone)]
pub struct Source {
    /// The repository.
    pub repo: RepoRef,
    /// Which files count.
    pub selection: Selection,
    /// Cache root (remote clones go under `repos/`).
    pub cache_dir: PathBuf,
    /// The keys a revision must be signed with (`--verify-signatures`); `None`: no check.
    pub verify: Option<Trust>,
}

impl Source {
    /// The selected files of revision `rev`, or of the working tree when `rev` is `None`
    /// (a remote repository then reads its `HEAD`).
    pub fn snapshot(&self, rev: Option<&str>) -> Result<Snapshot> {
        match (&self.repo, rev) {
            (RepoRef::Local(path), None) => {
                if self.verify.is_some() {
                    bail!(NO_REVISION);
                }
                let root = repo_root(path);
                let files = read_worktree(&root, &self.selection, &[]).with_context(|| {
                    format!("cannot read the working tree at {}", root.display())
                })?;
                self.selection.check_found(
                    &files,
                    |inc| root.join(inc).exists(),
                    &format!("the working tree {}", root.display()),
                )?;
                let (revision, dirty) = worktree_revision(&root);
                Ok(Snapshot {
                    files,
                    revision,
                    dirty,
                })
            }
            (RepoRef::Local(path), Some(rev)) => {
                let repo = open_repo(path)?;
                self.check_signature(&repo, rev, resolve_rev(&repo, rev)?)?;
                let (oid, files) = GitSource::new(&repo).read(rev, &self.selection)?;
                self.check_revision(&repo, oid, &files)?;
                Ok(Snapshot {
                    files,
                    revision: Some(oid.to_string()),
                    dirty: Some(false),
                })
            }
            (RepoRef::Remote(url), rev) => {
                let cache = RemoteCache::new(RemoteCache::default_dir(&self.cache_dir));
                let (repo, oid) = cache.fetch(url, rev.unwrap_or("HEAD"))?;
                self.check_signature(&repo, rev.unwrap_or("HEAD"), oid)?;
                let (oid, files) = GitSource::new(&repo).read(&oid.to_string(), &self.selection)?;
                self.check_revision(&repo, oid, &files)?;
                Ok(Snapshot {
                    files,
                    revision: Some(oid.to_string()),
                    dirty: Some(false),
                })
            }
        }
    }

    /// The commit `rev` names now (the working tree's `HEAD`, with `-dirty` when it has
    /// changes, when `rev` is `None`), without reading any file: what a saved plan compares
    /// with the commit it was made from. A remote repository is fetched first.
    pub fn resolve(&self, rev: Option<&str>) -> Result<Option<String>> {
        match (&self.repo, rev) {
            (RepoRef::Local(path), None) => Ok(worktree_revision(&repo_root(path)).0),
            (RepoRef::Local(path), Some(rev)) => Ok(Some(
                super::resolve_rev(&open_repo(path)?, rev)?.to_string(),
            )),
            (RepoRef::Remote(url), rev) => {
                let cache = RemoteCache::new(RemoteCache::default_dir(&self.cache_dir));
                Ok(Some(cache.fetch(url, rev.unwrap_or("HEAD"))?.1.to_string()))
            }
        }
    }

    /// With `--verify-signatures`: refuses `rev` (resolved to `commit`) unless what it names
    /// is signed by a trusted key.
    fn check_signature(&self, repo: &git2::Repository, rev: &str, commit: git2::Oid) -> Result<()> {
        if let Some(trust) = &self.verify {
            let signed = trust.verify(repo, rev, commit)?;
            tracing::info!("verified: {signed}");
        }
        Ok(())
    }

    /// [`Selection::check_found`] against commit `oid`'s tree.
    fn check_revision(
        &self,
        repo: &git2::Repository,
        oid: git2::Oid,
        files: &[super::SourceFile],
    ) -> Result<()> {
        let tree = repo.find_commit(oid)?.tree()?;
        self.selection.check_found(
            files,
            |inc| tree.get_path(Path::new(inc)).is_ok(),
            &format!("revision {oid}"),
        )
    }

    /// The Git directory whose refs change on a push, for a repository on this machine.
    pub fn local_git_dir(&self) -> Option<PathBuf> {
        let RepoRef::Local(path) = &self.repo else {
            return None;
        };
        Some(if path.join(".git").is_dir() {
            path.join(".git")
        } else {
            path.clone()
        })
    }
}

/// Why `--verify-signatures` refuses the working tree.
pub const NO_REVISION: &str = "--verify-signatures checks a Git revision, and the working tree has no signature; pass --rev (e.g. --rev HEAD) to verify and read a commit";

/// The top of the working tree that contains `p` (the nearest folder with a `.git` entry,
/// a folder or a worktree's file), or `p` itself outside Git.
///
/// A plain walk up rather than `git2::Repository::discover`: initialising libgit2 (and its
/// TLS library) costs about 50 ms, which a `ward validate` of a few files should not pay.
pub fn repo_root(p: &Path) -> PathBuf {
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
