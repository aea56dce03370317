//! Real packets between the lab's namespaces: echo servers and the probes that tell whether
//! a flow gets through.
//!
//! A probe says only whether the exchange completed within its timeout: a TCP connection
//! that was accepted and carried the server's greeting back, a UDP datagram that came back
//! echoed, an ICMP (or, to an IPv6 address, ICMPv6) echo that got its reply. Every probe
//! and server takes addresses of either family. A drop anywhere (either direction, replies
//! included) is a failed probe; so is a missing server, which is why callers check the lab
//! carries a flow before they trust a failed probe as a verdict.

use super::in_netns;
use anyhow::{Context, Result};
use rustix::net::{AddressFamily, SocketType, ipproto, socket};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a TCP server says first on every connection it accepts.
pub const GREETING: &[u8] = b"ward";

/// How often an idle server looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);
/// How long a [`Servers`] connection may stay silent before the server closes it, so that a
/// probe whose close was dropped does not keep a thread.
const IDLE: Duration = Duration::from_secs(30);

/// Echo servers in the lab's namespaces; stopped (and their sockets closed) on drop.
#[derive(Default)]
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    /// No servers yet.
    pub fn new() -> Servers {
        Servers::default()
    }

    /// A TCP server on `ip:port` in `netns`: it greets every connection with [`GREETING`]
    /// and echoes what it reads until the peer closes.
    pub fn tcp(&mut self, netns: &Path, ip: impl Into<IpAddr>, port: u16) -> Result<()> {
        self.tcp_with_names(netns, ip, port, Arc::default())
    }

    /// [`Servers::tcp`], answering DNS queries over TCP for `names` (normalized:
    /// [`super::dns::normalize`]) with their addresses.
    pub fn tcp_with_names(
        &mut self,
        netns: &Path,
        ip: impl Into<IpAddr>,
        port: u16,
        names: Arc<super::dns::Names>,
    ) -> Result<()> {
        let ip = ip.into();
        let listener = in_netns(netns, move || TcpListener::bind((ip, port)))?
            .with_context(|| format!("cannot listen on {}/TCP", SocketAddr::new(ip, port)))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let names = names.clone();
                        std::thread::spawn(move || serve_tcp(s, Some(IDLE), &names));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        }));
        Ok(())
    }

    /// A UDP server on `ip:port` in `netns` that sends every datagram back to its sender (a
    /// DNS query gets an empty DNS answer: [`super::dns::respond_or_echo`]).
    pub fn udp(&mut self, netns: &Path, ip: impl Into<IpAddr>, port: u16) -> Result<()> {
        self.udp_with_names(netns, ip, port, Arc::default())
    }

    /// [`Servers::udp`], answering the DNS queries for `names` (normalized:
    /// [`super::dns::normalize`]) with their addresses.
    pub fn udp_with_names(
        &mut self,
        netns: &Path,
        ip: impl Into<IpAddr>,
        port: u16,
        names: Arc<super::dns::Names>,
    ) -> Result<()> {
        let ip = ip.into();
        let sock = in_netns(netns, move || UdpSocket::bind((ip, port)))?
            .with_context(|| format!("cannot listen on {}/UDP", SocketAddr::new(ip, port)))?;
        sock.set_read_timeout(Some(POLL))?;
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&super::dns::respond(&names, &buf[..n]), from);
                }
            }
        }));
        Ok(())
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How long a TCP server waits for a client to speak first (a DNS query) before it greets.
const SPEAK_FIRST: Duration = Duration::from_millis(30);

/// Greets with [`GREETING`], then echoes until the peer closes (or stays silent for
/// `idle`, when given). A client that speaks first with a DNS query (the probes do: over a
/// port where the agent's DNS proxy takes the connection, only DNS gets an answer) gets DNS
/// answers instead, NOERROR without records, until it closes.
pub fn greet_and_echo(s: TcpStream, idle: Option<Duration>) {
    serve_tcp(s, idle, &super::dns::Names::new());
}

