//! The sockets of a transparent proxy (the agent's DNS proxy): a listening UDP socket that
//! receives packets addressed to other hosts (the BPF programs assign them to it) and reads
//! each one's original destination, and reply sockets bound to such a foreign address, so
//! that an answer comes from the server the client asked.
//!
//! Both need `CAP_NET_ADMIN` (`IP_TRANSPARENT`), as ward-agent has. Sockets belong to the
//! network namespace of the thread that makes them: make them on a thread inside the node's
//! namespace ([`super::netns::spawn_in_netns`]).

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::IoSliceMut;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// One datagram as the proxy received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its length in the buffer.
    pub len: usize,
    /// The client.
    pub from: SocketAddr,
    /// Where the client sent it (the server it asked).
    pub to: SocketAddr,
}

/// The proxy's listening socket: dual stack where the kernel has IPv6 (IPv4 packets arrive
/// with mapped addresses, which [`ProxySocket::recv`] turns back), IPv4 otherwise.
#[derive(Debug)]
pub struct ProxySocket {
    sock: UdpSocket,
    port: u16,
    cookie: u64,
}

/// The proxy's sockets: UDP and a TCP listener on the same port.
#[derive(Debug)]
pub struct ProxySockets {
    /// The UDP socket.
    pub udp: ProxySocket,
    /// The TCP listener: each connection it accepts has the server's address as its local
    /// address.
    pub tcp: TcpListener,
    /// The TCP listener's `SO_COOKIE`.
    pub tcp_cookie: u64,
}

impl ProxySockets {
    /// Both sockets on one port the kernel picks (a few tries, should another socket hold
    /// the TCP port the UDP socket got).
    pub fn bind() -> Result<ProxySockets> {
        let mut last = None;
        for _ in 0..16 {
            let udp = ProxySocket::bind()?;
            match transparent_listener(udp.port) {
                Ok((tcp, tcp_cookie)) => {
                    return Ok(ProxySockets {
                        udp,
                        tcp,
                        tcp_cookie,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no port")))
            .context("binding the DNS proxy's TCP listener")
    }
}

/// A transparent TCP listener on `port` (dual stack where the kernel has IPv6), with its
/// cookie.
fn transparent_listener(port: u16) -> Result<(TcpListener, u64)> {
    let sock = match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => {
            s.set_only_v6(false)?;
            s.set_ip_transparent_v6(true)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
            s
        }
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.set_ip_transparent_v4(true)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
            s
        }
    };
    sock.listen(128)?;
    let cookie = sock.cookie()?;
    Ok((sock.into(), cookie))
}

/// The local address of a connection the proxy's listener accepted: the server the client
/// asked (IPv4-mapped addresses turned back).
pub fn original_destination(conn: &TcpStream) -> Result<SocketAddr> {
    Ok(unmapped(conn.local_addr()?))
}

/// The peer of an accepted connection (IPv4-mapped addresses turned back).
pub fn client_of(conn: &TcpStream) -> Result<SocketAddr> {
    Ok(unmapped(conn.peer_addr()?))
}

impl ProxySocket {
    /// Binds a new socket to a port the kernel picks, on every address.
    pub fn bind() -> Result<ProxySocket> {
        let sock = match Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)) {
            Ok(s) => {
                s.set_only_v6(false).context("IPV6_V6ONLY")?;
                s.set_ip_transparent_v6(true)
                    .context("IPV6_TRANSPARENT (ward-agent needs CAP_NET_ADMIN)")?;
                setsockopt(&s, sockopt::Ipv6OrigDstAddr, &true).context("IPV6_RECVORIGDSTADDR")?;
                setsockopt(&s, sockopt::Ipv4OrigDstAddr, &true).context("IP_RECVORIGDSTADDR")?;
                s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
                    .context("binding the DNS proxy's socket")?;
                s
            }
            Err(_) => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
                    .context("opening the DNS proxy's socket")?;
                s.set_ip_transparent_v4(true)
                    .context("IP_TRANSPARENT (ward-agent needs CAP_NET_ADMIN)")?;
                setsockopt(&s, sockopt::Ipv4OrigDstAddr, &true).context("IP_RECVORIGDSTADDR")?;
                s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())
                    .context("binding the DNS proxy's socket")?;
                s
            }
        };
        let cookie = sock
            .cookie()
            .context("SO_COOKIE of the DNS proxy's socket")?;
        let sock: UdpSocket = sock.into();
        let port = sock.local_addr()?.port();
        Ok(ProxySocket { sock, port, cookie })
    }

    /// The port it is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `SO_COOKIE`, by which the BPF programs recognise it.
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// Waits at most `timeout` for a datagram (None when none came).
    pub fn set_timeout(&self, timeout: Duration) -> Result<()> {
        self.sock.set_read_timeout(Some(timeout))?;
        Ok(())
    }

    /// The next datagram with its client and original destination; `Ok(None)` on a timeout
    /// or a datagram without its destination (which then cannot be answered).
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(libc_sockaddr_in6);
        let msg = match recvmsg::<SockaddrStorage>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e).context("receiving on the DNS proxy's socket"),
        };
        let len = msg.bytes;
        let from = msg.address.as_ref().and_then(storage_addr);
        let mut to = None;
        for c in msg
            .cmsgs()
            .context("reading the datagram's control messages")?
        {
            to = match c {
                ControlMessageOwned::Ipv4OrigDstAddr(a) => Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                ))),
                ControlMessageOwned::Ipv6OrigDstAddr(a) => Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    0,
                    0,
                ))),
                _ => to,
            };
        }
        Ok(match (from, to) {
            (Some(from), Some(to)) => Some(Received {
                len,
                from: unmapped(from),
                to: unmapped(to),
            }),
            _ => None,
        })
    }
}

