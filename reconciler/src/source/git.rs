//! Reading the selected files of a Git revision with git2, without a checkout, and keeping
//! remote repositories in a local cache.

use super::{
    CHART_FILE, Content, HELM_CHART, IGNORE_FILE, Ignores, Selection, SourceFile, is_manifest,
    symlink_outside,
};
use anyhow::{Context, Result, anyhow, bail};
use git2::{
    FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, Tree, TreeWalkMode, TreeWalkResult,
};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use ward_schema::Diagnostic;
use ward_schema::diagnostic::codes;

/// Whether clones and fetches draw a progress bar ([`show_progress`]).
static PROGRESS: AtomicBool = AtomicBool::new(false);

/// Turns the clone and fetch progress bar on standard error on or off (off by default). The
/// CLI turns it on for text output on a terminal only: never into a pipe, a log or beside
/// `-o json`.
pub fn show_progress(on: bool) {
    PROGRESS.store(on, Ordering::Relaxed);
}

/// Git's file mode for a symlink.
const MODE_SYMLINK: i32 = 0o120000;

/// Opens the repository that contains `path` (a working tree or a bare repository).
pub fn open_repo(path: &Path) -> Result<Repository> {
    Repository::discover(path)
        .with_context(|| format!("{} is not inside a Git repository", path.display()))
}

/// How many commits of HEAD's history [`known_deleted`] looks through.
const DELETED_HISTORY: usize = 10_000;

/// Whether `path`, which does not exist, is a file or folder Git knows in the working tree
/// of `repo`: in the index, in HEAD's tree, or in a commit of HEAD's history (the last
/// `DELETED_HISTORY` commits), so deleted in the working tree, the index or a commit (as
/// a path that `git diff --name-only [origin/main]` lists can be). A path outside the
/// working tree, or in a bare repository, is not known.
pub fn known_deleted(repo: &Repository, path: &Path) -> bool {
    let Some(rel) = repo.workdir().and_then(|w| relative_to(w, path)) else {
        return false;
    };
    if repo.index().is_ok_and(|i| i.get_path(&rel, 0).is_some()) {
        return true;
    }
    let Ok(mut walk) = repo.revwalk() else {
        return false;
    };
    if walk.push_head().is_err() {
        return false;
    }
    walk.take(DELETED_HISTORY)
        .filter_map(Result::ok)
        .filter_map(|id| repo.find_commit(id).ok()?.tree().ok())
        .any(|tree| tree.get_path(&rel).is_ok())
}

/// `path` (which may not exist) relative to the folder `base`, both resolved through
/// symlinks as far as they exist.
fn relative_to(base: &Path, path: &Path) -> Option<PathBuf> {
    let base = base.canonicalize().ok()?;
    let path = std::path::absolute(path).ok()?;
    // The longest part of the path that exists, canonicalized, with the rest appended.
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    let real = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        rest.push(existing.file_name()?);
        existing = existing.parent()?;
    };
    let full = rest.iter().rev().fold(real, |p, part| p.join(part));
    full.strip_prefix(&base).ok().map(Path::to_path_buf)
}

/// Resolves a revision (`HEAD~1`, a branch, a tag, a commit id) to its commit id.
pub fn resolve_rev(repo: &Repository, rev: &str) -> Result<Oid> {
    let obj = repo
        .revparse_single(rev)
        .map_err(|_| anyhow!("unknown revision \"{rev}\"; try a branch, a tag or a commit id"))?;
    Ok(obj
        .peel_to_commit()
        .map_err(|_| anyhow!("\"{rev}\" does not name a commit"))?
        .id())
}

/// The files of one revision of a repository.
pub struct GitSource<'r> {
    repo: &'r Repository,
}

impl<'r> GitSource<'r> {
    /// Reads from `repo`.
    pub fn new(repo: &'r Repository) -> Self {
        GitSource { repo }
    }

