//! FQDN policy in the kernel: the agent's DNS proxy and what it learns.
//!
//! A pod's UDP packets that an egress allow with `rules.dns` lets through are handed by the
//! BPF programs to the proxy's socket (`WARD_POLICY_F_DNS`, `bpf_sk_assign`). The proxy
//! ([`proxy`]) asks the engine whether the pod may ask for the name (the same
//! `PolicyRepository::l7_verdict` that `ward test` uses), answers REFUSED when not, and
//! otherwise forwards the query to the server the pod asked. The addresses of the answer
//! whose names a `toFQDNs` selector matches go into the [`cache::DnsCache`], for their TTL
//! within the configured bounds; the agent then syncs, so that the engine resolves the
//! `toFQDNs` rules to them and the ipcache and policy map hold them, and only then does the
//! pod get its answer (Cilium holds answers the same way), so its first connection already
//! meets the new entries. When an address's time runs out, the agent syncs again and new
//! connections to it are dropped; established ones keep their conntrack entry.
//!
//! [`DnsState`] is what the agent and the proxy share: the cache, the policy (the agent's
//! kept repository, read under a lock), the `toFQDNs` selectors, and the generation of the
//! cache the maps hold.

pub mod cache;
pub mod message;
pub mod proxy;

use super::repository::KeptRepository;
use cache::{DnsCache, Learned, TtlBounds};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};
use ward_engine::{Direction, Flow, L7Request, L7Verdict, Peer, Protocol};
use ward_schema::ResourceSet;
use ward_schema::model::FqdnSelector;

/// How long an expired address a connection still uses is kept before conntrack is read
/// again.
pub const ZOMBIE_RECHECK: Duration = Duration::from_secs(1);

/// The largest saved DNS cache the agent reads back (a full cache is about 2 MB).
pub const MAX_SAVED_BYTES: usize = 16 << 20;

/// How long the proxy holds an answer while the agent syncs the addresses it taught.
pub const SYNC_WAIT: Duration = Duration::from_secs(2);

/// What the agent and its DNS proxy share.
pub struct DnsState {
    cache: Mutex<DnsCache>,
    /// The agent's policy repository (the proxy reads it for each query).
    repository: Arc<RwLock<KeptRepository>>,
    /// The `toFQDNs` selectors of the current policies: only names they match are learned.
    selectors: RwLock<Vec<FqdnSelector>>,
    /// The cache generation the maps hold.
    synced: Mutex<u64>,
    synced_cv: Condvar,
    /// Wakes the agent's loop (a learned address needs a sync).
    wake: Box<dyn Fn() + Send + Sync>,
}

