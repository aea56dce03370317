//! The node's WireGuard key pair on disk.
//!
//! Cilium's format: 32 raw bytes in `<state dir>/cilium_wg0.key`, mode 0600, loaded if present
//! and generated otherwise. During a rotation the coming key waits in `cilium_wg0.next.key`
//! (same format) and replaces the current one by a rename, so a crash at any point leaves
//! either the old key, or the old key and the next one: never no key, never half a key.
//!
//! A private key is a [`PrivateKey`]: its `Debug` and `Display` print nothing of it, and it is
//! only ever written to its file and to the WireGuard device (never logged, never published).

use anyhow::{Context, Result, bail};
use defguard_wireguard_rs::key::Key;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The key file's name (Cilium's).
pub const KEY_FILE: &str = "cilium_wg0.key";
/// The key a rotation in progress moves to.
pub const NEXT_KEY_FILE: &str = "cilium_wg0.next.key";
const KEY_LEN: usize = 32;

/// A WireGuard private key. Prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Key);

impl PrivateKey {
    /// A new random key (x25519, clamped).
    pub fn generate() -> PrivateKey {
        PrivateKey(Key::generate())
    }

    /// The public key.
    pub fn public(&self) -> Key {
        self.0.public_key()
    }

    /// The key itself, for the device only.
    pub(crate) fn secret(&self) -> &Key {
        &self.0
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<PrivateKey> {
        let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes) else {
            bail!(
                "key file {} is corrupt ({} bytes, a WireGuard key is {KEY_LEN}); encryption stays off and cross-node pod traffic is blocked. Remove the file to generate a new key (this node's public key changes and is republished)",
                path.display(),
                bytes.len()
            );
        };
        if raw == [0; KEY_LEN] {
            bail!(
                "key file {} holds the all-zero key, which WireGuard reserves; remove it to generate a new key",
                path.display()
            );
        }
        Ok(PrivateKey(Key::new(raw)))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// The key files of one node, in the agent's state directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Keys kept in `dir` (the agent's run directory).
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    /// The current key's file.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The next key's file (only during a rotation).
    pub fn next_path(&self) -> PathBuf {
        self.dir.join(NEXT_KEY_FILE)
    }

    /// Loads the current key, or generates and writes one when there is no file. The bool says
    /// whether it was generated. A corrupt or unreadable file is an error (never overwritten).
    pub fn load_or_create(&self) -> Result<(PrivateKey, bool)> {
        if let Some(k) = read_key(&self.current_path())? {
            return Ok((k, false));
        }
        let k = PrivateKey::generate();
        write_key(&self.dir, &self.current_path(), &k)?;
        Ok((k, true))
    }

    /// The next key of a rotation in progress, if there is one.
    pub fn load_next(&self) -> Result<Option<PrivateKey>> {
        read_key(&self.next_path())
    }

    /// Writes the next key of a rotation.
    pub fn write_next(&self, key: &PrivateKey) -> Result<()> {
        write_key(&self.dir, &self.next_path(), key)
    }

    /// Makes the next key the current one (an atomic rename).
    pub fn promote_next(&self) -> Result<()> {
        fs::rename(self.next_path(), self.current_path()).with_context(|| {
            format!(
                "cannot move {} to {}",
                self.next_path().display(),
                self.current_path().display()
            )
        })?;
        sync_dir(&self.dir)
    }

    /// When the current key was made (its file's modification time).
    pub fn current_since(&self) -> Option<SystemTime> {
        fs::metadata(self.current_path())
            .and_then(|m| m.modified())
            .ok()
    }
}

/// Reads a key file; `None` when it does not exist. A file others can read is made 0600 again
/// (with a warning), since the key is only safe if nobody else could have read it.
fn read_key(path: &Path) -> Result<Option<PrivateKey>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read key file {}", path.display()));
        }
    };
    if !meta.is_file() {
        bail!(
            "key file {} is not a regular file; remove it to generate a new key",
            path.display()
        );
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "key file was readable by others; setting mode 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
    }
    let bytes =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    PrivateKey::from_bytes(&bytes, path).map(Some)
}

/// Writes `key` to `path` through a 0600 temporary file, fsync and rename.
fn write_key(dir: &Path, path: &Path, key: &PrivateKey) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} for the WireGuard key", dir.display()))?;
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot write the WireGuard key file {} (is the directory writable?)",
                tmp.display()
            )
        })?;
    f.write_all(key.secret().as_slice())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot write the WireGuard key file {}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_0600_and_loads_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let (k, created) = store.load_or_create().unwrap();
        assert!(created);
        let mode = fs::metadata(store.current_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read(store.current_path()).unwrap().len(), 32);
        let (again, created) = store.load_or_create().unwrap();
        assert!(!created);
        assert_eq!(again.public(), k.public());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = PrivateKey::generate();
        let shown = format!("{k:?}");
        assert_eq!(shown, "PrivateKey(<redacted>)");
        assert!(!shown.contains(&k.secret().to_string()));
    }

    #[test]
    fn corrupt_file_is_an_error_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        fs::write(store.current_path(), b"not a key").unwrap();
        let err = store.load_or_create().unwrap_err().to_string();
        assert!(
            err.contains("is corrupt (9 bytes, a WireGuard key is 32)"),
            "{err}"
        );
        assert_eq!(fs::read(store.current_path()).unwrap(), b"not a key");
    }

    #[test]
    fn loose_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.load_or_create().unwrap();
        fs::set_permissions(store.current_path(), fs::Permissions::from_mode(0o644)).unwrap();
        store.load_or_create().unwrap();
        assert_eq!(
            fs::metadata(store.current_path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn rotation_promotes_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.load_or_create().unwrap();
        let next = PrivateKey::generate();
        store.write_next(&next).unwrap();
        assert_eq!(store.load_next().unwrap().unwrap().public(), next.public());
        store.promote_next().unwrap();
        assert!(store.load_next().unwrap().is_none());
        assert_eq!(store.load_or_create().unwrap().0.public(), next.public());
    }
}
