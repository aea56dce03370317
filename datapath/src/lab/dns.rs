//! DNS in the lab: an authoritative server for a fixed set of names (run in the world
//! namespace, where a cluster's upstream resolver would be) and the client query a pod
//! sends, both over UDP.

use super::in_netns;
use crate::agent::dns::cache::DnsCache;
use crate::agent::dns::message::{read_framed, write_framed};
use anyhow::{Context, Result, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the idle server looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Names and what they resolve to.
pub type Names = BTreeMap<String, Zone>;

/// One name the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Its addresses (A and AAAA records).
    pub addresses: Vec<IpAddr>,
    /// The TTL of its records, in seconds.
    pub ttl: u32,
}

/// An authoritative DNS server on one address, over UDP and TCP; stopped on drop.
pub struct DnsServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    queries: Arc<AtomicU64>,
}

impl DnsServer {
    /// Serves `names` (lower case, trailing dot optional) on `addr` (UDP and TCP) in
    /// `netns`: the records of the type asked, NXDOMAIN for a name it does not have.
    pub fn start(netns: &Path, addr: SocketAddr, names: Names) -> Result<DnsServer> {
        let names = normalize(names);
        let sock = in_netns(netns, move || UdpSocket::bind(addr))?
            .with_context(|| format!("cannot serve DNS on {addr}/UDP"))?;
        sock.set_read_timeout(Some(POLL))?;
        let listener = in_netns(netns, move || TcpListener::bind(addr))?
            .with_context(|| format!("cannot serve DNS on {addr}/TCP"))?;
        listener.set_nonblocking(true)?;
        let names = Arc::new(names);
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicU64::new(0));
        let (st, q, n) = (stop.clone(), queries.clone(), names.clone());
        let tcp = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (q, n) = (q.clone(), n.clone());
                        std::thread::spawn(move || serve_tcp(conn, &n, &q));
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        let (st, q) = (stop.clone(), queries.clone());
        let udp = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                q.fetch_add(1, Ordering::Relaxed);
                if let Some(answer) = answer(&names, &buf[..n], ResponseCode::NXDomain) {
                    let _ = sock.send_to(&answer, from);
                }
            }
        });
        Ok(DnsServer {
            stop,
            threads: vec![udp, tcp],
            queries,
        })
    }

    /// How many queries reached it.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `names` keyed as the servers look them up (as the agent's DNS cache keys names: lower
/// case, trailing dot).
pub fn normalize(names: Names) -> Names {
    names
        .into_iter()
        .map(|(n, z)| (DnsCache::normalize(&n), z))
        .collect()
}

/// One DNS-over-TCP connection to the lab's server: length-prefixed queries until it closes.
fn serve_tcp(mut conn: TcpStream, names: &Names, queries: &AtomicU64) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    while let Ok(Some(q)) = read_framed(&mut conn) {
        queries.fetch_add(1, Ordering::Relaxed);
        let Some(a) = answer(names, &q, ResponseCode::NXDomain) else {
            return;
        };
        if write_framed(&mut conn, &a).is_err() {
            return;
        }
    }
}

/// Whether `bytes` begin with a whole DNS query framed as over TCP.
pub(crate) fn is_framed_query(bytes: &[u8]) -> bool {
    let Some(len) = bytes
        .get(..2)
        .map(|h| usize::from(u16::from_be_bytes([h[0], h[1]])))
    else {
        return false;
    };
    bytes.get(2..2 + len).is_some_and(is_query)
}

