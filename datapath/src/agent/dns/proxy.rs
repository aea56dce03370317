//! The DNS proxy's threads, inside the node's network namespace: one reads the queries the
//! BPF programs hand to its UDP socket, a pool of workers forwards the allowed ones and
//! answers; another accepts the DNS-over-TCP connections handed to its listener, each served
//! by a thread of its own (queries framed by their length, RFC 1035 §4.2.2), forwarded over
//! one upstream connection per client connection.
//!
//! Each forwarded query gets a socket of its own, connected to the server the client asked:
//! its answer can only come from there, to a random port, so no ID bookkeeping between
//! clients is needed. The client's answer leaves from a reply socket bound to the server's
//! address and port, as if the server had sent it; the pod's conntrack entry (made when its
//! query was allowed) lets it in.

use super::message::{self, Query, read_framed, write_framed};
use super::{DnsState, QueryVerdict};
use crate::bpf::maps::MARK_FROM_PROXY;
use crate::sys::netns::spawn_in_netns;
use crate::sys::transparent::{
    ProxySocket, ProxySockets, Received, client_of, original_destination, reply_socket,
    upstream_tcp, upstream_udp,
};
use anyhow::{Context, Result};
use hickory_proto::op::ResponseCode;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Workers forwarding queries (each waits for one server answer at a time).
const WORKERS: usize = 16;
/// Queries waiting for a worker; more are dropped (the client retries).
const QUEUE: usize = 4096;
/// How long a worker waits for the server.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest DNS message over UDP (EDNS allows up to 65,535 bytes).
const MAX_MESSAGE: usize = 65_535;
/// Reply sockets kept open (one per server address the pods ask).
const MAX_REPLY_SOCKETS: usize = 256;
/// How often the listener looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// DNS-over-TCP connections served at once; more are closed (the client retries).
const MAX_TCP_CONNECTIONS: usize = 256;
/// How long a DNS-over-TCP connection may stay silent.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What the proxy has done since it started.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Queries received.
    pub queries: AtomicU64,
    /// Answered REFUSED by policy.
    pub refused: AtomicU64,
    /// Forwarded and answered.
    pub forwarded: AtomicU64,
    /// Dropped: unreadable, the queue full, the server silent or an error.
    pub dropped: AtomicU64,
}

/// A running DNS proxy.
pub struct DnsProxy {
    port: u16,
    cookie: u64,
    tcp_cookie: u64,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<ProxyCounters>,
}

/// One query waiting for a worker.
struct Job {
    query: Query,
    received: Received,
    at: Instant,
}

/// What the workers share.
struct Shared {
    state: Arc<DnsState>,
    replies: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    counters: Arc<ProxyCounters>,
    /// DNS-over-TCP connections being served.
    tcp_connections: AtomicUsize,
}

impl DnsProxy {
    /// Opens the proxy's socket in network namespace `netns` and starts its threads.
    pub fn start(netns: &Path, state: Arc<DnsState>) -> Result<DnsProxy> {
        let ProxySockets {
            udp: socket,
            tcp: listener,
            tcp_cookie,
        } = crate::sys::in_netns(netns, ProxySockets::bind)??;
        socket.set_timeout(POLL)?;
        let (port, cookie) = (socket.port(), socket.cookie());
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ProxyCounters::default());
        let shared = Arc::new(Shared {
            state,
            replies: Mutex::new(HashMap::new()),
            counters: counters.clone(),
            tcp_connections: AtomicUsize::new(0),
        });
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let (rx, shared) = (rx.clone(), shared.clone());
            threads.push(spawn_in_netns(
                netns,
                &format!("dns-proxy-{i}"),
                move || work(&rx, &shared),
            )?);
        }
        let (s, st) = (shared.clone(), stop.clone());
        threads.push(spawn_in_netns(netns, "dns-proxy", move || {
            listen(&socket, &tx, &s, &st)
        })?);
        let (s, st) = (shared.clone(), stop.clone());
        threads.push(spawn_in_netns(netns, "dns-proxy-tcp", move || {
            accept(&listener, &s, &st)
        })?);
        tracing::info!(port, "DNS proxy listening");
        Ok(DnsProxy {
            port,
            cookie,
            tcp_cookie,
            stop,
            threads,
            counters,
        })
    }

    /// The port its socket is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its UDP socket's `SO_COOKIE`.
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// Its TCP listener's `SO_COOKIE`.
    pub fn tcp_cookie(&self) -> u64 {
        self.tcp_cookie
    }

    /// What it has done so far.
    pub fn counters(&self) -> &ProxyCounters {
        &self.counters
    }
}

