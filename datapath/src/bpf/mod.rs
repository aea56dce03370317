//! The eBPF datapath: programs in `datapath/bpf/`, compiled by build.rs, loaded and
//! attached with aya; map layouts shared with the C code.
//!
//! - [`maps`]: the `#[repr(C)]` mirrors of the C structs, map names, policy-key helpers.
//! - [`node_maps`]: [`NodeMaps`], typed handles on a node's pinned maps.
//! - [`loader`]: [`NodeDatapath`], which loads the programs with the node's maps pinned under
//!   [`PIN_ROOT`]`/<node>/` and attaches them to pod veths inside a network namespace.
//! - [`events`]: [`EventReader`], the verdict ring buffer read from its pin by any process.
//!
//! Enforcement outlives the agent: maps are pinned and TC filters stay attached when the
//! process exits, so a restart (or a SIGKILL) never opens the node up; the datapath fails
//! closed (an interface without an endpoint entry drops everything, an endpoint without
//! policy entries in a direction drops that direction).

pub mod events;
pub mod loader;
pub mod maps;
pub mod node_maps;

use std::path::PathBuf;

use anyhow::{Result, bail};

pub use events::{EventReader, VerdictEvent};
pub use loader::NodeDatapath;
pub use maps::{
    CounterKey, CounterValue, CtKey, CtValue, EndpointInfo, PolicyKey, PolicyValue, Verdict,
    port_range_prefixes,
};
pub use node_maps::{Counter, IpcacheEntry, MapSize, NodeMaps};
pub use ward_engine::Direction;

/// Root of ward's pins on bpffs; each node has a directory `<PIN_ROOT>/<node>/`.
pub const PIN_ROOT: &str = "/sys/fs/bpf/ward";

/// The pin directory of `node` (`<PIN_ROOT>/<node>`). The name must be a plain path
/// component: ASCII letters, digits, `.`, `_`, `-`, not `.` or `..`, at most 64 bytes.
pub fn pin_dir(node: &str) -> Result<PathBuf> {
    let ok = !node.is_empty()
        && node.len() <= 64
        && node != "."
        && node != ".."
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "invalid node name {node:?} for a BPF pin directory: use letters, digits, '.', '_' \
             and '-' (at most 64)"
        );
    }
    Ok(PathBuf::from(PIN_ROOT).join(node))
}

/// Removes the pins of `node` (`<PIN_ROOT>/<node>`), e.g. when a lab is torn down. Maps
/// still used by attached programs live on until those filters are gone; a missing
/// directory is not an error.
pub fn remove_pins(node: &str) -> Result<()> {
    let dir = pin_dir(node)?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_dir_names() {
        assert_eq!(
            pin_dir("node-1").ok(),
            Some(PathBuf::from("/sys/fs/bpf/ward/node-1"))
        );
        for bad in ["", ".", "..", "a/b", "x y", &"n".repeat(65)] {
            assert!(pin_dir(bad).is_err(), "{bad:?}");
        }
    }

    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        assert_send::<NodeDatapath>();
        assert_send::<NodeMaps>();
        assert_sync::<NodeMaps>();
        assert_send::<EventReader>();
    }
}