/// Answers framed DNS queries on `conn` (the first already read: `first`) from `names`
/// (NOERROR without records for other names), until the client closes.
pub(crate) fn serve_framed(mut conn: TcpStream, first: &[u8], names: &Names) {
    let mut pending = first.to_vec();
    loop {
        while pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let query: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            if write_framed(&mut conn, &respond(names, &query)).is_err() {
                return;
            }
        }
        let mut buf = [0u8; 1024];
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// The answer to the message in `bytes` from a server holding `names` (keys normalized),
/// which answers `unknown` for any other name; None for anything but a query.
fn answer(names: &Names, bytes: &[u8], unknown: ResponseCode) -> Option<Vec<u8>> {
    let q = Message::from_vec(bytes).ok()?;
    if q.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.authoritative = true;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.add_queries(q.queries.iter().cloned());
    let Some(question) = q.queries.first() else {
        r.metadata.response_code = ResponseCode::FormErr;
        return r.to_vec().ok();
    };
    match names.get(&DnsCache::normalize(&question.name().to_ascii())) {
        None => r.metadata.response_code = unknown,
        Some(zone) => {
            for ip in &zone.addresses {
                let data = match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                r.add_answer(Record::from_rdata(question.name().clone(), zone.ttl, data));
            }
        }
    }
    r.to_vec().ok()
}

/// The payload of a UDP probe: a DNS query for `name`, so that a probe whose packets the
/// agent hands to its DNS proxy (an egress rule with `rules.dns`) is a query the proxy can
/// read; to any other UDP server it is just a datagram to echo.
pub fn probe_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name = Name::from_str(&DnsCache::normalize(name)).unwrap_or_else(|_| Name::root());
    m.add_query(Query::query(name, RecordType::A));
    m.to_vec().unwrap_or_default()
}

/// What the lab's UDP echo servers send back: a DNS query gets an empty answer (NOERROR, no
/// records, as a server that has the name but no address for it), anything else is echoed.
pub fn respond_or_echo(bytes: &[u8]) -> Vec<u8> {
    respond(&Names::new(), bytes)
}

/// [`respond_or_echo`] from a server that also holds `names` (keys normalized: [`normalize`]).
/// Only a standard query with one question counts as DNS: other datagrams (a stream's
/// sequence number 0 parses as a header without questions) are echoed.
pub fn respond(names: &Names, bytes: &[u8]) -> Vec<u8> {
    if !is_query(bytes) {
        return bytes.to_vec();
    }
    answer(names, bytes, ResponseCode::NoError).unwrap_or_else(|| bytes.to_vec())
}

/// Whether `bytes` are a standard DNS query with exactly one question.
fn is_query(bytes: &[u8]) -> bool {
    Message::from_vec(bytes).is_ok_and(|q| {
        q.metadata.message_type == MessageType::Query
            && q.metadata.op_code == OpCode::Query
            && q.queries.len() == 1
    })
}

/// Whether `got` answers the probe `sent`: its echo, or a DNS response to it (of any code:
/// a REFUSED from the agent's proxy still means the packets passed at layer 3/4).
pub fn answers_probe(sent: &[u8], got: &[u8]) -> bool {
    if got == sent {
        return true;
    }
    match (Message::from_vec(sent), Message::from_vec(got)) {
        (Ok(q), Ok(r)) => {
            r.metadata.message_type == MessageType::Response && r.metadata.id == q.metadata.id
        }
        _ => false,
    }
}

/// The response code of `got` when it is a DNS response to the query `sent`.
pub fn response_code(sent: &[u8], got: &[u8]) -> Option<ResponseCode> {
    let (q, r) = (Message::from_vec(sent).ok()?, Message::from_vec(got).ok()?);
    (r.metadata.message_type == MessageType::Response && r.metadata.id == q.metadata.id)
        .then_some(r.metadata.response_code)
}

/// What a pod's query got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response code (`NoError`, `Refused`, ...).
    pub code: ResponseCode,
    /// The addresses of its answer.
    pub addresses: Vec<IpAddr>,
    /// The lowest TTL of its answer records.
    pub ttl: Option<u32>,
    /// From sending the query to reading the answer.
    pub took: Duration,
}

/// Asks `server` (UDP) from `netns` for the `record_type` records of `name`; None when no
/// answer came within `timeout`.
pub fn query(
    netns: &Path,
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Option<Reply>> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = in_netns(netns, move || UdpSocket::bind((any, 0)))??;
    Client::new(sock, server, timeout)?.ask(name, record_type)
}

