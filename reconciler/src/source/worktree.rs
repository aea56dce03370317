//! Reading the selected files from a directory on disk (a working tree, or any folder).

use super::{
    CHART_FILE, Content, HELM_CHART, IGNORE_FILE, Ignores, Selection, SourceFile, is_manifest,
    symlink_outside,
};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use ward_schema::Diagnostic;
use ward_schema::diagnostic::codes;

/// Reads every selected manifest under `root`. Paths in the result are relative to `root`.
/// `extra` are explicit paths (files or folders) to read instead of the selection, as
/// `ward validate PATHS` passes them; they may lie anywhere.
pub fn read_worktree(
    root: &Path,
    selection: &Selection,
    extra: &[PathBuf],
) -> std::io::Result<Vec<SourceFile>> {
    let root = root.canonicalize()?;
    let mut files = Vec::new();
    let starts: Vec<PathBuf> = if extra.is_empty() {
        selection
            .include
            .iter()
            .map(|inc| root.join(inc))
            .filter(|p| p.exists())
            .collect()
    } else {
        extra
            .iter()
            .map(std::path::absolute)
            .collect::<std::io::Result<_>>()?
    };
    for start in starts {
        walk(&root, &start, &mut files)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// Walks `start` without recursion on the call stack (deep trees cannot overflow it).
fn walk(root: &Path, start: &Path, out: &mut Vec<SourceFile>) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(start)?;
    if meta.is_file() || meta.file_type().is_symlink() {
        // A file named explicitly is read whatever its extension.
        out.push(deferred(root, start));
        return Ok(());
    }
    let mut stack = vec![(start.to_path_buf(), ignores_above(root, start))];
    while let Some((dir, above)) = stack.pop() {
        let text = fs::read_to_string(dir.join(IGNORE_FILE)).ok();
        let ignore = above.with(&dir, text.as_deref());
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name != "." {
                continue;
            }
            if ignore.ignored(&path, ty.is_dir()) {
                continue;
            }
            if ty.is_dir() && path.join(CHART_FILE).is_file() {
                out.push(SourceFile {
                    path: display_path(root, &path),
                    content: Content::Skipped(HELM_CHART),
                });
            } else if ty.is_dir() {
                stack.push((path, ignore.clone()));
            } else if ty.is_symlink() && path.is_dir() {
                // Linked folders are not followed; one that leaves the repository is reported.
                if let Ok(target) = path.canonicalize()
                    && !target.starts_with(root)
                {
                    let shown = display_path(root, &path);
                    out.push(SourceFile {
                        content: Content::Unreadable(symlink_outside(
                            &shown,
                            &target.to_string_lossy(),
                        )),
                        path: shown,
                    });
                }
            } else if is_manifest(&name) {
                out.push(deferred(root, &path));
            }
        }
    }
    Ok(())
}

/// The `.wardignore` files of the folders from `root` down to `start`'s parent (`start`'s own
/// is read when it is walked); none for a `start` outside the root.
fn ignores_above(root: &Path, start: &Path) -> Ignores {
    let mut ignores = Ignores::default();
    let Ok(rel) = start.strip_prefix(root) else {
        return ignores;
    };
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        let text = fs::read_to_string(dir.join(IGNORE_FILE)).ok();
        ignores = ignores.with(&dir, text.as_deref());
        dir.push(part);
    }
    ignores
}

/// The path as shown to users: relative to the root when inside it.
fn display_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

/// A file to be read later by [`read_guarded`].
fn deferred(root: &Path, path: &Path) -> SourceFile {
    SourceFile {
        path: display_path(root, path),
        content: Content::OnDisk {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
        },
    }
}

/// Reads one file with every guard: symlinks must stay inside the root, size is checked
/// before reading, and at most the limit is ever read (a file growing meanwhile is caught).
#[allow(
    clippy::result_large_err,
    reason = "the finding for one unreadable file: built once per bad file, never on the hot path"
)]
pub(crate) fn read_guarded(
    root: &Path,
    path: &Path,
    shown: &str,
    selection: &Selection,
) -> Result<Vec<u8>, Diagnostic> {
    let unreadable = |e: std::io::Error| {
        Diagnostic::error(codes::FILE_UNREADABLE, format!("cannot read file: {e}")).at(shown, 0, 0)
    };
    let link = fs::symlink_metadata(path).map_err(unreadable)?;
    // For anything but a symlink, what lstat said is what stat would say.
    let meta = if link.file_type().is_symlink() {
        let target = path.canonicalize().map_err(unreadable)?;
        if !target.starts_with(root) {
            return Err(symlink_outside(shown, &target.to_string_lossy()));
        }
        fs::metadata(path).map_err(unreadable)?
    } else {
        link
    };
    let max = selection.limits.max_file_bytes;
    if meta.len() > max {
        return Err(ward_schema::yaml::too_large(meta.len(), &selection.limits).at(shown, 0, 0));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut buf))
        .map_err(unreadable)?;
    if buf.len() as u64 > max {
        return Err(
            ward_schema::yaml::too_large(buf.len() as u64, &selection.limits).at(shown, 0, 0),
        );
    }
    Ok(buf)
}