/// What the policy says of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryVerdict {
    /// Forward it.
    Allow,
    /// Answer REFUSED.
    Refuse,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DnsState {
    /// The shared state over the agent's `repository`; `wake` asks the agent for a sync.
    pub fn new(
        repository: Arc<RwLock<KeptRepository>>,
        bounds: TtlBounds,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> DnsState {
        DnsState {
            cache: Mutex::new(DnsCache::new(bounds)),
            repository,
            selectors: RwLock::default(),
            synced: Mutex::new(0),
            synced_cv: Condvar::new(),
            wake: Box::new(wake),
        }
    }

    /// Whether `client` may ask `server` for `name` (egress `rules.dns` of the client's
    /// policy, decided by the engine). Without a resolved policy yet, or when the engine does
    /// not allow the flow at layer 3/4, nothing is allowed.
    pub fn verdict(&self, client: IpAddr, server: SocketAddr, name: &str) -> QueryVerdict {
        let kept = self
            .repository
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(repo) = kept.current() else {
            return QueryVerdict::Refuse;
        };
        let flow = Flow {
            src: Peer::Ip(client),
            dst: Peer::Ip(server.ip()),
            protocol: Protocol::UDP,
            port: server.port(),
        };
        let request = L7Request::Dns {
            name: name.trim_end_matches('.').to_owned(),
        };
        let egress = repo
            .l7_verdict(&flow, &request)
            .into_iter()
            .find(|(d, _)| *d == Direction::Egress);
        match egress.map(|(_, d)| d.verdict) {
            // No egress decision: the engine does not allow this flow at all (the maps were
            // behind it for a moment); refuse rather than pass.
            None | Some(L7Verdict::Denied) => QueryVerdict::Refuse,
            Some(
                L7Verdict::Allowed
                | L7Verdict::Wildcard
                | L7Verdict::NotEnforced
                | L7Verdict::NotEvaluated,
            ) => QueryVerdict::Allow,
        }
    }

    /// Learns the addresses of an answer whose names a `toFQDNs` selector matches; the
    /// generation the maps must reach before the client gets the answer, if any changed.
    pub fn learn(&self, answered: &[(String, IpAddr, u32)], now: Instant) -> Option<u64> {
        let selectors = self
            .selectors
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut cache = lock(&self.cache);
        let mut changed = false;
        let mut names: Vec<&str> = answered.iter().map(|(n, ..)| n.as_str()).collect();
        names.dedup();
        for name in names {
            if !selectors.iter().any(|s| ward_engine::fqdn_matches(s, name)) {
                continue;
            }
            let addrs: Vec<(IpAddr, u32)> = answered
                .iter()
                .filter(|(n, ..)| n == name)
                .map(|(_, ip, ttl)| (*ip, *ttl))
                .collect();
            match cache.learn(name, &addrs, now) {
                Learned::Changed => changed = true,
                Learned::Refreshed => {}
                Learned::Full => {
                    tracing::debug!(name, "the DNS cache is full: answer not learned")
                }
            }
        }
        changed.then(|| cache.generation())
    }

    /// Asks the agent to sync and waits until the maps hold `generation` (at most
    /// [`SYNC_WAIT`]); whether they do.
    pub fn wait_synced(&self, generation: u64) -> bool {
        (self.wake)();
        let synced = lock(&self.synced);
        let (synced, _) = self
            .synced_cv
            .wait_timeout_while(synced, SYNC_WAIT, |s| *s < generation)
            .unwrap_or_else(PoisonError::into_inner);
        *synced >= generation
    }

    /// The answers for the engine and their generation (the agent, before a sync).
    pub fn answers(&self) -> (Vec<ward_engine::DnsAnswer>, u64) {
        let cache = lock(&self.cache);
        (cache.answers(), cache.generation())
    }

    /// Whether answers wait for a sync (the cache moved past what the maps hold).
    pub fn pending(&self) -> bool {
        let generation = lock(&self.cache).generation();
        generation > *lock(&self.synced)
    }

    /// Records that the maps hold `generation` (the agent, after a sync) and releases the
    /// answers waiting for it.
    pub fn synced(&self, generation: u64) {
        let mut s = lock(&self.synced);
        *s = (*s).max(generation);
        self.synced_cv.notify_all();
    }

    /// Whether an address's time has run out by `now`.
    pub fn expiry_due(&self, now: Instant) -> bool {
        lock(&self.cache).next_expiry().is_some_and(|t| t <= now)
    }

    /// Forgets the addresses whose time ran out, but keeps those `in_use` says a live
    /// connection uses for another [`ZOMBIE_RECHECK`]; whether any went (the agent then
    /// syncs).
    pub fn expire(&self, now: Instant, in_use: impl Fn(IpAddr) -> bool) -> bool {
        lock(&self.cache).expire_unused(now, ZOMBIE_RECHECK, in_use)
    }

    /// Writes the learned answers to `path` (the agent, when they changed), atomically.
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let saved = lock(&self.cache).save(Instant::now(), std::time::SystemTime::now());
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&saved)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Takes back the answers a previous agent saved at `path` (none when there is no file;
    /// an unreadable one is an error, and nothing is taken).
    pub fn load(&self, path: &std::path::Path) -> anyhow::Result<usize> {
        use anyhow::Context as _;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if bytes.len() > MAX_SAVED_BYTES {
            anyhow::bail!("{} is larger than {MAX_SAVED_BYTES} bytes", path.display());
        }
        let saved: Vec<cache::Saved> = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a saved DNS cache", path.display()))?;
        let mut cache = lock(&self.cache);
        cache.restore(&saved, Instant::now(), std::time::SystemTime::now());
        Ok(cache.len())
    }

    /// The learned answers for `ward-agent status`: each name with its addresses and when
    /// the first of them runs out (seconds since the Unix epoch), at most `limit` names.
    pub fn summary(&self, limit: usize) -> (usize, Vec<serde_json::Value>) {
        let cache = lock(&self.cache);
        let mut by_name: std::collections::BTreeMap<String, (Vec<String>, u64)> =
            std::collections::BTreeMap::new();
        for s in cache.save(Instant::now(), std::time::SystemTime::now()) {
            let e = by_name.entry(s.name).or_insert((Vec::new(), u64::MAX));
            e.0.push(s.address.to_string());
            e.1 = e.1.min(s.expires);
        }
        let names = by_name
            .into_iter()
            .take(limit)
            .map(|(name, (addresses, expires))| {
                serde_json::json!({"name": name, "addresses": addresses, "expires": expires})
            })
            .collect();
        (cache.len(), names)
    }

    /// The generation of the learned answers.
    pub fn generation(&self) -> u64 {
        lock(&self.cache).generation()
    }

    /// Takes the `toFQDNs` selectors of `resources` (the agent, on each sync).
    pub fn set_selectors(&self, resources: &ResourceSet) {
        *self
            .selectors
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fqdn_selectors(resources);
    }
}

/// Every `toFQDNs` selector in the egress rules of the CNPs and CCNPs of `resources`.
pub fn fqdn_selectors(resources: &ResourceSet) -> Vec<FqdnSelector> {
    let mut out = Vec::new();
    for r in resources.iter() {
        let specs = r.object.get("spec").into_iter().chain(
            r.object
                .get("specs")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten(),
        );
        for spec in specs {
            let egress = spec.get("egress").and_then(|e| e.as_array());
            for rule in egress.into_iter().flatten() {
                let fqdns = rule.get("toFQDNs").and_then(|f| f.as_array());
                out.extend(
                    fqdns
                        .into_iter()
                        .flatten()
                        .filter_map(|s| serde_json::from_value(s.clone()).ok()),
                );
            }
        }
    }
    out.sort_by(|a: &FqdnSelector, b| {
        (&a.match_name, &a.match_pattern).cmp(&(&b.match_name, &b.match_pattern))
    });
    out.dedup();
    out
}
