//! What the desired state asks of the mesh: the CiliumConfig's encryption settings, read the
//! way the agent needs them.

use std::time::Duration;
use ward_schema::model::{CiliumConfigSpec, WIREGUARD_DEFAULT_PORT};
use ward_schema::{Kind, ResourceSet};

/// The mesh settings of an enabled WireGuard encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// The underlay interface whose address peers use as this node's endpoint; `None` means
    /// the interface that holds the node's address.
    pub underlay: Option<String>,
    /// UDP listen port (51871 unless configured).
    pub listen_port: u16,
    /// How long a key pair is used before the node rotates it.
    pub rotation_interval: Duration,
    /// Persistent keepalive towards every peer, in seconds (`None`: off).
    pub keepalive: Option<u16>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            underlay: None,
            listen_port: WIREGUARD_DEFAULT_PORT,
            rotation_interval: Duration::from_secs(24 * 3600),
            keepalive: None,
        }
    }
}

/// What the CiliumConfig in a revision says about encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Encryption off (or no CiliumConfig): no interface, pod traffic between nodes in clear.
    Off,
    /// WireGuard on with these settings.
    On(MeshConfig),
    /// Encryption asked for but not possible as written (the message says why). The agent
    /// fails closed: no cross-node pod traffic until the config is fixed.
    Invalid(String),
}

impl Wanted {
    /// Whether cross-node pod traffic must be encrypted (on, or asked for but invalid).
    pub fn requires_encryption(&self) -> bool {
        !matches!(self, Wanted::Off)
    }
}

/// Reads the CiliumConfig of `resources` (the first one; validation refuses two).
pub fn from_resources(resources: &ResourceSet) -> Wanted {
    let Some(r) = resources.iter().find(|r| r.key.kind == Kind::CiliumConfig) else {
        return Wanted::Off;
    };
    let spec = r
        .object
        .get("spec")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    match serde_json::from_value::<CiliumConfigSpec>(spec) {
        Ok(spec) => from_spec(&spec),
        Err(e) => {
            // Unreadable is treated as "asked for" only when it says so; otherwise off.
            let wants = r
                .object
                .pointer("/spec/enable-encryption")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            if wants {
                Wanted::Invalid(format!("CiliumConfig {} does not parse: {e}", r.key.name))
            } else {
                Wanted::Off
            }
        }
    }
}

/// Interprets a CiliumConfig spec: on when `enable-encryption` is true, the type is
/// `wireguard` and `encryption.wireguard.enabled` is not false.
pub fn from_spec(spec: &CiliumConfigSpec) -> Wanted {
    if !spec.enable_encryption {
        return Wanted::Off;
    }
    let Some(enc) = &spec.encryption else {
        return Wanted::Invalid("enable-encryption is true but encryption.type is not set; set encryption.type: wireguard".into());
    };
    match enc.r#type.as_str() {
        "wireguard" => {}
        "" => return Wanted::Invalid("enable-encryption is true but encryption.type is not set; set encryption.type: wireguard".into()),
        other => {
            return Wanted::Invalid(format!(
                "encryption type {other:?} is not supported by ward (only \"wireguard\"); cross-node pod traffic is blocked until it is fixed"
            ));
        }
    }
    let wg = enc
        .wireguard
        .clone()
        .unwrap_or_else(|| ward_schema::model::WireguardConfig {
            enabled: true,
            ..Default::default()
        });
    if !wg.enabled {
        return Wanted::Off;
    }
    let rotation_interval = match wg.rotation_interval() {
        Ok(d) if d >= Duration::from_secs(1) => d,
        Ok(d) => {
            return Wanted::Invalid(format!(
                "key-rotation-interval {d:?} is too short (at least 1s)"
            ));
        }
        Err(e) => return Wanted::Invalid(e),
    };
    let keepalive = match wg.keepalive_interval() {
        Ok(d) if d.is_zero() => None,
        Ok(d) => Some(u16::try_from(d.as_secs().max(1)).unwrap_or(u16::MAX)),
        Err(e) => return Wanted::Invalid(e),
    };
    if wg.listen_port == 0 {
        return Wanted::Invalid("encryption.wireguard.listen-port must not be 0".into());
    }
    Wanted::On(MeshConfig {
        underlay: wg.interface.clone().filter(|s| !s.is_empty()),
        listen_port: wg.listen_port,
        rotation_interval,
        keepalive,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> CiliumConfigSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn design_form_is_on_with_defaults() {
        let w = from_spec(&spec(
            json!({"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "interface": "eth0"}}}),
        ));
        let Wanted::On(c) = w else { panic!("{w:?}") };
        assert_eq!(c.underlay.as_deref(), Some("eth0"));
        assert_eq!(c.listen_port, 51871);
        assert_eq!(c.rotation_interval, Duration::from_secs(86400));
        assert_eq!(c.keepalive, None);
    }

    #[test]
    fn off_unless_enabled() {
        assert_eq!(from_spec(&spec(json!({}))), Wanted::Off);
        assert_eq!(
            from_spec(&spec(
                json!({"enable-encryption": false, "encryption": {"type": "wireguard"}})
            )),
            Wanted::Off
        );
        assert_eq!(
            from_spec(&spec(
                json!({"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": false}}})
            )),
            Wanted::Off
        );
    }

    #[test]
    fn unknown_type_is_invalid_and_still_requires_encryption() {
        let w = from_spec(&spec(
            json!({"enable-encryption": true, "encryption": {"type": "ipsec"}}),
        ));
        let Wanted::Invalid(m) = &w else {
            panic!("{w:?}")
        };
        assert!(m.contains("\"ipsec\" is not supported"), "{m}");
        assert!(w.requires_encryption());
    }

    #[test]
    fn rotation_and_keepalive_are_read() {
        let w = from_spec(&spec(
            json!({"enable-encryption": true, "encryption": {"type": "wireguard", "wireguard": {"enabled": true, "listen-port": 51000, "key-rotation-interval": "90s", "persistent-keepalive": "25s"}}}),
        ));
        let Wanted::On(c) = w else { panic!("{w:?}") };
        assert_eq!(
            (c.listen_port, c.rotation_interval, c.keepalive),
            (51000, Duration::from_secs(90), Some(25))
        );
    }
}
