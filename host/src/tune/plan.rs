//! What `moa tune` tries, and in what order: the candidate mixtures of a pool of models,
//! the successive-halving schedule, and which candidates go on after each round. Pure:
//! the I/O (running the evaluations) is in [`super::run`].

use moa_core::Recipe;
use moa_core::recipe::{Agent, Aggregator, Layer, StrategySpec};
use moa_core::strategy::StrategyKind;

/// How a candidate combines its models.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// One model answers alone, greedy: a member every mixture is compared with.
    Alone(String),
    /// One model sampled `samples` times, then `strategy` (Self-MoA).
    SelfMoa {
        /// `provider:model`.
        model: String,
        /// Samples drawn.
        samples: u32,
        /// `synthesize` or `vote`.
        strategy: StrategyKind,
    },
    /// Every model of the pool once per layer, for `layers` layers, then `aggregator`
    /// with `strategy` (the paper's MoA; one layer is MoA-Lite).
    Mixture {
        /// The proposers.
        models: Vec<String>,
        /// Proposer layers.
        layers: usize,
        /// `provider:model`.
        aggregator: String,
        /// `synthesize` or `vote`.
        strategy: StrategyKind,
    },
}

/// One candidate: a name for the report and a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Its name in the report (unique).
    pub name: String,
    /// What it is.
    pub shape: Shape,
}

impl Candidate {
    /// Whether it is one model alone.
    pub fn alone(&self) -> bool {
        matches!(self.shape, Shape::Alone(_))
    }
}

/// What the search may try.
#[derive(Clone, Debug)]
pub struct Space {
    /// `provider:model`, each once.
    pub pool: Vec<String>,
    /// Sample counts for Self-MoA.
    pub samples: Vec<u32>,
    /// Whether two-layer mixtures are tried.
    pub two_layers: bool,
}

/// A pool model's name in candidate names: the model part of `provider:model`, or the
/// whole when another pool model has the same model part.
fn short<'a>(model: &'a str, pool: &[String]) -> &'a str {
    fn part(m: &str) -> &str {
        m.split_once(':').map_or(m, |(_, m)| m)
    }
    if pool.iter().filter(|p| part(p) == part(model)).count() > 1 { model } else { part(model) }
}

/// Every candidate of `space`: each model alone; each model's Self-MoA (each sample count,
/// synthesize and vote); with two models or more, the whole pool as one layer (and two)
/// under each model as aggregator, synthesizing and voting.
pub fn candidates(space: &Space) -> Vec<Candidate> {
    let mut out = Vec::new();
    let short = |m| short(m, &space.pool);
    let mut samples = space.samples.clone();
    samples.sort_unstable();
    samples.dedup();
    for m in &space.pool {
        out.push(Candidate { name: format!("{} alone", short(m)), shape: Shape::Alone(m.clone()) });
    }
    for m in &space.pool {
        for &n in &samples {
            for strategy in [StrategyKind::Vote, StrategyKind::Synthesize] {
                out.push(Candidate {
                    name: format!("{} x{n} {}", short(m), strategy.name()),
                    shape: Shape::SelfMoa { model: m.clone(), samples: n, strategy },
                });
            }
        }
    }
    if space.pool.len() >= 2 {
        let layer_counts: &[usize] = if space.two_layers { &[1, 2] } else { &[1] };
        for &layers in layer_counts {
            for agg in &space.pool {
                for strategy in [StrategyKind::Vote, StrategyKind::Synthesize] {
                    // Two layers of votes is one vote with more steps: not tried.
                    if layers == 2 && strategy == StrategyKind::Vote {
                        continue;
                    }
                    out.push(Candidate {
                        name: format!(
                            "mix{} {} by {}",
                            if layers == 2 { " 2 layers" } else { "" },
                            strategy.name(),
                            short(agg)
                        ),
                        shape: Shape::Mixture { models: space.pool.clone(), layers, aggregator: agg.clone(), strategy },
                    });
                }
            }
        }
    }
    out
}

/// Sampled proposers answer at this temperature; answers that stand alone are greedy.
pub const SAMPLE_TEMPERATURE: f64 = 0.7;

