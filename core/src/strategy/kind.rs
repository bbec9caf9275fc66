//! How the built-in strategies ([`StrategyKind`], listed in the vocabulary) are made.

use super::{Diverse, Rank, Select, Sequential, Strategy, StrategyError, Synthesize, Vote};
pub use crate::vocab::StrategyKind;

impl StrategyKind {
    /// Makes it with `params`, or says which parameter is wrong.
    pub fn build(self, params: &serde_json::Value) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(match self {
            StrategyKind::Synthesize => Box::new(Synthesize::from_params(params)?),
            StrategyKind::Vote => Box::new(Vote::from_params(params)?),
            StrategyKind::Diverse => Box::new(Diverse::from_params(params)?),
            StrategyKind::Rank => Box::new(Rank::from_params(params)?),
            StrategyKind::Select => Box::new(Select::from_params(params)?),
            StrategyKind::Sequential => Box::new(Sequential::from_params(params)?),
        })
    }

    /// An error of this strategy.
    pub(crate) fn error(self, message: impl Into<String>) -> StrategyError {
        StrategyError { strategy: self.name().into(), message: message.into() }
    }
}

/// Rejects parameters a built-in does not take, so a typo is not silently ignored.
pub(crate) fn check_params(kind: StrategyKind, params: &serde_json::Value) -> Result<(), StrategyError> {
    let Some(map) = params.as_object() else { return Ok(()) };
    let known = kind.params();
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(kind.error(format!(
            "unknown parameter {} (it takes {})",
            crate::quote::Quoted(k),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_what_each_strategy_calls_itself() {
        for kind in StrategyKind::ALL {
            assert_eq!(StrategyKind::from_name(kind.name()), Some(kind));
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.name());
            let made = kind.build(&serde_json::Value::Null).expect("defaults");
            assert_eq!(made.name(), kind.name());
            assert!(kind.summary().starts_with(kind.name()));
        }
        assert_eq!(StrategyKind::from_name("Vote"), None);
    }

    #[test]
    fn every_listed_parameter_is_accepted_and_others_are_named() {
        let e = StrategyKind::Vote.build(&serde_json::json!({ "treshold": 0.5 })).err().expect("a typo");
        assert_eq!(e.strategy, "vote");
        assert!(e.message.contains("\"treshold\"") && e.message.contains("threshold, max_answer_chars"), "{e}");
        let e = StrategyKind::Synthesize.build(&serde_json::json!({ "k": 1 })).err().expect("takes none");
        assert!(e.message.contains("it takes none"), "{e}");
    }
}
