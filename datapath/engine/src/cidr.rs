//! IP prefixes for `fromCIDR`/`toCIDR`/`CIDRSet` peers (reference §2 CIDRRule).

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 prefix, stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Parses `addr/len` or a bare address (a host prefix), as Cilium accepts for CIDR peers.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|e| format!("unable to parse CIDR {s:?}: {e}"))?;
        let max = max_len(addr);
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("unable to parse CIDR {s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Prefix::new(addr, len))
    }

    /// The prefix of `len` bits containing `addr` (`len` is capped at the family's width).
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let len = len.min(max_len(addr));
        Prefix {
            addr: mask(addr, len),
            len,
        }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is a `/0` prefix (the whole address family).
    pub fn is_default_route(&self) -> bool {
        self.len == 0
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Whether `ip` is inside the prefix (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_family(self.addr, ip) && mask(ip, self.len) == self.addr
    }

    /// Whether `other` is inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// A CIDR peer: a prefix minus its exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CidrPeer {
    /// The allowed (or denied) prefix.
    pub prefix: Prefix,
    /// Sub-prefixes that are excluded.
    pub except: Vec<Prefix>,
}

impl CidrPeer {
    /// Whether `ip` is in the prefix and in none of the exceptions.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefix.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }
}

impl fmt::Display for CidrPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        for e in &self.except {
            write!(f, " except {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_contains() {
        let p = Prefix::parse("10.1.2.3/8").unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!(p.contains(ip("10.200.0.1")) && !p.contains(ip("11.0.0.1")));
        assert!(!p.contains(ip("::ffff:10.0.0.1")), "families never mix");
        assert_eq!(Prefix::parse("192.0.2.7").unwrap().prefix_len(), 32);
        assert_eq!(
            Prefix::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(
            Prefix::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.10"))
        );
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("nope").is_err());
        assert!(p.covers(&Prefix::parse("10.5.0.0/16").unwrap()));
        assert!(!Prefix::parse("10.5.0.0/16").unwrap().covers(&p));
    }

    #[test]
    fn except_carves_holes() {
        let c = CidrPeer {
            prefix: Prefix::parse("0.0.0.0/0").unwrap(),
            except: vec![Prefix::parse("10.0.0.0/8").unwrap()],
        };
        assert!(c.contains(ip("203.0.113.10")));
        assert!(!c.contains(ip("10.1.1.1")));
        assert_eq!(c.to_string(), "0.0.0.0/0 except 10.0.0.0/8");
    }
}
