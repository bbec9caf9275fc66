//! Tokens and money: per call from the provider's usage report, summed per layer and run.

use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

/// Tokens a call consumed: as the provider reported them, or, for an attempt that ended
/// before the provider reported any, estimated (and marked so).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Usage {
    /// Prompt tokens (for Anthropic including cache reads and writes).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Some of these tokens are estimated, not reported: an attempt that failed, was cut
    /// or was cancelled before the provider sent its usage (see [`Usage::estimate`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub estimated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Characters per token for estimates: the usual rule of thumb for English text with
/// BPE tokenizers. Estimates only ever stand in for a count the provider did not send.
const CHARS_PER_TOKEN: usize = 4;

impl Usage {
    /// Reported usage.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage { input_tokens, output_tokens, estimated: false }
    }

    /// An estimate for an attempt the provider never reported on: `prompt_chars` of input
    /// (counted only when the provider accepted the request, since a refused request is
    /// not processed) and the text it streamed, at four characters per token, rounded up.
    pub fn estimate(prompt_chars: Option<usize>, streamed: &str) -> Usage {
        let tokens = |chars: usize| chars.div_ceil(CHARS_PER_TOKEN) as u64;
        Usage {
            input_tokens: prompt_chars.map_or(0, tokens),
            output_tokens: tokens(streamed.chars().count()),
            estimated: true,
        }
    }

    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Whether no tokens are counted.
    pub fn is_zero(&self) -> bool {
        self.total() == 0
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.estimated |= other.estimated;
    }
}

/// A model's price in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Price {
    /// Dollars per million input tokens.
    pub input: f64,
    /// Dollars per million output tokens.
    pub output: f64,
    /// The share of these prices the provider's batch API charges (`moa batch --via
    /// batch-api`); half, as OpenAI and Anthropic charge today, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price, in dollars.
    pub fn cost(&self, usage: &Usage) -> f64 {
        (usage.input_tokens as f64 * self.input + usage.output_tokens as f64 * self.output) / 1e6
    }

    /// What `usage` costs through the provider's batch API.
    pub fn batch_cost(&self, usage: &Usage) -> f64 {
        self.cost(usage) * self.batch.unwrap_or(0.5)
    }
}

/// Adds an optional cost to an optional total: unknown stays unknown only while every part is.
pub fn add_cost(total: &mut Option<f64>, part: Option<f64>) {
    if let Some(p) = part {
        *total = Some(total.unwrap_or(0.0) + p);
    }
}
