//! The desired state as the local target holds it: `objects/<Kind>/<ns>/<name>.json` in the
//! state directory that `ward apply` writes (see the reconciler's `target::local`;
//! the layout and its walk: [`ward_schema::store`]).
//!
//! An apply in flight leaves `journal.json` until it completes; the agent reads only complete
//! revisions, so a half-applied revision never reaches the kernel.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::Path;
use ward_schema::store::{self, OBJECTS};
use ward_schema::{Kind, Origin, Resource, ResourceSet};

const JOURNAL: &str = "journal.json";
const INVENTORY: &str = "inventory.json";

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
        bail!(
            "an apply is in progress in {} (journal.json present); waiting for it to finish",
            state_dir.display()
        );
    }
    let mut resources = ResourceSet::new();
    let root = state_dir.join(OBJECTS);
    let files =
        store::object_files(&root).with_context(|| format!("cannot read {}", root.display()))?;
    for (key, path) in files {
        if !(key.kind.is_engine_input() || key.kind == Kind::CiliumConfig) {
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let object = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let origin = Origin {
            file: path.display().to_string(),
            line: 1,
            document: 0,
            item_lines: Vec::new(),
        };
        resources.insert(Resource {
            key,
            object,
            origin,
        });
    }
    Ok(Desired {
        resources,
        revision: applied_revision(state_dir),
    })
}

fn applied_revision(state_dir: &Path) -> Option<String> {
    let text = fs::read(state_dir.join(INVENTORY)).ok()?;
    let inv: serde_json::Value = serde_json::from_slice(&text).ok()?;
    inv.get("applied_revision")
        .or_else(|| inv.get("appliedRevision"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}
