//! The DNS proxy's threads, inside the node's network namespace: one reads the queries the
//! BPF programs hand to its socket, a pool of workers forwards the allowed ones and answers.
//!
//! Each forwarded query gets a socket of its own, connected to the server the client asked:
//! its answer can only come from there, to a random port, so no ID bookkeeping between
//! clients is needed. The client's answer leaves from a reply socket bound to the server's
//! address and port, as if the server had sent it; the pod's conntrack entry (made when its
//! query was allowed) lets it in.

use super::message::{self, Query};
use super::{DnsState, QueryVerdict};
use crate::sys::netns::spawn_in_netns;
use crate::sys::transparent::{ProxySocket, Received, reply_socket};
use anyhow::{Context, Result};
use hickory_proto::op::ResponseCode;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

impl DnsProxy {
    /// Opens the proxy's socket in network namespace `netns` and starts its threads.
    pub fn start(netns: &Path, state: Arc<DnsState>) -> Result<DnsProxy> {
        let socket = crate::sys::in_netns(netns, ProxySocket::bind)??;
        socket.set_timeout(POLL)?;
        let (port, cookie) = (socket.port(), socket.cookie());
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ProxyCounters::default());
        let shared = Arc::new(Shared {
            state,
            replies: Mutex::new(HashMap::new()),
            counters: counters.clone(),
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
        tracing::info!(port, "DNS proxy listening");
        Ok(DnsProxy {
            port,
            cookie,
            stop,
            threads,
            counters,
        })
    }

    /// The port its socket is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its socket's `SO_COOKIE`.
    pub fn cookie(&self) -> u64 {
        self.cookie
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
                tracing::info!(client = %received.from, server = %received.to, name = %query.name, "DNS query refused by policy");
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
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0)).context("binding an upstream socket")?;
    sock.connect(server)
        .with_context(|| format!("connecting to {server}"))?;
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

impl Shared {
    /// Learns from a server's answer, waits for the maps when it taught new addresses, and
    /// passes it on to the client.
    fn answer(&self, job: &Job, response: &[u8]) {
        let answered = message::answered(response);
        if let Some(generation) = self.state.learn(&answered, Instant::now())
            && !self.state.wait_synced(generation)
        {
            tracing::warn!(name = %job.query.name, "the maps did not take the answer's addresses in time; answering anyway");
        }
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
