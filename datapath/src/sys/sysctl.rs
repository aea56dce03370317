//! Sysctls of one network namespace (`/proc/sys/net/...` as seen from inside it).

use super::netns::in_netns;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Sets sysctls.
pub trait Sysctls {
    /// Sets each `key` (dotted, `net.ipv4.ip_forward`) to its value, in order. Keys under
    /// `net.ipv6` are skipped when the kernel has no IPv6 at all.
    fn set(&self, settings: &[(&str, &str)]) -> Result<()>;
}

/// The sysctls of the network namespace at a path.
#[derive(Debug, Clone)]
pub struct NetnsSysctls {
    netns: PathBuf,
}

impl NetnsSysctls {
    /// The sysctls of the namespace at `netns`.
    pub fn new(netns: &Path) -> NetnsSysctls {
        NetnsSysctls {
            netns: netns.to_path_buf(),
        }
    }
}

impl Sysctls for NetnsSysctls {
    fn set(&self, settings: &[(&str, &str)]) -> Result<()> {
        let owned: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        in_netns(&self.netns, move || -> Result<()> {
            for (key, value) in &owned {
                let path = Path::new("/proc/sys").join(key.replace('.', "/"));
                match std::fs::write(&path, value) {
                    Ok(()) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && key.starts_with("net.ipv6.")
                            && !Path::new("/proc/sys/net/ipv6").exists() => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot set {key}={value} ({})", path.display())
                        });
                    }
                }
            }
            Ok(())
        })?
        .with_context(|| format!("in network namespace {}", self.netns.display()))
    }
}
