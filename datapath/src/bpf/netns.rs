//! Running code inside another network namespace without moving the process.

use std::fs::File;
use std::path::Path;
use std::thread;

use anyhow::{Context as _, Result, anyhow};
use nix::sched::{CloneFlags, setns};

/// Runs `f` on a dedicated thread that first joins the network namespace at `netns`
/// (`/run/netns/<name>`, `/proc/<pid>/ns/net`). Only that thread changes namespace; it ends
/// with `f`, so the rest of the process stays where it is. Sockets (netlink included) made by
/// `f` belong to `netns`.
pub(crate) fn run_in_netns<T, F>(netns: &Path, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    let ns = File::open(netns)
        .with_context(|| format!("opening network namespace {}", netns.display()))?;
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name("ward-netns".into())
            .spawn_scoped(scope, move || {
                setns(&ns, CloneFlags::CLONE_NEWNET).with_context(|| {
                    format!("entering network namespace {} (setns)", netns.display())
                })?;
                drop(ns);
                f()
            })
            .context("spawning the network-namespace thread")?;
        handle
            .join()
            .map_err(|_| anyhow!("the thread working in {} panicked", netns.display()))?
    })
}

/// The index of interface `ifname` in the calling thread's network namespace.
pub(crate) fn ifindex(ifname: &str) -> Result<u32> {
    use rustix::net::{AddressFamily, SocketType, netdevice, socket};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .context("opening a socket to look up an interface")?;
    netdevice::name_to_index(&sock, ifname)
        .with_context(|| format!("no interface {ifname:?} in this network namespace"))
}
