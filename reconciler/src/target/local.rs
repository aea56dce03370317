//! The local target: a state directory that stands in for a cluster.
//!
//! The directory (default `.ward/` in the repository) is laid out as [`ward_schema::store`]
//! defines (the agent reads `objects/` through the same module), plus a `.gitignore` of `*`:
//! the state directory is never part of the repository.
//!
//! # Guarantees
//! - One writer at a time: [`LocalTarget::apply`] takes an exclusive lock and fails fast with
//!   a clear message when another process holds it.
//! - Readers never see half-written files: every write goes to a temporary file in the same
//!   folder, is fsynced, then renamed over the old one; the folder is fsynced after.
//! - An apply killed at any point (SIGKILL included) is repaired by the next writer: the
//!   journal names every operation the apply intended, so the inventory is rebuilt from what
//!   actually reached the disk and stray temporary files are removed. Nothing ward applied is
//!   forgotten, so nothing is orphaned.
//!
//! # Drift
//! A file whose content no longer matches the fingerprint in the inventory was changed
//! outside ward; the plan reports it as drifted and an apply writes the desired content back.

use super::{
    ApplyOptions, ApplyReport, DesiredObjects, Inventory, InventoryEntry, LiveObject, LiveSet,
    PlanOptions, Planned, Status, Target, TargetId, status_of,
};
use crate::normalize::{fingerprint, hash_bytes, normalize, normalize_owned};
use crate::plan::{self, Action, Plan};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use ward_schema::ResourceKey;
use ward_schema::store::{self, CLUSTER_DIR, INVENTORY, JOURNAL, LOCK, OBJECTS, TMP_MARK};

const GITIGNORE: &str = ".gitignore";

/// The embedded default target.
pub struct LocalTarget {
    dir: PathBuf,
}

/// The operations an apply intends, written before the first of them.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    revision: Option<String>,
    ops: Vec<JournalOp>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalOp {
    key: ResourceKey,
    /// Fingerprint written, or `None` for a delete.
    fingerprint: Option<String>,
    origin: String,
}

impl LocalTarget {
    /// A target in `dir` (created on first apply).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalTarget { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an apply was interrupted and not yet repaired.
    pub fn interrupted(&self) -> bool {
        self.dir.join(JOURNAL).exists() && self.writer().is_none()
    }

    /// The process id of a ward process applying right now, if one is. The writer records
    /// its pid in the lock file; the pid counts while that process is alive.
    pub fn writer(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join(LOCK)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        // A stale pid (the writer was killed) may have been reused: it counts only while it
        // still names a ward process.
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (pid != std::process::id() && comm.trim().starts_with("ward")).then_some(pid)
    }

    fn object_path(&self, key: &ResourceKey) -> PathBuf {
        let ns = key.namespace.as_deref().unwrap_or(CLUSTER_DIR);
        self.dir
            .join(OBJECTS)
            .join(key.kind.as_str())
            .join(ns)
            .join(format!("{}.json", key.name))
    }

