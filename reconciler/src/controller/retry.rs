//! The controller's retry delays: exponential backoff with jitter (`backon`), so that
//! controllers that failed together (an API server restart) do not retry together.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// The first delay after a failure.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest delay, jitter included.
pub const LONGEST: Duration = Duration::from_secs(300);

/// Delays after consecutive failures: from [`FIRST`], doubling, each with up to as much
/// again added at random, never above [`LONGEST`].
#[derive(Debug, Default)]
pub struct Backoff {
    delays: Option<ExponentialBackoff>,
}

impl Backoff {
    /// The delay before retrying after one more failure.
    pub fn failed(&mut self) -> Duration {
        self.delays
            .get_or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(FIRST)
                    // Jitter adds up to the delay again: half the longest before it.
                    .with_max_delay(LONGEST / 2)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(LONGEST)
            .min(LONGEST)
    }

    /// A success: the next failure starts again from [`FIRST`].
    pub fn reset(&mut self) {
        self.delays = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_within_bounds_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..20).map(|_| b.failed()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (FIRST * 2u32.pow(i.min(12) as u32)).min(LONGEST / 2);
            assert!(*d >= base && *d <= base * 2 && *d <= LONGEST, "{i}: {d:?}");
        }
        assert!(
            delays.windows(2).any(|w| w[0] != w[1]),
            "jittered: {delays:?}"
        );
        b.reset();
        assert!(b.failed() < FIRST * 2, "starts again from the first delay");
    }
}
