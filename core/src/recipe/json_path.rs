//! The field path of a JSON recipe's syntax error, found from where the parser stopped
//! (`json_text`, which stops where `serde_json` does); and a key an object repeats, which
//! a parsed `Value` no longer shows (it keeps the last).
//!
//! `serde_path_to_error` tracks the path by wrapping every visitor, which doubles the
//! deserializer code of every recipe type: 12 KB of the browser module's 200 KB budget
//! (gzipped). The parser already says where it stopped (line and column), and a JSON
//! text up to that point says which key or index it was in. This scanner replays the text
//! to that point and names the path the way `serde_path_to_error` does (`layers[0].agents`,
//! `.` for the root); a property test holds it to `serde_path_to_error`'s answer.
//!
//! The rule that makes the two agree: a key is part of the path from its closing quote
//! (an unknown field is named by its own path) until the `,` or `}` after its value, and
//! an array index from its element's first byte. One difference is kept on purpose: a
//! repeated key is named by its own path (`aggregator.model`), where
//! `serde_path_to_error` names the object holding it.

enum Frame {
    /// An object: the key last read (cleared by the `,` after its value), whether the
    /// next string is a key, and the keys read so far.
    Object { key: Option<String>, want_key: bool, seen: Vec<String> },
    /// An array: the index of the element being read, if one has started.
    Array { index: usize, started: bool },
}

/// The path of a syntax error in `text` (`json_text`'s, worded and placed as
/// `serde_json`'s), as `serde_path_to_error` would print it.
pub fn error_path(text: &str, error: &crate::json_text::Error) -> String {
    scan(text, offset_of(text, error.line, error.column), false).0
}

/// The path at byte `offset` of `text`, as `serde_path_to_error` would print it.
pub fn path_at(text: &str, offset: usize) -> String {
    scan(text, offset, false).0
}

/// A key of valid JSON `text` that an object repeats (`{"a": 1, "a": 2}`, where a parser
/// keeps the last), named by its own path, and the key; the first object to end with one
/// decides, and the smallest such key in it.
pub fn repeated_key(text: &str) -> Option<(String, String)> {
    match scan(text, text.len(), true) {
        (path, _, Some(key)) => Some((path, key)),
        _ => None,
    }
}

/// The path at `offset`, whether the last thing read there was an object's key, and,
/// when `stop_on_repeat`, a repeated key (`repeated_key`), where the scan then stops.
fn scan(text: &str, offset: usize, stop_on_repeat: bool) -> (String, bool, Option<String>) {
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut on_key = false;
    let mut repeated = None;
    let mut i = 0;
    while i < end {
        let b = bytes[i];
        if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            on_key = false;
        }
        if !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b':' | b',' | b'}' | b']') {
            // A value (or a key) starts here: an array element begins.
            if let Some(Frame::Array { started, .. }) = stack.last_mut() {
                *started = true;
            }
        }
        match b {
            b'{' => stack.push(Frame::Object { key: None, want_key: true, seen: Vec::new() }),
            b'[' => stack.push(Frame::Array { index: 0, started: false }),
            b'}' | b']' => {
                if let Some(Frame::Object { key, seen, .. }) = stack.last_mut()
                    && let Some(k) = first_repeated(seen)
                {
                    repeated = Some(k.clone());
                    *key = Some(k);
                    break;
                }
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key, .. }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index, started }) => {
                    *index += 1;
                    *started = false;
                }
                None => {}
            },
            b'"' => {
                let (s, next) = read_string(bytes, i + 1, end);
                if let Some(Frame::Object { key, want_key: want @ true, seen }) = stack.last_mut() {
                    if stop_on_repeat {
                        seen.push(s.clone());
                    }
                    *key = Some(s);
                    *want = false;
                    on_key = true;
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Array { index, started: true } => path.push_str(&format!("[{index}]")),
            _ => {}
        }
    }
    (if path.is_empty() { ".".to_owned() } else { path }, on_key, repeated)
}

/// A key that `keys` holds twice; sorted rather than searched, so that an object of
/// 40,000 keys takes milliseconds.
fn first_repeated(keys: &mut [String]) -> Option<String> {
    keys.sort_unstable();
    keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].clone())
}

/// Reads a string body starting at `i` (after the opening quote), up to `end`; returns it
/// unescaped and the index after the closing quote.
fn read_string(bytes: &[u8], mut i: usize, end: usize) -> (String, usize) {
    let mut out: Vec<u8> = Vec::new();
    let mut units: Vec<u16> = Vec::new();
    while i < end {
        match bytes[i] {
            b'"' => {
                flush_units(&mut units, &mut out);
                return (String::from_utf8_lossy(&out).into_owned(), i + 1);
            }
            b'\\' if i + 1 < end => {
                let e = bytes[i + 1];
                if e == b'u' && i + 6 <= end {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 6]).ok();
                    if let Some(u) = hex.and_then(|h| u16::from_str_radix(h, 16).ok()) {
                        units.push(u);
                    }
                    i += 6;
                    continue;
                }
                flush_units(&mut units, &mut out);
                out.push(match e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 8,
                    b'f' => 12,
                    other => other,
                });
                i += 2;
            }
            b => {
                flush_units(&mut units, &mut out);
                out.push(b);
                i += 1;
            }
        }
    }
    flush_units(&mut units, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), end)
}

/// `\u` escapes come in UTF-16 units (a pair for characters beyond the first plane).
fn flush_units(units: &mut Vec<u16>, out: &mut Vec<u8>) {
    if !units.is_empty() {
        let s: String = char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')).collect();
        out.extend_from_slice(s.as_bytes());
    }
}

/// The byte offset of a 1-based line and a column as `serde_json` counts them (bytes since
/// the line's start).
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    start + column
}
