//! When to try a failed delivery again: exponential backoff with jitter,
//! `Retry-After`, and the 24-hour limit. Pure arithmetic on milliseconds.

use std::time::Duration;

use crate::util::time::parse_http_date;

/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(60 * 60);
/// How long a delivery is tried, counted from the change it reports.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Jitter: each wait is its nominal value times a factor in 1 ± this.
pub const JITTER: f64 = 0.2;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (milliseconds since the epoch).
    RetryAt(i64),
    /// The 24 hours are over: abandon the delivery.
    GiveUp,
}

/// The wait after `failures` failed attempts (1 after the first): 1 s,
/// 2 s, 4 s, … up to an hour, times `1 + JITTER * jitter` (`jitter` in
/// -1..=1), never above an hour.
pub fn retry_wait(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let nominal = FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_WAIT);
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    nominal.mul_f64(factor).min(MAX_WAIT)
}

/// Plans the attempt after a failure at `now`: the backoff wait, or the
/// receiver's `Retry-After` when that is longer; an attempt that would fall
/// after the 24 hours since `created_at` becomes one last attempt at their
/// end, and a failure after them gives up.
pub fn after_failure(
    created_at: i64,
    now: i64,
    failures: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Next {
    let give_up_at = created_at.saturating_add(millis(GIVE_UP_AFTER));
    if now >= give_up_at {
        return Next::GiveUp;
    }
    let wait = retry_wait(failures, jitter).max(retry_after.unwrap_or_default());
    Next::RetryAt(now.saturating_add(millis(wait)).min(give_up_at))
}

/// Reads a `Retry-After` value, delay-seconds or an HTTP date, as a wait
/// from `now`, capped at 24 hours. A date in the past is no wait; anything
/// unreadable is ignored.
pub fn parse_retry_after(value: &str, now: i64) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to parse is still "very long".
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = parse_http_date(value)?;
        Duration::from_millis(at.saturating_sub(now).max(0) as u64)
    };
    Some(wait.min(GIVE_UP_AFTER))
}

/// A random jitter in -1..=1 from the operating system; none if it fails.
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0,
        Err(_) => 0.0,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn waits_double_from_one_second_to_one_hour() {
        let secs: Vec<u64> = (1..=14).map(|n| retry_wait(n, 0.0).as_secs()).collect();
        assert_eq!(
            secs,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        assert_eq!(retry_wait(u32::MAX, 0.0), MAX_WAIT);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_an_hour() {
        assert_eq!(retry_wait(1, -1.0), Duration::from_millis(800));
        assert_eq!(retry_wait(2, 1.0), Duration::from_millis(2400));
        assert_eq!(retry_wait(3, 7.0), Duration::from_millis(4800), "clamped");
        assert_eq!(retry_wait(20, 1.0), MAX_WAIT);
        assert_eq!(retry_wait(20, -1.0), MAX_WAIT.mul_f64(0.8));
        for _ in 0..1000 {
            let jitter = random_jitter();
            assert!((-1.0..=1.0).contains(&jitter));
        }
    }

    #[test]
    fn the_24_hours_end_in_one_last_attempt_then_give_up() {
        let created = 1_000_000;
        assert_eq!(
            after_failure(created, created, 1, None, 0.0),
            Next::RetryAt(created + 1000)
        );
        let late = created + 24 * HOUR_MS - 10_000;
        assert_eq!(
            after_failure(created, late, 30, None, 0.0),
            Next::RetryAt(created + 24 * HOUR_MS)
        );
        assert_eq!(
            after_failure(created, created + 24 * HOUR_MS, 31, None, 0.0),
            Next::GiveUp
        );
    }

    #[test]
    fn a_longer_retry_after_wins_a_shorter_one_does_not() {
        let ten = Some(Duration::from_secs(10));
        assert_eq!(after_failure(0, 0, 1, ten, 0.0), Next::RetryAt(10_000));
        let short = Some(Duration::from_millis(100));
        assert_eq!(after_failure(0, 0, 3, short, 0.0), Next::RetryAt(4_000));
    }

    #[test]
    fn reads_retry_after_seconds_and_dates() {
        let now = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999999", now), Some(GIVE_UP_AFTER));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(GIVE_UP_AFTER)
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }
}
