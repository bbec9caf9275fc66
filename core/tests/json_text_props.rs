//! `json_text::parse` is held to `serde_json::from_str::<Value>`: for any text, the same
//! value (floats bit for bit) or the same message at the same line and column. The texts:
//! random values written compact and pretty, then broken a byte at a time with JSON's
//! own punctuation, escapes, numbers' pieces, control characters and non-ASCII; and
//! numbers of every shape and length on their own.

use moa_core::json_text;
use proptest::prelude::*;
use serde_json::Value;

/// What `serde_json` makes of `text`, written out (so `-0.0` and `0.0` differ).
fn oracle(text: &str) -> Result<String, String> {
    serde_json::from_str::<Value>(text).map(|v| v.to_string()).map_err(|e| e.to_string())
}

fn ours(text: &str) -> Result<String, String> {
    json_text::parse(text).map(|v| v.to_string()).map_err(|e| e.to_string())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}|[a-z\"\\\\/\u{0}-\u{1f}\u{e9}\u{1F600}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\\\\u{e9}]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Pieces that make JSON go wrong in interesting places.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    " ",
    "\n",
    "\t",
    "\r",
    "0",
    "1",
    "9",
    "-",
    "+",
    ".",
    "e",
    "E",
    "n",
    "t",
    "f",
    "u",
    "a",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\x",
    "\u{0}",
    "\u{1f}",
    "é",
    "😀",
    "null",
    "true",
    "1e400",
    "-0",
    "00",
    "1.",
    ".5",
    "1e",
    "1e+",
    "18446744073709551616",
    "/",
];

/// `text` with bytes `[at, at + cut)` replaced by `piece` (positions moved to the nearest
/// character boundary).
fn splice(text: &str, at: usize, cut: usize, piece: &str) -> String {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut end = (at + cut).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &text[..at], piece, &text[end..])
}

fn number() -> impl Strategy<Value = String> {
    ("-?", "[0-9]{0,25}", "(\\.[0-9]{0,25})?", "([eE][+-]?[0-9]{0,12})?", "[ ,x]?")
        .prop_map(|(s, i, f, e, tail)| format!("{s}{i}{f}{e}{tail}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn a_text_parses_or_fails_as_serde_json_parses_or_fails_it(
        v in value(),
        pretty in any::<bool>(),
        edits in prop::collection::vec((any::<usize>(), 0..3_usize, 0..PIECES.len()), 0..3),
    ) {
        let mut text = if pretty { serde_json::to_string_pretty(&v).expect("JSON") } else { v.to_string() };
        for (at, cut, piece) in edits {
            text = splice(&text, at, cut, PIECES[piece]);
        }
        prop_assert_eq!(ours(&text), oracle(&text), "{:?}", text);
    }

    #[test]
    fn a_number_reads_as_serde_json_reads_it(n in number(), wrap in any::<bool>()) {
        let text = if wrap { format!("[{n}]") } else { n };
        prop_assert_eq!(ours(&text), oracle(&text), "{:?}", text);
    }
}

#[test]
fn nesting_stops_where_serde_json_stops() {
    for depth in [126, 127, 128, 129, 300] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            assert_eq!(ours(&text), oracle(&text), "depth {depth}");
        }
    }
}

#[test]
fn errors_say_what_and_where() {
    let cases = [
        ("", "EOF while parsing a value at line 1 column 0"),
        ("{\"a\": 1,}", "trailing comma at line 1 column 9"),
        ("[1 2]", "expected `,` or `]` at line 1 column 4"),
        ("{\n  \"a\" 1}", "expected `:` at line 2 column 7"),
        ("\"\\ud800x\"", "unexpected end of hex escape at line 1 column 8"),
        ("[1e400]", "number out of range at line 1 column 6"),
        ("nul", "EOF while parsing a value at line 1 column 3"),
        ("{} x", "trailing characters at line 1 column 4"),
    ];
    for (text, want) in cases {
        assert_eq!(ours(text).expect_err("refused"), want, "{text:?}");
        assert_eq!(oracle(text).expect_err("refused"), want, "{text:?}");
    }
}
