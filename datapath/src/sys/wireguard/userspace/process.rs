//! The device process (`ward-agent device --socket <run dir>/wireguard.sock`): owns the TUN
//! interface and the UDP socket of ward's userspace device, so that they outlive the agent.
//!
//! It listens on the control socket ([`super::control`]) and serves one agent at a time; an
//! agent that goes away (SIGTERM, SIGKILL, an upgrade) leaves the device and its sessions
//! running, and the next agent attaches. The interface is created by the first
//! [`Request::Setup`] (which carries the private key) and removed when the process ends:
//! on [`Request::Shutdown`], on a signal, when its control socket is removed or replaced, or
//! when the network namespace it runs in is gone (a lab torn down). When the process dies,
//! the kernel removes the TUN interface with it, and the agent's unreachable routes behind
//! the tunnel routes block cross-node pod traffic until an agent starts a new device.

use super::control::{self, Greeting, PROTOCOL, Reply, Request, Setup};
use super::{Sockets, Userspace, udp};
use crate::sys::netns::in_netns;
use anyhow::{Context, Result, bail};
use rustix::event::PollFlags;
use std::io::{BufReader, ErrorKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// How often the process checks that its socket and namespace are still there.
const WATCH: Duration = Duration::from_secs(1);
/// How long a request may take to arrive once it has begun.
const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// The interface the process runs.
struct Running {
    setup: Setup,
    device: Userspace,
}

/// What the process does after a connection ends.
enum Flow {
    Next,
    Stop,
}

/// Serves the control socket at `socket` until the device is shut down or orphaned.
pub fn serve(socket: &Path) -> Result<()> {
    unblock_signals();
    let listener = listen(socket)?;
    let ours = file_id(socket).context("the control socket vanished at once")?;
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "WireGuard device waiting for its agent");
    let mut running: Option<Running> = None;
    loop {
        if let Some(why) = orphaned(socket, ours, running.as_ref()) {
            tracing::info!("{why}; removing the interface and exiting");
            return Ok(());
        }
        if !udp::wait(&listener, PollFlags::IN, WATCH) {
            continue;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("accept: {e}");
                continue;
            }
        };
        match serve_agent(stream, &mut running, socket, ours) {
            Ok(Flow::Next) => tracing::info!("agent detached; the device keeps running"),
            Ok(Flow::Stop) => {
                if file_id(socket) == Some(ours) {
                    let _ = std::fs::remove_file(socket);
                }
                tracing::info!("shut down by the agent");
                return Ok(());
            }
            Err(e) => tracing::warn!("agent connection: {e:#}"),
        }
    }
}

/// Unblocks SIGTERM and SIGINT, which the agent that started this process blocks in every
/// thread (its waiting thread takes them) and which a spawned process inherits blocked: so a
/// signal ends the device, as documented, and a newer agent can replace it. Before any
/// thread starts, so the device's threads inherit the mask.
fn unblock_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_unblock() {
        tracing::warn!("cannot unblock SIGTERM and SIGINT: {e}");
    }
}

/// Binds `socket` with mode 0600: under a temporary name first, so the path never answers
/// with other permissions. While another device answers there (one an agent started before
/// this process, e.g. a device container, came up), waits for it to stop.
fn listen(socket: &Path) -> Result<UnixListener> {
    let mut said = false;
    while UnixStream::connect(socket).is_ok() {
        if !said {
            tracing::info!(socket = %socket.display(), "another WireGuard device serves this socket; waiting for it to stop");
            said = true;
        }
        std::thread::sleep(WATCH);
    }
    let dir = socket.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = socket.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("cannot listen on {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, socket)
        .with_context(|| format!("cannot move the control socket to {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The file at `path` (device and inode), to notice it being removed or replaced.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Why the process should end without being asked, if it should.
fn orphaned(socket: &Path, ours: (u64, u64), running: Option<&Running>) -> Option<String> {
    if file_id(socket) != Some(ours) {
        return Some(format!(
            "the control socket {} was removed or replaced",
            socket.display()
        ));
    }
    let netns = &running?.setup.netns;
    (!netns.exists()).then(|| format!("the network namespace {} is gone", netns.display()))
}

/// Serves one agent's requests until it disconnects (or asks for a shutdown).
fn serve_agent(
    stream: UnixStream,
    running: &mut Option<Running>,
    socket: &Path,
    ours: (u64, u64),
) -> Result<Flow> {
    stream.set_nonblocking(false)?;
    let peer = rustix::net::sockopt::socket_peercred(&stream)?;
    if peer.uid.as_raw() != nix::unistd::geteuid().as_raw() {
        bail!(
            "refused a client with user id {} on the control socket",
            peer.uid.as_raw()
        );
    }
    stream.set_read_timeout(Some(REQUEST_WAIT))?;
    let mut writer = stream.try_clone()?;
    let greeting = Greeting {
        protocol: PROTOCOL,
        pid: std::process::id(),
    };
    control::send(&mut writer, &greeting)?;
    let mut reader = BufReader::new(stream);
    loop {
        if reader.buffer().is_empty() && !udp::wait(reader.get_ref(), PollFlags::IN, WATCH) {
            if let Some(why) = orphaned(socket, ours, running.as_ref()) {
                tracing::info!("{why}");
                return Ok(Flow::Stop);
            }
            continue;
        }
        let request = match control::receive::<Request>(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Flow::Next),
            Err(e) if closed(&e) => return Ok(Flow::Next),
            Err(e) => return Err(e),
        };
        if let Request::Shutdown = request {
            *running = None;
            control::send(&mut writer, &Reply::Done)?;
            return Ok(Flow::Stop);
        }
        let reply = handle(running, request).unwrap_or_else(|e| Reply::Error(format!("{e:#}")));
        control::send(&mut writer, &reply)?;
    }
}

/// A connection reset by an agent that died mid-request.
fn closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::ConnectionReset)
}

fn handle(running: &mut Option<Running>, request: Request) -> Result<Reply> {
    if let Request::Setup(s) = request {
        return Ok(Reply::Setup {
            kept: setup(running, s)?,
        });
    }
    let r = running
        .as_mut()
        .context("the device has no interface yet (no setup)")?;
    match request {
        Request::SetKey { key } => {
            r.device.set_private_key(key.0);
            r.setup.key = key;
        }
        Request::AddPeer(spec) => r.device.add_peer(&spec)?,
        Request::RemovePeer { key } => r.device.remove_peer(&key),
        Request::Read => return Ok(Reply::Host(r.device.read())),
        Request::Initiate { targets } => r.device.initiate(&targets),
        Request::Setup(_) | Request::Shutdown => {}
    }
    Ok(Reply::Done)
}

/// Keeps the running interface when it matches `s` (switching its key if that differs),
/// else replaces it; whether it was kept.
fn setup(running: &mut Option<Running>, s: Setup) -> Result<bool> {
    if let Some(r) = running.as_mut().filter(|r| r.setup.same_interface(&s)) {
        if r.setup.key != s.key {
            r.device.set_private_key(s.key.0);
            r.setup.key = s.key;
        }
        return Ok(true);
    }
    // The old TUN goes first, so the new one can take its name.
    *running = None;
    let (ifname, port) = (s.ifname.clone(), s.port);
    let sockets = in_netns(&s.netns, move || Sockets::open(&ifname, port))??;
    let device = Userspace::start(sockets, s.port, s.key.0, s.mtu)?;
    tracing::info!(interface = %s.ifname, port = s.port, mtu = s.mtu, netns = %s.netns.display(), "WireGuard interface up");
    *running = Some(Running { setup: s, device });
    Ok(false)
}

#[cfg(test)]
mod tests;
