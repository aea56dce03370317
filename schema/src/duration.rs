//! Go durations, the one parser for every duration ward reads: Cilium's and Flux's duration
//! fields (`key-rotation-interval: 24h`) and `ward reconcile --interval 1m30s`.
//!
//! Go's `time.ParseDuration` is the reference, edge cases included (`0` without a unit,
//! `.5s`, `1.5h30m`, units in any order, `µs` and `μs`). jiff's duration parser is close but
//! not the same language (it refuses `0`, `.5s` and `1.5h30m`, accepts `1d` and `2 hours`),
//! so Go's grammar is written out here.

use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `24h`, `1h30m`,
/// `1.5h`, `500ms`; `0` needs no unit. Negative durations are refused, as is anything above
/// Go's limit (about 292 years).
pub fn parse(s: &str) -> Result<Duration, String> {
    const MAX_NANOS: u128 = i64::MAX as u128;
    let invalid = |why: &str| format!("invalid duration {s:?}: {why}");

    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        rest = after_int;
        let mut frac_digits = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &after_dot[..n];
            rest = &after_dot[n..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("expected a number"));
        }

        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let per_unit: u128 = match unit {
            "" => return Err(invalid("missing unit (use ns, us, µs, ms, s, m or h)")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            other => {
                return Err(invalid(&format!(
                    "unknown unit {other:?} (use ns, us, µs, ms, s, m or h)"
                )));
            }
        };

        let too_large = || invalid("too large (the maximum is about 292 years)");
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| too_large())?
        };
        let mut nanos = whole.checked_mul(per_unit).ok_or_else(too_large)?;
        // Like Go, digits beyond what can matter are dropped; 18 keep the product in range.
        let frac = &frac_digits[..frac_digits.len().min(18)];
        if !frac.is_empty() {
            let value: u128 = frac.parse().map_err(|_| invalid("bad fraction"))?;
            let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| too_large())?);
            nanos += value * per_unit / scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_large)?;
        if total > MAX_NANOS {
            return Err(too_large());
        }
    }

    if negative && total != 0 {
        return Err(invalid("negative durations are not allowed"));
    }
    let nanos = u64::try_from(total).map_err(|_| invalid("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn accepts_go_syntax() {
        let ok = |s: &str| parse(s).unwrap();
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("1h30m"), Duration::from_secs(5_400));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5_400));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("1ns"), Duration::from_nanos(1));
        assert_eq!(ok("3us"), Duration::from_micros(3));
        assert_eq!(ok("3µs"), Duration::from_micros(3));
        assert_eq!(ok("3μs"), Duration::from_micros(3));
        assert_eq!(
            ok("2h45m30.5s"),
            Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
        );
        assert_eq!(ok("1.0000000000000000000001s"), Duration::from_secs(1));
        assert_eq!(
            ok("0.333333333333333333333h"),
            Duration::from_nanos(1_199_999_999_999)
        );
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
    }

    #[test]
    fn explains_errors() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err(""), "invalid duration \"\": empty");
        assert_eq!(err("-"), "invalid duration \"-\": empty");
        assert!(err("24").contains("missing unit"), "{}", err("24"));
        assert!(err("1h30").contains("missing unit"));
        assert!(err("1d").contains("unknown unit \"d\""), "{}", err("1d"));
        assert!(err("5 s").contains("unknown unit \" s\""), "{}", err("5 s"));
        assert!(err("h").contains("expected a number"));
        assert!(err(".s").contains("expected a number"));
        assert!(err(" 1s").contains("expected a number"));
        assert!(
            err("1h-5m").contains("unknown unit \"h-\""),
            "{}",
            err("1h-5m")
        );
        assert!(err("-5s").contains("negative"));
        assert!(err("2562048h").contains("too large"));
        assert!(err("99999999999999999999999999999999999999999h").contains("too large"));
        assert!(err("1e3s").contains("unknown unit"));
    }

    #[test]
    fn flux_intervals() {
        // What Flux's CRDs allow (`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`), Go reads the same way.
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("10m0s"), Ok(Duration::from_secs(600)));
        assert_eq!(
            parse("30m1h"),
            Ok(Duration::from_secs(5400)),
            "any order, as in Go"
        );
        assert_eq!(parse("1.5h30m"), Ok(Duration::from_secs(7200)));
    }
}
