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

/// The reader by hand against the serde derives it replaced (kept here as the oracle):
/// on near-valid documents and broken ones, both accept the same and read the same.
mod against_serde {
    use super::wire;
    use crate::message::{Message, Role as MRole};
    use crate::strategy::plugin::{Contract, Decided, Reply};
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        System,
        User,
        Assistant,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Msg {
        role: Role,
        content: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Ask {
        #[serde(default)]
        model: Option<String>,
        label: String,
        messages: Vec<Msg>,
        #[serde(default)]
        max_tokens: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(tag = "tag", content = "val", rename_all = "kebab-case", deny_unknown_fields)]
    enum Decision {
        Messages(Vec<Msg>),
        Keep(Vec<u32>),
        Answer(String),
        Aggregate(Vec<Msg>),
        AggregateKept(Vec<u32>),
        Ask(Ask),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DecidedOk {
        decision: Decision,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase", deny_unknown_fields)]
    enum Outcome {
        Ok(DecidedOk),
        Err(String),
    }

    fn messages(ms: Vec<Msg>) -> Vec<Message> {
        let role = |r: Role| match r {
            Role::System => MRole::System,
            Role::User => MRole::User,
            Role::Assistant => MRole::Assistant,
        };
        ms.into_iter().map(|m| Message::new(role(m.role), m.content)).collect()
    }

    /// What the serde types read, as the contract's reply (for 0.2, which has them all).
    fn reply(d: Decision) -> Reply {
        match d {
            Decision::Messages(ms) => Reply::Messages(messages(ms)),
            Decision::Keep(ix) => Reply::Keep(ix),
            Decision::Answer(a) => Reply::Answer(a),
            Decision::Aggregate(ms) => Reply::Aggregate(messages(ms)),
            Decision::AggregateKept(ix) => Reply::AggregateKept(ix),
            Decision::Ask(a) => Reply::Ask(crate::strategy::Ask {
                model: a.model,
                label: a.label,
                messages: messages(a.messages),
                max_tokens: a.max_tokens,
            }),
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop::sample::select(vec![
            json!(null),
            json!(true),
            json!(-1),
            json!(0),
            json!(7),
            json!(4294967295u64),
            json!(4294967296u64),
            json!(1.5),
            json!("x"),
            json!("user"),
            json!("keep"),
            json!([]),
            json!({}),
        ])
    }

    /// `valid`, or it broken one way: another value, a field dropped or nulled, one added.
    fn or_broken(valid: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
        (valid, scalar(), 0u8..8, 0usize..4).prop_map(|(mut v, other, how, at)| match (how, &mut v) {
            (0, _) => other,
            (1, Value::Object(m)) => {
                let k = m.keys().nth(at % m.len().max(1)).cloned();
                k.and_then(|k| m.remove(&k));
                v
            }
            (2, Value::Object(m)) => {
                m.insert("extra".into(), other);
                v
            }
            (3, Value::Object(m)) => {
                let n = at % m.len().max(1);
                if let Some(x) = m.values_mut().nth(n) {
                    *x = other;
                }
                v
            }
            _ => v,
        })
    }

    fn message() -> impl Strategy<Value = Value> {
        let role = prop::sample::select(vec!["system", "user", "assistant", "tool", "User"]);
        or_broken((role, "[a-z]{0,3}").prop_map(|(role, content)| json!({"role": role, "content": content})))
    }

    fn numbers() -> impl Strategy<Value = Value> {
        or_broken(
            prop::collection::vec(prop_oneof![(0u32..9).prop_map(|n| json!(n)), scalar()], 0..3).prop_map(Value::from),
        )
    }

    fn val(tag: &'static str) -> BoxedStrategy<Value> {
        let messages = prop::collection::vec(message(), 0..3).prop_map(Value::from);
        match tag {
            "messages" | "aggregate" => or_broken(messages).boxed(),
            "keep" | "aggregate-kept" => numbers().boxed(),
            "answer" => prop_oneof!["[a-z]{0,3}".prop_map(Value::from), scalar()].boxed(),
            _ => or_broken(
                (
                    prop::option::of("[a-z:]{0,4}"),
                    "[a-z]{0,3}",
                    messages,
                    prop::option::of(prop_oneof![(0u32..9).prop_map(|n| json!(n)), scalar()]),
                )
                    .prop_map(|(model, label, messages, max)| {
                        let mut a = json!({"label": label, "messages": messages});
                        if let Some(m) = model {
                            a["model"] = json!(m);
                        }
                        if let Some(n) = max {
                            a["maxTokens"] = n;
                        }
                        a
                    }),
            )
            .boxed(),
        }
    }

    fn document() -> impl Strategy<Value = Value> {
        let tags = vec!["messages", "keep", "answer", "aggregate", "aggregate-kept", "ask", "Keep", "other"];
        let decision = prop::sample::select(tags)
            .prop_flat_map(|tag| val(tag).prop_map(move |val| json!({"tag": tag, "val": val})));
        let decided = or_broken(
            (or_broken(decision), prop::option::of(prop_oneof!["[a-z]{0,3}".prop_map(Value::from), scalar()]))
                .prop_map(|(decision, note)| match note {
                    Some(n) => json!({"decision": decision, "note": n}),
                    None => json!({"decision": decision}),
                }),
        );
        or_broken(prop_oneof![decided.prop_map(|d| json!({"ok": d})), "[a-z]{0,3}".prop_map(|e| json!({"err": e}))])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn the_reader_accepts_what_serde_accepted(doc in document(), v2 in any::<bool>()) {
            let contract = if v2 { Contract::V0_2_0 } else { Contract::V0_1_0 };
            let text = doc.to_string();
            let by_hand: Result<Result<Decided, String>, String> = wire::decided(contract, &text);
            let by_serde = serde_json::from_str::<Outcome>(&text);
            // Where serde read it, the contract's own checks (version, note) then apply the same.
            match (&by_hand, &by_serde) {
                (Err(e), Ok(_)) => prop_assert!(
                    !e.starts_with("returned something the contract does not allow"),
                    "{text}: refused by hand ({e}), read by serde"
                ),
                (Ok(_), Err(e)) => prop_assert!(false, "{text}: read by hand, refused by serde ({e})"),
                (Err(e), Err(_)) => prop_assert!(e.starts_with("returned something the contract does not allow"), "{e}"),
                (Ok(_), Ok(_)) => {}
            }
            match (by_hand, by_serde) {
                (Ok(Err(why)), Ok(Outcome::Err(s))) => prop_assert_eq!(why, s),
                (Ok(Ok(d)), Ok(Outcome::Ok(o))) => {
                    prop_assert_eq!(d.note, o.note);
                    prop_assert_eq!(d.reply, reply(o.decision));
                }
                (Ok(a), Ok(_)) => prop_assert!(false, "{text}: read by hand as {a:?}, otherwise by serde"),
                _ => {}
            }
        }
    }
}
