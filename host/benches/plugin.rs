//! Per-decision overhead of a WebAssembly strategy plugin: a fresh `Store`, instantiation
//! from the `InstancePre`, the call with 6 proposals of 2 KB each, and the result lifted
//! back (the contract's context built from the input included). `cargo bench -p moa-host --bench plugin`
//! (with `MOA_TEST_COMPONENTIZE=1`, the Python and JavaScript `longest` too); results are
//! recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use moa_testkit::needs::{Needs, wanted};
use moa_testkit::plugins::{self, Lang};

use criterion::{Criterion, criterion_group, criterion_main};
use moa_core::Message;
use moa_core::strategy::{Proposal, StrategyInput};
use moa_host::plugin::{Limits, Runtime};
use std::hint::black_box;

fn decisions(c: &mut Criterion) {
    let rt = Runtime::new(None).expect("runtime");
    let conversation = [Message::user("Explain how a hash map works.")];
    let text: String = "lorem ipsum dolor sit amet ".repeat(80)[..2048].to_owned();
    let proposals: Vec<Proposal> = (0..6)
        .map(|i| Proposal {
            agent: format!("a{i}"),
            model: "m".into(),
            text: format!("{i}{}", &text[1..]),
            usage: None,
            latency_ms: 1.0,
        })
        .collect();
    let input = StrategyInput::new(&conversation, 1, 1, &proposals);
    let mut g = c.benchmark_group("plugin_decision");
    let mut cases = vec![
        ("misbehave".to_owned(), plugins::path("misbehave"), r#"{"mode":"ok"}"#),
        ("dedup-top-k".to_owned(), plugins::path("dedup-top-k"), "{}"),
        ("majority-vote".to_owned(), plugins::path("majority-vote"), "{}"),
        ("longest-rust".to_owned(), plugins::path("longest"), "{}"),
    ];
    // The same strategy in Python and JavaScript, when their builders are installed.
    if wanted(Needs::Componentize) {
        cases.push(("longest-python".to_owned(), plugins::built("longest", Lang::Python), "{}"));
        cases.push(("longest-js".to_owned(), plugins::built("longest", Lang::Js), "{}"));
    }
    for (name, path, params) in cases {
        let plugin = rt.load(&path).expect("loads");
        g.bench_function(format!("{name}_6x2KB"), |b| {
            b.iter(|| {
                black_box(rt.decide(&plugin, Limits::default(), black_box(&input), params, &[]).expect("decides"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
