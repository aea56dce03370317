//! The agent's side of the device process: attaches to the device serving the control socket,
//! or starts one (the agent's own executable, `ward-agent device`), and turns the device's
//! operations into [`Request`]s.
//!
//! The process is started in a process group of its own (a Ctrl-C meant for the agent does
//! not reach it), with its output in [`LOG`] next to the socket. Dropping a [`Remote`]
//! closes the connection and leaves the device running; [`Remote::shutdown`] stops it.

use super::super::PeerSpec;
use super::control::{self, Greeting, LOG, PROTOCOL, Reply, Request, Secret, Setup};
use super::udp;
use anyhow::{Context, Result, bail};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use rustix::event::PollFlags;
use std::io::{BufReader, ErrorKind};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the device may take to answer a request (creating a TUN included).
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long a new device process may take to open its control socket, or an old one to go.
const START_WAIT: Duration = Duration::from_secs(5);

/// A connection to the device process.
pub struct Remote {
    conn: Mutex<Conn>,
    /// The device process (from the socket's peer credentials).
    pid: u32,
    /// The process, when this agent started it (so it is reaped when it ends).
    child: Mutex<Option<Child>>,
    socket: PathBuf,
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Remote {
    /// The device serving `socket`, or `None` when nothing answers there. A device of
    /// another protocol version (another ward release) is stopped, and `None` returned.
    pub fn attach(socket: &Path) -> Result<Option<Remote>> {
        let Some(stream) = connect(socket)? else {
            return Ok(None);
        };
        let (remote, greeting) = Remote::over(stream, socket, None)?;
        if greeting.protocol == PROTOCOL {
            return Ok(Some(remote));
        }
        tracing::warn!(
            pid = remote.pid,
            protocol = greeting.protocol,
            "replacing a WireGuard device of another ward release; cross-node pod traffic is blocked until the new one is up"
        );
        remote.terminate()?;
        Ok(None)
    }

    /// Starts `exe device --socket <socket>` and connects to it.
    pub fn spawn(socket: &Path, exe: &Path) -> Result<Remote> {
        let dir = socket.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let log_path = dir.join(LOG);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut child = Command::new(exe)
            .arg("device")
            .arg("--socket")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start the WireGuard device ({})", exe.display()))?;
        let start = Instant::now();
        loop {
            if let Some(stream) = connect(socket)? {
                let (remote, _) = Remote::over(stream, socket, Some(child))?;
                return Ok(remote);
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the WireGuard device process exited at start ({status}); its log is {}",
                    log_path.display()
                );
            }
            if start.elapsed() > START_WAIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the WireGuard device process did not open {} within {START_WAIT:?}; its log is {}",
                    socket.display(),
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn over(stream: UnixStream, socket: &Path, child: Option<Child>) -> Result<(Remote, Greeting)> {
        stream.set_read_timeout(Some(REPLY_WAIT))?;
        let pid = rustix::net::sockopt::socket_peercred(&stream)
            .context("cannot read the WireGuard device's credentials")?
            .pid
            .as_raw_nonzero()
            .get()
            .unsigned_abs();
        let writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let greeting: Greeting = control::receive(&mut reader)?
            .context("the WireGuard device closed its control socket at once")?;
        let remote = Remote {
            conn: Mutex::new(Conn { reader, writer }),
            pid,
            child: Mutex::new(child),
            socket: socket.to_path_buf(),
        };
        Ok((remote, greeting))
    }

    /// The device process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn call(&self, request: &Request) -> Result<Reply> {
        let mut conn = self.conn();
        control::send(&mut conn.writer, request).with_context(|| self.stopped())?;
        match control::receive(&mut conn.reader).with_context(|| self.stopped())? {
            None => Err(anyhow::anyhow!("{}", self.stopped())),
            Some(Reply::Error(e)) => bail!("WireGuard device: {e}"),
            Some(reply) => Ok(reply),
        }
    }

    fn done(&self, request: &Request) -> Result<()> {
        self.call(request).map(|_| ())
    }

    fn stopped(&self) -> String {
        format!(
            "the WireGuard device process {} stopped answering on {}",
            self.pid,
            self.socket.display()
        )
    }

    /// Makes the device run the interface `setup` describes; whether the running one (with
    /// its peers and sessions) was kept.
    pub fn setup(&self, setup: Setup) -> Result<bool> {
        match self.call(&Request::Setup(setup))? {
            Reply::Setup { kept } => Ok(kept),
            _ => bail!("the WireGuard device answered a setup with something else"),
        }
    }

    /// Switches the device to `secret`.
    pub fn set_private_key(&self, secret: [u8; 32]) -> Result<()> {
        self.done(&Request::SetKey {
            key: Secret(secret),
        })
    }

    /// Adds a peer the device does not have.
    pub fn add_peer(&self, spec: &PeerSpec) -> Result<()> {
        self.done(&Request::AddPeer(spec.clone()))
    }

    /// Removes a peer.
    pub fn remove_peer(&self, key: &Key) -> Result<()> {
        self.done(&Request::RemovePeer { key: key.clone() })
    }

    /// Peers with handshakes and byte counts.
    pub fn read(&self) -> Result<Host> {
        match self.call(&Request::Read)? {
            Reply::Host(h) => Ok(h),
            _ => bail!("the WireGuard device answered a read with something else"),
        }
    }

    /// Starts handshakes now towards the peers of `targets`. Best effort.
    pub fn initiate(&self, targets: &[Ipv4Addr]) {
        if let Err(e) = self.done(&Request::Initiate {
            targets: targets.to_vec(),
        }) {
            tracing::debug!("start_handshakes: {e:#}");
        }
    }

    /// Stops the device: its interface goes and the process exits.
    pub fn shutdown(&self) -> Result<()> {
        self.done(&Request::Shutdown)?;
        self.reap();
        Ok(())
    }

    /// Whether the device process still runs: its end of the connection is open (it never
    /// writes unasked, so a readable connection means it closed).
    pub fn alive(&self) -> bool {
        let conn = self.conn();
        let closed = !conn.reader.buffer().is_empty()
            || udp::wait(conn.reader.get_ref(), PollFlags::IN, Duration::ZERO);
        drop(conn);
        if closed {
            self.reap();
        }
        !closed
    }

    /// Waits (briefly) for the process this agent started, so no zombie is left.
    fn reap(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = child.as_mut() {
            let start = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && start.elapsed() < START_WAIT {
                std::thread::sleep(Duration::from_millis(10));
            }
            *child = None;
        }
    }

    /// SIGTERM to the device process, then waits until its socket no longer answers.
    fn terminate(&self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .with_context(|| format!("cannot stop the WireGuard device process {}", self.pid))?;
        let start = Instant::now();
        while connect(&self.socket)?.is_some() {
            if start.elapsed() > START_WAIT {
                bail!(
                    "the WireGuard device process {} did not stop; stop it by hand",
                    self.pid
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Connects to `socket`; `None` when no process listens there.
fn connect(socket: &Path) -> Result<Option<UnixStream>> {
    match UnixStream::connect(socket) {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot connect to {}", socket.display())),
    }
}
