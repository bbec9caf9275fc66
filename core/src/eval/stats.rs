//! The statistics an evaluation reports: intervals, a paired test, percentiles. Small
//! and exact on purpose: no statistics crate fits a no-I/O core that also runs in a page.

use serde::Serialize;

/// A mean with its 95% confidence interval, and how the interval was made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
    /// Values it is the mean of.
    pub n: usize,
    /// `wilson` (every value 0 or 1) or `bootstrap` (percentile, 2,000 resamples).
    pub method: &'static str,
}

/// The mean of `values` with a 95% interval: Wilson's score interval when the scores are
/// right-or-wrong (`binary`: every value 0 or 1; right at the edges, where the normal
/// approximation is not), else a seeded percentile bootstrap, so a report is the same
/// every time it is made.
pub fn estimate(values: &[f64], binary: bool) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if binary && values.iter().all(|v| *v == 0.0 || *v == 1.0) {
        let (lo, hi) = wilson(mean, n);
        return Some(Estimate { mean, lo, hi, n, method: "wilson" });
    }
    let (lo, hi) = bootstrap(values, 2000, 0x6d6f_615f_6576_616c);
    Some(Estimate { mean, lo, hi, n, method: "bootstrap" })
}

/// Wilson's 95% score interval for a proportion `p` of `n`.
pub fn wilson(p: f64, n: usize) -> (f64, f64) {
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A percentile bootstrap 95% interval of the mean, from a fixed seed.
pub fn bootstrap(values: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let n = values.len();
    let mut state = seed | 1;
    let mut next = || {
        // xorshift64*: plenty for resampling indexes, and the same everywhere.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut means: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| values[(next() % n as u64) as usize]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    (percentile(&means, 2.5), percentile(&means, 97.5))
}

/// The `p`th percentile (0–100) of sorted `values`, by linear interpolation.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// A paired comparison of two systems over the same items.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paired {
    /// Items where the first scored higher.
    pub wins: usize,
    /// Items where the second scored higher.
    pub losses: usize,
    /// Items where they scored the same.
    pub ties: usize,
    /// Two-sided exact sign test over wins and losses (ties dropped): the chance of a split
    /// at least this uneven if neither system were better.
    pub p_value: f64,
    /// The mean per-item difference (first minus second) with a paired percentile
    /// bootstrap 95% interval; `None` with no items in common.
    pub diff: Option<Estimate>,
}

/// Compares per-item scores `a` and `b` (paired by position).
pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    let (mut wins, mut losses, mut ties) = (0, 0, 0);
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            std::cmp::Ordering::Greater => wins += 1,
            std::cmp::Ordering::Less => losses += 1,
            std::cmp::Ordering::Equal => ties += 1,
        }
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    Paired { wins, losses, ties, p_value: sign_test(wins, losses), diff: estimate(&d, false) }
}

/// Two-sided exact binomial sign test.
pub fn sign_test(wins: usize, losses: usize) -> f64 {
    let n = wins + losses;
    if n == 0 {
        return 1.0;
    }
    let k = wins.min(losses);
    // ln C(n, i) - n ln 2, summed in a stable way.
    let ln_half_n = n as f64 * std::f64::consts::LN_2;
    let mut ln_c = 0.0_f64; // ln C(n, 0)
    let mut tail = 0.0_f64;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_c - ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // 8 of 10: 0.4902 to 0.9433 (Wilson 1927; any statistics table).
        let (lo, hi) = wilson(0.8, 10);
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson(0.0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-3, "{hi}");
    }

    #[test]
    fn sign_test_is_exact() {
        assert!((sign_test(9, 1) - 0.021_484_375).abs() < 1e-12);
        assert_eq!(sign_test(5, 5), 1.0);
        assert_eq!(sign_test(0, 0), 1.0);
        assert!(sign_test(60, 40) > 0.05 && sign_test(70, 30) < 0.001);
    }

    #[test]
    fn bootstrap_is_reproducible_and_brackets_the_mean() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let e = estimate(&v, false).expect("values");
        assert_eq!(e.method, "bootstrap");
        assert!(e.lo < 5.5 && 5.5 < e.hi && e.lo > 3.0 && e.hi < 8.0, "{e:?}");
        assert_eq!(estimate(&v, false), Some(e));
        assert_eq!(estimate(&[1.0, 0.0], true).map(|e| e.method), Some("wilson"));
        assert_eq!(estimate(&[1.0, 1.0], false).map(|e| e.method), Some("bootstrap"), "a 1-10 grade of all 1s");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
    }

    #[test]
    fn paired_counts_and_tests() {
        let p = paired(&[1.0, 1.0, 0.0, 1.0], &[0.0, 1.0, 1.0, 0.0]);
        assert_eq!((p.wins, p.losses, p.ties), (2, 1, 1));
        assert_eq!(p.p_value, 1.0);
        let d = p.diff.expect("items in common");
        assert_eq!(d.mean, 0.25);
        assert!(d.lo < 0.0 && d.hi > 0.0 && d.method == "bootstrap", "{d:?}");
    }
}
