//! Where nodes publish their WireGuard public keys, and read each other's.
//!
//! [`Records`] is what the mesh needs of a registry. Local mode: [`Registry`], one JSON file
//! per node in `<state dir>/wireguard/<node>.json` (the local target's state directory, which
//! every agent already follows). Kube mode: the Node objects' annotations
//! ([`crate::agent::kube::NodeAnnotations`]), the public key in
//! `network.cilium.io/wg-pub-key` as Cilium publishes it. Only public keys and addresses are
//! published; private keys never leave the node.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The folder of the state directory that holds the records.
pub const DIR: &str = "wireguard";
/// Records larger than this are ignored (a record is a few hundred bytes).
const MAX_RECORD: u64 = 64 * 1024;

/// What one node publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The node's name.
    pub node: String,
    /// Its current public key (base64, as `wg` prints it).
    pub public_key: String,
    /// During its own rotation: the key it moves to once every peer is ready for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_public_key: Option<String>,
    /// Its WireGuard endpoint (underlay address and listen port).
    pub endpoint: SocketAddr,
    /// For each peer that is rotating: the next key of that peer this node has configured
    /// (the peer switches once every node confirms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prepared: BTreeMap<String, String>,
    /// How many rotations this node has completed since its key was first made here.
    #[serde(default)]
    pub rotations: u64,
}

/// Where nodes publish their records and read each other's.
pub trait Records: Send {
    /// Every readable record, by node; unreadable ones are skipped with a warning.
    fn read_all(&self) -> BTreeMap<String, NodeRecord>;
    /// Publishes `record` unless it is already there as it is; whether it wrote.
    fn publish(&self, record: &NodeRecord) -> Result<bool>;
    /// Withdraws `node`'s record (encryption turned off there); nothing to do is fine.
    fn unpublish(&self, node: &str) -> Result<()>;
}

/// The records in one state directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry of state directory `state_dir`.
    pub fn new(state_dir: &Path) -> Registry {
        Registry {
            dir: state_dir.join(DIR),
        }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Records for Registry {
    /// Every record that parses, by node. A record whose file name and `node` disagree, or that
    /// does not parse, is skipped with a warning.
    fn read_all(&self) -> BTreeMap<String, NodeRecord> {
        let mut out = BTreeMap::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(node) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if node.starts_with('.') {
                continue;
            }
            match read_record(&path) {
                Ok(r) if r.node == node => {
                    out.insert(r.node.clone(), r);
                }
                Ok(r) => {
                    tracing::warn!(file = %path.display(), node = %r.node, "WireGuard record names another node; ignored")
                }
                Err(e) => tracing::warn!(file = %path.display(), "WireGuard record ignored: {e:#}"),
            }
        }
        out
    }

    /// Writes `record` (atomically) unless the file already holds exactly it.
    fn publish(&self, record: &NodeRecord) -> Result<bool> {
        let path = self.dir.join(format!("{}.json", record.node));
        if read_record(&path).is_ok_and(|r| &r == record) {
            return Ok(false);
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let tmp = self.dir.join(format!(".{}.json.tmp", record.node));
        fs::write(&tmp, serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot publish {}", path.display()))?;
        Ok(true)
    }

    /// Removes `node`'s record (encryption turned off there).
    fn unpublish(&self, node: &str) -> Result<()> {
        match fs::remove_file(self.dir.join(format!("{node}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {node}'s WireGuard record"))
            }
            _ => Ok(()),
        }
    }
}

fn read_record(path: &Path) -> Result<NodeRecord> {
    let meta = fs::metadata(path)?;
    anyhow::ensure!(
        meta.len() <= MAX_RECORD,
        "{} bytes is too large for a record",
        meta.len()
    );
    Ok(serde_json::from_slice(&fs::read(path)?)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn rec(node: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            public_key: "k".into(),
            next_public_key: None,
            endpoint: "172.30.0.11:51871".parse().unwrap(),
            prepared: BTreeMap::new(),
            rotations: 0,
        }
    }

    #[test]
    fn publish_read_unpublish() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(dir.path());
        assert!(reg.publish(&rec("node-1")).unwrap());
        assert!(
            !reg.publish(&rec("node-1")).unwrap(),
            "unchanged records are not rewritten"
        );
        fs::write(
            reg.dir().join("node-9.json"),
            serde_json::to_vec(&rec("node-1")).unwrap(),
        )
        .unwrap();
        fs::write(reg.dir().join("junk.json"), b"{").unwrap();
        let all = reg.read_all();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["node-1"]);
        reg.unpublish("node-1").unwrap();
        reg.unpublish("node-1").unwrap();
        assert!(reg.read_all().is_empty());
    }
}
