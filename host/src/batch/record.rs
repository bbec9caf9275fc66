//! One line of a batch's output (OUT): the record `moa batch` and `moa batch --api`
//! write for each finished item, and that every reader (resume, `merge`, `export`,
//! `moa eval`) reads. One type, so writer and readers cannot drift apart.

use moa_core::{LayerReport, Outcome, Recipe, ToolCall, Usage};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A finished item's result line. Read leniently: lines written by older versions lack
/// some fields, which read as their defaults.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResultLine {
    /// The item's id, exactly as the input wrote it.
    pub id: Box<RawValue>,
    /// The answer; absent when the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The tools the answer calls, as OpenAI writes calls (the item offered tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Who decided the answer (see [`Outcome::decided_by`]); absent when the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why there is no answer; absent when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tokens over every attempt, failed ones included.
    #[serde(default)]
    pub usage: Usage,
    /// The part of `usage` spent on attempts that failed or were cancelled.
    #[serde(default)]
    pub wasted: Usage,
    /// Dollars, when priced.
    #[serde(default)]
    pub cost: Option<f64>,
    /// How long it took.
    #[serde(default)]
    pub timings: Timings,
    /// Every layer's calls, when the batch was asked to keep the proposals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerReport>>,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// The seed the item ran with.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A result line's times, in milliseconds from the run's start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Wall time of the run.
    #[serde(default)]
    pub wall_ms: f64,
    /// Time to first token ([`Outcome::ttft_ms`]); absent in lines written before runs
    /// carried their own.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Each layer's slowest call.
    #[serde(default)]
    pub layer_ms: Vec<f64>,
}

impl ResultLine {
    /// The line for `outcome`, the item `id` as the input wrote it; its layers' calls only
    /// when `proposals`.
    pub fn new(id: &RawValue, outcome: &Outcome, proposals: bool, provenance: &Provenance, seed: u64) -> ResultLine {
        let layer_ms =
            outcome.layers.iter().map(|l| l.calls.iter().filter_map(|c| c.latency_ms).fold(0.0, f64::max)).collect();
        let (answer, decided_by, error) = match outcome.result() {
            Ok(a) => (Some(a.to_owned()), outcome.decided_by.clone(), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        ResultLine {
            id: id.to_owned(),
            answer,
            tool_calls: outcome.tool_calls.clone(),
            decided_by,
            error,
            usage: outcome.usage,
            wasted: outcome.wasted,
            cost: outcome.cost,
            timings: Timings { wall_ms: outcome.wall_ms, ttft_ms: outcome.ttft_ms, layer_ms },
            layers: proposals.then(|| outcome.layers.clone()),
            provenance: Some(provenance.clone()),
            seed: Some(seed),
        }
    }

    /// The line as JSON, without a newline.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and owned values: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Input plus output tokens over every attempt.
    pub fn tokens(&self) -> u64 {
        self.usage.total()
    }

    /// Calls made, every layer's (none recorded when the proposals were not kept).
    pub fn calls(&self) -> usize {
        self.layers.iter().flatten().map(|l| l.calls.len()).sum()
    }

    /// Time to first token: the run's own, or for a line written before runs carried one,
    /// estimated from its aggregator's calls.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.timings.ttft_ms.or_else(|| self.legacy_ttft())
    }

    fn legacy_ttft(&self) -> Option<f64> {
        let agg = self.layers.iter().flatten().find(|l| l.aggregator).map_or(&[][..], |l| &l.calls[..]);
        let first_token = agg.iter().filter_map(|c| Some(c.started_ms? + c.ttft_ms?)).min_by(f64::total_cmp);
        match agg.first() {
            Some(_) if first_token.is_some() => first_token,
            Some(c) => match (c.latency_ms, c.ttft_ms) {
                (Some(lat), Some(ttft)) => Some((self.timings.wall_ms - lat + ttft).max(0.0)),
                _ => None,
            },
            None => self.answer.as_ref().map(|_| self.timings.wall_ms),
        }
    }
}

/// Where a result came from, written with it: enough to tell two training files apart
/// and to reproduce one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// The recipe's name.
    pub recipe: String,
    /// SHA-256 of the recipe's canonical JSON: the same recipe, the same hash.
    pub recipe_sha256: String,
    /// Every `provider:model` the recipe calls, in order, each once.
    pub models: Vec<String>,
    /// The moa version that produced it.
    pub moa: String,
}

