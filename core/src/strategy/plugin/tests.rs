use super::*;
use crate::strategy::{Proposal, StrategyInput};

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_newest_supported_contract_is_found_and_others_are_named() {
    let all = Contract::ALL;
    assert_eq!(Contract::find(&strings(&["x", "moa:strategy/strategy@0.1.0"]), &all), Ok(Contract::V0_1_0));
    assert_eq!(
        Contract::find(&strings(&["moa:strategy/strategy@0.1.0", "moa:strategy/strategy@0.2.0"]), &all),
        Ok(Contract::V0_2_0)
    );
    let err = Contract::find(&strings(&["moa:strategy/strategy@9.0.0"]), &all).expect_err("an error");
    assert!(
        err.contains("implements moa:strategy/strategy@9.0.0, but this host supports moa:strategy@0.2.0, @0.1.0"),
        "{err}"
    );
    let err = Contract::find(&strings(&["run\u{1b}[2J"]), &all).expect_err("an error");
    assert!(err.contains("exports no moa:strategy contract (it exports: run\\u{1b}[2J)"), "{err}");
    assert_eq!(Contract::from_version("0.2.0"), Some(Contract::V0_2_0));
    assert_eq!(Contract::from_version("0.3.0"), None);
}

#[test]
fn only_granted_imports_pass_with_or_without_their_version() {
    let granted =
        strings(&["moa:strategy/types@0.1.0", "moa:strategy/types", "wasi:io/streams@0.2.0", "wasi:cli/stdout"]);
    assert_eq!(check_imports(granted.into_iter()), Ok(()));
    for denied in ["wasi:sockets/tcp@0.2.0", "wasi:filesystem/types", "moa:strategy/typesx", "wasi:random/random"] {
        let err = check_imports([denied.to_owned()].into_iter()).expect_err(denied);
        assert!(err.contains(&format!("imports {denied}, which")), "{err}");
    }
}

#[test]
fn a_replys_size_counts_its_text() {
    assert_eq!(Reply::Answer("abc".into()).size(), 3);
    assert_eq!(Reply::Keep(vec![0, 1]).size(), 8);
    assert_eq!(Reply::Messages(vec![Message::user("hi")]).size(), 18);
    assert_eq!(Reply::Aggregate(vec![Message::user("hi")]).size(), 18);
    let ask =
        Ask { model: Some("p:m".into()), label: "judge".into(), messages: vec![Message::user("hi")], max_tokens: None };
    assert_eq!(Reply::Ask(ask.clone()).size(), 3 + 5 + 18);
    assert_eq!(Decided { reply: Reply::Ask(ask), note: Some("four".into()) }.size(), 3 + 5 + 18 + 4);
}

#[test]
fn text_from_a_plugin_is_made_inert_and_bounded() {
    assert_eq!(inert("a\u{1b}]0;x\u{7}\nb"), "a\\u{1b}]0;x\\u{7}\\nb");
    assert!(inert(&"x".repeat(1 << 20)).len() <= MAX_TEXT + 4);
}

fn proposals() -> Vec<Proposal> {
    ["Paris", "Lyon"]
        .iter()
        .map(|t| Proposal {
            agent: "a".into(),
            model: "p:a".into(),
            text: (*t).into(),
            usage: Some(crate::usage::Usage { input_tokens: 1 << 40, output_tokens: 3, ..Default::default() }),
            latency_ms: 1.5,
        })
        .collect()
}

