//! A server-sent events decoder following the WHATWG event-stream rules, sans-IO.
//!
//! Bytes go in as they arrive, split anywhere (inside a line, between CR and LF, inside a
//! multi-byte UTF-8 character); whole events come out. Lines are split on bytes before
//! UTF-8 decoding, which is safe because CR and LF never occur inside a UTF-8 sequence.

use thiserror::Error;

/// Default cap on one event's size (its data plus the line being read), in bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `"message"` when there was none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream, if any.
    pub id: Option<String>,
}

/// The stream broke the decoder's limits.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SseError {
    /// One event grew past the cap: a misbehaving or hostile server.
    #[error("a server-sent event exceeded {limit} bytes")]
    EventTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
}

/// Incremental event-stream decoder.
#[derive(Clone, Debug)]
pub struct Decoder {
    line: Vec<u8>,
    data: String,
    event: String,
    id: Option<String>,
    /// The last byte fed was CR, so an LF that starts the next chunk ends nothing.
    after_cr: bool,
    /// No line has been completed yet: the first one may start with a BOM.
    at_start: bool,
    max_event: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Decoder {
    /// A decoder that rejects events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Decoder {
        Decoder {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            id: None,
            after_cr: false,
            at_start: true,
            max_event: max_event_bytes,
        }
    }

    /// Feeds the next bytes; appends every event they complete to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&bytes[..end]);
                    self.check_size()?;
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    self.end_line(out)?;
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    self.check_size()?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// True when bytes of an unfinished event are buffered: a stream that ends now was cut
    /// short (the standard drops such an event rather than dispatching it).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || !self.data.is_empty()
    }

    fn check_size(&self) -> Result<(), SseError> {
        if self.line.len() + self.data.len() > self.max_event {
            return Err(SseError::EventTooLarge { limit: self.max_event });
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut raw: &[u8] = &self.line;
        if self.at_start {
            self.at_start = false;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.is_empty() {
            self.line.clear();
            self.dispatch(out);
            return Ok(());
        }
        if raw[0] == b':' {
            self.line.clear();
            return Ok(());
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry` only matters to EventSource reconnection, which POSTed chat streams
            // never do; unknown fields are ignored by the standard.
            _ => {}
        }
        self.line.clear();
        self.check_size()
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop(); // the standard drops the final LF
        out.push(SseEvent {
            event: if self.event.is_empty() { "message".to_owned() } else { std::mem::take(&mut self.event) },
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
        self.event.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<SseEvent> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(bytes, &mut out).expect("within limits");
        out
    }

    #[test]
    fn data_with_and_without_space_multiline_and_comments() {
        let evs = decode(b": hello\ndata:a\ndata: b\n\nevent: x\nid: 7\ndata:  c\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].data, "a\nb");
        assert_eq!(evs[0].event, "message");
        assert_eq!(evs[1].event, "x");
        assert_eq!(evs[1].data, " c");
        assert_eq!(evs[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines() {
        for sep in [&b"\r"[..], b"\n", b"\r\n"] {
            let text = [&b"data: 1"[..], sep, sep, b"data: 2", sep, sep].concat();
            let evs = decode(&text);
            assert_eq!(evs.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["1", "2"], "{sep:?}");
        }
    }

    #[test]
    fn leading_bom_is_dropped_once() {
        let evs = decode(b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n");
        assert_eq!(evs[0].data, "x");
        assert_eq!(evs.len(), 1, "a BOM later in the stream makes an unknown field");
    }

    #[test]
    fn empty_data_and_event_only_blocks_dispatch_nothing() {
        assert!(decode(b"event: ping\n\n\n\n").is_empty());
        assert_eq!(decode(b"data\n\n")[0].data, "");
    }

    #[test]
    fn unterminated_event_is_reported_not_dispatched() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(b"data: partial", &mut out).expect("ok");
        assert!(out.is_empty());
        assert!(d.has_partial_event());
    }

    #[test]
    fn oversized_events_are_rejected() {
        let mut d = Decoder::new(16);
        let mut out = Vec::new();
        assert_eq!(d.feed(b"data: 0123456789abcdef\n", &mut out), Err(SseError::EventTooLarge { limit: 16 }));
        let mut d = Decoder::new(16);
        d.feed(b"data: 0123456\n", &mut out).expect("small line");
        assert!(d.feed(b"data: 0123456\n", &mut out).is_err(), "data accumulates across lines");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(decode(b"data: \xff\n\n")[0].data, "\u{FFFD}");
    }
}
