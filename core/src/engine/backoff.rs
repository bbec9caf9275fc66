//! Retry backoff with jitter from a seeded generator, so runs replay exactly.

use std::time::Duration;

/// SplitMix64: tiny, fast, and good enough to spread retries; seeded by the caller
/// because the core has no entropy source of its own.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

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

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
