//! Waiting between retries of a transient failure, one rule for every HTTP client.

use std::time::Duration;

/// How long to wait before retry number `attempt` (1 for the first retry) of a transient
/// failure: `base` doubled with each attempt (at most 1024 times), plus up to `base` of
/// jitter so that clients that failed together do not retry together.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let doubled = base_ms.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(doubled.saturating_add(jitter(base_ms.max(1))))
}

/// A pseudo-random number below `max` (`max` > 0), from the clock's nanoseconds: enough to
/// spread retries, no dependency.
fn jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_plus_jitter_below_base() {
        let base = Duration::from_millis(100);
        for (attempt, floor) in [(1, 100), (2, 200), (3, 400), (11, 102_400), (40, 102_400)] {
            let d = backoff(base, attempt).as_millis();
            assert!(d >= floor && d < floor + 100, "attempt {attempt}: {d} ms");
        }
        assert!(backoff(Duration::ZERO, 3).is_zero());
    }
}
