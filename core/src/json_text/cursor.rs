//! A position in a JSON text: whitespace, literals, strings, the punctuation between an
//! array's elements and an object's entries, and where an error is reported. Each step
//! reports what `serde_json`'s `Deserializer` reports at the same byte.

use super::{Code, Error};
use std::borrow::Cow;

/// How deep arrays and objects may nest: `serde_json`'s limit (the 128th is refused).
const MAX_DEPTH: u8 = 128;

pub(crate) struct Cursor<'a> {
    text: &'a str,
    pub(super) at: usize,
    /// Arrays and objects still allowed to open.
    depth: u8,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, at: 0, depth: MAX_DEPTH }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The error `code` with the line and column of byte offset `end` (the byte just
    /// before it is the one at fault), as `serde_json` counts them.
    #[cold]
    fn error_at(&self, end: usize, code: Code) -> Error {
        let before = &self.bytes()[..end];
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = 1 + before[..line_start].iter().filter(|&&b| b == b'\n').count();
        Error { code, line, column: end - line_start }
    }

    /// An error at the byte just read.
    pub(super) fn error(&self, code: Code) -> Error {
        self.error_at(self.at, code)
    }

    /// An error at the next byte, not yet read.
    pub(super) fn peek_error(&self, code: Code) -> Error {
        self.error_at((self.at + 1).min(self.bytes().len()), code)
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    pub(super) fn peek_or_null(&self) -> u8 {
        self.peek().unwrap_or(0)
    }

    pub(super) fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// Skips whitespace and says what comes next.
    pub(super) fn whitespace(&mut self) -> Option<u8> {
        let rest = self.bytes().get(self.at..).unwrap_or_default();
        self.at += rest.iter().position(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r')).unwrap_or(rest.len());
        self.peek()
    }

    /// Nothing but whitespace may follow the value.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        match self.whitespace() {
            Some(_) => Err(self.peek_error(Code::TrailingCharacters)),
            None => Ok(()),
        }
    }

    /// The rest of `null`, `true` or `false` after its first byte.
    pub(super) fn ident(&mut self, rest: &[u8]) -> Result<(), Error> {
        for &want in rest {
            match self.next() {
                None => return Err(self.error(Code::EofWhileParsingValue)),
                Some(b) if b != want => return Err(self.error(Code::ExpectedSomeIdent)),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Opens an array or object at the `[` or `{` that comes next, within the depth limit.
    pub(super) fn open(&mut self) -> Result<(), Error> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.peek_error(Code::RecursionLimitExceeded));
        }
        self.at += 1;
        Ok(())
    }

    /// Closes what `open` opened (its `]` or `}` is next, checked by the caller).
    pub(super) fn close(&mut self) {
        self.depth += 1;
        self.at += 1;
    }

    /// Whether an array has another element; `first` is cleared after the first.
    pub(super) fn next_element(&mut self, first: &mut bool) -> Result<bool, Error> {
        let Some(b) = self.whitespace() else { return Err(self.peek_error(Code::EofWhileParsingList)) };
        if b == b']' {
            return Ok(false);
        }
        if std::mem::take(first) {
            return Ok(true);
        }
        if b != b',' {
            return Err(self.peek_error(Code::ExpectedListCommaOrEnd));
        }
        self.at += 1;
        match self.whitespace() {
            Some(b']') => Err(self.peek_error(Code::TrailingComma)),
            Some(_) => Ok(true),
            None => Err(self.peek_error(Code::EofWhileParsingValue)),
        }
    }

    /// An object's next key and the `:` after it, or `None` at its `}`; with `keep` false
    /// the key is skipped as `string` skips (and comes back empty).
    pub(super) fn next_key(&mut self, first: &mut bool, keep: bool) -> Result<Option<Cow<'a, str>>, Error> {
        let Some(b) = self.whitespace() else { return Err(self.peek_error(Code::EofWhileParsingObject)) };
        if b == b'}' {
            return Ok(None);
        }
        if !std::mem::take(first) {
            if b != b',' {
                return Err(self.peek_error(Code::ExpectedObjectCommaOrEnd));
            }
            self.at += 1;
            match self.whitespace() {
                Some(b'"') => {}
                Some(b'}') => return Err(self.peek_error(Code::TrailingComma)),
                Some(_) => return Err(self.peek_error(Code::KeyMustBeAString)),
                None => return Err(self.peek_error(Code::EofWhileParsingValue)),
            }
        } else if b != b'"' {
            return Err(self.peek_error(Code::KeyMustBeAString));
        }
        self.at += 1;
        let key = self.string(keep)?;
        match self.whitespace() {
            Some(b':') => self.at += 1,
            Some(_) => return Err(self.peek_error(Code::ExpectedColon)),
            None => return Err(self.peek_error(Code::EofWhileParsingObject)),
        }
        Ok(Some(key))
    }

    /// A string's contents after its opening quote, through its closing one; borrowed
    /// from the text when it has no escapes. With `keep` false it is skipped as
    /// `serde_json` skips an ignored string (and comes back empty): escapes must be
    /// well formed, but a `\u` escape may be half a surrogate pair, as some servers'
    /// `logprobs` write them.
    pub(super) fn string(&mut self, keep: bool) -> Result<Cow<'a, str>, Error> {
        let text = self.text;
        let mut start = self.at;
        let mut out = String::new();
        loop {
            let rest = self.bytes().get(self.at..).unwrap_or_default();
            self.at += rest.iter().position(|&b| matches!(b, b'"' | b'\\' | 0..0x20)).unwrap_or(rest.len());
            match self.peek() {
                None => return Err(self.error(Code::EofWhileParsingString)),
                Some(b'"') => {
                    let tail = text.get(start..self.at).unwrap_or_default();
                    self.at += 1;
                    if !keep {
                        return Ok(Cow::Borrowed(""));
                    }
                    if out.is_empty() {
                        return Ok(Cow::Borrowed(tail));
                    }
                    out.push_str(tail);
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    if keep {
                        out.push_str(text.get(start..self.at).unwrap_or_default());
                    }
                    self.at += 1;
                    let c = self.escape(keep)?;
                    if keep {
                        out.push(c);
                    }
                    start = self.at;
                }
                Some(_) => {
                    self.at += 1;
                    return Err(self.error(Code::ControlCharacterWhileParsingString));
                }
            }
        }
    }

    /// The character an escape stands for, after its `\` (with `check` false, a `\u`
    /// escape's four hex digits are read and not made a character).
    fn escape(&mut self, check: bool) -> Result<char, Error> {
        let Some(b) = self.next() else { return Err(self.error(Code::EofWhileParsingString)) };
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\x08',
            b'f' => '\x0c',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' if !check => return self.hex4().map(|_| '\u{fffd}'),
            b'u' => return self.unicode_escape(),
            _ => return Err(self.error(Code::InvalidEscape)),
        })
    }

    /// `\uXXXX`, or a surrogate pair of them, after the `u`.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let high = self.hex4()?;
        if (0xdc00..=0xdfff).contains(&high) {
            return Err(self.error(Code::LoneLeadingSurrogateInHexEscape));
        }
        if !(0xd800..=0xdbff).contains(&high) {
            return char::from_u32(high).ok_or_else(|| self.error(Code::InvalidEscape));
        }
        for want in [b'\\', b'u'] {
            match self.peek() {
                None => return Err(self.error(Code::EofWhileParsingString)),
                Some(b) => {
                    self.at += 1;
                    if b != want {
                        return Err(self.error(Code::UnexpectedEndOfHexEscape));
                    }
                }
            }
        }
        let low = self.hex4()?;
        if !(0xdc00..=0xdfff).contains(&low) {
            return Err(self.error(Code::LoneLeadingSurrogateInHexEscape));
        }
        let c = (((high - 0xd800) << 10) | (low - 0xdc00)) + 0x1_0000;
        char::from_u32(c).ok_or_else(|| self.error(Code::InvalidEscape))
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, Error> {
        let Some(digits) = self.bytes().get(self.at..self.at + 4) else {
            self.at = self.bytes().len();
            return Err(self.error(Code::EofWhileParsingString));
        };
        self.at += 4;
        digits
            .iter()
            .try_fold(0, |n, &d| char::from(d).to_digit(16).map(|d| n << 4 | d))
            .ok_or_else(|| self.error(Code::InvalidEscape))
    }
}
