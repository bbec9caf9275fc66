//! Contract 0.2: a strategy plugin asks the engine for calls. The `rank` and `select`
//! example plugins decide exactly as the built-ins do, asks and notes included; asks run
//! as the built-ins' do (booked, redacted); hostile askers are bounded and contained.

use moa_testkit as common;

use common::{Fake, plugins, recipe};
use moa_core::recipe::{OnError, StrategySpec};
use moa_core::strategy::{Builtins, Decision, Proposal, Resolver, Strategy, StrategyInput, StrategyKind};
use moa_core::{Event, Message, Outcome, Recipe, Run, RunOptions};
use moa_host::plugin::{HostResolver, PluginStrategy, Runtime};
use moa_host::{Clock, Transport};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn runtime() -> Arc<Runtime> {
    Runtime::new(None).expect("plugin runtime")
}

fn spec(plugin: &str, params: serde_json::Value) -> StrategySpec {
    StrategySpec { plugin: Some(plugins::path(plugin).display().to_string()), params, ..Default::default() }
}

fn proposals(texts: &[String]) -> Vec<Proposal> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Proposal {
            agent: format!("a{i}"),
            model: "m".into(),
            text: t.clone(),
            usage: None,
            latency_ms: 1.0,
        })
        .collect()
}

/// Every step of one decision: what it decided and noted, given `reply` to its first ask.
fn steps(
    s: &mut dyn Strategy,
    input: StrategyInput<'_>,
    reply: &Result<String, String>,
) -> Vec<(Decision, Option<String>)> {
    let first = s.decide(&input).expect("decides");
    let mut out = vec![(first.clone(), s.note())];
    if matches!(first, Decision::Ask(_)) {
        let reply = reply.as_ref().map(String::as_str).map_err(String::as_str);
        let then = s.decide(&StrategyInput { reply: Some(reply), ..input }).expect("decides after its ask");
        out.push((then, s.note()));
    }
    out
}

/// A small seeded generator, so the cases are many and replayable.
struct Cases(u64);

impl Cases {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    /// A judge's reply: a clean verdict, one wrapped in prose, out-of-range or repeated
    /// numbers, a bare number, nothing usable, or a failed call.
    fn reply(&mut self, n: usize, key: &str) -> Result<String, String> {
        let a = 1 + self.below(n as u64 + 1);
        let b = 1 + self.below(n as u64 + 2);
        let stop = ["true", "false", "\"yes\""][self.below(3) as usize];
        match self.below(7) {
            0 => Ok(format!("{{\"{key}\": {a}}}")),
            1 => Ok(format!("Sure.\n```json\n{{\"{key}\": [\"{a}\", {b}, {a}], \"stop\": {stop}}}\n```")),
            2 => Ok(format!("{{\"selected\": [{a}, {b}, 0, 99], \"stop\": {stop}}}")),
            3 => Ok(format!("I think response {a} is best.")),
            4 => Ok("I cannot decide between them, sorry.".into()),
            5 => Ok(format!("{{\"best\": {b}}} and also {{\"selected\": [{b}]}}")),
            _ => Err("provider p: HTTP 503: overloaded".into()),
        }
    }
}

/// Both ways of one strategy, on many proposal sets, layers, params, seeds and replies.
fn held_equal(kind: StrategyKind, plugin: &str, params: impl Fn(&mut Cases) -> serde_json::Value) {
    let rt = runtime();
    let mut cases = Cases(0x5eed ^ kind as u64);
    let conv = [
        Message::system("Be exact."),
        Message::user("Which city is the capital?"),
        Message::assistant("Paris?"),
        Message::user("And of Italy?"),
    ];
    for case in 0..120 {
        let n = 1 + cases.below(6) as usize;
        let texts: Vec<String> =
            (0..n).map(|i| format!("Answer {i}: Rome{}", "!".repeat(cases.below(3) as usize))).collect();
        let ps = proposals(&texts);
        let layer_count = 1 + cases.below(3) as usize;
        let layer = 1 + cases.below(layer_count as u64 + 1) as usize;
        let params = params(&mut cases);
        let key = if kind == StrategyKind::Rank { "best" } else { "selected" };
        let reply = cases.reply(n, key);
        let input = StrategyInput { seed: cases.below(u64::MAX), ..StrategyInput::new(&conv, layer, layer_count, &ps) };
        let builtin_spec = StrategySpec { params: params.clone(), ..StrategySpec::builtin(kind) };
        let mut builtin = Builtins.resolve(&builtin_spec).expect("built-in");
        let path = plugins::path(plugin);
        let mut made = PluginStrategy::new(rt.clone(), &path, &spec(plugin, params.clone())).expect("plugin loads");
        let want = steps(builtin.as_mut(), input, &reply);
        let got = steps(&mut made, input, &reply);
        assert_eq!(got, want, "case {case}: {n} proposals, layer {layer}/{layer_count}, {params}, reply {reply:?}");
    }
}

