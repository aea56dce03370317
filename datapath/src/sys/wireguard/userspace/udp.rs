//! The device's UDP socket, batched: datagrams of one size to one endpoint leave in one
//! `sendmsg` with UDP segmentation offload (`UDP_SEGMENT`, up to 64 KB), and up to 32 reads'
//! worth of coalesced datagrams (`UDP_GRO`) arrive in one `recvmmsg` (quinn-udp does both).

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

/// Waits up to `timeout` for `flags` on `fd`.
pub fn wait(fd: &impl std::os::fd::AsFd, flags: PollFlags, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, flags)];
    let timeout = Timespec::try_from(timeout).ok();
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_longer_datagram_or_64_kb_ends_the_run() {
        let o = out(&[(1, 100), (1, 200)]);
        assert_eq!(gso_run(&o, 0, 64), 1);
        let big = out(&[(1, 1500); 60]);
        assert_eq!(gso_run(&big, 0, 64), MAX_GSO_BYTES / 1500);
    }
}
