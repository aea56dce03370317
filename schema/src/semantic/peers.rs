//! L3 peers (§3 rules 7–12): peer families, node peers, entities, CIDRs, CIDR sets, FQDNs.

use super::selector::did_you_mean;
use super::{Checker, Unless, check_selector, non_empty};
use crate::diagnostic::codes;
use serde_json::Value;
use std::net::IpAddr;

/// Peer families of an ingress rule, in the order Cilium names them.
const INGRESS_FAMILIES: [(&str, &str); 6] = [
    ("fromEndpoints", "FromEndpoints"),
    ("fromCIDR", "FromCIDR"),
    ("fromCIDRSet", "FromCIDRSet"),
    ("fromEntities", "FromEntities"),
    ("fromNodes", "FromNodes"),
    ("fromGroups", "FromGroups"),
];

/// Peer families of an egress rule.
const EGRESS_FAMILIES: [(&str, &str); 8] = [
    ("toCIDR", "ToCIDR"),
    ("toCIDRSet", "ToCIDRSet"),
    ("toEndpoints", "ToEndpoints"),
    ("toEntities", "ToEntities"),
    ("toServices", "ToServices"),
    ("toGroups", "ToGroups"),
    ("toNodes", "ToNodes"),
    ("toFQDNs", "ToFQDNs"),
];

/// Entities the CRD's enum accepts.
pub const CRD_ENTITIES: [&str; 11] = [
    "all",
    "world",
    "cluster",
    "host",
    "init",
    "ingress",
    "unmanaged",
    "remote-node",
    "health",
    "none",
    "kube-apiserver",
];

/// Entities the agent accepts but the CRD rejects (a PolicyTest may name them as a flow's
/// end: an IPv4 or an IPv6 address outside the cluster).
pub(crate) const AGENT_ONLY_ENTITIES: [&str; 2] = ["world-ipv4", "world-ipv6"];

pub(crate) fn check_peers(c: &mut Checker, item: &Value, ingress: bool, deny: bool) {
    let families: &[(&str, &str)] = if ingress {
        &INGRESS_FAMILIES
    } else {
        &EGRESS_FAMILIES
    };
    let present: Vec<&(&str, &str)> = families
        .iter()
        .filter(|(key, _)| !(deny && *key == "toFQDNs"))
        .filter(|(key, _)| non_empty(item, key).is_some())
        .collect();
    if let [first, second, ..] = present.as_slice() {
        c.at(second.0, |c| {
            c.error_at_key(
                codes::PEER_COMBINATION,
                format!(
                    "combining {} and {} is not supported yet",
                    first.1, second.1
                ),
            )
            .hint("put each kind of peer in its own rule; rules are ORed");
        });
    }
    let (p, selectors, nodes, cidr, cidr_set, entities) = if ingress {
        (
            "from",
            "fromEndpoints",
            "fromNodes",
            "fromCIDR",
            "fromCIDRSet",
            "fromEntities",
        )
    } else {
        (
            "to",
            "toEndpoints",
            "toNodes",
            "toCIDR",
            "toCIDRSet",
            "toEntities",
        )
    };
    let _ = p;
    c.each(item, selectors, check_selector);
    let requires = if ingress {
        "fromRequires"
    } else {
        "toRequires"
    };
    if c.cilium.has_requires() && item.get(requires).is_some() {
        c.at(requires, |c| {
            // ward's own notice, not a message of Cilium's: no "Invalid ... spec" prefix.
            let prefix = std::mem::take(&mut c.prefix);
            c.error_at_key(
                codes::DEPRECATED,
                format!("{requires} is deprecated in Cilium {} and removed in 1.19", c.cilium),
            )
            .downgrade()
            .hint("before upgrading to 1.19, express the requirement in each fromEndpoints/toEndpoints selector (or with a deny rule)");
            c.prefix = prefix;
        });
        c.each(item, requires, check_selector);
    }
    if non_empty(item, nodes).is_some() {
        c.at(nodes, |c| {
            c.error_at_key(
                codes::NODE_PEERS,
                "FromNodes/ToNodes rules can only be applied when the \"enable-node-selector-labels\" flag is set",
            )
            .unless(Unless::NodeSelectorLabels)
            .hint("set spec.enable-node-selector-labels: true in the CiliumConfig, or use the remote-node entity");
        });
        c.each(item, nodes, check_selector);
    }
    c.each(item, entities, check_entity);
    c.each(item, cidr, |c, v| {
        if let Some(s) = v.as_str() {
            check_cidr(c, s);
        }
    });
    c.each(item, cidr_set, check_cidr_rule);
    if !ingress {
        c.each(item, "toServices", |c, svc| {
            if let Some(sel) = svc
                .get("k8sServiceSelector")
                .and_then(|s| s.get("selector"))
                .filter(|v| v.is_object())
            {
                c.at("k8sServiceSelector", |c| {
                    c.at("selector", |c| check_selector(c, sel))
                });
            }
        });
        if !deny {
            c.each(item, "toFQDNs", check_fqdn_selector);
        }
    }
}

