//! Transparent encryption: a WireGuard mesh between nodes, driven by the CiliumConfig.
//!
//! With `enable-encryption: true` and `encryption.type: wireguard`, every agent:
//! 1. loads its node's private key from `cilium_wg0.key` in its key directory (32 raw bytes,
//!    mode 0600, Cilium's format), or generates one; the private key is written nowhere else
//!    and never logged ([`keys::PrivateKey`] prints as `<redacted>`);
//! 2. creates `cilium_wg0` in the node's namespace: kernel WireGuard where the module exists,
//!    else ward's userspace device over TUN ([`crate::sys::wireguard::userspace`]), which
//!    runs in a process of its own and outlives the agent: a restarted agent attaches to it
//!    and keeps the peers (and sessions) it still wants; listen port 51871 unless
//!    configured; MTU of the underlay minus 80;
//! 3. publishes its public key and endpoint (the underlay interface's address) in the
//!    registry ([`registry`]: the local target's state directory; in kube mode the Node
//!    annotation `network.cilium.io/wg-pub-key`);
//! 4. configures every other node that published a key as a peer (allowed IPs: its node
//!    address and its pod CIDR) and routes that node's pod CIDR into `cilium_wg0`. Same-node
//!    traffic never touches the tunnel. Two nodes with the same public key are refused
//!    ("detected duplicate public key"), as Cilium does.
//!
//! # Failing closed
//! While encryption is required, pod traffic to another node is never sent in clear: each
//! remote pod CIDR has an `unreachable` route (metric 4096) behind its tunnel route, so when
//! the interface is missing (the userspace device's process died, and its TUN with it; the
//! agent notices on its next tick and starts a new device) or a node has no key yet, that traffic is dropped with ICMP unreachable. When encryption is
//! asked for but cannot be set up (an unknown encryption type, a missing underlay interface, an
//! unreadable, unwritable or corrupt key file), the interface is removed, the node's record is
//! withdrawn (so peers stop sending to it) and every remote pod CIDR is unreachable; the reason
//! is in `ward-agent status` and the log. Turning encryption off in Git removes the interface
//! and the record and restores the clear routes.
//!
//! # Key rotation (make before break)
//! Cilium never rotates node keys; ward does, every `key-rotation-interval` (default 24h) and
//! on `ward-agent rotate-key`. A WireGuard interface has one private key, and a peer is known
//! by its public key, so a node cannot simply switch: its peers would drop its traffic until
//! they learned the new key. Node A rotates in three steps:
//! 1. **Announce.** A writes the new key to `cilium_wg0.next.key` and publishes its public half
//!    as `nextPublicKey`, still using the old key.
//! 2. **Prepare.** Every peer B adds a second peer for A's next key, with A's addresses, after
//!    the one for A's current key, and publishes `prepared: {A: <next key>}`. In the userspace
//!    device the peer added last takes A's addresses for B's outgoing packets, which wait in
//!    that peer's queue (up to 1024) until its session exists; packets A sends with the old key are
//!    still accepted from the old peer, which keeps its own allowed IPs.
//! 3. **Switch.** When every peer has prepared (or after [`ROTATION_WAIT`]), A sets the new key
//!    on its interface, renames the key file, publishes the new key as `publicKey`, and sends
//!    one datagram into the tunnel towards each peer so the new handshakes start at once. B,
//!    the responder, sends its queued packets as soon as A's first packet confirms the session
//!    (the device's rules for when it sends and when it initiates are in
//!    [`crate::sys::wireguard::userspace`]'s `peers` module). Seeing A's new
//!    record, B removes the peer for the old key.
//!
//! Traffic pauses for B→A only between steps 2 and 3 (milliseconds, queued, not dropped) and
//! for a handshake's round trip. A crash at any step leaves a state the next start completes:
//! the next key file survives, and the announce step is repeated.

pub mod config;
pub mod keys;
mod mesh;
pub mod registry;

pub use config::{MeshConfig, Wanted};
pub use mesh::{ClearRouting, Mesh, ROTATE_REQUEST};

use std::time::Duration;

/// The interface name (Cilium's).
pub const IFNAME: &str = "cilium_wg0";
/// What WireGuard adds to a packet, taken off the underlay MTU (Cilium's figure).
pub const MTU_OVERHEAD: u32 = 80;
/// How long a rotating node waits for its peers to prepare before it switches anyway.
pub const ROTATION_WAIT: Duration = Duration::from_secs(10);
