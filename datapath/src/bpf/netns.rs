//! Running code inside another network namespace without moving the process.

use std::path::Path;

use anyhow::{Context as _, Result};

/// Runs `f` on a dedicated thread that first joins the network namespace at `netns`
/// (`/run/netns/<name>`, `/proc/<pid>/ns/net`), with [`crate::lab::in_netns`]. Only that
/// thread changes namespace; it ends with `f`, so the rest of the process stays where it is.
/// Sockets (netlink included) made by `f` belong to `netns`. A panic in `f` is resumed on the
/// caller's thread.
pub(crate) fn run_in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    crate::lab::in_netns(netns, f)?
}

/// The index of interface `ifname` in the calling thread's network namespace.
pub(crate) fn ifindex(ifname: &str) -> Result<u32> {
    use rustix::net::{AddressFamily, SocketType, netdevice, socket};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .context("opening a socket to look up an interface")?;
    netdevice::name_to_index(&sock, ifname)
        .with_context(|| format!("no interface {ifname:?} in this network namespace"))
}