fn check_entity(c: &mut Checker, v: &Value) {
    let Some(e) = v.as_str() else { return };
    if CRD_ENTITIES.contains(&e) {
        return;
    }
    if AGENT_ONLY_ENTITIES.contains(&e) {
        c.error(codes::ENTITY, format!("entity \"{e}\" is accepted by the agent but not by the CRD's enum, so the API server rejects it"))
            .hint("use \"world\", which covers both IPv4 and IPv6");
        return;
    }
    let hint = did_you_mean(e, &CRD_ENTITIES).map_or_else(
        || format!("entities are: {}", CRD_ENTITIES.join(", ")),
        |s| format!("did you mean \"{s}\"?"),
    );
    c.error(codes::ENTITY, format!("unsupported entity: {e}"))
        .hint(hint);
}

/// A parsed prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Parses `addr/len` (netip.ParsePrefix); an error says why in Go's words.
    pub(crate) fn parse(s: &str) -> Result<Prefix, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("netip.ParsePrefix(\"{s}\"): no '/'"))?;
        let addr: IpAddr = a.parse().map_err(|_| {
            format!("netip.ParsePrefix(\"{s}\"): ParseAddr(\"{a}\"): unable to parse IP")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = l
            .parse()
            .ok()
            .filter(|n| *n <= max && (l.len() == 1 || !l.starts_with('0')))
            .ok_or_else(|| format!("netip.ParsePrefix(\"{s}\"): bad bits after slash: \"{l}\""))?;
        Ok(Prefix { addr, len })
    }

    /// The prefix length.
    pub(crate) fn prefix_len(&self) -> u8 {
        self.len
    }

    fn bits(&self) -> (u128, u32) {
        match self.addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    /// Whether `other` lies inside this prefix (same family).
    pub(crate) fn contains(&self, other: &Prefix) -> bool {
        let (a, fa) = self.bits();
        let (b, fb) = other.bits();
        if fa != fb || other.len < self.len {
            return false;
        }
        let width = u32::from(self.len);
        if width == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - width);
        (a & mask) == (b & mask)
    }
}

/// `fromCIDR`/`toCIDR` entries and excepts: a prefix or a plain address.
fn check_cidr(c: &mut Checker, s: &str) {
    if s.is_empty() {
        c.error(codes::CIDR, "IP must be specified");
        return;
    }
    if Prefix::parse(s).is_ok() || s.parse::<IpAddr>().is_ok() {
        return;
    }
    c.error(
        codes::CIDR,
        format!("unable to parse CIDR: ParseAddr(\"{s}\"): unable to parse IP"),
    )
    .hint("write an address (10.0.0.1) or a prefix (10.0.0.0/8)");
}