    /// Reads the inventory (empty when there is none yet).
    pub fn inventory(&self) -> Result<Inventory> {
        match fs::read(self.dir.join(INVENTORY)) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is corrupt; restore it or delete the state directory to start over",
                    self.dir.join(INVENTORY).display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Inventory::default()),
            Err(e) => Err(e)
                .with_context(|| format!("cannot read {}", self.dir.join(INVENTORY).display())),
        }
    }

    /// Reads every object file, parsing on all cores. A file that is not valid JSON is
    /// reported as an error naming it: the state directory is ward's, and a broken file there
    /// needs a person.
    fn read_objects(&self, inventory: &Inventory) -> Result<Vec<(ResourceKey, LiveObject)>> {
        self.object_files()?
            .into_par_iter()
            .map(|(key, path)| {
                let bytes =
                    fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let recorded = inventory.get(&key).map(|e| e.fingerprint.as_str());
                Ok((key.clone(), read_object(&path, bytes, recorded)?))
            })
            .collect()
    }

    /// Every object file's key and path (temporary files of an apply in flight excluded).
    fn object_files(&self) -> Result<Vec<(ResourceKey, PathBuf)>> {
        let objects = self.dir.join(OBJECTS);
        store::object_files(&objects)
            .with_context(|| format!("cannot read the objects in {}", objects.display()))
    }

    /// Takes the writer lock, failing fast when another process holds it.
    fn lock(&self) -> Result<File> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create state directory {}", self.dir.display()))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))
            .with_context(|| format!("cannot open {}", self.dir.join(LOCK).display()))?;
        match file.try_lock() {
            Ok(()) => {
                self.ignore_in_git()?;
                record_pid(&file)?;
                Ok(file)
            }
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another ward process is applying to {} (it holds {}); wait for it to finish",
                self.dir.display(),
                self.dir.join(LOCK).display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                Err(anyhow!(e).context("cannot lock the state directory"))
            }
        }
    }

    /// Keeps the state directory out of Git (a `.gitignore` of `*` inside it, as Python's
    /// venv does): in a working tree it would otherwise make every revision after the first
    /// apply look modified (`<commit>-dirty`).
    fn ignore_in_git(&self) -> Result<()> {
        let path = self.dir.join(GITIGNORE);
        if !path.exists() {
            write_atomic(
                &path,
                b"# ward's local target state; not part of the desired state\n*\n",
            )?;
        }
        Ok(())
    }

    /// Finishes the bookkeeping of an interrupted apply. Call with the lock held.
    ///
    /// Each journalled write whose file now has the journalled fingerprint reached the disk
    /// and enters the inventory; each journalled delete whose file is gone leaves it. Then
    /// stray temporary files are removed and the journal is dropped.
    fn repair(&self) -> Result<bool> {
        let path = self.dir.join(JOURNAL);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).context("cannot read the apply journal"),
        };
        let mut inv = self.inventory()?;
        // A journal cut short by a crash cannot exist (it is written atomically), but a
        // corrupt one must not stop repairs: the inventory then stays as it was.
        if let Ok(journal) = serde_json::from_slice::<Journal>(&bytes) {
            inv.attempted_revision = journal.revision.clone();
            for op in journal.ops {
                let file = self.object_path(&op.key);
                let id = Inventory::id(&op.key);
                match op.fingerprint {
                    Some(fp) => {
                        let on_disk = fs::read(&file)
                            .ok()
                            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                            .map(|v| fingerprint(&normalize(&v)));
                        if on_disk.as_deref() == Some(fp.as_str()) {
                            inv.entries.insert(
                                id,
                                InventoryEntry {
                                    key: op.key,
                                    fingerprint: fp,
                                    origin: op.origin,
                                },
                            );
                        }
                    }
                    None => {
                        if !file.exists() {
                            inv.entries.remove(&id);
                        }
                    }
                }
            }
        }
        self.remove_temp_files()?;
        write_atomic(&self.dir.join(INVENTORY), &serde_json::to_vec_pretty(&inv)?)?;
        fs::remove_file(&path).context("cannot remove the apply journal")?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    fn remove_temp_files(&self) -> Result<()> {
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if e.file_name().to_string_lossy().contains(TMP_MARK) {
                    fs::remove_file(&p)
                        .with_context(|| format!("cannot remove {}", p.display()))?;
                }
            }
        }
        Ok(())
    }

    /// Repairs an interrupted apply if there is one (takes the lock). Returns whether it did.
    pub fn repair_if_needed(&self) -> Result<bool> {
        if !self.interrupted() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        self.repair()
    }
}

impl Target for LocalTarget {
    fn describe(&self) -> String {
        format!("local state {}", self.dir.display())
    }

