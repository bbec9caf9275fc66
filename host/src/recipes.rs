//! Finding recipes (a preset name or a file) and applying command-line overrides.

use moa_core::recipe::{self, PRESETS};
use moa_core::{Recipe, RecipeError};
use serde_json::Value;
use std::path::Path;
use thiserror::Error;

/// A recipe could not be had.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Neither a preset nor a readable file.
    #[error("no preset or file called {0:?} (presets: {presets}; files end in .toml or .json)", presets = preset_names())]
    NotFound(String),
    /// The file could not be read.
    #[error("cannot read recipe {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The recipe is invalid.
    #[error("recipe {origin}: {source}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// What is wrong, with field paths.
        source: RecipeError,
    },
    /// A `--set` could not be applied.
    #[error("--set {assignment:?}: {reason}")]
    Set {
        /// The assignment as given.
        assignment: String,
        /// Why it cannot apply.
        reason: String,
    },
}

fn preset_names() -> String {
    PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A preset by name, or a `.toml` / `.json` file by path.
pub fn load(spec: &str) -> Result<Recipe, LoadError> {
    if let Some(r) = recipe::preset(spec) {
        return Ok(r);
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(LoadError::NotFound(spec.to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: spec.to_owned(), source })?;
    let parsed =
        if path.extension().is_some_and(|e| e == "json") { Recipe::from_json(&text) } else { Recipe::from_toml(&text) };
    parsed.map_err(|source| LoadError::Invalid { origin: spec.to_owned(), source })
}

/// Applies `path=value` assignments (`layers[0].agents[1].temperature=0.2`,
/// `aggregator.model=together:x`, `policy.retries=5`). A value is read as JSON when it
/// parses (numbers, booleans, arrays, tables), else as a string. The result is
/// validated like any recipe.
pub fn apply_sets(recipe: &Recipe, assignments: &[String]) -> Result<Recipe, LoadError> {
    if assignments.is_empty() {
        return Ok(recipe.clone());
    }
    let mut value = serde_json::to_value(recipe)
        .map_err(|e| LoadError::Set { assignment: String::new(), reason: e.to_string() })?;
    for a in assignments {
        let fail = |reason: String| LoadError::Set { assignment: a.clone(), reason };
        let (path, raw) = a.split_once('=').ok_or_else(|| fail("expected path=value".into()))?;
        let new = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.to_owned()));
        *slot(&mut value, path.trim()).map_err(fail)? = new;
    }
    Recipe::from_json(&value.to_string()).map_err(|source| LoadError::Invalid { origin: "after --set".into(), source })
}

/// The place `path` names in `root`, creating a missing last table entry.
fn slot<'a>(root: &'a mut Value, path: &str) -> Result<&'a mut Value, String> {
    let mut cur = root;
    for segment in path.split('.') {
        let (name, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        if !name.is_empty() {
            let Value::Object(map) = cur else { return Err(format!("{name:?} is not inside a table")) };
            cur = map.entry(name.to_owned()).or_insert(Value::Null);
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let (idx, after) = inner.split_once(']').ok_or("unclosed [")?;
            let i: usize = idx.parse().map_err(|_| format!("{idx:?} is not an index"))?;
            let Value::Array(items) = cur else {
                return Err(format!("{segment:?} indexes something that is not a list"));
            };
            let len = items.len();
            cur = items.get_mut(i).ok_or(format!("index {i} is past the end (length {len})"))?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(format!("cannot read {segment:?}"));
        }
    }
    Ok(cur)
}

/// The common knobs as flags; each is a shorthand for `--set`.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// `provider:model` of the final aggregator.
    pub aggregator: Option<String>,
    /// Temperature for every agent.
    pub temperature: Option<f64>,
    /// Token cap for every agent.
    pub max_tokens: Option<u32>,
    /// Keep this many proposer layers: fewer drops the last ones, more repeats the last.
    pub layers: Option<usize>,
}

impl Knobs {
    /// Applies the knobs; agent-level settings give way to these.
    pub fn apply(&self, recipe: &Recipe) -> Result<Recipe, LoadError> {
        let mut r = recipe.clone();
        if let Some(m) = &self.aggregator {
            r.aggregator.model = m.clone();
        }
        if let Some(t) = self.temperature {
            r.temperature = Some(t);
            r.layers.iter_mut().flat_map(|l| &mut l.agents).for_each(|a| a.temperature = None);
            r.aggregator.temperature = None;
        }
        if let Some(n) = self.max_tokens {
            r.max_tokens = Some(n);
            r.layers.iter_mut().flat_map(|l| &mut l.agents).for_each(|a| a.max_tokens = None);
            r.aggregator.max_tokens = None;
        }
        if let Some(n) = self.layers {
            if n == 0 {
                return Err(LoadError::Set {
                    assignment: "--layers 0".into(),
                    reason: "at least one layer is needed".into(),
                });
            }
            if let Some(last) = r.layers.last().cloned() {
                r.layers.resize(n, last);
            }
        }
        r.validate().map_err(|source| LoadError::Invalid { origin: "after flags".into(), source })?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_apply_by_path_and_validate() {
        let r = recipe::preset("moa").expect("preset");
        let sets = [
            "layers[0].agents[1].temperature=0.2".to_owned(),
            "policy.retries=5".to_owned(),
            "aggregator.model=together:x".to_owned(),
        ];
        let out = apply_sets(&r, &sets).expect("valid");
        assert_eq!(out.layers[0].agents[1].temperature, Some(0.2));
        assert_eq!(out.policy.retries, 5);
        assert_eq!(out.aggregator.model, "together:x");

        let err = apply_sets(&r, &["layers[9].agents[0].temperature=1".to_owned()]).expect_err("bad index");
        assert!(err.to_string().contains("index 9 is past the end (length 2)"), "{err}");
        let err = apply_sets(&r, &["layers[0].agents[0].temperature=hot".to_owned()]).expect_err("bad type");
        assert!(err.to_string().contains("layers[0].agents[0].temperature"), "{err}");
        let err = apply_sets(&r, &["aggregator.model=togther:x".to_owned()]).expect_err("bad provider");
        assert!(err.to_string().contains("aggregator: unknown provider \"togther\""), "{err}");
    }

    #[test]
    fn knobs_override_and_resize_layers() {
        let r = recipe::preset("moa-lite").expect("preset");
        let k = Knobs { temperature: Some(0.1), max_tokens: Some(99), layers: Some(3), aggregator: None };
        let out = k.apply(&r).expect("valid");
        assert_eq!(out.layers.len(), 3);
        assert!(out.layer_agents(2).iter().all(|a| a.temperature == 0.1 && a.max_tokens == 99));
        assert_eq!(out.call_count(), 19);
    }
}
