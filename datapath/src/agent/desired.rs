//! The desired state as the local target holds it: `objects/<Kind>/<ns>/<name>.json` in the
//! state directory that `ward apply` writes (see the reconciler's `target::local`).
//!
//! An apply in flight leaves `journal.json` until it completes; the agent reads only complete
//! revisions, so a half-applied revision never reaches the kernel.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::Path;
use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

const OBJECTS: &str = "objects";
const JOURNAL: &str = "journal.json";
const INVENTORY: &str = "inventory.json";
const CLUSTER_DIR: &str = "_cluster";

/// A complete revision read from a state directory.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The objects (policies and the CiliumConfig).
    pub resources: ResourceSet,
    /// The applied revision, when the inventory names one.
    pub revision: Option<String>,
}

/// Reads the objects of `state_dir`. Errors when an apply is in flight (try again after it),
/// or when a file is not JSON (the message names it).
pub fn read(state_dir: &Path) -> Result<Desired> {
    if state_dir.join(JOURNAL).exists() {
        bail!("an apply is in progress in {} (journal.json present); waiting for it to finish", state_dir.display());
    }
    let mut resources = ResourceSet::new();
    let root = state_dir.join(OBJECTS);
    if root.is_dir() {
        for kind_dir in fs::read_dir(&root).with_context(|| format!("cannot read {}", root.display()))? {
            let kind_dir = kind_dir?;
            let Some(kind) = Kind::parse(&kind_dir.file_name().to_string_lossy()) else { continue };
            if !(kind.is_policy() || kind == Kind::CiliumConfig) {
                continue;
            }
            for ns_dir in fs::read_dir(kind_dir.path())? {
                let ns_dir = ns_dir?;
                let ns_name = ns_dir.file_name().to_string_lossy().into_owned();
                let ns = (ns_name != CLUSTER_DIR).then_some(ns_name.as_str());
                for file in fs::read_dir(ns_dir.path())? {
                    let path = file?.path();
                    let fname = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                    let Some(name) = fname.strip_suffix(".json").filter(|_| !fname.contains(".tmp-")) else { continue };
                    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    let object = serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))?;
                    let origin = Origin { file: path.display().to_string(), line: 1, document: 0 };
                    resources.insert(Resource { key: ResourceKey::new(kind, ns, name), object, origin });
                }
            }
        }
    }
    Ok(Desired { resources, revision: applied_revision(state_dir) })
}

fn applied_revision(state_dir: &Path) -> Option<String> {
    let text = fs::read(state_dir.join(INVENTORY)).ok()?;
    let inv: serde_json::Value = serde_json::from_slice(&text).ok()?;
    inv.get("applied_revision").or_else(|| inv.get("appliedRevision")).and_then(|v| v.as_str()).map(str::to_owned)
}