    fn identity(&self) -> Option<TargetId> {
        Some(TargetId::Local {
            state_dir: std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()),
        })
    }

    fn snapshot(&mut self) -> Result<LiveSet> {
        self.live()
    }

    /// Repairs an interrupted apply first, then plans as every ward-fingerprinted target does.
    fn plan(&mut self, desired: DesiredObjects<'_>, options: &PlanOptions) -> Result<Planned> {
        let desired = desired.into_set();
        let mut notes = Vec::new();
        if self.repair_if_needed()? {
            notes.push(format!(
                "repaired an interrupted apply in {}",
                self.dir.display()
            ));
        }
        let live = self.live()?;
        let plan = plan::compute(&desired, &live, options);
        Ok(Planned { plan, live, notes })
    }

    fn status(&mut self) -> Result<Status> {
        let interrupted = self.interrupted();
        let mut status = status_of(self.describe(), self.live()?);
        status.writer = self.writer();
        status.interrupted = interrupted;
        Ok(status)
    }

    fn apply(&mut self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport> {
        let _lock = self.lock()?;
        if self.repair()? {
            tracing::warn!(dir = %self.dir.display(), "repaired an interrupted apply before this one");
        }
        let actions = plan.actions();
        let journal = Journal {
            revision: options.revision.clone(),
            ops: actions
                .iter()
                .map(|c| JournalOp {
                    key: c.key.clone(),
                    fingerprint: c.after_fingerprint.clone(),
                    origin: c.origin.clone().unwrap_or_default(),
                })
                .collect(),
        };
        write_atomic(&self.dir.join(JOURNAL), &serde_json::to_vec(&journal)?)?;
        let mut inv = self.inventory()?;
        inv.attempted_revision = options.revision.clone();
        let mut report = ApplyReport {
            unchanged: plan.unchanged.len(),
            ..ApplyReport::default()
        };
        for change in actions {
            let path = self.object_path(&change.key);
            let id = Inventory::id(&change.key);
            match (change.action, &change.after, &change.after_fingerprint) {
                (Action::Delete, _, _) => {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot delete {}", path.display()));
                        }
                    }
                    inv.entries.remove(&id);
                    report.deleted += 1;
                }
                (action, Some(after), Some(fp)) => {
                    let parent = path
                        .parent()
                        .ok_or_else(|| anyhow!("object path has no parent"))?;
                    fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                    write_atomic(&path, after.bytes())?;
                    inv.entries.insert(
                        id,
                        InventoryEntry {
                            key: change.key.clone(),
                            fingerprint: fp.clone(),
                            origin: change.origin.clone().unwrap_or_default(),
                        },
                    );
                    if action == Action::Create {
                        report.created += 1
                    } else {
                        report.updated += 1
                    }
                }
                _ => bail!("internal error: {} has no desired content", change.key),
            }
        }
        inv.applied_revision = options.revision.clone();
        inv.applied_at = Some(crate::time::now_rfc3339());
        report.inventory = inv.entries.len();
        write_atomic(&self.dir.join(INVENTORY), &serde_json::to_vec_pretty(&inv)?)?;
        fs::remove_file(self.dir.join(JOURNAL)).context("cannot remove the apply journal")?;
        sync_dir(&self.dir)?;
        Ok(report)
    }
}

impl LocalTarget {
    /// What is live and the inventory.
    pub fn live(&self) -> Result<LiveSet> {
        let inventory = self.inventory()?;
        let objects = self.read_objects(&inventory)?.into_iter().collect();
        Ok(LiveSet { objects, inventory })
    }
}

/// One live object from its file. ward writes canonical bytes, so a file whose hash is the
/// inventory's fingerprint is exactly what ward wrote: it is kept unparsed. Any other file
/// (changed by hand, or not ward's) is parsed, normalised and fingerprinted in full, so that
/// a reformatting alone is not drift.
fn read_object(path: &Path, bytes: Vec<u8>, recorded: Option<&str>) -> Result<LiveObject> {
    let raw = hash_bytes(&bytes);
    if recorded == Some(raw.as_str()) {
        return Ok(LiveObject::from_canonical(bytes, raw));
    }
    let object: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON; fix or delete it", path.display()))?;
    let object = normalize_owned(object);
    let fingerprint = fingerprint(&object);
    Ok(LiveObject::new(object, fingerprint))
}

/// Writes this process's id into the held lock file, for `ward status`.
fn record_pid(mut file: &File) -> Result<()> {
    file.set_len(0).context("cannot write the lock file")?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .context("cannot write the lock file")?;
    Ok(())
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix:
/// temporary file in the same folder, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent folder", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{name}{TMP_MARK}{}", std::process::id()));
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
