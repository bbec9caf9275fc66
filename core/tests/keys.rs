//! API keys: refused when missing, sent only where declared, never visible in events or outcomes.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::named::Named;
use moa_core::recipe::{self};
use moa_core::{Message, Run};

#[test]
fn a_missing_key_is_refused_before_any_call() {
    let recipe = recipe::preset("moa").expect("preset");
    let err = Run::new(&recipe, vec![Message::user("hi")], T0).err().expect("refused");
    assert_eq!(
        err.to_string(),
        "provider \"together\" needs an API key: set TOGETHER_API_KEY (or pass it at run time)"
    );
    let err = Run::with_options(&recipe, vec![Message::assistant("hi")], T0, opts(0)).err().expect("refused");
    assert!(err.to_string().contains("last message must be the user's"), "{err}");
}

#[test]
fn a_provider_that_echoes_the_key_never_makes_it_visible() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let bearer = format!("Bearer {KEY}");
    let header_block =
        format!("POST /v1/chat/completions HTTP/1.1\r\nhost: api.together.xyz\r\nauthorization: {bearer}\r\n");
    let echo_event =
        serde_json::json!({"error": {"message": format!("overloaded; you sent {bearer}"), "type": "server_error"}});
    for (name, reply) in [
        (
            "401",
            status(401, &[], &format!(r#"{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}"#), ms(1)),
        ),
        ("429", status(429, &[("retry-after", "0")], &format!(r#"{{"error": "rate limited for {bearer}"}}"#), ms(1))),
        ("500", status(500, &[], &format!("internal error handling key {}****", &KEY[..14]), ms(1))),
        ("400", status(400, &[], &header_block, ms(1))),
        (
            "stream",
            vec![
                (ms(1), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
                (ms(2), Step::Body(format!("data: {echo_event}\n\n").into_bytes())),
                (ms(3), Step::End),
            ],
        ),
        ("answer", openai_stream(&["your key is sk-SENTI", "NEL-KEY-0123456789 ok"], (1, 1), ms(1), ms(1))),
    ] {
        let mut recipe = recipe.clone();
        recipe.policy.retries = 0;
        recipe.policy.min_successes = 1;
        let reply2 = reply.clone();
        let trace = simulate(start(&recipe, 1), T0, move |req| {
            if req.model == "databricks/dbrx-instruct" || req.model == "Qwen/Qwen1.5-72B-Chat" {
                reply2.clone()
            } else {
                answer("fine", ms(5))
            }
        });
        let seen = visible(&trace);
        assert!(!seen.contains(KEY), "{name}: the key is visible:\n{seen}");
        assert!(!seen.contains(&KEY[..14]), "{name}: part of the key is visible:\n{seen}");
        assert!(seen.contains("[redacted key]"), "{name}: the echo is marked:\n{seen}");
    }
}

#[test]
fn a_key_goes_only_to_a_provider_that_declares_one() {
    let recipe = one_model("r", "openai", 9);
    let options =
        RunOptions { keys: Named::from([("r".to_owned(), "x-key-given-anyway".to_owned())]), ..RunOptions::default() };
    let run = Run::with_options(&recipe, vec![Message::user("Hi")], T0, options).expect("starts");
    let trace = simulate(run, T0, |_| answer("ok", ms(1)));
    assert!(trace.requests.iter().all(|r| r.header("authorization").is_none() && r.header("x-api-key").is_none()));
}

/// Everything a run produced that a user could see, as text.
fn visible(trace: &Trace) -> String {
    let events: Vec<String> = trace.events.iter().map(|e| serde_json::to_string(e).expect("json")).collect();
    format!("{}\n{:?}\n{}", events.join("\n"), trace.outcome, serde_json::to_string(&trace.outcome).expect("json"))
}
