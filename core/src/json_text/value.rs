//! Whole values: built into a `serde_json::Value`, or checked and skipped.

use super::{Code, Cursor, Error};
use serde_json::{Map, Value};

impl Cursor<'_> {
    /// The next value, built.
    pub(crate) fn value(&mut self) -> Result<Value, Error> {
        let Some(b) = self.whitespace() else { return Err(self.peek_error(Code::EofWhileParsingValue)) };
        Ok(match b {
            b'[' => {
                self.open()?;
                let mut items = Vec::new();
                let mut first = true;
                while self.next_element(&mut first)? {
                    items.push(self.value()?);
                }
                self.close();
                Value::Array(items)
            }
            b'{' => {
                self.open()?;
                let mut map = Map::new();
                let mut first = true;
                while let Some(key) = self.next_key(&mut first, true)? {
                    let value = self.value()?;
                    map.insert(key.into_owned(), value);
                }
                self.close();
                Value::Object(map)
            }
            _ => return self.scalar(b, true),
        })
    }

    /// Checks the next value and moves past it, building nothing.
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        let Some(b) = self.whitespace() else { return Err(self.peek_error(Code::EofWhileParsingValue)) };
        match b {
            b'[' => {
                self.open()?;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip()?;
                }
            }
            b'{' => {
                self.open()?;
                let mut first = true;
                while self.next_key(&mut first, false)?.is_some() {
                    self.skip()?;
                }
            }
            b'-' | b'0'..=b'9' => return self.skip_number(),
            _ => return self.scalar(b, false).map(drop),
        }
        self.close();
        Ok(())
    }

    /// A literal, number or string starting with `b` (not yet read); with `keep` false a
    /// string is only skipped, as `serde_json` skips an ignored one.
    pub(super) fn scalar(&mut self, b: u8, keep: bool) -> Result<Value, Error> {
        Ok(match b {
            b'n' => {
                self.at += 1;
                self.ident(b"ull")?;
                Value::Null
            }
            b't' | b'f' => {
                self.at += 1;
                self.ident(if b == b't' { b"rue" } else { b"alse" })?;
                Value::Bool(b == b't')
            }
            b'-' => {
                self.at += 1;
                self.number(false)?.into_value()
            }
            b'0'..=b'9' => self.number(true)?.into_value(),
            b'"' => {
                self.at += 1;
                Value::String(self.string(keep)?.into_owned())
            }
            _ => return Err(self.peek_error(Code::ExpectedSomeValue)),
        })
    }

    /// Moves past a number checking only its grammar, as `serde_json` skips an ignored
    /// one: a number too large for a float (`1e400`) is no error here.
    fn skip_number(&mut self) -> Result<(), Error> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next() {
            Some(b'0') if self.peek_or_null().is_ascii_digit() => return Err(self.peek_error(Code::InvalidNumber)),
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error(Code::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek_or_null().is_ascii_digit() {
                return Err(self.peek_error(Code::InvalidNumber));
            }
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            match self.next() {
                Some(b'0'..=b'9') => self.skip_digits(),
                _ => return Err(self.error(Code::InvalidNumber)),
            }
        }
        Ok(())
    }

    fn skip_digits(&mut self) {
        while self.peek_or_null().is_ascii_digit() {
            self.at += 1;
        }
    }
}