/// [`query`] over TCP (a connection of its own); None when no answer came within `timeout`.
pub fn query_tcp(
    netns: &Path,
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Option<Reply>> {
    let conn = in_netns(netns, move || TcpStream::connect_timeout(&server, timeout))?;
    let Ok(mut conn) = conn else {
        return Ok(None);
    };
    conn.set_read_timeout(Some(timeout))?;
    let msg = query_message(1, name, record_type)?;
    let started = Instant::now();
    write_framed(&mut conn, &msg)?;
    match read_framed(&mut conn) {
        Ok(Some(r)) => Ok(Some(reply(&Message::from_vec(&r)?, started.elapsed()))),
        Ok(None) => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn query_message(id: u16, name: &str, record_type: RecordType) -> Result<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_str(&DnsCache::normalize(name))
            .with_context(|| format!("{name:?} is not a DNS name"))?,
        record_type,
    ));
    Ok(m.to_vec()?)
}

fn reply(r: &Message, took: Duration) -> Reply {
    let addresses = r
        .answers
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Reply {
        code: r.metadata.response_code,
        addresses,
        ttl: r.answers.iter().map(|rec| rec.ttl).min(),
        took,
    }
}

/// A pod's resolver socket, for many queries (benchmarks).
pub struct Client {
    sock: UdpSocket,
    next_id: u16,
}

impl Client {
    /// A client on `sock` (made in the pod's namespace) asking `server`.
    pub fn new(sock: UdpSocket, server: SocketAddr, timeout: Duration) -> Result<Client> {
        sock.connect(server)?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(Client { sock, next_id: 1 })
    }

    /// One query and its answer (None on a timeout).
    pub fn ask(&mut self, name: &str, record_type: RecordType) -> Result<Option<Reply>> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let msg = query_message(id, name, record_type)?;
        let started = Instant::now();
        self.sock.send(&msg)?;
        let mut buf = [0u8; 4096];
        loop {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                // An ICMP error for an earlier datagram (the port unreachable): no answer.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let r = Message::from_vec(&buf[..n]).context("an answer that is not DNS")?;
            if r.metadata.id != id {
                continue;
            }
            if r.metadata.message_type != MessageType::Response {
                bail!("the server answered with a query");
            }
            return Ok(Some(reply(&r, started.elapsed())));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_probe_is_a_query_the_echo_servers_answer() {
        let q = probe_query(77, "probe.ward.test");
        let r = respond_or_echo(&q);
        assert_ne!(r, q);
        assert!(answers_probe(&q, &r));
        assert_eq!(response_code(&q, &r), Some(ResponseCode::NoError));
        assert!(answers_probe(&q, &q), "a plain echo answers too");
        assert_eq!(respond_or_echo(b"not dns"), b"not dns");
        // A header without questions (a stream's sequence number 0) is echoed.
        assert_eq!(respond_or_echo(&[0u8; 24]), [0u8; 24]);
        assert!(!answers_probe(&q, &probe_query(78, "probe.ward.test")));
    }

    #[test]
    fn the_server_answers_its_names_and_nxdomain_otherwise() {
        let names = BTreeMap::from([(
            "api.example.com.".to_owned(),
            Zone {
                addresses: vec![
                    "192.0.2.10".parse().unwrap(),
                    "2001:db8::10".parse().unwrap(),
                ],
                ttl: 7,
            },
        )]);
        let ask = |name: &str, t: RecordType| {
            let mut m = Message::new(9, MessageType::Query, OpCode::Query);
            m.add_query(Query::query(Name::from_str(name).unwrap(), t));
            let a = answer(&names, &m.to_vec().unwrap(), ResponseCode::NXDomain);
            Message::from_vec(&a.unwrap()).unwrap()
        };
        let r = ask("API.example.com.", RecordType::A);
        assert_eq!(r.metadata.id, 9);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 7);
        assert_eq!(ask("api.example.com.", RecordType::AAAA).answers.len(), 1);
        assert_eq!(
            ask("www.example.com.", RecordType::A)
                .metadata
                .response_code,
            ResponseCode::NXDomain
        );
    }
}
