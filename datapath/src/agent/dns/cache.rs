//! The names and addresses the DNS proxy has seen answered, each until its TTL runs out:
//! what `toFQDNs` rules resolve against on this node (Cilium's FQDN cache). Pure: the caller
//! passes the time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};
use ward_engine::DnsAnswer;

/// One learned address as the agent keeps it on disk across restarts (Cilium restores its
/// DNS cache the same way): the expiry as wall-clock seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The name (lower case, trailing dot).
    pub name: String,
    /// The address.
    pub address: IpAddr,
    /// When it runs out, in seconds since the Unix epoch.
    pub expires: u64,
}

/// How long answers are kept, whatever TTL they carry (Cilium's `--tofqdns-min-ttl`, and a
/// ceiling of ward's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    /// The shortest time an answer is kept (0: the answer's own TTL).
    pub min: Duration,
    /// The longest.
    pub max: Duration,
}

impl Default for TtlBounds {
    /// Cilium's default: the answers' own TTLs (no minimum); at most a day.
    fn default() -> TtlBounds {
        TtlBounds {
            min: Duration::ZERO,
            max: Duration::from_secs(86_400),
        }
    }
}

impl TtlBounds {
    /// `ttl` seconds within the bounds.
    pub fn clamp(&self, ttl: u32) -> Duration {
        Duration::from_secs(u64::from(ttl)).clamp(self.min, self.max.max(self.min))
    }
}

/// The most names the cache holds; answers for more are not learned (and logged).
pub const MAX_NAMES: usize = 20_000;
/// The most addresses one name keeps.
pub const MAX_ADDRESSES_PER_NAME: usize = 256;

/// Learned answers: name (lower case, with the trailing dot) → address → expiry.
#[derive(Debug, Default)]
pub struct DnsCache {
    names: BTreeMap<String, BTreeMap<IpAddr, Instant>>,
    bounds: TtlBounds,
    /// Bumped whenever the set of (name, address) pairs changes: what the maps must follow.
    generation: u64,
}

/// What [`DnsCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// New (name, address) pairs: the maps must be synced before the client gets the answer.
    Changed,
    /// Only expiries moved.
    Refreshed,
    /// The cache is full; nothing was learned.
    Full,
}

impl DnsCache {
    /// An empty cache keeping answers within `bounds`.
    pub fn new(bounds: TtlBounds) -> DnsCache {
        DnsCache {
            bounds,
            ..DnsCache::default()
        }
    }

    /// The name as the cache keys it.
    pub fn normalize(name: &str) -> String {
        let mut n = name.trim().to_ascii_lowercase();
        if !n.ends_with('.') {
            n.push('.');
        }
        n
    }

    /// Records that `name` resolved to each address, for its TTL in seconds (within the
    /// bounds), from `now`. An address already known keeps the later of its two expiries.
    pub fn learn(&mut self, name: &str, addresses: &[(IpAddr, u32)], now: Instant) -> Learned {
        let name = DnsCache::normalize(name);
        if !self.names.contains_key(&name) && self.names.len() >= MAX_NAMES {
            return Learned::Full;
        }
        let known = self.names.entry(name).or_default();
        let mut changed = false;
        for &(ip, ttl) in addresses {
            let until = now + self.bounds.clamp(ttl);
            let room = known.len() < MAX_ADDRESSES_PER_NAME;
            match known.get_mut(&ip) {
                Some(t) => *t = (*t).max(until),
                None if room => {
                    known.insert(ip, until);
                    changed = true;
                }
                None => {}
            }
        }
        if changed {
            self.generation += 1;
            Learned::Changed
        } else {
            Learned::Refreshed
        }
    }

    /// Forgets every address whose time ran out by `now`; whether any did.
    pub fn expire(&mut self, now: Instant) -> bool {
        self.expire_unused(now, Duration::ZERO, |_| false)
    }

    /// [`DnsCache::expire`], except that an address `in_use` (a live connection's) is kept
    /// for `recheck` more, as Cilium keeps such "zombies" while their connections last.
    pub fn expire_unused(
        &mut self,
        now: Instant,
        recheck: Duration,
        in_use: impl Fn(IpAddr) -> bool,
    ) -> bool {
        let before: usize = self.names.values().map(BTreeMap::len).sum();
        for addrs in self.names.values_mut() {
            addrs.retain(|ip, until| {
                if *until > now {
                    return true;
                }
                if in_use(*ip) {
                    *until = now + recheck;
                    return true;
                }
                false
            });
        }
        self.names.retain(|_, a| !a.is_empty());
        let after: usize = self.names.values().map(BTreeMap::len).sum();
        if after != before {
            self.generation += 1;
        }
        after != before
    }

