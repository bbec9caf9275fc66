//! The engine's own cost: decoding a streamed answer, and the bookkeeping of a whole run.
//! `cargo bench -p moa-core --bench engine`; results are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moa_core::named::Named;
use moa_core::provider::{ProviderKind, ResponseParser};
use moa_core::{Action, Input, Message, Run, RunOptions, Time, recipe};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

/// A 2,000-token answer as an OpenAI-compatible server streams it: one chunk per token.
fn openai_body(tokens: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..tokens {
        let chunk = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": format!(" tok{i}")}, "finish_reason": null}]
        });
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2000}}\n\ndata: [DONE]\n\n",
    );
    body.into_bytes()
}

fn decode(c: &mut Criterion) {
    let body = openai_body(2000);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // Network-sized reads: 1,400-byte segments, split anywhere.
    g.bench_function("openai_2000_tokens", |b| {
        let mut items = Vec::with_capacity(4096);
        b.iter(|| {
            let mut p = ResponseParser::new(ProviderKind::OpenAi, Some("text/event-stream"));
            items.clear();
            for seg in body.chunks(1400) {
                p.feed(black_box(seg), &mut items).expect("valid");
            }
            p.finish(&mut items).expect("complete");
            black_box(items.len())
        })
    });
    g.finish();
}

/// Plays a whole run to the end: every call answers one millisecond after it is sent,
/// with `body`. Returns the number of actions polled.
fn play(recipe: &recipe::Recipe, body: &[u8]) -> usize {
    let keys = Named::from([("together".to_owned(), "k".to_owned())]);
    let options = RunOptions { keys, ..RunOptions::default() };
    let mut now = Time::from_millis(0);
    let mut run = Run::with_options(recipe, vec![Message::user("q")], now, options).expect("starts");
    let mut pending = VecDeque::new();
    let mut actions = 0;
    loop {
        actions += 1;
        match run.poll() {
            Action::Request { call, .. } => pending.push_back(call),
            Action::Done(o) => {
                assert!(o.answer.is_ok());
                return actions;
            }
            Action::Wait(_) => {
                let call = pending.pop_front().expect("a call to answer");
                now = now + Duration::from_millis(1);
                run.handle(Input::Head { call, status: 200, headers: vec![], now });
                run.handle(Input::Body { call, bytes: body, now });
                run.handle(Input::End { call, now });
            }
            Action::Event(e) => {
                black_box(e);
            }
            Action::Cancel { .. } => {}
            Action::Decide { .. } => unreachable!("built-in strategies only"),
        }
    }
}

fn bookkeeping(c: &mut Criterion) {
    let recipe = recipe::preset("moa").expect("preset");
    let short = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A short answer.\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
    let long = openai_body(2000);
    let mut g = c.benchmark_group("run");
    g.bench_function("moa_13_calls_short_answers", |b| b.iter(|| play(&recipe, short)));
    g.sample_size(20);
    g.bench_function("moa_13_calls_2000_tokens_each", |b| b.iter(|| play(&recipe, &long)));
    g.finish();
}

criterion_group!(benches, decode, bookkeeping);
criterion_main!(benches);
