//! Property tests: any split of a byte stream decodes to what the whole stream decodes to.

use moa_core::provider::{ProviderKind, ResponseParser, StreamItem};
use moa_core::sse::{Decoder, SseEvent};
use proptest::prelude::*;

fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut d = Decoder::default();
    let mut out = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts.into_iter().chain([bytes.len()]) {
        d.feed(&bytes[last..c], &mut out).expect("within limits");
        last = c;
    }
    out
}

fn line_ending() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r"), Just("\r\n")]
}

prop_compose! {
    /// One event as a server might write it: optional comment, event name, id, and one
    /// or more data lines (any Unicode, no line breaks), each with or without the space.
    fn event_text()(
        comment in proptest::option::of("[a-z ]{0,8}"),
        name in proptest::option::of("[a-z_]{1,12}"),
        id in proptest::option::of("[0-9]{1,4}"),
        data in proptest::collection::vec(("\\PC{0,24}", any::<bool>()), 1..4),
        eol in line_ending(),
    ) -> (String, SseEvent) {
        let mut text = String::new();
        if let Some(c) = &comment { text.push_str(&format!(":{c}{eol}")); }
        if let Some(n) = &name { text.push_str(&format!("event: {n}{eol}")); }
        if let Some(i) = &id { text.push_str(&format!("id: {i}{eol}")); }
        let mut lines = Vec::new();
        for (d, space) in &data {
            // A data value that starts with a space keeps it only after "data: ".
            let line = if *space || d.starts_with(' ') { format!("data: {d}") } else { format!("data:{d}") };
            text.push_str(&line);
            text.push_str(eol);
            lines.push(d.clone());
        }
        text.push_str(eol);
        let event = SseEvent { event: name.unwrap_or_else(|| "message".into()), data: lines.join("\n"), id };
        (text, event)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_decodes_like_the_whole(
        events in proptest::collection::vec(event_text(), 1..8),
        bom in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut bytes = if bom { b"\xEF\xBB\xBF".to_vec() } else { vec![] };
        let mut expected: Vec<SseEvent> = Vec::new();
        let mut last_id = None;
        for (text, mut ev) in events {
            bytes.extend_from_slice(text.as_bytes());
            if ev.id.is_some() { last_id = ev.id.clone(); } else { ev.id = last_id.clone(); }
            expected.push(ev);
        }
        let whole = decode_in_pieces(&bytes, &[]);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(decode_in_pieces(&bytes, &cuts), whole);
    }

    #[test]
    fn byte_at_a_time_equals_whole(events in proptest::collection::vec(event_text(), 1..4)) {
        let bytes: Vec<u8> = events.iter().flat_map(|(t, _)| t.bytes()).collect();
        let every: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(decode_in_pieces(&bytes, &every), decode_in_pieces(&bytes, &[]));
    }

    #[test]
    fn openai_streams_give_the_same_text_however_they_are_split(
        pieces in proptest::collection::vec("\\PC{0,12}", 1..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut body = String::new();
        for p in &pieces {
            let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": p}}]});
            body.push_str(&format!("data: {chunk}\r\n\r\n"));
        }
        body.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n");
        let bytes = body.as_bytes();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = ResponseParser::new(ProviderKind::OpenAi, Some("text/event-stream"));
        let mut items = Vec::new();
        let mut last = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            parser.feed(&bytes[last..c], &mut items).expect("valid stream");
            last = c;
        }
        parser.finish(&mut items).expect("complete");
        let text: String = items.iter().filter_map(|i| match i { StreamItem::Text(t) => Some(t.as_str()), _ => None }).collect();
        prop_assert_eq!(text, pieces.concat());
        prop_assert_eq!(items.last(), Some(&StreamItem::Usage(moa_core::Usage::new(3, 4))));
    }
}

#[test]
fn a_split_inside_a_multibyte_character_is_reassembled() {
    let bytes = "data: né 🦀\n\n".as_bytes();
    for cut in 0..=bytes.len() {
        assert_eq!(decode_in_pieces(bytes, &[cut])[0].data, "né 🦀", "cut at {cut}");
    }
}

#[test]
fn crlf_split_between_cr_and_lf_is_one_line_end() {
    let bytes = b"data: a\r\n\r\ndata: b\r\n\r\n";
    for cut in 0..=bytes.len() {
        let evs = decode_in_pieces(bytes, &[cut]);
        assert_eq!(evs.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["a", "b"], "cut at {cut}");
    }
}