/// Spelled this way so that `cmsg_space!` sizes the buffer for the larger of the two.
#[allow(non_camel_case_types)]
type libc_sockaddr_in6 = nix::libc::sockaddr_in6;

fn storage_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
    }
    s.as_sockaddr_in6()
        .map(|a| SocketAddr::V6(SocketAddrV6::new(a.ip(), a.port(), 0, 0)))
}

/// An IPv4-mapped IPv6 address as the IPv4 one it stands for.
fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::from((ip, v6.port())),
            None => a,
        },
        v4 => v4,
    }
}

/// A UDP socket for forwarding a query to `server`, marked `mark` (`SO_MARK`) so that the
/// node's programs know the proxy's own traffic.
pub fn upstream_udp(server: SocketAddr, mark: u32) -> Result<UdpSocket> {
    let s = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("opening an upstream socket")?;
    s.set_mark(mark).context("SO_MARK")?;
    s.connect(&server.into())
        .with_context(|| format!("connecting to {server}"))?;
    Ok(s.into())
}

/// A TCP connection to `server` within `timeout`, marked `mark` (see [`upstream_udp`]).
pub fn upstream_tcp(
    server: SocketAddr,
    mark: u32,
    timeout: std::time::Duration,
) -> Result<TcpStream> {
    let s = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .context("opening an upstream connection")?;
    s.set_mark(mark).context("SO_MARK")?;
    s.connect_timeout(&server.into(), timeout)
        .with_context(|| format!("connecting to {server}"))?;
    Ok(s.into())
}

/// A UDP socket bound to `addr`, an address of another host (the server a client asked),
/// from which the proxy answers that client.
pub fn reply_socket(addr: SocketAddr) -> Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("opening a reply socket")?;
    s.set_reuse_address(true)?;
    match addr {
        SocketAddr::V4(_) => s.set_ip_transparent_v4(true),
        SocketAddr::V6(_) => {
            s.set_only_v6(true)?;
            s.set_ip_transparent_v6(true)
        }
    }
    .context("IP_TRANSPARENT (ward-agent needs CAP_NET_ADMIN)")?;
    if let Err(e) = s.bind(&addr.into()) {
        bail!("cannot bind a reply socket to {addr}: {e}");
    }
    Ok(s.into())
}
