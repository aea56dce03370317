//! The control socket between ward-agent and its device process: JSON lines over a Unix
//! stream socket in the agent's run directory ([`SOCKET`], mode 0600, and only a client with
//! the device's own user id is served). The device greets every connection with its
//! protocol version and process id ([`Greeting`]); then each [`Request`] gets one [`Reply`].
//!
//! The private key crosses only this socket ([`Secret`] prints as `<redacted>`, and neither
//! side logs a request), never a command line, an environment variable or a log.

use super::super::PeerSpec;
use anyhow::{Context, Result, bail};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The control socket's name in the run directory.
pub const SOCKET: &str = "wireguard.sock";
/// The device process's log in the run directory.
pub const LOG: &str = "wireguard-device.log";
/// The protocol version; an agent that finds a device speaking another one replaces it.
pub const PROTOCOL: u32 = 1;

/// What the device says first on every connection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Greeting {
    /// [`PROTOCOL`] of the device's build.
    pub protocol: u32,
    /// The device process.
    pub pid: u32,
}

/// A private key on its way to the device. Prints as `<redacted>`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub [u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how the device runs its interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Setup {
    /// The network namespace the TUN and the UDP socket are opened in.
    pub netns: PathBuf,
    /// The TUN interface's name.
    pub ifname: String,
    /// The UDP listen port.
    pub port: u16,
    /// The largest packet.
    pub mtu: u32,
    /// The private key.
    pub key: Secret,
}

impl Setup {
    /// Whether a device running `self` can serve `other` as it is (the key aside).
    pub fn same_interface(&self, other: &Setup) -> bool {
        (&self.netns, &self.ifname, self.port, self.mtu)
            == (&other.netns, &other.ifname, other.port, other.mtu)
    }
}

/// One request to the device.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Run this interface: keep a running one that matches (switching its key if it
    /// differs), else replace it.
    Setup(Setup),
    /// Switch to this key (sessions end, peers stay).
    SetKey {
        /// The new key.
        key: Secret,
    },
    /// Add a peer the device does not have.
    AddPeer(PeerSpec),
    /// Remove a peer (nothing when it is not there).
    RemovePeer {
        /// Its public key.
        key: Key,
    },
    /// The peers with handshakes and byte counts.
    Read,
    /// Start handshakes now towards the peers of these addresses.
    Initiate {
        /// Addresses inside the peers' allowed IPs.
        targets: Vec<Ipv4Addr>,
    },
    /// Remove the interface and exit.
    Shutdown,
}

/// The device's answer to one request.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    /// Done.
    Done,
    /// [`Request::Setup`]: whether the running interface (and its peers and sessions) was kept.
    Setup {
        /// Kept rather than created.
        kept: bool,
    },
    /// [`Request::Read`].
    Host(Host),
    /// The request failed.
    Error(String),
}

/// Writes `msg` as one JSON line.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// The longest line either side accepts (a `Host` with a few thousand peers).
const MAX_LINE: usize = 4 << 20;

/// Reads one JSON line; `None` at the end of the stream.
pub fn receive<T: DeserializeOwned>(r: &mut impl BufRead) -> Result<Option<T>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        bail!("a message on the WireGuard control socket was cut off or too long");
    }
    serde_json::from_slice(&line)
        .map(Some)
        .context("unreadable message on the WireGuard control socket")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_setup_travels_as_one_line_and_never_prints_its_key() {
        let setup = Setup {
            netns: PathBuf::from("/run/netns/n1"),
            ifname: "cilium_wg0".into(),
            port: 51871,
            mtu: 1420,
            key: Secret([7; 32]),
        };
        assert_eq!(format!("{setup:?}").matches("<redacted>").count(), 1);
        assert!(!format!("{setup:?}").contains("7, 7"));
        let mut buf = Vec::new();
        send(&mut buf, &Request::Setup(setup.clone())).unwrap();
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
        let back: Request = receive(&mut &buf[..]).unwrap().unwrap();
        let Request::Setup(back) = back else {
            panic!("not a setup")
        };
        assert_eq!(back, setup);
        assert!(back.same_interface(&Setup {
            key: Secret([8; 32]),
            ..setup.clone()
        }));
        assert!(!back.same_interface(&Setup { port: 1, ..setup }));
    }

    #[test]
    fn a_peer_and_a_host_survive_the_trip() {
        let spec = PeerSpec {
            key: Key::new([3; 32]),
            endpoint: "172.30.0.12:51871".parse().unwrap(),
            allowed: vec!["10.200.2.0/24".parse().unwrap()],
            keepalive: Some(25),
        };
        let mut buf = Vec::new();
        send(&mut buf, &Request::AddPeer(spec.clone())).unwrap();
        let Some(Request::AddPeer(back)) = receive(&mut &buf[..]).unwrap() else {
            panic!("not a peer")
        };
        assert_eq!(back, spec);
        let mut host = Host::new(51871, Key::new([1; 32]));
        host.private_key = None;
        host.peers.insert(spec.key.clone(), spec.to_peer());
        buf.clear();
        send(&mut buf, &Reply::Host(host)).unwrap();
        let Some(Reply::Host(h)) = receive(&mut &buf[..]).unwrap() else {
            panic!("not a host")
        };
        assert_eq!(h.peers[&spec.key].allowed_ips, spec.allowed);
        assert_eq!(h.peers[&spec.key].endpoint, Some(spec.endpoint));
    }

    #[test]
    fn the_end_of_the_stream_and_a_cut_line_are_told_apart() {
        assert!(receive::<Reply>(&mut &b""[..]).unwrap().is_none());
        assert!(receive::<Reply>(&mut &b"\"done\""[..]).is_err());
        assert!(receive::<Reply>(&mut &b"{nonsense\n"[..]).is_err());
    }
}
