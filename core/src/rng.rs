//! The core's one source of randomness: seeded by the caller (the core has no entropy of
//! its own), so a run replays exactly from its seed.

/// SplitMix64: tiny, fast, and good enough to spread retries and pick samples.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A stream of its own for one part of a run, named by `path` (a call's layer, slot
    /// and attempt): its draws depend on the seed and that name only, never on what
    /// else drew first, so the order in which responses arrive cannot change them.
    pub(crate) fn derive(seed: u64, path: &[u64]) -> Rng {
        let mut rng = Rng(seed);
        for &part in path {
            rng = Rng(rng.next_u64() ^ part.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        }
        rng
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn derived_streams_differ_by_name_and_seed_and_repeat_by_both() {
        let first = |seed, path: &[u64]| Rng::derive(seed, path).next_u64();
        assert_eq!(first(7, &[0, 1, 2]), first(7, &[0, 1, 2]));
        assert_ne!(first(7, &[0, 1, 2]), first(7, &[0, 2, 1]));
        assert_ne!(first(7, &[0, 1, 2]), first(7, &[0, 1, 3]));
        assert_ne!(first(7, &[0, 1, 2]), first(8, &[0, 1, 2]));
        assert_ne!(first(7, &[0]), first(7, &[0, 0]));
    }
}