    /// When the next address runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.names.values().flat_map(|a| a.values()).min().copied()
    }

    /// Counts changes of the (name, address) pairs.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The answers as the engine takes them.
    pub fn answers(&self) -> Vec<DnsAnswer> {
        self.names
            .iter()
            .map(|(name, addrs)| DnsAnswer {
                name: name.clone(),
                addresses: addrs.keys().copied().collect(),
            })
            .collect()
    }

    /// What to keep on disk: every address with its expiry on the wall clock (`wall` is the
    /// wall-clock time of `now`).
    pub fn save(&self, now: Instant, wall: SystemTime) -> Vec<Saved> {
        let epoch = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.names
            .iter()
            .flat_map(|(name, addrs)| {
                addrs.iter().map(move |(ip, until)| Saved {
                    name: name.clone(),
                    address: *ip,
                    expires: (epoch + until.saturating_duration_since(now)).as_secs(),
                })
            })
            .collect()
    }

    /// Takes back what [`DnsCache::save`] kept, but for what has run out by `wall` (the
    /// wall-clock time of `now`) and beyond the cache's limits; whether anything was taken.
    pub fn restore(&mut self, saved: &[Saved], now: Instant, wall: SystemTime) -> bool {
        let epoch = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut taken = false;
        for s in saved.iter().filter(|s| s.expires > epoch) {
            let name = DnsCache::normalize(&s.name);
            if !self.names.contains_key(&name) && self.names.len() >= MAX_NAMES {
                continue;
            }
            let addrs = self.names.entry(name).or_default();
            if addrs.len() < MAX_ADDRESSES_PER_NAME {
                let left = Duration::from_secs(s.expires - epoch).min(self.bounds.max);
                addrs.insert(s.address, now + left);
                taken = true;
            }
        }
        if taken {
            self.generation += 1;
        }
        taken
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn answers_are_kept_for_their_ttl_within_the_bounds() {
        let bounds = TtlBounds {
            min: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        let mut c = DnsCache::new(bounds);
        let t0 = Instant::now();
        assert_eq!(
            c.learn("API.example.com", &[(ip("192.0.2.10"), 1)], t0),
            Learned::Changed
        );
        assert_eq!(
            c.learn("www.example.com.", &[(ip("2001:db8::7"), 3600)], t0),
            Learned::Changed
        );
        assert_eq!(c.generation(), 2);
        // The same answer again only moves the expiry.
        assert_eq!(
            c.learn("api.example.com.", &[(ip("192.0.2.10"), 1)], t0),
            Learned::Refreshed
        );
        assert_eq!(c.generation(), 2);
        let names: Vec<String> = c.answers().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["api.example.com.", "www.example.com."]);
        // A TTL of 1 s is held for the minimum of 5 s; 3600 s for the maximum of 60 s.
        assert!(!c.expire(t0 + Duration::from_secs(4)));
        assert!(c.expire(t0 + Duration::from_secs(5)));
        assert_eq!(c.len(), 1);
        assert_eq!(c.next_expiry(), Some(t0 + Duration::from_secs(60)));
        assert!(c.expire(t0 + Duration::from_secs(60)));
        assert!(c.is_empty());
        assert_eq!(c.generation(), 4);
    }

    #[test]
    fn an_expired_address_in_use_stays_until_its_connection_ends() {
        let mut c = DnsCache::new(TtlBounds::default());
        let t0 = Instant::now();
        c.learn(
            "a.example.",
            &[(ip("192.0.2.1"), 1), (ip("192.0.2.2"), 1)],
            t0,
        );
        let t1 = t0 + Duration::from_secs(2);
        let recheck = Duration::from_secs(1);
        assert!(c.expire_unused(t1, recheck, |a| a == ip("192.0.2.1")));
        assert_eq!(c.answers()[0].addresses, [ip("192.0.2.1")]);
        assert_eq!(c.next_expiry(), Some(t1 + recheck));
        assert!(!c.expire_unused(t1 + recheck, recheck, |_| true));
        assert!(c.expire_unused(t1 + recheck * 2, recheck, |_| false));
        assert!(c.is_empty());
    }

    #[test]
    fn what_is_saved_comes_back_without_what_ran_out() {
        let mut c = DnsCache::new(TtlBounds::default());
        let (t0, wall) = (Instant::now(), SystemTime::now());
        c.learn("a.example.", &[(ip("192.0.2.1"), 30)], t0);
        c.learn("b.example.", &[(ip("192.0.2.2"), 2)], t0);
        let saved = c.save(t0, wall);
        assert_eq!(saved.len(), 2);
        // Restored 10 s later: b ran out meanwhile.
        let mut d = DnsCache::new(TtlBounds::default());
        let later = wall + Duration::from_secs(10);
        assert!(d.restore(&saved, t0, later));
        let names: Vec<String> = d.answers().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["a.example."]);
        let left = d.next_expiry().unwrap() - t0;
        assert!(left <= Duration::from_secs(20) && left >= Duration::from_secs(19));
        assert!(!DnsCache::new(TtlBounds::default()).restore(
            &saved,
            t0,
            wall + Duration::from_secs(60)
        ));
    }

    #[test]
    fn a_new_address_of_a_known_name_is_a_change() {
        let mut c = DnsCache::new(TtlBounds::default());
        let t0 = Instant::now();
        c.learn("a.example.", &[(ip("192.0.2.1"), 30)], t0);
        assert_eq!(
            c.learn(
                "a.example.",
                &[(ip("192.0.2.1"), 30), (ip("192.0.2.2"), 30)],
                t0
            ),
            Learned::Changed
        );
        assert_eq!(c.answers()[0].addresses.len(), 2);
    }
}