impl Drop for DnsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The listener ends within POLL and drops the queue's sender; the workers follow.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The listener: decides each query and queues the allowed ones.
fn listen(socket: &ProxySocket, tx: &SyncSender<Job>, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    while !stop.load(Ordering::Relaxed) {
        let received = match socket.recv(&mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("DNS proxy: {e:#}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let at = Instant::now();
        shared.counters.queries.fetch_add(1, Ordering::Relaxed);
        let Some(query) = message::parse_query(&buf[..received.len]) else {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = %received.from, "DNS proxy: not a standard query; dropped");
            continue;
        };
        match shared
            .state
            .verdict(received.from.ip(), received.to, &query.name)
        {
            QueryVerdict::Refuse => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                // Debug only: a pod asking again and again must not flood the agent's log (the
                // count is in `ward-agent status`).
                tracing::debug!(client = %received.from, server = %received.to, name = %query.name, "DNS query refused by policy");
                let answer = message::error_response(&query.message, ResponseCode::Refused);
                shared.reply(&received, answer.as_deref());
            }
            QueryVerdict::Allow => match tx.try_send(Job {
                query,
                received,
                at,
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
}

/// A worker: forwards queued queries until the listener is gone.
fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        match forward(&job, &mut buf) {
            Ok(len) => shared.answer(&job, &buf[..len]),
            Err(e) => {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %job.received.from, server = %job.received.to, name = %job.query.name, "DNS proxy: {e:#}");
            }
        }
    }
}

/// Sends the query to the server the client asked and waits for its answer (same ID).
fn forward(job: &Job, buf: &mut [u8]) -> Result<usize> {
    let server = job.received.to;
    let sock = upstream_udp(server, MARK_FROM_PROXY)?;
    sock.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    let bytes = job.query.message.to_vec().context("encoding the query")?;
    sock.send(&bytes)
        .with_context(|| format!("sending to {server}"))?;
    let id = job.query.message.metadata.id;
    loop {
        let len = sock
            .recv(buf)
            .with_context(|| format!("no answer from {server}"))?;
        if message::id(&buf[..len]) == Some(id) {
            return Ok(len);
        }
    }
}

/// The TCP acceptor: a thread per connection (they inherit the node's namespace).
fn accept(listener: &TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as i64,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        if !matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        if shared.tcp_connections.fetch_add(1, Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
            shared.tcp_connections.fetch_sub(1, Ordering::Relaxed);
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mine = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("dns-proxy-conn".into())
            .spawn(move || {
                if let Err(e) = serve_tcp(conn, &mine) {
                    tracing::debug!("DNS proxy (TCP): {e:#}");
                }
                mine.tcp_connections.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            shared.tcp_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One DNS-over-TCP connection: each query decided, refused or forwarded over one upstream
/// connection to the server the client asked, until the client closes or stays silent.
fn serve_tcp(mut conn: TcpStream, shared: &Shared) -> Result<()> {
    let (server, client) = (original_destination(&conn)?, client_of(&conn)?);
    conn.set_read_timeout(Some(TCP_IDLE))?;
    let mut upstream: Option<TcpStream> = None;
    while let Some(bytes) = read_framed(&mut conn)? {
        shared.counters.queries.fetch_add(1, Ordering::Relaxed);
        let Some(query) = message::parse_query(&bytes) else {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let answer = match shared.state.verdict(client.ip(), server, &query.name) {
            QueryVerdict::Refuse => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %client, server = %server, name = %query.name, "DNS query refused by policy (TCP)");
                message::error_response(&query.message, ResponseCode::Refused)
                    .context("encoding REFUSED")?
            }
            QueryVerdict::Allow => {
                let up = match &mut upstream {
                    Some(u) => u,
                    None => {
                        let u = upstream_tcp(server, MARK_FROM_PROXY, UPSTREAM_TIMEOUT)?;
                        u.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
                        upstream.insert(u)
                    }
                };
                write_framed(up, &bytes)?;
                let response =
                    read_framed(up)?.with_context(|| format!("{server} closed the connection"))?;
                shared.learn_and_wait(&query.name, &response);
                shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                response
            }
        };
        write_framed(&mut conn, &answer)?;
    }
    Ok(())
}

impl Shared {
    /// Learns from a server's `response` to a query for `name`, and waits for the maps when
    /// it taught new addresses.
    fn learn_and_wait(&self, name: &str, response: &[u8]) {
        let answered = message::answered(response);
        if let Some(generation) = self.state.learn(&answered, Instant::now())
            && !self.state.wait_synced(generation)
        {
            tracing::warn!(
                name,
                "the maps did not take the answer's addresses in time; answering anyway"
            );
        }
    }

    /// Learns from a server's answer (see [`Shared::learn_and_wait`]) and passes it on to
    /// the client.
    fn answer(&self, job: &Job, response: &[u8]) {
        self.learn_and_wait(&job.query.name, response);
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        self.reply(&job.received, Some(response));
        tracing::debug!(client = %job.received.from, name = %job.query.name, took_us = job.at.elapsed().as_micros() as u64, "DNS query answered");
    }

    /// Sends `answer` to the client, from the server's address.
    fn reply(&self, received: &Received, answer: Option<&[u8]>) {
        let Some(answer) = answer else { return };
        let sent = self
            .reply_socket(received.to)
            .and_then(|s| Ok(s.send_to(answer, received.from)?));
        if let Err(e) = sent {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = %received.from, server = %received.to, "DNS proxy cannot answer: {e:#}");
        }
    }

    /// The reply socket of server address `from` (made on first use).
    fn reply_socket(&self, from: SocketAddr) -> Result<Arc<UdpSocket>> {
        let mut replies = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = replies.get(&from) {
            return Ok(s.clone());
        }
        if replies.len() >= MAX_REPLY_SOCKETS {
            replies.clear();
        }
        let s = Arc::new(reply_socket(from)?);
        replies.insert(from, s.clone());
        Ok(s)
    }
}
