//! Names quoted in messages (`unknown provider "togeter"`), without `str`'s `Debug`.
//!
//! `{:?}` on a string escapes by Unicode's tables of printable and combining characters:
//! about 4 KB of the browser module, for the names in a few dozen messages. [`Quoted`]
//! escapes what could break a message or mislead its reader — quotes, backslashes, control
//! characters, and the invisible ones that reorder or hide text (bidirectional overrides,
//! zero-width characters), which a hostile plugin or provider could put in a name — and
//! writes every other character as it is.

use std::fmt::{self, Write};

/// `s` in double quotes, written as `{:?}` writes it, except for characters `Debug`
/// escapes by Unicode's tables and this writes as they are: spaces other than ASCII's,
/// combining marks, private-use and unassigned characters, and the rarer format
/// characters. It escapes, as `Debug` does, every control character and the invisible
/// ones that reorder or hide text: bidirectional marks, embeddings, overrides and
/// isolates, zero-width characters, the soft hyphen, word joiners and tag characters.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() || invisible(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Characters that reorder or hide the text around them.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::Quoted;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_name_is_quoted_as_debug_quotes_it(s in "[ -~\u{0}-\u{1f}\u{7f}-\u{9f}éß€😀\u{3c3}\u{200b}-\u{200f}\u{2028}-\u{202e}\u{2060}-\u{2064}\u{2066}-\u{206f}\u{feff}\u{ad}\u{61c}\u{180e}\u{fff9}-\u{fffb}\u{e0000}-\u{e007f}]{0,24}") {
            prop_assert_eq!(Quoted(&s).to_string(), format!("{s:?}"));
        }
    }
}
