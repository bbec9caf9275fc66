//! Diverse references (after RMoA, arXiv 2505.24442, without embeddings): only the `k`
//! most mutually different proposals go on, chosen greedily, near-duplicates dropped.
//!
//! Similarity is the Jaccard index of word 3-shingles (lowercased words split at
//! whitespace and ASCII punctuation; texts shorter than three words compare by their
//! words). Why shingles: they
//! need no model and no network, so the strategy runs in the page too, and they catch what
//! makes references redundant in practice — samples of one model repeating each other's
//! sentences. Their limit, stated: two paraphrases in different words look different.

use super::{Decision, Strategy, StrategyError, StrategyInput, StrategyKind, check_params, inject_references};

/// Keeps the `k` most mutually different proposals.
#[derive(Clone, Debug)]
pub struct Diverse {
    k: usize,
    duplicate: f64,
}

impl Default for Diverse {
    fn default() -> Self {
        Diverse { k: 3, duplicate: 0.8 }
    }
}

impl Diverse {
    /// Parameters: `k` (how many references go on; default 3) and `duplicate` (a proposal
    /// at least this similar to one already kept is a near-duplicate and never kept;
    /// 0 < d ≤ 1, default 0.8).
    pub fn from_params(params: &serde_json::Value) -> Result<Diverse, StrategyError> {
        check_params(StrategyKind::Diverse, params)?;
        let bad = |message: &str| StrategyKind::Diverse.error(message);
        let mut d = Diverse::default();
        if let Some(k) = params.get("k") {
            d.k = k.as_u64().filter(|k| *k > 0).ok_or_else(|| bad("k must be a positive integer"))? as usize;
        }
        if let Some(t) = params.get("duplicate") {
            d.duplicate = t
                .as_f64()
                .filter(|t| *t > 0.0 && *t <= 1.0)
                .ok_or_else(|| bad("duplicate must be a number in 0 < d ≤ 1"))?;
        }
        Ok(d)
    }
}

/// A text's word 3-shingles (its words, when it has fewer than three), each as a 64-bit
/// FNV-1a hash of its lowercased words, without repeats. (Hashes in a plain list, compared
/// pairwise, rather than strings in a set type or a sorted list: this runs in the browser
/// module, where each new set type or sort costs kilobytes, and answers are short enough
/// for quadratic comparison. Two shingles collide as rarely as two random 64-bit numbers.)
fn shingles(text: &str) -> Vec<u64> {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
        .filter(|w| !w.is_empty())
        .map(crate::fold::fold_case)
        .collect();
    let hash = |ws: &[String]| {
        ws.iter()
            .flat_map(|w| w.bytes().chain([0]))
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    let size = if words.len() < 3 { 1 } else { 3 };
    let mut out: Vec<u64> = Vec::new();
    for h in words.windows(size).map(hash) {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// The Jaccard index of two shingle lists from [`shingles`] (1 for two empty texts).
fn similarity(a: &[u64], b: &[u64]) -> f64 {
    let both = a.iter().filter(|h| b.contains(h)).count();
    let union = a.len() + b.len() - both;
    if union == 0 { 1.0 } else { both as f64 / union as f64 }
}

/// Word 3-shingle Jaccard similarity of two texts, as `diverse` measures it (0 to 1).
pub fn text_similarity(a: &str, b: &str) -> f64 {
    similarity(&shingles(a), &shingles(b))
}

/// Which proposals `diverse` keeps, in agent order: greedy max-min. The first kept is the
/// one least similar on average to the others; then, each time, the one whose closest kept
/// proposal is farthest; near-duplicates of a kept one are never kept.
pub fn pick(texts: &[&str], k: usize, duplicate: f64) -> Vec<usize> {
    let sets: Vec<Vec<u64>> = texts.iter().map(|t| shingles(t)).collect();
    let n = sets.len();
    let sim = |i: usize, j: usize| similarity(&sets[i], &sets[j]);
    let mut kept: Vec<usize> = Vec::new();
    if n == 0 {
        return kept;
    }
    let mean = |i: usize| (0..n).filter(|&j| j != i).map(|j| sim(i, j)).sum::<f64>() / (n.max(2) - 1) as f64;
    // Ties go to the earlier agent: the choice never depends on anything but the texts.
    let first = (0..n).min_by(|&a, &b| mean(a).total_cmp(&mean(b)).then(a.cmp(&b))).unwrap_or(0);
    kept.push(first);
    while kept.len() < k {
        let next = (0..n)
            .filter(|i| !kept.contains(i))
            .map(|i| (i, kept.iter().map(|&j| sim(i, j)).fold(0.0, f64::max)))
            .filter(|(_, closest)| *closest < duplicate)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        match next {
            Some((i, _)) => kept.push(i),
            None => break,
        }
    }
    // In agent order.
    (0..n).filter(|i| kept.contains(i)).collect()
}

impl Strategy for Diverse {
    fn name(&self) -> &str {
        StrategyKind::Diverse.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let texts: Vec<&str> = input.proposals.iter().map(|p| p.text.as_str()).collect();
        let refs: Vec<&str> = pick(&texts, self.k, self.duplicate).into_iter().map(|i| texts[i]).collect();
        Ok(Decision::Messages(inject_references(input.conversation, &refs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_duplicates_are_dropped_and_the_most_different_kept() {
        let texts = [
            "Paris is the capital of France and its largest city.",
            "Paris is the capital of France and its largest city!",
            "The capital of France is Paris, on the Seine.",
            "Lyon is a city in France known for its food.",
        ];
        // Two near-duplicates: only one of them can be kept.
        let kept = pick(&texts, 3, 0.8);
        assert_eq!(kept.len(), 3);
        assert!(!(kept.contains(&0) && kept.contains(&1)), "{kept:?}");
        assert!(kept.contains(&2) && kept.contains(&3), "{kept:?}");
        // k bounds it; with k = 1 the one least like the rest.
        assert_eq!(pick(&texts, 1, 0.8), vec![3]);
        // Every proposal a duplicate of the first: one is kept.
        assert_eq!(pick(&["same words here", "same words here", "same words here"], 3, 0.8), vec![0]);
        assert_eq!(pick(&[], 3, 0.8), Vec::<usize>::new());
    }

    #[test]
    fn similarity_is_word_shingle_jaccard() {
        let a = shingles("The quick brown fox");
        let b = shingles("the quick, brown dog");
        assert_eq!(a.len(), 2);
        assert_eq!(similarity(&a, &b), 1.0 / 3.0);
        assert_eq!(similarity(&shingles("yes"), &shingles("Yes!")), 1.0);
    }

    #[test]
    fn params_are_checked() {
        assert!(Diverse::from_params(&serde_json::json!({"k": 2, "duplicate": 0.9})).is_ok());
        assert!(Diverse::from_params(&serde_json::json!({"k": 0})).is_err());
        assert!(Diverse::from_params(&serde_json::json!({"duplicate": 1.5})).is_err());
        assert!(Diverse::from_params(&serde_json::json!({"kk": 2})).is_err());
    }
}
