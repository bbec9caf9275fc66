//! What a JavaScript caller hands a run is read by hand (`moa_core::input`), held here to
//! the types' derived readers with `serde_path_to_error`'s paths: valid documents broken
//! in random ways (a value of the wrong type, an unknown key, a key left out) are read to
//! the same value or refused at the same path.

use moa_core::input;
use moa_core::recipe::FieldError;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

mod mutate;

const MESSAGES: &str = r#"[{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"},
  {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
    "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
  {"role": "tool", "content": "12 C", "tool_call_id": "c1"}]"#;
const KEYS: &str = r#"{"together": "k1", "anthropic": "k2"}"#;
const TOOLS: &str = r#"[{"name": "get_weather", "description": "now", "strict": true,
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}, {"name": "noop"}]"#;
const CHOICES: [&str; 3] = [r#""required""#, r#"{"function": "get_weather"}"#, r#""none""#];
const FORMATS: [&str; 2] = [
    r#"{"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": false}}"#,
    r#"{"type": "text"}"#,
];

/// The derived reader's answer, with `serde_path_to_error`'s path when it refuses.
fn oracle<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| e.path().to_string())
}

fn ours<T>(text: &str, read: fn(&Value, &str) -> Result<T, FieldError>) -> Result<T, FieldError> {
    read(&serde_json::from_str(text).expect("JSON"), "")
}

/// `text` with one node replaced, given an unknown field, or left out.
fn mutate(text: &str, node: usize, how: usize, pick: usize) -> String {
    let mut v: Value = serde_json::from_str(text).expect("JSON");
    mutate::break_node(&mut v, node, how, pick);
    v.to_string()
}

/// Ours and the derived reader agree on `text`: the same value, or a refusal at the same
/// path. A struct written as a list of its fields, which serde takes, ours refuses.
fn agree<T: DeserializeOwned + PartialEq + Debug>(
    text: &str,
    read: fn(&Value, &str) -> Result<T, FieldError>,
) -> Result<(), TestCaseError> {
    match (ours(text, read), oracle::<T>(text)) {
        (Err(e), want) if e.message.starts_with("invalid type: sequence, expected") => {
            if let Err(want) = want {
                prop_assert!(e.path == "." || want.starts_with(&e.path), "{:?} vs {}: {}", e, want, text);
            }
        }
        (Ok(o), Ok(want)) => prop_assert_eq!(o, want, "text: {}", text),
        (Err(e), Err(want)) => prop_assert_eq!(e.path, want, "{}: {}", e.message, text),
        (o, want) => prop_assert!(false, "ours {:?}, serde's {:?}: {}", o, want.map(|_| "a value"), text),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn inputs_are_read_or_refused_as_serde_reads_or_refuses_them(
        which in 0usize..7, node in 0usize..10_000, how in 0usize..3, pick in 0usize..12,
    ) {
        match which {
            0 => agree(&mutate(MESSAGES, node, how, pick), input::messages)?,
            1 => agree(&mutate(KEYS, node, how, pick), input::keys)?,
            2 => agree(&mutate(TOOLS, node, how, pick), input::tools)?,
            3 | 4 => agree(&mutate(CHOICES[node % 3], node / 3, how, pick), input::tool_choice)?,
            _ => agree(&mutate(FORMATS[node % 2], node / 2, how, pick), input::response_format)?,
        }
    }
}

#[test]
fn the_documents_read_whole_and_errors_name_the_path() {
    assert_eq!(ours(MESSAGES, input::messages).expect("valid").len(), 4);
    agree(MESSAGES, input::messages).expect("agree");
    agree(TOOLS, input::tools).expect("agree");
    for choice in CHOICES {
        agree(choice, input::tool_choice).expect("agree");
    }
    for format in FORMATS {
        agree(format, input::response_format).expect("agree");
    }
    let e = input::messages(
        &serde_json::json!([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]),
        "messages",
    )
    .expect_err("no such role");
    assert_eq!(e.path, "messages[1].role");
    assert_eq!(e.message, "unknown variant `robot`, expected one of `system`, `user`, `assistant`, `tool`");
}
