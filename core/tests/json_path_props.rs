//! A JSON recipe is read by hand (`recipe/read.rs`) and its syntax errors are placed by
//! `recipe/json_path.rs`; both are held here to serde's derived reader (which TOML still
//! uses) with `serde_path_to_error`'s paths: every preset and a recipe that sets every
//! field, broken in random ways (a value of the wrong type, an unknown or repeated key, a
//! key left out), compact and pretty-printed, are read to the same recipe or refused at
//! the same path; truncated texts say where they stop.

use moa_core::recipe::{self, PRESETS, json_path};
use moa_core::{Recipe, RecipeError};
use proptest::prelude::*;
use serde_json::Value;

mod mutate;

/// What the derived reader makes of `text`, with `serde_path_to_error`'s path for what
/// it refuses, then validated as `from_json` validates.
fn oracle(text: &str) -> Result<Recipe, RecipeError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let recipe: Recipe = serde_path_to_error::deserialize(de).map_err(|e| RecipeError::Parse {
        format: "JSON",
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    recipe.validate()?;
    Ok(recipe)
}

fn ours(text: &str) -> Option<String> {
    match Recipe::from_json(text) {
        Err(RecipeError::Parse { path, .. }) => Some(path),
        _ => None,
    }
}

/// Every field a recipe has, set: the presets leave most options at their defaults.
const EVERY_FIELD: &str = r#"{
  "name": "all", "description": "every field", "temperature": 0.5, "max_tokens": 300,
  "providers": {
    "p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "P_KEY",
          "max_concurrency": 2, "context_tokens": 8000, "tools": false},
    "q": {"kind": "anthropic", "base_url": "https://api.anthropic.com/v1", "api_key_env": "Q_KEY"}
  },
  "layers": [
    {"agents": ["p:a", {"model": "q:b", "name": "bee", "temperature": 0.9, "max_tokens": 100,
                         "system": "be brief", "samples": 2, "context_tokens": 4000}], "early_exit": true},
    {"agents": ["p:a", "p:c"], "strategy": {"name": "diverse", "params": {"k": 1}, "on_error": "synthesize"},
     "min_successes": 1, "quorum": {"min": 1, "grace_ms": 250}, "early_exit": false}
  ],
  "aggregator": {"model": "p:agg", "name": "judge", "temperature": 0.0, "max_tokens": 400, "system": "sum up",
                 "strategy": "synthesize", "top_p": 0.9, "seed": 7, "stop": ["END"], "presence_penalty": 0.1,
                 "frequency_penalty": 0.2, "staircase": {"chunk_chars": 40, "step_tokens": 16, "growth": 4},
                 "context_tokens": 9000},
  "policy": {"timeout_secs": 30, "stall_timeout_secs": 10, "retries": 1, "backoff_secs": 0.5,
             "max_backoff_secs": 4, "max_retry_after_secs": 20, "min_successes": 1, "max_concurrency": 8,
             "quorum": {"min": 1}},
  "prices": {"p:a": {"input": 0.1, "output": 0.2, "batch": 0.5}, "q:b": {"input": 1, "output": 2}},
  "tool_policy": "vote"
}"#;

/// The `k`th document to break: a preset, or the one that sets every field.
fn base(k: usize) -> Value {
    match PRESETS.get(k % (PRESETS.len() + 1)) {
        Some((name, _)) => serde_json::from_str(&recipe::preset(name).expect("a preset").to_json()).expect("JSON"),
        None => serde_json::from_str(EVERY_FIELD).expect("JSON"),
    }
}

