//! The Cilium releases ward validates for (`--cilium-version`): each has its own JSON Schema,
//! generated from that release's CRDs (`schema/crds/<minor>/`, pinned in `ci/crds/releases`),
//! and the semantic rules that differ between releases ask [`CiliumVersion`] what applies.

use std::fmt;
use std::str::FromStr;

/// A Cilium minor version ward has schemas and rules for. The default is the newest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CiliumVersion {
    /// Cilium 1.17 (CRDs of v1.17.17).
    V1_17,
    /// Cilium 1.18 (CRDs of v1.18.11).
    V1_18,
    /// Cilium 1.19 (CRDs of v1.19.7), the default.
    #[default]
    V1_19,
}

impl CiliumVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CiliumVersion; 3] = [
        CiliumVersion::V1_17,
        CiliumVersion::V1_18,
        CiliumVersion::V1_19,
    ];

    /// The minor version as users write it (`1.19`).
    pub fn minor(self) -> &'static str {
        match self {
            CiliumVersion::V1_17 => "1.17",
            CiliumVersion::V1_18 => "1.18",
            CiliumVersion::V1_19 => "1.19",
        }
    }

    /// Whether `fromRequires` / `toRequires` are selector lists (before 1.19; from 1.19 on
    /// they are gone: deprecated lists that must stay empty).
    pub fn has_requires(self) -> bool {
        self < CiliumVersion::V1_19
    }

    /// The protocols `toPorts[].ports[].protocol` accepts (1.19 added VRRP and IGMP).
    pub fn port_protocols(self) -> &'static [&'static str] {
        if self >= CiliumVersion::V1_19 {
            &["TCP", "UDP", "SCTP", "VRRP", "IGMP", "ANY"]
        } else {
            &["TCP", "UDP", "SCTP", "ANY"]
        }
    }
}

impl fmt::Display for CiliumVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.minor())
    }
}

impl FromStr for CiliumVersion {
    type Err = String;

    /// `1.19`, `v1.19` or a patch release such as `1.19.7` (the rules are per minor version).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches('v');
        let minor = match t.splitn(3, '.').collect::<Vec<_>>()[..] {
            [a, b] | [a, b, _] => format!("{a}.{b}"),
            _ => String::new(),
        };
        CiliumVersion::ALL
            .into_iter()
            .find(|v| v.minor() == minor)
            .ok_or_else(|| {
                format!(
                    "unsupported Cilium version {s:?}: ward has schemas for {}",
                    CiliumVersion::ALL.map(|v| v.minor()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_and_patch_versions() {
        assert_eq!("1.18".parse(), Ok(CiliumVersion::V1_18));
        assert_eq!("v1.17".parse(), Ok(CiliumVersion::V1_17));
        assert_eq!("1.19.7".parse(), Ok(CiliumVersion::V1_19));
        let err = "1.16"
            .parse::<CiliumVersion>()
            .expect_err("1.16 is not supported");
        assert!(err.contains("1.17, 1.18, 1.19"), "{err}");
        assert!("119".parse::<CiliumVersion>().is_err());
        assert_eq!(CiliumVersion::default(), CiliumVersion::V1_19);
        assert_eq!(CiliumVersion::ALL.last(), Some(&CiliumVersion::default()));
    }

    #[test]
    fn release_dependent_rules() {
        assert!(CiliumVersion::V1_18.has_requires());
        assert!(!CiliumVersion::V1_19.has_requires());
        assert!(!CiliumVersion::V1_18.port_protocols().contains(&"VRRP"));
        assert!(CiliumVersion::V1_19.port_protocols().contains(&"IGMP"));
    }
}