impl Provenance {
    /// The provenance of results of `recipe`.
    pub fn of(recipe: &Recipe) -> Provenance {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(recipe.to_json().as_bytes());
        let recipe_sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut models: Vec<String> = Vec::new();
        let specs = recipe.layers.iter().flat_map(|l| l.agents.iter().map(|a| a.model.clone()));
        for m in specs.chain([recipe.aggregator.model.clone()]) {
            if !models.contains(&m) {
                models.push(m);
            }
        }
        Provenance { recipe: recipe.name.clone(), recipe_sha256, models, moa: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// The head of a result line: its id and whether it holds an answer, read without
/// copying the rest (resume, `merge` and `export` index OUT by it).
#[derive(Deserialize)]
pub(crate) struct ResultHead<'a> {
    #[serde(borrow)]
    pub(crate) id: &'a RawValue,
    #[serde(default)]
    answer: Option<serde::de::IgnoredAny>,
}

impl ResultHead<'_> {
    /// Whether the line holds an answer (a failed item's line holds an error instead).
    pub(crate) fn answered(&self) -> bool {
        self.answer.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moa_core::{CallReport, RunError};

    fn provenance() -> Provenance {
        Provenance { recipe: "r".into(), recipe_sha256: "00".into(), models: vec!["p:m".into()], moa: "0".into() }
    }

    fn call(started: Option<f64>, ttft: Option<f64>, latency: Option<f64>) -> CallReport {
        CallReport {
            slot: 0,
            agent: "a".into(),
            provider: "p".into(),
            model: "m".into(),
            ok: true,
            text: "x".into(),
            errors: vec![],
            attempts: 1,
            usage: Some(Usage::new(3, 4)),
            cost: None,
            wasted: Usage::default(),
            latency_ms: latency,
            ttft_ms: ttft,
            started_ms: started,
            server_ms: None,
            asked: false,
        }
    }

    fn outcome(answer: Result<String, RunError>, calls: Vec<CallReport>) -> Outcome {
        let layers = vec![LayerReport {
            layer: 0,
            aggregator: true,
            calls,
            usage: Usage::new(3, 4),
            cost: None,
            wasted: Usage::default(),
        }];
        Outcome {
            answer,
            decided_by: Some("agg".into()),
            layers,
            usage: Usage::new(3, 4),
            cost: Some(0.5),
            wasted: Usage::default(),
            finish_reason: None,
            wall_ms: 900.0,
            ttft_ms: Some(120.0),
            tool_calls: vec![],
        }
    }

    #[test]
    fn a_line_reads_back_as_it_was_written() {
        let id = RawValue::from_string("\"q-1\"".into()).expect("as written");
        let line = ResultLine::new(
            &id,
            &outcome(Ok("Paris".into()), vec![call(None, None, Some(5.0))]),
            true,
            &provenance(),
            7,
        );
        let back: ResultLine = serde_json::from_str(&line.to_json()).expect("as written");
        assert_eq!(back.id.get(), "\"q-1\"");
        assert_eq!(back.answer.as_deref(), Some("Paris"));
        assert_eq!(back.decided_by.as_deref(), Some("agg"));
        assert_eq!(back.error, None);
        assert_eq!((back.tokens(), back.cost, back.seed, back.calls()), (7, Some(0.5), Some(7), 1));
        assert_eq!(back.timings, Timings { wall_ms: 900.0, ttft_ms: Some(120.0), layer_ms: vec![5.0] });
        assert_eq!(back.provenance, Some(provenance()));
        assert_eq!(back.layers, line.layers);
    }

    #[test]
    fn a_failed_item_has_an_error_and_no_answer_key() {
        let id = RawValue::from_string("3".into()).expect("as written");
        let line = ResultLine::new(&id, &outcome(Err(RunError::Cancelled), vec![]), false, &provenance(), 1);
        let v: serde_json::Value = serde_json::from_str(&line.to_json()).expect("as written");
        assert!(v.get("answer").is_none() && v.get("decided_by").is_none() && v.get("layers").is_none(), "{v}");
        assert_eq!(v["error"], RunError::Cancelled.to_string());
        let text = line.to_json();
        let head: ResultHead = serde_json::from_str(&text).expect("as written");
        assert!(!head.answered());
    }

    #[test]
    fn an_old_line_without_the_runs_ttft_estimates_it_from_the_aggregators_calls() {
        let old = |calls: &str| {
            format!(
                r#"{{"id":1,"answer":"a","timings":{{"wall_ms":1000.0}},"layers":[{{"layer":0,"aggregator":true,"usage":{{"input_tokens":1,"output_tokens":1}},"cost":null,"calls":[{calls}]}}]}}"#
            )
        };
        let c = |extra: &str| {
            format!(
                r#"{{"slot":0,"agent":"a","provider":"p","model":"m","ok":true,"text":"t","errors":[],"attempts":1,"usage":null,"cost":null,"latency_ms":400.0,"ttft_ms":50.0{extra}}}"#
            )
        };
        // With the calls' start times: the earliest first token.
        let two = format!("{},{}", c(r#","started_ms":300.0"#), c(r#","started_ms":200.0"#));
        let line: ResultLine = serde_json::from_str(&old(&two)).expect("as written");
        assert_eq!(line.ttft_ms(), Some(250.0));
        // Without them: counted back from the end of the run.
        let line: ResultLine = serde_json::from_str(&old(&c(""))).expect("as written");
        assert_eq!(line.ttft_ms(), Some(650.0));
        // No aggregator call (a strategy decided): the answer came at the end.
        let line: ResultLine =
            serde_json::from_str(r#"{"id":1,"answer":"a","timings":{"wall_ms":80.0}}"#).expect("as written");
        assert_eq!(line.ttft_ms(), Some(80.0));
        let line: ResultLine =
            serde_json::from_str(r#"{"id":1,"error":"e","timings":{"wall_ms":80.0}}"#).expect("as written");
        assert_eq!(line.ttft_ms(), None);
    }

    #[test]
    fn a_head_reads_only_the_id_and_whether_it_answered() {
        let head: ResultHead =
            serde_json::from_str(r#"{"id":{"a":[1,2]},"answer":"x\ny","usage":{}}"#).expect("as written");
        assert_eq!(head.id.get(), r#"{"a":[1,2]}"#);
        assert!(head.answered());
        let head: ResultHead = serde_json::from_str(r#"{"id":"b","answer":null}"#).expect("as written");
        assert!(!head.answered());
    }
}