#[test]
fn the_rank_example_plugin_decides_as_the_built_in_does() {
    held_equal(StrategyKind::Rank, "rank", |c| match c.below(3) {
        0 => json!({}),
        1 => json!({"judge": "p:judge"}),
        _ => json!({"judge": "p:judge", "max_tokens": 1 + c.below(2000)}),
    });
}

#[test]
fn the_select_example_plugin_decides_as_the_built_in_does() {
    held_equal(StrategyKind::Select, "select", |c| match c.below(4) {
        0 => json!({}),
        1 => json!({"k": 1 + c.below(4)}),
        2 => json!({"k": 1 + c.below(4), "stop": c.below(2) == 0}),
        _ => json!({"k": 2, "stop": true, "judge": "p:judge", "max_tokens": 64}),
    });
}

async fn run_with(recipe: &Recipe, keys: &[(&str, &str)]) -> (Outcome, Vec<Event>) {
    let resolver = HostResolver { runtime: runtime(), base: ".".into() };
    let clock = Clock::new();
    let keys = keys.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect();
    let options = RunOptions { resolver: &resolver, keys, ..RunOptions::default() };
    let mut run = Run::with_options(recipe, vec![Message::user("Which city?")], clock.now(), options).expect("starts");
    let mut events = vec![];
    let outcome = Transport::new()
        .expect("client")
        .drive(&mut run, &clock, &CancellationToken::new(), |e| events.push(e.clone()))
        .await;
    (outcome, events)
}

fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StrategyNote { note, .. } => Some(note.clone()),
            _ => None,
        })
        .collect()
}

fn failure(events: &[Event]) -> Option<(String, bool)> {
    events.iter().find_map(|e| match e {
        Event::StrategyFailed { error, fallback, .. } => Some((error.clone(), *fallback)),
        _ => None,
    })
}

#[tokio::test]
async fn a_plugins_judge_call_is_made_and_booked_as_the_built_ins_is() {
    let fake = Fake::start();
    let texts = ["a;text=Paris", "b;text=Lyon", "c;text=Nice"];
    let mut by_plugin = recipe(&fake.base_url, &texts, "agg;text=I pick response 2.", "");
    by_plugin.aggregator.strategy = Some(spec("rank", json!({})));
    let (outcome, events) = run_with(&by_plugin, &[]).await;
    assert_eq!(outcome.answer.as_deref().ok(), Some("Lyon"));
    assert_eq!(notes(&events), ["the judge picked response 2 of 3"]);
    let layer = &outcome.layers[0];
    assert_eq!(layer.calls.len(), 4, "three proposers and the judge");
    assert!(layer.calls[3].asked && layer.calls[3].ok && layer.calls[3].agent == "judge", "{:?}", layer.calls[3]);
    assert_eq!(fake.count("agg;text=I pick response 2."), 1, "one judge call, no aggregator call");

    let mut by_builtin = by_plugin.clone();
    by_builtin.aggregator.strategy = Some(StrategySpec::builtin(StrategyKind::Rank));
    let (builtin, _) = run_with(&by_builtin, &[]).await;
    assert_eq!(builtin.answer, outcome.answer);
    assert_eq!(builtin.usage, outcome.usage);
}

#[tokio::test]
async fn a_plugin_asking_without_end_is_stopped_after_eight_asks_and_falls_back() {
    let fake = Fake::start();
    for (on_error, ok) in [(OnError::Synthesize, true), (OnError::Fail, false)] {
        let agg = format!("agg-{ok};text=fine");
        let mut r = recipe(&fake.base_url, &["a;text=Paris", "b;text=Lyon"], &agg, "");
        r.aggregator.strategy = Some(StrategySpec { on_error, ..spec("greedy-asker", json!({"mode": "forever"})) });
        let (outcome, events) = run_with(&r, &[]).await;
        assert_eq!(outcome.answer.is_ok(), ok, "{on_error:?}: {:?}", outcome.answer);
        let (error, fallback) = failure(&events).expect("a strategy_failed event");
        assert!(error.contains("asked for more than 8 calls in one decision"), "{error}");
        assert_eq!(fallback, ok);
        let asked = outcome.layers[0].calls.iter().filter(|c| c.asked).count();
        assert_eq!(asked, 8, "eight paid asks, not one more");
        assert_eq!(fake.count(&agg), 8 + u32::from(ok), "the asks, then the fallback's synthesis");
    }
}