    /// Reads the selected files of commit `rev`.
    pub fn read(&self, rev: &str, selection: &Selection) -> Result<(Oid, Vec<SourceFile>)> {
        let oid = resolve_rev(self.repo, rev)?;
        let tree = self.repo.find_commit(oid)?.tree()?;
        // Each folder's `.wardignore` on top of its parent's; the walk is pre-order, so a
        // folder's entry is made before its contents are visited.
        let root_text = self.blob_text(&tree, Path::new(IGNORE_FILE));
        let mut ignores: std::collections::HashMap<String, Ignores> =
            std::collections::HashMap::new();
        ignores.insert(
            String::new(),
            Ignores::default().with(Path::new("/"), root_text.as_deref()),
        );
        let mut entries: Vec<(String, Oid, i32)> = Vec::new();
        let mut charts: Vec<String> = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(name) = entry.name() else {
                return TreeWalkResult::Skip;
            };
            let path = format!("{dir}{name}");
            let is_dir = entry.kind() == Some(ObjectType::Tree);
            let Some(ignore) = ignores.get(dir).cloned() else {
                return TreeWalkResult::Skip;
            };
            if ignore.ignored(&Path::new("/").join(&path), is_dir) || name.starts_with('.') {
                return TreeWalkResult::Skip;
            }
            if is_dir
                && selection.includes(&path)
                && tree.get_path(&Path::new(&path).join(CHART_FILE)).is_ok()
            {
                charts.push(path);
                return TreeWalkResult::Skip;
            }
            if is_dir {
                let relevant = selection.includes(&path)
                    || selection
                        .include
                        .iter()
                        .any(|inc| inc.starts_with(&format!("{path}/")));
                if !relevant {
                    return TreeWalkResult::Skip;
                }
                let text = self.blob_text(&tree, &Path::new(&path).join(IGNORE_FILE));
                ignores.insert(
                    format!("{path}/"),
                    ignore.with(&Path::new("/").join(&path), text.as_deref()),
                );
                return TreeWalkResult::Ok;
            }
            if entry.kind() == Some(ObjectType::Blob)
                && selection.includes(&path)
                && is_manifest(name)
            {
                entries.push((path, entry.id(), entry.filemode()));
            }
            TreeWalkResult::Ok
        })?;
        let mut files: Vec<SourceFile> = entries
            .into_iter()
            .map(|(path, id, mode)| self.read_entry(&tree, path, id, mode, selection))
            .collect();
        files.extend(charts.into_iter().map(|path| SourceFile {
            path,
            content: Content::Skipped(HELM_CHART),
        }));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((oid, files))
    }

    fn blob_text(&self, tree: &Tree<'_>, path: &Path) -> Option<String> {
        let entry = tree.get_path(path).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    }

    fn read_entry(
        &self,
        tree: &Tree<'_>,
        path: String,
        id: Oid,
        mode: i32,
        selection: &Selection,
    ) -> SourceFile {
        let content = if mode == MODE_SYMLINK {
            self.follow_symlink(tree, &path, id, selection)
        } else {
            self.read_blob(&path, id, selection)
        };
        let content = match content {
            Ok(b) => Content::Bytes(b),
            Err(d) => Content::Unreadable(d),
        };
        SourceFile { path, content }
    }

    /// Reads a blob after checking its size in the object header.
    #[allow(
        clippy::result_large_err,
        reason = "the finding for one unreadable file: built once per bad file, never on the hot path"
    )]
    fn read_blob(&self, path: &str, id: Oid, selection: &Selection) -> Result<Vec<u8>, Diagnostic> {
        let err = |e: git2::Error| {
            Diagnostic::error(
                codes::FILE_UNREADABLE,
                format!("cannot read {id} from Git: {}", e.message()),
            )
            .at(path, 0, 0)
        };
        let odb = self.repo.odb().map_err(err)?;
        let (size, _) = odb.read_header(id).map_err(err)?;
        if size as u64 > selection.limits.max_file_bytes {
            return Err(ward_schema::yaml::too_large(size as u64, &selection.limits).at(path, 0, 0));
        }
        Ok(self.repo.find_blob(id).map_err(err)?.content().to_vec())
    }

    /// A symlink in a tree: its blob is the target path. Only targets inside the repository
    /// are followed (one level).
    #[allow(
        clippy::result_large_err,
        reason = "the finding for one unreadable file: built once per bad file, never on the hot path"
    )]
    fn follow_symlink(
        &self,
        tree: &Tree<'_>,
        path: &str,
        id: Oid,
        selection: &Selection,
    ) -> Result<Vec<u8>, Diagnostic> {
        let target = self.read_blob(path, id, selection)?;
        let target = String::from_utf8_lossy(&target).into_owned();
        let base = Path::new(path).parent().unwrap_or(Path::new(""));
        let Some(resolved) = normalize_inside(&base.join(&target)) else {
            return Err(symlink_outside(path, &target));
        };
        let entry = tree.get_path(&resolved).map_err(|_| {
            Diagnostic::error(
                codes::FILE_UNREADABLE,
                format!("symlink target {target} is not in this revision"),
            )
            .at(path, 0, 0)
        })?;
        if entry.filemode() == MODE_SYMLINK || entry.kind() != Some(ObjectType::Blob) {
            return Err(Diagnostic::error(
                codes::FILE_UNREADABLE,
                format!("symlink target {target} is not a regular file"),
            )
            .at(path, 0, 0));
        }
        self.read_blob(path, entry.id(), selection)
    }
}

