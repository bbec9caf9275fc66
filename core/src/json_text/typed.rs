//! Typed reads: an object's known fields, an array's items, strings and numbers, with no
//! `Value` built on the way (the hot path: a provider's stream chunk per token).
//!
//! They accept what a derived `Deserialize` accepts, skipping unknown fields as
//! `serde_json` does (a number too large for a float, half a surrogate pair in a string:
//! not looked into), with two differences: an object may not be written as a list of its
//! fields in order, and a skipped field may nest only as deep as a parsed value may (128),
//! where `serde_json` skips any depth. Their messages are their own (`expected a u32`).

use super::number::Number;
use super::{Code, Cursor, Error};

/// A field's reader: the cursor is at the field's value.
pub(crate) type Field<'f, 'a> = &'f mut dyn FnMut(&mut Cursor<'a>, usize) -> Result<(), Error>;

impl<'a> Cursor<'a> {
    /// An object (`what`, for the error), each field named in `names` handed to `field`
    /// with its index there; other fields are checked and skipped, and a field given twice
    /// is refused.
    pub(crate) fn fields(
        &mut self,
        what: &'static str,
        names: &[&'static str],
        field: Field<'_, 'a>,
    ) -> Result<(), Error> {
        if self.whitespace() != Some(b'{') {
            return Err(self.peek_error(Code::Expected(what)));
        }
        self.open()?;
        let mut first = true;
        let mut seen = 0_u64;
        while let Some(key) = self.next_key(&mut first, true)? {
            match names.iter().position(|name| *name == key) {
                Some(i) if seen & 1 << i != 0 => return Err(self.error(Code::DuplicateField(names[i]))),
                Some(i) => {
                    seen |= 1 << i;
                    field(self, i)?;
                }
                None => self.skip()?,
            }
        }
        self.close();
        Ok(())
    }

    /// An array (`what`, for the error), each item read by `item`.
    pub(crate) fn items(
        &mut self,
        what: &'static str,
        item: &mut dyn FnMut(&mut Cursor<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.whitespace() != Some(b'[') {
            return Err(self.peek_error(Code::Expected(what)));
        }
        self.open()?;
        let mut first = true;
        while self.next_element(&mut first)? {
            item(self)?;
        }
        self.close();
        Ok(())
    }

    /// Reads a `null` if one is next, and says whether it was.
    pub(crate) fn null(&mut self) -> Result<bool, Error> {
        if self.whitespace() != Some(b'n') {
            return Ok(false);
        }
        self.at += 1;
        self.ident(b"ull")?;
        Ok(true)
    }

    /// A string.
    pub(crate) fn text(&mut self) -> Result<String, Error> {
        if self.whitespace() != Some(b'"') {
            return Err(self.peek_error(Code::Expected("a string")));
        }
        self.at += 1;
        Ok(self.string(true)?.into_owned())
    }

    fn any_number(&mut self, what: &'static str) -> Result<Number, Error> {
        match self.whitespace() {
            Some(b'-') => {
                self.at += 1;
                self.number(false)
            }
            Some(b'0'..=b'9') => self.number(true),
            _ => Err(self.peek_error(Code::Expected(what))),
        }
    }

    /// A non-negative integer up to `max`.
    pub(crate) fn unsigned(&mut self, max: u64, what: &'static str) -> Result<u64, Error> {
        match self.any_number(what)? {
            Number::U64(n) if n <= max => Ok(n),
            _ => Err(self.error(Code::Expected(what))),
        }
    }

    /// Any number, as a float.
    pub(crate) fn float(&mut self) -> Result<f64, Error> {
        Ok(match self.any_number("a number")? {
            Number::U64(n) => n as f64,
            Number::I64(n) => n as f64,
            Number::F64(f) => f,
        })
    }
}
