//! Mounts: the bpffs the BPF maps are pinned on.

use std::path::Path;

/// The mounts ward checks or makes.
pub trait Mounts {
    /// Whether `dir` is on a bpf file system.
    fn is_bpffs(&self, dir: &Path) -> bool;
}

/// The host's mounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostMounts;

impl Mounts for HostMounts {
    fn is_bpffs(&self, dir: &Path) -> bool {
        nix::sys::statfs::statfs(dir)
            .map(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
            .unwrap_or(false)
    }
}