fn check_cidr_rule(c: &mut Checker, rule: &Value) {
    let set: Vec<&str> = ["cidr", "cidrGroupRef", "cidrGroupSelector"]
        .into_iter()
        .filter(|k| rule.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    match set.len() {
        0 => {
            c.error(
                codes::CIDR,
                "one of cidr, cidrGroupRef, or cidrGroupSelector is required",
            );
        }
        1 => {}
        _ => {
            c.at(set[1], |c| {
                c.error_at_key(
                    codes::CIDR,
                    "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set",
                );
            });
        }
    }
    let allow = match rule.get("cidr").and_then(Value::as_str) {
        Some(cidr) => match Prefix::parse(cidr) {
            Ok(p) => Some((cidr, p)),
            Err(e) => {
                c.at("cidr", |c| {
                    c.error(
                        codes::CIDR,
                        format!("unable to parse CIDRRule \"{cidr}\": {e}"),
                    )
                    .hint("cidr needs a prefix length, e.g. 10.0.0.0/8");
                });
                None
            }
        },
        None => None,
    };
    c.each(rule, "except", |c, v| {
        let Some(ex) = v.as_str() else { return };
        match Prefix::parse(ex) {
            Err(e) => {
                c.error(
                    codes::CIDR,
                    format!("unable to parse CIDRRule \"{ex}\": {e}"),
                );
            }
            Ok(exp) => {
                if let Some((cidr, p)) = &allow
                    && !p.contains(&exp)
                {
                    c.error(
                        codes::CIDR,
                        format!(
                            "allow CIDR prefix {cidr} does not contain exclude CIDR prefix {ex}"
                        ),
                    )
                    .hint("each except prefix must lie inside cidr");
                }
            }
        }
    });
    if let Some(sel) = rule.get("cidrGroupSelector").filter(|v| v.is_object()) {
        c.at("cidrGroupSelector", |c| {
            let before = c.out.len();
            check_selector(c, sel);
            for f in &mut c.out[before..] {
                f.message = f.message.replacen(
                    "invalid label selector",
                    "failed to parse cidrGroupSelector",
                    1,
                );
            }
        });
    }
}

/// `toFQDNs[]` and `rules.dns[]` items.
pub(crate) fn check_fqdn_selector(c: &mut Checker, sel: &Value) {
    let name = sel.get("matchName").and_then(Value::as_str);
    let pattern = sel.get("matchPattern").and_then(Value::as_str);
    match (name, pattern) {
        (Some(_), Some(_)) => {
            c.error(
                codes::FQDN,
                "only one of MatchName or MatchPattern is allowed in an FQDNSelector",
            );
        }
        (None, None) => {
            c.error(
                codes::FQDN,
                "one of MatchName or MatchPattern is required in an FQDNSelector",
            );
        }
        _ => {}
    }
    if let Some(n) = name {
        c.at("matchName", |c| {
            if n.len() > 255 {
                c.error(codes::FQDN, format!("Invalid MatchName: \"{n}\". Must be <= 255 characters long."));
            } else if !n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
                c.error(
                    codes::FQDN,
                    format!("Invalid characters in MatchName: \"{n}\". Only 0-9, a-z, A-Z and ., -, _ characters are allowed"),
                )
                .hint(if n.contains('*') {
                    "use matchPattern for wildcards"
                } else {
                    "a DNS name has only letters, digits, '.', '-' and '_'"
                });
            }
        });
    }
    if let Some(p) = pattern {
        c.at("matchPattern", |c| {
            if p.len() > 255 {
                c.error(codes::FQDN, format!("Invalid MatchPattern: \"{p}\". Must be <= 255 characters long."));
            } else if !p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*')) {
                c.error(
                    codes::FQDN,
                    format!("Invalid characters in MatchPattern: \"{p}\". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed"),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_contain() {
        let p = Prefix::parse("10.0.0.0/8").expect("valid");
        assert!(p.contains(&Prefix::parse("10.1.0.0/16").expect("valid")));
        assert!(!p.contains(&Prefix::parse("11.0.0.0/16").expect("valid")));
        assert!(!p.contains(&Prefix::parse("0.0.0.0/0").expect("valid")));
        assert!(!p.contains(&Prefix::parse("::/64").expect("valid")));
        let all = Prefix::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains(&p));
        let v6 = Prefix::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains(&Prefix::parse("2001:db8:1::/48").expect("valid")));
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("10.0.0.0").is_err());
    }
}
