//! The device's UDP sockets, batched: datagrams of one size to one endpoint leave in one
//! `sendmsg` with UDP segmentation offload (`UDP_SEGMENT`, up to 64 KB), and up to 32 reads'
//! worth of coalesced datagrams (`UDP_GRO`) arrive in one `recvmmsg` (quinn-udp does both).
//! Two sockets share the WireGuard port ([`pair`]): the bulk one, and the fast lane's, which
//! sends marked DSCP EF and receives what arrives so marked (`lanes`).

use super::peers::NetOut;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::{self, ErrorKind, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// What one GSO send may carry.
const MAX_GSO_BYTES: usize = 65000;
/// The send buffer, so a burst of 64 KB segments is not dropped while the kernel is busy.
const SEND_BUFFER_BYTES: usize = 4 << 20;
/// The receive buffer: room for a few 64 KB bursts, and no more. What waits here waits
/// behind everything before it (a ping behind a bulk stream): a bigger buffer only lengthens
/// that wait when the device is the bottleneck (8 MB measured 30–70 ms p99 under an iperf3
/// stream, 256 KB 6 ms), while a full one drops and the stream's TCP backs off.
const RECV_BUFFER_BYTES: usize = 256 << 10;
/// Receive buffers (each takes up to 64 coalesced datagrams).
pub const RECV_BATCH: usize = 32;
/// How long a full send buffer is waited for before the datagrams are dropped.
const SEND_WAIT: Duration = Duration::from_millis(100);

/// A non-blocking UDP socket with quinn-udp's state (GSO/GRO support found at start).
pub struct Udp {
    sock: UdpSocket,
    state: UdpSocketState,
}

impl Udp {
    /// Takes `sock` (made non-blocking, with GRO and large buffers where the kernel has them).
    pub fn new(sock: UdpSocket) -> io::Result<Udp> {
        let state = UdpSocketState::new((&sock).into())?;
        // Best effort: without them the device still works, with more drops under load.
        let _ = state.set_send_buffer_size((&sock).into(), SEND_BUFFER_BYTES);
        let _ = state.set_recv_buffer_size((&sock).into(), RECV_BUFFER_BYTES);
        Ok(Udp { sock, state })
    }

    /// Waits up to `timeout` for a datagram; whether one is there.
    pub fn readable(&self, timeout: Duration) -> bool {
        wait(&self.sock, PollFlags::IN, timeout)
    }

    /// Receives what is there (non-blocking) into `bufs`; the number of `meta` entries filled.
    pub fn recv(&self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        self.state.recv((&self.sock).into(), &mut slices, meta)
    }

    /// Sends every datagram in `out` (emptying it), consecutive ones of one size to one
    /// endpoint as one segmented send. `scratch` holds a segmented send's bytes.
    pub fn send(&self, out: &mut NetOut, scratch: &mut Vec<u8>) {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut i = 0;
        while i < out.len() {
            let n = gso_run(out, i, max_segments);
            let size = out[i].1.as_ref().len();
            scratch.clear();
            for (_, d) in &out[i..i + n] {
                scratch.extend_from_slice(d.as_ref());
            }
            self.send_one(out[i].0, scratch, (n > 1).then_some(size));
            i += n;
        }
        out.clear();
    }

    /// Sends every datagram in `out` (emptying it) one by one with a plain `sendto`, so
    /// they carry the socket's own TOS (quinn-udp's sends set the TOS byte to their ECN).
    /// For the fast lane: few datagrams, each alone.
    pub fn send_each(&self, out: &mut NetOut) {
        for (to, d) in out.drain(..) {
            if let Err(e) = self.sock.send_to(d.as_ref(), to) {
                tracing::debug!("WireGuard send to {to}: {e}");
            }
        }
    }

    fn send_one(&self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>) {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        loop {
            match self.state.try_send((&self.sock).into(), &t) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !wait(&self.sock, PollFlags::OUT, SEND_WAIT) {
                        tracing::debug!("WireGuard send to {to}: the socket stayed full");
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!("WireGuard send to {to}: {e}");
                    return;
                }
            }
        }
    }
}

/// How many datagrams from `out[i]` on go out as one segmented send: same endpoint, each
/// the size of the first (the last may be shorter), at most `max` and [`MAX_GSO_BYTES`].
fn gso_run(out: &NetOut, i: usize, max: usize) -> usize {
    let (to, size) = (out[i].0, out[i].1.as_ref().len());
    let mut n = 1;
    let mut bytes = size;
    while let Some((next_to, next)) = out.get(i + n) {
        let len = next.as_ref().len();
        let fits = *next_to == to && len > 0 && len <= size && bytes + len <= MAX_GSO_BYTES;
        if !fits || n >= max || size == 0 {
            break;
        }
        n += 1;
        bytes += len;
        if len < size {
            break;
        }
    }
    n
}

/// The DSCP the fast lane's datagrams carry (EF, expedited forwarding), in the TOS byte.
pub const FAST_TOS: u8 = 0xb8;

