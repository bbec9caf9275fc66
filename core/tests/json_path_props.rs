//! A JSON recipe's parse errors name the same field path `serde_path_to_error` would:
//! every preset, broken in random ways (a value of the wrong type, an unknown or repeated
//! key, a key left out), compact and pretty-printed; truncated texts say where they stop.

use moa_core::recipe::{self, PRESETS, json_path};
use moa_core::{Recipe, RecipeError};
use proptest::prelude::*;
use serde_json::Value;

/// What `serde_path_to_error` says (the path this module used to report with it).
fn oracle(text: &str) -> Option<String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Recipe>(de).err().map(|e| e.path().to_string())
}

fn ours(text: &str) -> Option<String> {
    match Recipe::from_json(text) {
        Err(RecipeError::Parse { path, .. }) => Some(path),
        _ => None,
    }
}

/// Every node of a JSON value, as a list of steps from the root.
fn nodes(v: &Value, here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let mut p = here.clone();
                p.push(Step::Key(k.clone()));
                nodes(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(Step::Index(i));
                nodes(child, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

const REPLACEMENTS: &[&str] = &["{}", "[]", "\"x\"", "1.5", "-1", "true", "null", "70000", "[1]", "{\"a\":1}"];

fn mutate(preset: usize, node: usize, how: usize, pretty: bool) -> String {
    let (name, _) = PRESETS[preset % PRESETS.len()];
    let mut v: Value = serde_json::from_str(&recipe::preset(name).expect("a preset").to_json()).expect("JSON");
    let mut all = Vec::new();
    nodes(&v, Vec::new(), &mut all);
    let path = &all[node % all.len()];
    match how % 4 {
        0 => *at(&mut v, path) = serde_json::from_str(REPLACEMENTS[node % REPLACEMENTS.len()]).expect("JSON"),
        1 => {
            if let Value::Object(m) = at(&mut v, path) {
                m.insert("zz_unknown".into(), Value::Bool(true));
            } else {
                *at(&mut v, path) = Value::String("tégé\u{1F600}\"\\".into());
            }
        }
        2 => {
            if let (Some(Step::Key(k)), Some(parent)) = (path.last(), path.split_last().map(|(_, p)| p))
                && let Value::Object(m) = at(&mut v, parent)
            {
                m.remove(k);
            }
        }
        _ => {}
    }
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
    fn a_broken_recipe_names_the_path_serde_path_to_error_names(
        preset in 0usize..64, node in 0usize..10_000, how in 0usize..4, pretty: bool, cut in 0usize..5_000,
    ) {
        let text = mutate(preset, node, how, pretty);
        match (ours(&text), oracle(&text)) {
            // A repeated key: ours names it (`aggregator.model`), `serde_path_to_error` its
            // object (`aggregator`).
            (Some(o), Some(want)) if how % 4 == 3 && o.ends_with("model") => {
                prop_assert!(want == "." || o == format!("{want}.model"), "{} vs {}: {}", o, want, text);
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
                prop_assert!(message.contains(" line "), "{}", message);
            }
            other => prop_assert!(false, "a truncated recipe parsed: {:?}", other),
        }
    }
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
