//! Mounts: the bpffs the BPF maps are pinned on, and the agent's private tmpfs for
//! boringtun's UAPI sockets.

use anyhow::{Context, Result};
use nix::mount::{MsFlags, mount};
use std::path::Path;

/// The mounts ward checks or makes.
pub trait Mounts {
    /// Whether `dir` is on a bpf file system.
    fn is_bpffs(&self, dir: &Path) -> bool;
    /// Gives the calling process its own mount namespace (a slave of the host's, so mounts
    /// the host makes later, such as new network namespaces under `/run/netns`, still
    /// appear) and mounts an empty private tmpfs on `dir` there (created when missing).
    /// Must run before the process starts threads.
    fn private_tmpfs(&self, dir: &Path) -> Result<()>;
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

    fn private_tmpfs(&self, dir: &Path) -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .context("cannot create a mount namespace")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .context("cannot make / a slave mount")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0700,size=1m"),
        )
        .with_context(|| format!("cannot mount a private tmpfs on {}", dir.display()))
    }
}