fn serve_tcp(mut s: TcpStream, idle: Option<Duration>, names: &super::dns::Names) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(SPEAK_FIRST));
    let mut first = [0u8; 1024];
    let n = match s.read(&mut first) {
        Ok(0) => return,
        Ok(n) => n,
        Err(_) => 0,
    };
    let _ = s.set_read_timeout(idle);
    if n > 0 && super::dns::is_framed_query(&first[..n]) {
        super::dns::serve_framed(s, &first[..n], names);
        return;
    }
    if s.write_all(GREETING).is_err() || s.write_all(&first[..n]).is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Whether a TCP connection from `netns` (from address `from`, else the one the route
/// gives) to `to:port` opens and is answered within `timeout`: the probe sends a DNS query
/// (framed as over TCP) and takes the server's greeting, or a DNS answer (from the server,
/// or REFUSED from the agent's DNS proxy, which takes connections to DNS ports), as the
/// sign that it got through.
pub fn tcp(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Result<bool> {
    Ok(tcp_query(netns, from, to, port, PROBE_NAME, timeout)? != Answered::None)
}

/// [`tcp`] with a DNS query for `name`, saying how it was answered.
pub fn tcp_query(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    port: u16,
    name: &str,
    timeout: Duration,
) -> Result<Answered> {
    let to = to.into();
    let query = super::dns::probe_query(port, name);
    in_netns(netns, move || {
        let Ok(mut s) = open(from, to, port, timeout) else {
            return Answered::None;
        };
        if s.set_read_timeout(Some(timeout)).is_err()
            || crate::agent::dns::message::write_framed(&mut s, &query).is_err()
        {
            return Answered::None;
        }
        let mut head = [0u8; 2];
        if s.read_exact(&mut head).is_err() {
            return Answered::None;
        }
        if head == GREETING[..2] {
            let mut rest = [0u8; 2];
            let greeted = s.read_exact(&mut rest).is_ok() && rest == GREETING[2..];
            return if greeted {
                Answered::Plain
            } else {
                Answered::None
            };
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(head))];
        if s.read_exact(&mut msg).is_err() {
            return Answered::None;
        }
        super::dns::response_code(&query, &msg).map_or(Answered::None, Answered::Dns)
    })
}

/// A TCP connection from `from` (else the address the route gives) to `to:port` within
/// `timeout`.
fn open(
    from: Option<IpAddr>,
    to: IpAddr,
    port: u16,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(SocketAddr::new(to, port));
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if let Some(from) = from {
        sock.bind(&SocketAddr::from((from, 0)).into())?;
    }
    sock.connect_timeout(&SocketAddr::from((to, port)).into(), timeout)?;
    Ok(sock.into())
}

/// [`tcp`]'s connection, kept open (its read timeout is `timeout`): `None` when it did not
/// open or carry the greeting.
pub fn connect(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Result<Option<TcpStream>> {
    let to = to.into();
    in_netns(netns, move || {
        let mut s = open(from, to, port, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        let mut greeting = [0u8; GREETING.len()];
        s.read_exact(&mut greeting).ok()?;
        (greeting == GREETING).then_some(s)
    })
}

/// The name a UDP probe asks for (its payload is a DNS query: [`super::dns::probe_query`]).
pub const PROBE_NAME: &str = "probe.ward.test";

/// Whether a UDP datagram from `netns` (from address `from`, else the one the route gives)
/// to `to:port` is answered within `timeout`: echoed, or (the datagram is a DNS query) a DNS
/// response to it, which the agent's DNS proxy gives too, REFUSED included.
pub fn udp(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Result<bool> {
    Ok(udp_query(netns, from, to, port, PROBE_NAME, timeout)? != Answered::None)
}

/// How a probe was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Not at all within the timeout (or, TCP, no connection).
    None,
    /// Plainly: the TCP server's greeting, the UDP datagram echoed, the ICMP echo reply.
    Plain,
    /// A DNS response to its query, with this code.
    Dns(hickory_proto::op::ResponseCode),
}

/// [`udp`] with a DNS query for `name` as the datagram, saying how it was answered.
pub fn udp_query(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    port: u16,
    name: &str,
    timeout: Duration,
) -> Result<Answered> {
    let to = to.into();
    let msg = super::dns::probe_query(port, name);
    in_netns(netns, move || {
        let Ok(s) = UdpSocket::bind((from.unwrap_or_else(|| unspecified(to)), 0)) else {
            return Answered::None;
        };
        let _ = s.set_read_timeout(Some(timeout));
        if s.send_to(&msg, (to, port)).is_err() {
            return Answered::None;
        }
        let mut buf = [0u8; 1500];
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            return Answered::None;
        };
        let got = &buf[..n];
        if got == msg.as_slice() {
            Answered::Plain
        } else {
            super::dns::response_code(&msg, got).map_or(Answered::None, Answered::Dns)
        }
    })
}

/// The unspecified address of `to`'s family (what a socket binds to when the route picks
/// the source).
fn unspecified(to: IpAddr) -> IpAddr {
    match to {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Whether an ICMP echo request (ICMPv6 to an IPv6 address) from `netns` (from address
/// `from`, else the one the route gives) to `to` gets its reply within `timeout`: a kernel
/// "ping" socket, which sets the identifier and checksum (the lab's namespaces admit every
/// group to them).
pub fn icmp_echo(
    netns: &Path,
    from: Option<IpAddr>,
    to: impl Into<IpAddr>,
    timeout: Duration,
) -> Result<bool> {
    let to = to.into();
    // Echo request and reply types: ICMP 8 and 0, ICMPv6 128 and 129.
    let (family, proto, request_type, reply_type) = match to {
        IpAddr::V4(_) => (AddressFamily::INET, ipproto::ICMP, 8, 0),
        IpAddr::V6(_) => (AddressFamily::INET6, ipproto::ICMPV6, 128, 129),
    };
    in_netns(netns, move || {
        let Ok(fd) = socket(family, SocketType::DGRAM, Some(proto)) else {
            return false;
        };
        if let Some(from) = from
            && rustix::net::bind(&fd, &SocketAddr::from((from, 0))).is_err()
        {
            return false;
        }
        let sock = UdpSocket::from(fd);
        let _ = sock.set_read_timeout(Some(timeout));
        let request = [request_type, 0, 0, 0, 0, 0, 0, 1, b'w', b'a', b'r', b'd'];
        if sock.send_to(&request, (to, 0)).is_err() {
            return false;
        }
        let mut buf = [0u8; 128];
        matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 8 && buf[0] == reply_type)
    })
}