#[test]
fn the_wire_context_has_what_each_contract_version_has() {
    let conversation = vec![Message::system("s"), Message::tool_result("c1", "42")];
    let proposals = proposals();
    let mut input = StrategyInput::new(&conversation, 1, 2, &proposals);
    input.seed = u64::MAX;
    let asked = vec![(
        Ask { model: None, label: "judge".into(), messages: vec![Message::user("q")], max_tokens: Some(5) },
        Err("timed out".to_owned()),
    )];
    let v2: serde_json::Value =
        serde_json::from_str(&wire::context(Contract::V0_2_0, &input, "{}", &asked)).expect("JSON");
    assert_eq!(v2["seed"], u64::MAX.to_string());
    assert_eq!(v2["proposals"][0]["inputTokens"], (1u64 << 40).to_string());
    assert_eq!(v2["proposals"][0]["latencyMs"], 1.5);
    assert_eq!(v2["layerCount"], 2);
    // The contract has no tool role: tool traffic arrives as the user's text.
    assert_eq!(v2["conversation"][1]["role"], "user");
    assert!(v2["conversation"][1]["content"].as_str().is_some_and(|c| c.contains("42")));
    assert_eq!(
        v2["asked"][0],
        serde_json::json!({"ask": {"label": "judge", "messages": [{"role": "user", "content": "q"}], "maxTokens": 5}, "reply": {"tag": "err", "val": "timed out"}})
    );
    let v1: serde_json::Value =
        serde_json::from_str(&wire::context(Contract::V0_1_0, &input, "{}", &asked)).expect("JSON");
    assert!(v1.get("seed").is_none() && v1.get("asked").is_none(), "{v1}");
}

#[test]
fn every_wire_decision_reads_back_and_malformed_ones_are_refused() {
    let read = |json: &str| wire::decided(Contract::V0_2_0, json);
    let ok = |json: &str| read(json).expect("readable").expect("a decision");
    assert_eq!(ok(r#"{"ok":{"decision":{"tag":"keep","val":[1,0]}}}"#).reply, Reply::Keep(vec![1, 0]));
    assert_eq!(ok(r#"{"ok":{"decision":{"tag":"aggregate-kept","val":[0]}}}"#).reply, Reply::AggregateKept(vec![0]));
    let m = ok(r#"{"ok":{"decision":{"tag":"messages","val":[{"role":"assistant","content":"x"}]},"note":"n"}}"#);
    assert_eq!((m.reply, m.note.as_deref()), (Reply::Messages(vec![Message::assistant("x")]), Some("n")));
    assert_eq!(read(r#"{"err":"no"}"#), Ok(Err("no".to_owned())));
    for bad in [
        "",
        "null",
        r#"{"ok":{"decision":{"tag":"keep","val":[-1]}}}"#,
        r#"{"ok":{"decision":{"tag":"messages","val":[{"role":"tool","content":"x"}]}}}"#,
        r#"{"ok":{"decision":{"tag":"answer","val":"x"},"extra":1}}"#,
        r#"{"ok":{"decision":{"tag":"answer","val":"x"}},"err":"both"}"#,
    ] {
        let err = read(bad).expect_err(bad);
        assert!(err.starts_with("returned something the contract does not allow"), "{bad}: {err}");
    }
}

#[test]
fn the_checks_on_asks_hold_for_every_field() {
    let conversation = vec![Message::user("q")];
    let proposals = proposals();
    let input = StrategyInput::new(&conversation, 1, 1, &proposals);
    let ask = |label: &str, model: Option<&str>, messages: usize, max_tokens: Option<u32>| Decided {
        reply: Reply::Ask(Ask {
            model: model.map(str::to_owned),
            label: label.into(),
            messages: vec![Message::user("x"); messages],
            max_tokens,
        }),
        note: None,
    };
    let refused = |d: Decided| Decisions::default().accept(d, &input).expect_err("refused");
    assert!(refused(ask("", None, 1, None)).contains("asked with label"));
    assert!(refused(ask(&"x".repeat(65), None, 1, None)).contains("asked with label"));
    assert!(refused(ask("j", Some("nocolon"), 1, None)).contains("asked for model"));
    assert!(refused(ask("j", Some("p:a b"), 1, None)).contains("asked for model"));
    assert!(refused(ask("j", None, 0, None)).contains("no messages"));
    assert!(refused(ask("j", None, 1, Some(0))).contains("max_tokens outside"));
    assert!(refused(ask("j", None, 1, Some(MAX_ASK_TOKENS + 1))).contains("max_tokens outside"));
    // Eight asks with replies, then a ninth is refused.
    let mut d = Decisions::default();
    let reply: Result<&str, &str> = Ok("r");
    for i in 0..=MAX_ASKS {
        let mut step = input;
        step.reply = (i > 0).then_some(reply);
        assert_eq!(d.begin(&step).len(), i);
        let result = d.accept(ask("judge", Some("p:j"), 1, Some(4)), &step);
        assert_eq!(result.is_ok(), i < MAX_ASKS, "ask {i}: {result:?}");
    }
}