fn mutate(preset: usize, node: usize, how: usize, pick: usize, pretty: bool) -> String {
    let mut v = base(preset);
    mutate::break_node(&mut v, node, how % 4, pick);
    let text = if pretty {
        serde_json::to_string_pretty(&v).expect("a Value writes")
    } else {
        serde_json::to_string(&v).expect("a Value writes")
    };
    if how % 4 == 3 {
        // A key repeated: the first `"k": value` text of an object, written twice.
        if let Some(pos) = text.match_indices("\"model\"").nth(node % 3).map(|(i, _)| i) {
            let rest = &text[pos..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            return format!("{}{},{}", &text[..pos], &rest[..end], rest);
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn a_broken_recipe_is_read_or_refused_as_serde_reads_or_refuses_it(
        preset in 0usize..64, node in 0usize..10_000, how in 0usize..4, pick in 0usize..12, pretty: bool,
        cut in 0usize..5_000,
    ) {
        let text = mutate(preset, node, how, pick, pretty);
        match (Recipe::from_json(&text), oracle(&text)) {
            // A repeated key: ours names it (`aggregator.model`), `serde_path_to_error` its
            // object (`aggregator`).
            (Err(RecipeError::Parse { path: o, .. }), Err(RecipeError::Parse { path: want, .. }))
                if how % 4 == 3 && o.ends_with("model") =>
            {
                prop_assert!(want == "." || o == format!("{want}.model"), "{} vs {}: {}", o, want, text);
            }
            // A struct written as a list: serde reads its fields in order (and may refuse
            // one of them, inside the list), ours refuses the list.
            (Err(RecipeError::Parse { message, path: o, .. }), want)
                if message.starts_with("invalid type: sequence, expected struct") =>
            {
                if let Err(RecipeError::Parse { path: want, .. }) = want {
                    prop_assert!(o == "." || want.starts_with(&o), "{} vs {}: {}", o, want, text);
                }
            }
            (Err(RecipeError::Parse { path: o, .. }), Err(RecipeError::Parse { path: want, .. })) => {
                prop_assert_eq!(o, want, "text: {}", text);
            }
            (o, want) => prop_assert_eq!(o, want, "text: {}", text),
        }
        // Truncated anywhere: a syntax error. `serde_path_to_error` says `?` for some of
        // these (an error reading the next key); ours names the last key read, and the
        // message says the line and column either way.
        let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let short = &text[..cut];
        match Recipe::from_json(short) {
            Err(RecipeError::Parse { path, message, .. }) => {
                prop_assert!(!path.is_empty());
                // A syntax error says the line and column; a cut that still parses
                // (`7` of `70000`) is refused as a recipe.
                prop_assert!(message.contains(" line ") || serde_json::from_str::<Value>(short).is_ok(), "{}", message);
            }
            other => prop_assert!(false, "a truncated recipe parsed: {:?}", other),
        }
    }
}

#[test]
fn every_base_document_is_a_valid_recipe_read_alike() {
    for k in 0..=PRESETS.len() {
        let text = base(k).to_string();
        let ours = Recipe::from_json(&text).expect("valid");
        assert_eq!(Ok(ours), oracle(&text));
    }
}

#[test]
fn a_repeated_key_is_found_at_any_depth_and_in_a_large_object() {
    assert_eq!(
        json_path::repeated_key(r#"{"a": {"b": [{"c": 1, "d": 2, "c": 3}]}}"#),
        Some(("a.b[0].c".into(), "c".into()))
    );
    assert_eq!(json_path::repeated_key(r#"{"a": {"c": 1}, "b": {"c": 1}, "s": "\"a\": 1"}"#), None);
    let many: Vec<String> = (0..40_000).map(|i| format!("\"k{i}\": {i}")).collect();
    assert_eq!(json_path::repeated_key(&format!("{{{}}}", many.join(", "))), None);
    assert_eq!(
        json_path::repeated_key(&format!("{{{}, \"k17\": 0}}", many.join(", "))),
        Some(("k17".into(), "k17".into()))
    );
}

#[test]
fn paths_name_keys_and_indexes_as_before() {
    let text = r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
        "layers": [{"agents": ["p:a"]}, {"agents": [{"model": "p:b", "temperature": "hot"}]}],
        "aggregator": "p:c"}"#;
    assert_eq!(ours(text).as_deref(), Some("layers[1].agents[0].temperature"));
    assert_eq!(json_path::path_at("{\"a\\u00e9\\ud83d\\ude00\": [1, [2, 3", 99), "a\u{e9}\u{1F600}[1][1]");
    assert_eq!(json_path::path_at("", 0), ".");
}
