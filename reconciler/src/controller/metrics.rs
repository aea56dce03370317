//! The controller's Prometheus metrics, kept and rendered by `prometheus-client` (OpenMetrics
//! text on `/metrics`).
//!
//! Labels have bounded cardinality: outcomes only, never revisions or object names.
//! - `ward_reconcile_total{outcome}`: reconciles by outcome (success, invalid, failure,
//!   skipped);
//! - `ward_reconcile_duration_seconds`: time spent reconciling (a histogram);
//! - `ward_last_applied_timestamp_seconds`: when a revision was last applied (Unix time);
//! - `ward_inventory_objects`: objects in the inventory;
//! - `ward_leader`: whether this controller holds the Lease (1 or 0);
//! - `ward_webhook_requests_total{outcome}`: webhooks by outcome (accepted, unauthorized,
//!   too_large).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reconcile outcomes, all shown from the start (at zero).
pub const OUTCOMES: [&str; 4] = ["success", "invalid", "failure", "skipped"];

/// Webhook outcomes, all shown from the start (at zero).
pub const HOOK_OUTCOMES: [&str; 3] = ["accepted", "unauthorized", "too_large"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The controller's metrics; every update is atomic, so it is shared without a lock.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Outcome, Counter>,
    duration: Histogram,
    last_applied: Gauge<f64, AtomicU64>,
    inventory: Gauge,
    leader: Gauge,
    hooks: Family<Outcome, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, the outcome counters at zero.
    pub fn new() -> Self {
        let reconciles = Family::<Outcome, Counter>::default();
        let hooks = Family::<Outcome, Counter>::default();
        for outcome in OUTCOMES {
            let _ = reconciles.get_or_create(&Outcome { outcome });
        }
        for outcome in HOOK_OUTCOMES {
            let _ = hooks.get_or_create(&Outcome { outcome });
        }
        // 50 ms to about 7 minutes.
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let last_applied = Gauge::<f64, AtomicU64>::default();
        let (inventory, leader) = (Gauge::default(), Gauge::default());
        let mut registry = Registry::default();
        // A counter's samples get the `_total` suffix: `ward_reconcile_total{outcome=…}`.
        registry.register(
            "ward_reconcile",
            "Reconciles by outcome",
            reconciles.clone(),
        );
        registry.register(
            "ward_reconcile_duration_seconds",
            "Time spent reconciling",
            duration.clone(),
        );
        registry.register(
            "ward_last_applied_timestamp_seconds",
            "When a revision was last applied",
            last_applied.clone(),
        );
        registry.register(
            "ward_inventory_objects",
            "Objects in the inventory",
            inventory.clone(),
        );
        registry.register(
            "ward_leader",
            "Whether this controller holds the Lease",
            leader.clone(),
        );
        registry.register(
            "ward_webhook_requests",
            "Webhook requests by outcome",
            hooks.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            last_applied,
            inventory,
            leader,
            hooks,
        }
    }

    /// Counts a reconcile that ended with `outcome` (one of [`OUTCOMES`]).
    pub fn reconciled(&self, outcome: &'static str) {
        self.reconciles.get_or_create(&Outcome { outcome }).inc();
    }

    /// Records how long a reconcile took.
    pub fn took(&self, d: Duration) {
        self.duration.observe(d.as_secs_f64());
    }

    /// Records that a revision was applied at `at`, leaving `inventory` objects.
    pub fn applied(&self, at: SystemTime, inventory: usize) {
        let unix = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_applied.set(unix);
        self.inventory
            .set(i64::try_from(inventory).unwrap_or(i64::MAX));
    }

    /// Records whether this controller holds the Lease.
    pub fn leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Counts a webhook request that ended with `outcome` (one of [`HOOK_OUTCOMES`]).
    pub fn hook(&self, outcome: &'static str) {
        self.hooks.get_or_create(&Outcome { outcome }).inc();
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name` (with its labels) in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .filter(|v| v.starts_with(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    #[test]
    fn names_values_and_zero_outcomes() {
        let m = Metrics::new();
        let text = m.render();
        for outcome in OUTCOMES {
            assert_eq!(
                sample(
                    &text,
                    &format!("ward_reconcile_total{{outcome=\"{outcome}\"}}")
                ),
                Some(0.0),
                "{text}"
            );
        }
        assert_eq!(sample(&text, "ward_leader"), Some(0.0), "{text}");
        m.reconciled("success");
        m.reconciled("success");
        m.reconciled("failure");
        m.took(Duration::from_millis(1500));
        m.applied(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            7,
        );
        m.leader(true);
        m.hook("accepted");
        let text = m.render();
        let at = |name: &str| sample(&text, name);
        assert_eq!(
            at("ward_reconcile_total{outcome=\"success\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(at("ward_reconcile_total{outcome=\"failure\"}"), Some(1.0));
        assert_eq!(at("ward_reconcile_total{outcome=\"invalid\"}"), Some(0.0));
        assert_eq!(at("ward_reconcile_duration_seconds_sum"), Some(1.5));
        assert_eq!(at("ward_reconcile_duration_seconds_count"), Some(1.0));
        assert_eq!(at("ward_last_applied_timestamp_seconds"), Some(1.8e9));
        assert_eq!(at("ward_inventory_objects"), Some(7.0));
        assert_eq!(at("ward_leader"), Some(1.0));
        assert_eq!(
            at("ward_webhook_requests_total{outcome=\"accepted\"}"),
            Some(1.0)
        );
        assert!(text.contains("# TYPE ward_reconcile counter\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