/// The candidate as a recipe: `base`'s providers, defaults and policy, its own layers and
/// aggregator.
pub fn recipe(c: &Candidate, base: &Recipe) -> Recipe {
    let sampled =
        |model: &str, samples: u32| Agent { temperature: Some(SAMPLE_TEMPERATURE), samples, ..Agent::new(model) };
    let aggregator = |model: &str, strategy: Option<StrategyKind>| Aggregator {
        temperature: Some(0.0),
        strategy: strategy.filter(|s| *s != StrategyKind::Synthesize).map(StrategySpec::builtin),
        ..Aggregator::new(model)
    };
    let (layers, agg) = match &c.shape {
        Shape::Alone(m) => (vec![], aggregator(m, None)),
        Shape::SelfMoa { model, samples, strategy } => {
            (vec![Layer::new(vec![sampled(model, *samples)])], aggregator(model, Some(*strategy)))
        }
        Shape::Mixture { models, layers, aggregator: a, strategy } => {
            let layer = Layer::new(models.iter().map(|m| sampled(m, 1)).collect());
            (vec![layer; *layers], aggregator(a, Some(*strategy)))
        }
    };
    let mut r = base.clone();
    r.name = c.name.clone();
    r.description = format!("found by moa tune: {}", c.name);
    r.layers = layers;
    r.aggregator = agg;
    r
}

/// Items per round of successive halving over `n_items` with `contenders` candidates that
/// compete (the single models run every round regardless): each round doubles the items
/// and halves the contenders, the last round runs every item, and no round runs fewer
/// than `min_items` (fewer rounds then).
pub fn schedule(n_items: usize, contenders: usize, min_items: usize) -> Vec<usize> {
    let mut rounds = 1;
    let mut left = contenders.max(1);
    while left > 1 {
        left = left.div_ceil(2);
        rounds += 1;
    }
    let min_items = min_items.max(1).min(n_items);
    while rounds > 1 && n_items >> (rounds - 1) < min_items {
        rounds -= 1;
    }
    (0..rounds).map(|r| (n_items >> (rounds - 1 - r)).max(min_items).min(n_items)).collect()
}

/// Budgets a candidate must meet to be chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budgets {
    /// Mean tokens (in and out) per item.
    pub tokens_per_item: Option<f64>,
    /// Median time to the answer's first token.
    pub ttft_ms: Option<f64>,
    /// Dollars per item.
    pub cost_per_item: Option<f64>,
}

/// What a round measured of one candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// Its name.
    pub name: String,
    /// Mean score.
    pub score: f64,
    /// Mean tokens per item.
    pub tokens: f64,
    /// Median TTFT, when known.
    pub ttft_ms: Option<f64>,
    /// Dollars per item, when priced.
    pub cost: Option<f64>,
}

impl Budgets {
    /// Which budgets `m` breaks, in words (empty: it meets them all).
    pub fn broken(&self, m: &Measured) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(max) = self.tokens_per_item.filter(|max| m.tokens > *max) {
            out.push(format!("{:.0} tokens per item > {max:.0}", m.tokens));
        }
        if let Some(max) = self.ttft_ms {
            match m.ttft_ms {
                Some(t) if t > max => out.push(format!("TTFT {t:.0} ms > {max:.0}")),
                None => out.push("TTFT unknown".into()),
                _ => {}
            }
        }
        if let Some(max) = self.cost_per_item {
            match m.cost {
                Some(c) if c > max => out.push(format!("${c:.4} per item > ${max:.4}")),
                None => out.push("cost unknown (the base recipe has no prices)".into()),
                _ => {}
            }
        }
        out
    }
}

/// Better first: higher score, then fewer tokens, then the name (a stable order).
fn rank(a: &Measured, b: &Measured) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.tokens.total_cmp(&b.tokens)).then(a.name.cmp(&b.name))
}

/// The contenders that go on to the next round: those within budget, the better half
/// (rounded up). Single models are not contenders (they always run).
pub fn survivors(measured: &[Measured], budgets: &Budgets) -> Vec<String> {
    let mut ok: Vec<&Measured> = measured.iter().filter(|m| budgets.broken(m).is_empty()).collect();
    ok.sort_by(|a, b| rank(a, b));
    let keep = measured.len().div_ceil(2).min(ok.len());
    ok[..keep].iter().map(|m| m.name.clone()).collect()
}

/// The best candidate within budget, or `None` when none is.
pub fn best<'a>(measured: &'a [Measured], budgets: &Budgets) -> Option<&'a Measured> {
    measured.iter().filter(|m| budgets.broken(m).is_empty()).min_by(|a, b| rank(a, b))
}