/// The device's two sockets on `port` (0: one the kernel picks), in one `SO_REUSEPORT`
/// group: the bulk socket, and the fast one, which sends with DSCP EF ([`FAST_TOS`]) and
/// receives the WireGuard data messages that arrive with it (a classic BPF program on the
/// group picks the socket from the IPv4 header's TOS byte and the message's type; handshakes
/// always go to the bulk socket). The port is first bound alone, so this fails, as one
/// socket would, when anything else holds it, `SO_REUSEPORT` or not.
pub fn pair(port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    use nix_sockopt::libc::{sock_filter, sock_fprog};
    use nix_sockopt::sys::socket::{setsockopt, sockopt::AttachReusePortCbpf};
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let why =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    // Held alone for a moment: a socket of another program (or of an earlier device) in a
    // reuseport group of its own would otherwise take a share of the datagrams.
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    let port = probe.local_addr()?.port();
    drop(probe);
    let open = || -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
        Ok(s)
    };
    // The first socket bound is the group's index 0.
    let bulk = open()?;
    let fast = open()?;
    fast.set_tos_v4(u32::from(FAST_TOS))
        .map_err(why("cannot mark the fast socket's datagrams (IP_TOS)"))?;
    let op = |code: u16, jt: u8, jf: u8, k: u32| sock_filter { code, jt, jf, k };
    // SKF_NET_OFF: loads relative to the network header; plain offsets read the UDP payload.
    const SKF_NET_OFF: u32 = 0xfff0_0000;
    /// WireGuard's data message type.
    const DATA: u32 = 4;
    let mut code = [
        op(0x30, 0, 0, SKF_NET_OFF + 1),     // ldb [net + 1]: the TOS byte
        op(0x54, 0, 0, 0xfc),                // and #0xfc: its DSCP
        op(0x15, 0, 3, u32::from(FAST_TOS)), // jeq #EF, else ret #0
        op(0x30, 0, 0, 0),                   // ldb [0]: the message type
        op(0x15, 0, 1, DATA),                // jeq #data, else ret #0
        op(0x06, 0, 0, 1),                   // ret #1: the fast socket
        op(0x06, 0, 0, 0),                   // ret #0: the bulk socket
    ];
    let prog = sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    setsockopt(&bulk, AttachReusePortCbpf, &prog)
        .map_err(io::Error::from)
        .map_err(why(
            "cannot attach the socket pair's steering program (SO_ATTACH_REUSEPORT_CBPF)",
        ))?;
    Ok((bulk.into(), fast.into()))
}

/// Waits up to `timeout` for `flags` on `fd`.
pub fn wait(fd: &impl std::os::fd::AsFd, flags: PollFlags, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, flags)];
    let timeout = Timespec::try_from(timeout).ok();
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use bytes::BytesMut;
    use gotatun::packet::Packet;

    fn out(items: &[(u8, usize)]) -> NetOut {
        items
            .iter()
            .map(|(host, len)| {
                let to = SocketAddr::from(([10, 0, 0, *host], 51871));
                (to, Packet::from_bytes(BytesMut::zeroed(*len)))
            })
            .collect()
    }

    #[test]
    fn equal_datagrams_to_one_endpoint_go_together_and_a_shorter_one_ends_the_run() {
        let o = out(&[(1, 100), (1, 100), (1, 60), (1, 100), (2, 100), (2, 100)]);
        assert_eq!(
            gso_run(&o, 0, 64),
            3,
            "100, 100, then the shorter 60 closes it"
        );
        assert_eq!(gso_run(&o, 3, 64), 1, "another endpoint next");
        assert_eq!(gso_run(&o, 4, 64), 2);
        assert_eq!(gso_run(&o, 0, 2), 2, "the kernel's segment limit");
    }

    /// The socket pair's program steers a data message marked EF to the fast socket, and
    /// everything else (unmarked, another DSCP, a marked handshake) to the bulk one; the fast
    /// socket's own datagrams leave marked (one socket pair answering another, as two devices
    /// do); a port in use is refused.
    #[test]
    fn marked_data_reaches_the_fast_socket_and_the_rest_the_bulk_one() {
        use std::net::{Ipv4Addr, UdpSocket};
        let (bulk, fast) = pair(0).unwrap();
        let port = bulk.local_addr().unwrap().port();
        assert_eq!(fast.local_addr().unwrap().port(), port);
        for s in [&bulk, &fast] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let to = (Ipv4Addr::LOCALHOST, port);
        let sender = |tos: u32| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
            s.set_tos_v4(tos).unwrap();
            UdpSocket::from(s)
        };
        let mut buf = [0u8; 16];
        // (TOS, message, whether the fast socket gets it)
        let cases: [(u32, &[u8], bool); 6] = [
            (u32::from(FAST_TOS), b"\x04data", true),
            (0xb9, b"\x04ef+ecn", true),
            (0, b"\x04plain", false),
            (0x28, b"\x04af11", false),
            (u32::from(FAST_TOS), b"\x01init", false),
            (u32::from(FAST_TOS), b"\x02resp", false),
        ];
        for (tos, what, to_fast) in cases {
            sender(tos).send_to(what, to).unwrap();
            let socket = if to_fast { &fast } else { &bulk };
            let (n, _) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], what, "TOS {tos:#x}");
        }
        let (_bulk2, fast2) = pair(0).unwrap();
        let other = fast2.local_addr().unwrap().port();
        fast2
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        fast.send_to(b"\x04back", (Ipv4Addr::LOCALHOST, other))
            .unwrap();
        let (n, _) = fast2.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x04back");
        for s in [&bulk, &fast] {
            s.set_nonblocking(true).unwrap();
            assert!(s.recv_from(&mut buf).is_err(), "nothing else arrived");
        }
        assert!(pair(port).is_err(), "the port is taken");
    }

    #[test]
    fn a_longer_datagram_or_64_kb_ends_the_run() {
        let o = out(&[(1, 100), (1, 200)]);
        assert_eq!(gso_run(&o, 0, 64), 1);
        let big = out(&[(1, 1500); 60]);
        assert_eq!(gso_run(&big, 0, 64), MAX_GSO_BYTES / 1500);
    }
}
