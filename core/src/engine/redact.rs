//! Keys out of provider-supplied text. A provider may echo the request's credentials in
//! an error body, a mid-stream error event or even its answer (some echo the
//! `Authorization` header, or part of the key). Before any such text enters an error or
//! an event, every key is replaced by `[redacted key]`: whole, and any 8-character or
//! longer piece of it, so a partial echo (`sk-abc...wxyz`-style masks keep prefixes and
//! suffixes) is caught too.

/// Shorter pieces of a key are too likely to be ordinary text.
const MIN_PIECE: usize = 8;
/// Keys shorter than this are not real keys; redacting them would garble text.
const MIN_KEY: usize = 4;
/// What a key becomes.
pub const REDACTED: &str = "[redacted key]";

/// The keys of one run, ready to find in text. Any front end that shows a provider's
/// own words outside a run (a batch API's errors) redacts them with it too.
#[derive(Debug, Default)]
pub struct Redactor {
    keys: Vec<String>,
    /// Every `MIN_PIECE`-byte window of every key (a few dozen: a list is enough).
    pieces: Vec<Vec<u8>>,
}

impl Redactor {
    /// A redactor for `keys` (those under 4 characters are not keys and are left alone).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a String>) -> Redactor {
        let mut r = Redactor::default();
        for k in keys.into_iter().map(|k| k.trim()).filter(|k| k.len() >= MIN_KEY) {
            for w in k.as_bytes().windows(MIN_PIECE.min(k.len())) {
                r.pieces.push(w.to_vec());
            }
            r.keys.push(k.to_owned());
        }
        r.keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        r
    }

    /// `text` with every key, and every long enough piece of one, replaced.
    pub fn redact(&self, text: &str) -> String {
        if self.keys.is_empty() || text.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let mut hit = vec![false; bytes.len()];
        let mut any = false;
        for key in &self.keys {
            let w = MIN_PIECE.min(key.len());
            for (i, window) in bytes.windows(w).enumerate() {
                if self.pieces.iter().any(|p| p.as_slice() == window) {
                    hit[i..i + w].iter_mut().for_each(|h| *h = true);
                    any = true;
                }
            }
        }
        if !any {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            if hit[i] {
                while i < bytes.len() && hit[i] {
                    i += 1;
                }
                // Never split a character: widen to the next boundary.
                while !text.is_char_boundary(i) {
                    i += 1;
                }
                out.push_str(REDACTED);
            } else {
                let start = i;
                while i < bytes.len() && !hit[i] {
                    i += 1;
                }
                while !text.is_char_boundary(i) {
                    i += 1;
                }
                out.push_str(&text[start..i]);
            }
        }
        out
    }

    /// Whether there is anything to redact.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The longest key, in bytes: how much streamed text may need holding back.
    pub(crate) fn longest(&self) -> usize {
        self.keys.first().map_or(0, String::len)
    }
}

/// Redacts a stream: text that might be the start of a key is held back until the next
/// piece shows whether it is.
#[derive(Debug, Default)]
pub(crate) struct StreamRedactor {
    held: String,
}

impl StreamRedactor {
    /// Takes the next piece; returns what may be shown now.
    pub(crate) fn push(&mut self, piece: &str, r: &Redactor) -> String {
        if r.is_empty() {
            return piece.to_owned();
        }
        self.held.push_str(piece);
        // Hold back the longest tail that is a piece of some key: it may be the start of
        // an echo that the next piece completes. (Any echo that began earlier is then
        // wholly in the tail, so nothing released can be part of one.)
        let longest = r.longest().min(self.held.len());
        let keep = (1..=longest)
            .rev()
            .filter(|m| self.held.is_char_boundary(self.held.len() - m))
            .find(|m| r.keys.iter().any(|k| k.contains(&self.held[self.held.len() - m..])))
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let ready: String = self.held.drain(..cut).collect();
        r.redact(&ready)
    }

    /// The stream ended: what was held back, redacted.
    pub(crate) fn flush(&mut self, r: &Redactor) -> String {
        r.redact(&std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-SENTINEL-0123456789abcdef";

    fn r() -> Redactor {
        Redactor::new([&KEY.to_owned(), &"ab".to_owned()])
    }

    #[test]
    fn whole_keys_bearer_headers_and_partial_echoes_are_redacted() {
        let r = r();
        assert_eq!(r.redact(&format!("bad key {KEY}.")), "bad key [redacted key].");
        assert_eq!(r.redact(&format!("authorization: Bearer {KEY}\r\n")), "authorization: Bearer [redacted key]\r\n");
        assert_eq!(
            r.redact("Incorrect API key provided: sk-SENTI*************cdef"),
            "Incorrect API key provided: [redacted key]*************cdef"
        );
        assert_eq!(r.redact("key ends 456789abcdef ok"), "key ends [redacted key] ok");
        assert_eq!(r.redact("a short ab stays: 'ab' is no key"), "a short ab stays: 'ab' is no key");
        assert_eq!(r.redact("héllo wörld"), "héllo wörld");
    }

    #[test]
    fn a_key_split_across_stream_pieces_never_shows() {
        let r = r();
        for split in 0..=KEY.len() {
            let mut s = StreamRedactor::default();
            let mut out = s.push(&format!("echo: {}", &KEY[..split]), &r);
            out += &s.push(&format!("{} done", &KEY[split..]), &r);
            out += &s.flush(&r);
            assert_eq!(out, "echo: [redacted key] done", "split at {split}");
        }
        let mut s = StreamRedactor::default();
        assert_eq!(s.push("plain text", &r) + &s.flush(&r), "plain text");
    }
}