/// Resolves `.` and `..` lexically; `None` when the path climbs out of the root or is absolute.
fn normalize_inside(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// A cache of remote repositories, one bare clone per URL.
pub struct RemoteCache {
    dir: PathBuf,
}

impl RemoteCache {
    /// A cache under `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RemoteCache { dir: dir.into() }
    }

    /// The default cache: `$WARD_CACHE_DIR`, else `$HOME/.cache/ward/repos`.
    pub fn default_dir(cache_root: &Path) -> PathBuf {
        cache_root.join("repos")
    }

    /// Mirrors `url` (every branch and tag, and the remote's `HEAD`) into the cache, cloning
    /// on first use and fetching afterwards, then resolves `rev` there as Git would: a branch,
    /// a tag (annotated or not), a full or abbreviated commit id, `HEAD`, any expression such
    /// as `main~1`, or a full ref name (`refs/pull/7/head`), fetched on its own when the
    /// mirror does not hold it. Returns the repository and the commit.
    ///
    /// Every call fetches before resolving, so a warm cache never answers with what an
    /// earlier fetch left behind; branches deleted on the remote are pruned.
    pub fn fetch(&self, url: &str, rev: &str) -> Result<(Repository, Oid)> {
        let digest = Sha256::digest(url.as_bytes());
        let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let path = self.dir.join(name);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create cache {}", self.dir.display()))?;
        let (repo, verb) = match Repository::open_bare(&path) {
            Ok(r) => (r, "fetching"),
            Err(_) => (
                Repository::init_bare(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
                "cloning",
            ),
        };
        let mut refspecs = vec![
            "+refs/heads/*:refs/heads/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ];
        // A ref outside branches and tags (a pull request's head) is fetched by name.
        if rev.starts_with("refs/")
            && !rev.starts_with("refs/heads/")
            && !rev.starts_with("refs/tags/")
        {
            refspecs.push(format!("+{rev}:{rev}"));
        }
        let default_branch = self.fetch_refs(&repo, url, &refspecs, verb)?;
        if let Some(branch) = default_branch {
            // The mirror's HEAD follows the remote's, so `HEAD` means what it means there.
            repo.set_head(&branch).map_err(|e| {
                anyhow!(
                    "cannot record {url}'s default branch {branch}: {}",
                    e.message()
                )
            })?;
        }
        if let Some(oid) = resolve_quietly(&repo, rev) {
            return Ok((repo, oid));
        }
        // A commit no branch or tag reaches: ask for it by id (servers that allow it).
        if let Ok(oid) = Oid::from_str(rev)
            && rev.len() == 40
            && self
                .fetch_refs(
                    &repo,
                    url,
                    &[format!("+{oid}:refs/ward/commits/{oid}")],
                    "fetching",
                )
                .is_ok()
            && let Some(oid) = resolve_quietly(&repo, rev)
        {
            return Ok((repo, oid));
        }
        bail!(
            "{url} has no revision \"{rev}\" (no branch, tag or commit of that name); check the spelling, or push it first"
        )
    }

    /// Fetches `refspecs` from `url` into `repo`, pruning what the remote deleted; returns the
    /// remote's default branch when it names one. `verb` (`cloning`, `fetching`) labels the
    /// progress bar.
    fn fetch_refs(
        &self,
        repo: &Repository,
        url: &str,
        refspecs: &[String],
        verb: &str,
    ) -> Result<Option<String>> {
        let mut remote = repo.remote_anonymous(url).map_err(|e| {
            anyhow!(
                "{url} is not a repository URL ward can fetch: {}",
                e.message()
            )
        })?;
        let bar = PROGRESS
            .load(Ordering::Relaxed)
            .then(|| progress_bar(&format!("{verb} {url}")));
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(bar.as_ref()));
        opts.download_tags(git2::AutotagOption::None);
        opts.prune(git2::FetchPrune::On);
        let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        let fetched = remote.fetch(&specs, Some(&mut opts), None);
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        fetched.map_err(|e| anyhow!("cannot fetch from {url}: {}", e.message()))?;
        Ok(remote
            .default_branch()
            .ok()
            .and_then(|b| b.as_str().ok().map(str::to_owned)))
    }
}

/// `rev` resolved to a commit, or `None` (whatever libgit2's reason).
fn resolve_quietly(repo: &Repository, rev: &str) -> Option<Oid> {
    let obj = repo.revparse_single(rev).ok()?;
    obj.peel_to_commit().ok().map(|c| c.id())
}

/// A progress bar on standard error labelled `what`, for received Git objects.
fn progress_bar(what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} objects")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(0)
        .with_style(style)
        .with_message(what.to_owned())
}

/// Credentials as `git fetch` finds them, and the progress bar's updates when there is one.
fn callbacks(bar: Option<&ProgressBar>) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    // ssh: the agent; https: git's credential helpers (as `git fetch` would use them).
    cb.credentials(|url, username, allowed| {
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
            && let Ok(config) = git2::Config::open_default()
        {
            return git2::Cred::credential_helper(&config, url, username);
        }
        git2::Cred::default()
    });
    if let Some(bar) = bar {
        cb.transfer_progress(move |p| {
            bar.set_length(p.total_objects() as u64);
            bar.set_position(p.received_objects() as u64);
            true
        });
    }
    cb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_must_stay_inside() {
        assert_eq!(
            normalize_inside(Path::new("policies/../cluster-config/a.yaml")),
            Some(PathBuf::from("cluster-config/a.yaml"))
        );
        assert_eq!(
            normalize_inside(Path::new("policies/../../etc/passwd")),
            None
        );
        assert_eq!(normalize_inside(Path::new("/etc/passwd")), None);
    }
}
