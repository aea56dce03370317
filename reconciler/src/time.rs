//! Times as ward writes them: RFC 3339 in UTC, formatted by jiff (the date library
//! k8s-openapi already uses for `Time` and `MicroTime`).

use jiff::Timestamp;
use std::time::SystemTime;

/// `t` as RFC 3339 in UTC to the second, truncated (`2026-11-29T12:00:00Z`): the inventory's
/// and the WardSync's `appliedAt`.
pub fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", timestamp(t))
}

/// `t` as RFC 3339 in UTC with microseconds, truncated (`2026-11-29T12:00:00.250000Z`):
/// Kubernetes' `MicroTime`, for conditions and events.
pub fn rfc3339_micro(t: SystemTime) -> String {
    format!("{:.6}", timestamp(t))
}

/// The current time as [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time before 1970 or beyond jiff's range (year 9999) is written as the epoch, as before.
fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn seconds_and_microseconds() {
        let t = UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 3_723);
        assert_eq!(rfc3339(t), "2024-10-04T01:02:03Z");
        assert_eq!(rfc3339_micro(t), "2024-10-04T01:02:03.000000Z");
        let t = t + Duration::from_nanos(250_999_999);
        assert_eq!(rfc3339(t), "2024-10-04T01:02:03Z", "truncated, not rounded");
        assert_eq!(rfc3339_micro(t), "2024-10-04T01:02:03.250999Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_953_600)),
            "2026-11-29T12:00:00Z"
        );
    }
}
