//! Retry backoff with jitter from a seeded generator, so runs replay exactly.

use crate::rng::Rng;
use std::time::Duration;

/// "Equal jitter": half of the exponential step is fixed, half random, so retries spread
/// out but never come back immediately. `attempt` is the attempt that just failed (1-based).
pub(crate) fn backoff(rng: &mut Rng, attempt: u32, base_secs: f64, max_secs: f64) -> Duration {
    let step = (base_secs * 2f64.powi(attempt.saturating_sub(1).min(62) as i32)).min(max_secs);
    Duration::from_secs_f64(step / 2.0 + rng.unit() * step / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_cap() {
        let mut rng = Rng::new(1);
        for attempt in 1..=10 {
            let step = (2f64.powi(attempt as i32 - 1)).min(30.0);
            let d = backoff(&mut rng, attempt, 1.0, 30.0).as_secs_f64();
            assert!(d >= step / 2.0 && d <= step, "attempt {attempt}: {d}");
        }
    }
}
