//! Where ward's records live, defined once for the writers (the reconciler's targets) and the
//! readers (the agent, `ward status`).
//!
//! The local target's state directory:
//! ```text
//! lock                                                 held (flock) by the one writer
//! objects/<Kind>/<namespace or _cluster>/<name>.json   one file per live object
//! inventory.json                                       what ward applied, and the revision
//! journal.json                                         only while an apply runs (or was killed)
//! ```
//! A cluster-scoped object lives under [`CLUSTER_DIR`]. A file whose name contains
//! [`TMP_MARK`] is a temporary file of a write in flight and is not an object.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::resource::{Kind, ResourceKey};

/// Name of the objects folder inside a state directory.
pub const OBJECTS: &str = "objects";
/// The inventory file of a state directory.
pub const INVENTORY: &str = "inventory.json";
/// The journal of an apply in flight.
pub const JOURNAL: &str = "journal.json";
/// The writer's lock file (it holds the writer's pid).
pub const LOCK: &str = "lock";
/// On a cluster, the key of the ConfigMap entry that holds the CiliumConfig document.
pub const CONFIG_MAP_KEY: &str = "cilium-config.yaml";
/// The namespace folder of cluster-scoped objects.
pub const CLUSTER_DIR: &str = "_cluster";
/// What the name of a temporary file contains (`<name>.json.tmp-<pid>`).
pub const TMP_MARK: &str = ".tmp-";

/// Every object file below `objects_dir` (an [`OBJECTS`] folder), with the key its path
/// names. Folders that name no [`Kind`] and files that are not `<name>.json` (temporary files
/// included) are skipped; a missing `objects_dir` has no objects. The files are not read.
pub fn object_files(objects_dir: &Path) -> io::Result<Vec<(ResourceKey, PathBuf)>> {
    let mut out = Vec::new();
    let kinds = match fs::read_dir(objects_dir) {
        Ok(kinds) => kinds,
        Err(e) if e.kind() == io::ErrorKind::NotFound || !objects_dir.is_dir() => return Ok(out),
        Err(e) => return Err(e),
    };
    for kind_dir in kinds {
        let kind_dir = kind_dir?;
        let Some(kind) = Kind::parse(&kind_dir.file_name().to_string_lossy()) else {
            continue;
        };
        for ns_dir in fs::read_dir(kind_dir.path())? {
            let ns_dir = ns_dir?;
            let ns_name = ns_dir.file_name().to_string_lossy().into_owned();
            let ns = (ns_name != CLUSTER_DIR).then_some(ns_name.as_str());
            for file in fs::read_dir(ns_dir.path())? {
                let path = file?.path();
                let fname = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(name) = fname
                    .strip_suffix(".json")
                    .filter(|_| !fname.contains(TMP_MARK))
                else {
                    continue;
                };
                out.push((ResourceKey::new(kind, ns, name), path));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_kinds_namespaces_and_names_skipping_the_rest() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let objects = dir.path().join(OBJECTS);
        let put = |rel: &str| {
            let path = objects.join(rel);
            fs::create_dir_all(path.parent().expect("a parent")).expect("create the folders");
            fs::write(&path, "{}").expect("write the file");
        };
        put("CiliumNetworkPolicy/shop/allow-web.json");
        put("CiliumClusterwideNetworkPolicy/_cluster/deny-all.json");
        put("CiliumNetworkPolicy/shop/allow-web.json.tmp-42");
        put("CiliumNetworkPolicy/shop/notes.txt");
        put("NoSuchKind/shop/x.json");
        let mut found: Vec<_> = object_files(&objects)
            .expect("walk")
            .into_iter()
            .map(|(key, path)| {
                (
                    key,
                    path.strip_prefix(&objects)
                        .expect("below objects")
                        .to_path_buf(),
                )
            })
            .collect();
        found.sort();
        let mut want = vec![
            (
                ResourceKey::new(Kind::CiliumNetworkPolicy, Some("shop"), "allow-web"),
                PathBuf::from("CiliumNetworkPolicy/shop/allow-web.json"),
            ),
            (
                ResourceKey::new(Kind::CiliumClusterwideNetworkPolicy, None, "deny-all"),
                PathBuf::from("CiliumClusterwideNetworkPolicy/_cluster/deny-all.json"),
            ),
        ];
        want.sort();
        assert_eq!(found, want);
    }

    #[test]
    fn a_missing_folder_has_no_objects() {
        let dir = tempfile::tempdir().expect("temporary directory");
        assert!(
            object_files(&dir.path().join(OBJECTS))
                .expect("walk")
                .is_empty()
        );
    }
}