/// The cheapest candidates by tokens per item (for the error when none fits).
pub fn cheapest(measured: &[Measured], n: usize) -> Vec<&Measured> {
    let mut all: Vec<&Measured> = measured.iter().collect();
    all.sort_by(|a, b| a.tokens.total_cmp(&b.tokens).then(a.name.cmp(&b.name)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(pool: &[&str]) -> Space {
        Space { pool: pool.iter().map(|s| s.to_string()).collect(), samples: vec![3, 5], two_layers: true }
    }

    fn m(name: &str, score: f64, tokens: f64) -> Measured {
        Measured { name: name.into(), score, tokens, ttft_ms: Some(100.0), cost: None }
    }

    #[test]
    fn candidates_cover_each_model_alone_self_moa_and_mixtures_with_unique_names() {
        let c = candidates(&space(&["p:a", "p:b"]));
        // 2 alone + 2 models x 2 counts x 2 strategies + 2 aggregators x (2 one-layer + 1 two-layer).
        assert_eq!(c.len(), 2 + 8 + 6);
        let names: std::collections::BTreeSet<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), c.len());
        assert!(
            names.contains("a alone") && names.contains("b x5 vote") && names.contains("mix 2 layers synthesize by b")
        );
        // One model: no mixtures.
        assert_eq!(candidates(&space(&["p:a"])).len(), 1 + 4);
        // One model on two providers keeps both apart; repeated sample counts count once.
        let mut s = space(&["p:a", "q:a"]);
        s.samples = vec![3, 3];
        let c = candidates(&s);
        let names: std::collections::BTreeSet<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), c.len(), "{names:?}");
        assert!(names.contains("p:a alone") && names.contains("q:a x3 vote"));
    }

    #[test]
    fn a_candidate_becomes_a_recipe_on_the_base_providers() {
        let base = Recipe::from_toml(
            "name = \"base\"\nmax_tokens = 99\n[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[[layers]]\nagents = [\"p:x\"]\n[aggregator]\nmodel = \"p:x\"\n",
        )
        .expect("base");
        for c in candidates(&space(&["p:a", "p:b"])) {
            let r = recipe(&c, &base);
            r.validate().unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(r.max_tokens, Some(99));
            assert_eq!(r.name, c.name);
        }
        let vote = candidates(&space(&["p:a"])).into_iter().find(|c| c.name == "a x3 vote").expect("vote");
        let r = recipe(&vote, &base);
        assert_eq!(r.layers[0].agents[0].samples, 3);
        assert_eq!(r.aggregator.strategy, Some(StrategySpec::builtin(StrategyKind::Vote)));
        let synth = candidates(&space(&["p:a"])).into_iter().find(|c| c.name == "a x3 synthesize").expect("synth");
        assert_eq!(recipe(&synth, &base).aggregator.strategy, None, "synthesize is the default");
    }

    #[test]
    fn the_schedule_doubles_items_and_ends_on_all_of_them() {
        assert_eq!(schedule(100, 16, 8), vec![12, 25, 50, 100], "no round under 8 items");
        assert_eq!(schedule(1000, 16, 8), vec![62, 125, 250, 500, 1000]);
        assert_eq!(schedule(100, 1, 8), vec![100]);
        assert_eq!(schedule(20, 16, 8), vec![10, 20], "rounds dropped to keep 8 items or more");
        assert_eq!(schedule(5, 16, 8), vec![5]);
        // The total work is a small multiple of one full evaluation of every candidate.
        let s = schedule(100, 16, 8);
        let mut alive = 16usize;
        let mut work = 0;
        for n in &s {
            work += alive * n;
            alive = alive.div_ceil(2);
        }
        assert!(work <= 16 * 100 / 2, "{work}");
    }

    #[test]
    fn survivors_are_the_better_half_within_budget() {
        let ms = [m("a", 0.5, 100.0), m("b", 0.9, 900.0), m("c", 0.7, 100.0), m("d", 0.7, 50.0), m("e", 0.1, 10.0)];
        assert_eq!(survivors(&ms, &Budgets::default()), ["b", "d", "c"]);
        let tight = Budgets { tokens_per_item: Some(500.0), ..Budgets::default() };
        assert_eq!(survivors(&ms, &tight), ["d", "c", "a"]);
        assert_eq!(best(&ms, &tight).map(|m| m.name.as_str()), Some("d"));
        let none = Budgets { tokens_per_item: Some(1.0), ..Budgets::default() };
        assert!(survivors(&ms, &none).is_empty());
        assert!(best(&ms, &none).is_none());
        assert_eq!(cheapest(&ms, 2).iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["e", "d"]);
    }

    #[test]
    fn budgets_say_what_they_break() {
        let b = Budgets { tokens_per_item: Some(10.0), ttft_ms: Some(50.0), cost_per_item: Some(0.01) };
        let broken = b.broken(&m("x", 1.0, 20.0));
        assert_eq!(
            broken,
            ["20 tokens per item > 10", "TTFT 100 ms > 50", "cost unknown (the base recipe has no prices)"]
        );
    }
}
