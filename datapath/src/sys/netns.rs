//! Network namespaces: running code inside one without moving the process, and the named
//! namespaces under `/run/netns` (made with `ip netns add`, see the
//! [module documentation](super)).

use super::ip::ip;
use anyhow::{Context, Result};
use nix::sched::{CloneFlags, setns};
use std::path::{Path, PathBuf};

/// The directory `ip netns` keeps its namespaces in.
pub const NETNS_DIR: &str = "/run/netns";

/// `/run/netns/<name>`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `f` on a new thread that has joined network namespace `netns` (`/run/netns/<name>`,
/// `/proc/<pid>/ns/net`), and returns its result. Only that thread changes namespace; it ends
/// with `f`, so the rest of the process stays where it is. Sockets (netlink included) made
/// inside `f` stay in that namespace wherever they are used afterwards. A panic in `f` is
/// resumed on the caller's thread.
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = std::fs::File::open(netns)
        .with_context(|| format!("cannot open network namespace {}", netns.display()))?;
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || -> Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter network namespace {}", netns.display()))?;
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Starts a long-lived thread named `name` inside network namespace `netns` (a server whose
/// sockets must live there, like the agent's DNS proxy). An error entering the namespace is
/// returned before `f` runs.
pub fn spawn_in_netns(
    netns: &Path,
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>> {
    let file = std::fs::File::open(netns)
        .with_context(|| format!("cannot open network namespace {}", netns.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let shown = netns.display().to_string();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let entered = setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter network namespace {shown}"));
            let ok = entered.is_ok();
            let _ = tx.send(entered);
            if ok {
                f();
            }
        })
        .context("cannot start a thread")?;
    rx.recv()
        .context("the thread ended before it entered the namespace")??;
    Ok(handle)
}

/// [`in_netns`] for a fallible `f`: one error for both.
pub fn run_in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    in_netns(netns, f)?
}

/// The index of interface `ifname` in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<u32> {
    use rustix::net::{AddressFamily, SocketType, netdevice, socket};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .context("opening a socket to look up an interface")?;
    netdevice::name_to_index(&sock, ifname)
        .with_context(|| format!("no interface {ifname:?} in this network namespace"))
}

/// Creates the named namespace `name` (`ip netns add`).
pub fn add(name: &str) -> Result<()> {
    ip(&["netns", "add", name]).map(drop)
}

/// Deletes the named namespace `name` as `ip netns del` does: detaches its bind mount (an
/// error there is ignored, as `ip` ignores it) and removes `/run/netns/<name>`. The namespace
/// itself lives on while a process or a mount still holds it.
pub fn delete(name: &str) -> Result<()> {
    let p = path(name);
    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_file(&p)
        .with_context(|| format!("cannot remove network namespace {}", p.display()))
}

/// The named namespaces: the entries of `/run/netns` (what `ip netns list` shows, names
/// only). No directory means none.
pub fn list() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {NETNS_DIR}")),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {NETNS_DIR}"))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}
