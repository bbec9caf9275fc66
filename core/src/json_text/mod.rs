//! JSON text read by hand: [`parse`] builds a `serde_json::Value`, and a [`Cursor`] reads
//! typed values (a provider's stream chunks) straight from the text without building one.
//!
//! `serde_json`'s deserializer, with the visitors of every type read through it and the
//! float formatting its messages bring, was the browser module's largest reader. This one
//! is written once for every host, accepts what `serde_json` accepts, builds the same
//! `Value`, and refuses with the same message at the same line and column, held to it by
//! `core/tests/json_text_props.rs` (`serde_json` is the oracle). One difference: with
//! `serde_json`'s `raw_value` feature on (the native host's build turns it on), an object
//! whose only key is `"$serde_json::private::RawValue"` is that library's private
//! encoding of a raw value; here it is an object like any other. Numbers are read by
//! `serde_json`'s own algorithm (without its `float_roundtrip` feature), so a float comes
//! out bit for bit as it did.

mod cursor;
mod number;
mod typed;
mod value;

pub(crate) use cursor::Cursor;
use std::fmt;

/// Why a text is not JSON, or not the JSON asked for; worded as `serde_json` words it.
// Each variant is named for its message (below), as `serde_json` names them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    EofWhileParsingList,
    EofWhileParsingObject,
    EofWhileParsingString,
    EofWhileParsingValue,
    ExpectedColon,
    ExpectedListCommaOrEnd,
    ExpectedObjectCommaOrEnd,
    ExpectedSomeIdent,
    ExpectedSomeValue,
    InvalidEscape,
    InvalidNumber,
    NumberOutOfRange,
    ControlCharacterWhileParsingString,
    KeyMustBeAString,
    LoneLeadingSurrogateInHexEscape,
    TrailingComma,
    TrailingCharacters,
    UnexpectedEndOfHexEscape,
    RecursionLimitExceeded,
    /// A typed read found another kind of value: what it expected.
    Expected(&'static str),
    /// A typed read found a field twice in one object.
    DuplicateField(&'static str),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Code::EofWhileParsingList => "EOF while parsing a list",
            Code::EofWhileParsingObject => "EOF while parsing an object",
            Code::EofWhileParsingString => "EOF while parsing a string",
            Code::EofWhileParsingValue => "EOF while parsing a value",
            Code::ExpectedColon => "expected `:`",
            Code::ExpectedListCommaOrEnd => "expected `,` or `]`",
            Code::ExpectedObjectCommaOrEnd => "expected `,` or `}`",
            Code::ExpectedSomeIdent => "expected ident",
            Code::ExpectedSomeValue => "expected value",
            Code::InvalidEscape => "invalid escape",
            Code::InvalidNumber => "invalid number",
            Code::NumberOutOfRange => "number out of range",
            Code::ControlCharacterWhileParsingString => {
                "control character (\\u0000-\\u001F) found while parsing a string"
            }
            Code::KeyMustBeAString => "key must be a string",
            Code::LoneLeadingSurrogateInHexEscape => "lone leading surrogate in hex escape",
            Code::TrailingComma => "trailing comma",
            Code::TrailingCharacters => "trailing characters",
            Code::UnexpectedEndOfHexEscape => "unexpected end of hex escape",
            Code::RecursionLimitExceeded => "recursion limit exceeded",
            Code::Expected(what) => return write!(f, "expected {what}"),
            Code::DuplicateField(name) => return write!(f, "duplicate field `{name}`"),
        })
    }
}

/// A refusal and where it happened: `line` from 1, `column` the byte in that line, from 1,
/// as `serde_json` counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub code: Code,
    /// The line, from 1.
    pub line: usize,
    /// The byte in that line, from 1 (0: the line's start, before its first byte).
    pub column: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.code, self.line, self.column)
    }
}

impl std::error::Error for Error {}

/// The compact JSON text of `v`, exactly as `Value`'s `Display` writes it, but through
/// `serde_json::to_string`: `Display` writes through an `io::Write` adapter, which brings
/// a second copy of `serde_json`'s writer and `io::Error`'s machinery into the browser
/// module. Every JSON text the core writes goes through here or `serde_json::to_string`.
pub fn write(v: &serde_json::Value) -> String {
    // Writing a `Value` into a `String` cannot fail: its keys are strings, its numbers finite.
    serde_json::to_string(v).unwrap_or_default()
}

/// Parses `text` as one JSON value (whitespace around it allowed), as
/// `serde_json::from_str::<Value>` does: a repeated key keeps its last value.
pub fn parse(text: &str) -> Result<serde_json::Value, Error> {
    let mut cursor = Cursor::new(text);
    let value = cursor.value()?;
    cursor.end()?;
    Ok(value)
}