#[tokio::test]
async fn a_bad_ask_is_refused_before_any_call_naming_the_plugin() {
    let fake = Fake::start();
    let cases = [
        ("label", r#"asked with label "judge\n{\"forged\":true}\u{1b}]0;pwned\u{7}": a label is 1 to 64 bytes"#),
        ("model", "asked for model \"no-provider\": a model is \"provider:model\""),
        ("model-escape", r#"asked for model "p:m\u{1b}]0;pwned\u{7}\nforged": a model is"#),
        ("provider", "asked for a call to provider \"elsewhere\", which the recipe does not have"),
        ("huge", "returned more than the 2162688 bytes the host copies out"),
    ];
    for (mode, want) in cases {
        let agg = format!("agg-{mode}");
        let mut r = recipe(&fake.base_url, &["a;text=Paris", "b;text=Lyon"], &agg, "");
        let hostile = spec("greedy-asker", json!({ "mode": mode }));
        r.aggregator.strategy = Some(StrategySpec { on_error: OnError::Synthesize, ..hostile });
        let (outcome, events) = run_with(&r, &[]).await;
        assert!(outcome.answer.is_ok(), "{mode}: falls back to synthesize: {:?}", outcome.answer);
        let (error, fallback) = failure(&events).expect("a strategy_failed event");
        assert!(error.contains(want) && error.contains("greedy_asker.wasm"), "{mode}: {error}");
        assert!(!error.contains('\n') && !error.contains('\x1b'), "{mode}: inert: {error:?}");
        assert!(fallback);
        assert!(outcome.layers[0].calls.iter().all(|c| !c.asked), "{mode}: no call was made for it");
        assert_eq!(fake.count(&agg), 1, "{mode}: only the fallback's synthesis");
    }
}

#[tokio::test]
async fn a_plugins_note_is_shown_inert() {
    let fake = Fake::start();
    let mut r = recipe(&fake.base_url, &["a;text=Paris", "b;text=Lyon"], "agg", "");
    r.aggregator.strategy = Some(spec("greedy-asker", json!({"mode": "note"})));
    let (outcome, events) = run_with(&r, &[]).await;
    assert!(outcome.answer.is_ok(), "{:?}", outcome.answer);
    let notes = notes(&events);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        !notes[0].contains('\x1b') && !notes[0].contains('\n') && notes[0].contains("forged line"),
        "{:?}",
        notes[0]
    );
}

#[tokio::test]
async fn what_a_plugin_is_told_of_a_failed_ask_has_the_key_redacted() {
    let fake = Fake::start();
    let key = "sk-test-0123456789abcdef0123";
    let mut r = recipe(&fake.base_url, &["a;text=Paris", "b;text=Lyon"], "agg;fault=echo;times=99", "");
    r.providers.get_mut("fake").expect("provider").api_key_env = Some("MOA_TEST_KEY".into());
    r.aggregator.strategy = Some(spec("greedy-asker", json!({"mode": "echo"})));
    let (outcome, _) = run_with(&r, &[("fake", key)]).await;
    let answer = outcome.answer.expect("the plugin answers with what it was told");
    assert!(answer.starts_with("judge failed: "), "{answer}");
    assert!(answer.contains("[redacted key]") && !answer.contains("0123456789abcdef"), "{answer}");
}

#[test]
fn plugin_check_shows_each_ask_its_reply_and_the_decision() {
    let check = |plugin: &str, args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
            .args(["plugin", "check"])
            .args(args)
            .arg(plugins::path(plugin))
            .output()
            .expect("runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = check("rank", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("contract moa:strategy@0.2.0"), "{out}");
    assert!(out.contains("for a call to the recipe's aggregator labelled \"judge\""), "{out}");
    assert!(out.contains("[Response 6]"), "the judge's messages are shown: {out}");
    assert!(out.contains("note: the judge picked response 2 of 6"), "{out}");
    assert!(
        out.contains("decided the final answer in") && out.contains("\"The capital of France is Paris.\""),
        "{out}"
    );
    let (code, out, err) =
        check("select", &["--params", r#"{"k": 3}"#, "--reply", r#"{"selected": [4], "stop": true}"#]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("note: the judge kept 4 of 6 (fewer than k = 3)"), "{out}");
    assert!(out.contains("returned 2 message(s) for the next agents"), "the last layer is not ended early: {out}");
    let (code, _, err) = check("greedy-asker", &["--params", r#"{"mode": "forever"}"#]);
    assert_eq!(code, Some(1));
    assert!(err.contains("asked for more than 8 calls in one decision"), "{err}");
}
