//! Tools and structured output through the mixture: who gets the real tools under each
//! policy, calls streamed back in pieces, and the adversary — a model that calls with
//! arguments that are not JSON or do not fit, answers in words when a call is required,
//! or writes JSON that breaks the schema — retried with the reason, then reported, never
//! delivered.

mod common;

use common::*;
use moa_core::engine::{ErrorKind, RunOptions};
use moa_core::tools::{JsonSchemaFormat, ResponseFormat, Tool, ToolCall, ToolChoice, Tools};
use moa_core::{Event, Message, Recipe, Role, Run, RunError};
use serde_json::json;

fn recipe(policy: &str) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"providers": {{"p": {{"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}}},
            "layers": [{{"agents": ["p:a", "p:b", "p:c"]}}], "aggregator": "p:agg",
            "tool_policy": "{policy}", "policy": {{"retries": 1, "backoff_secs": 0}}}}"#
    ))
    .expect("valid")
}

fn weather(choice: ToolChoice) -> Tools {
    let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let tool = Tool { name: "weather".into(), description: Some("Today's weather".into()), parameters, strict: None };
    Tools { tools: vec![tool], choice, parallel: true }
}

/// A streamed answer that calls `name` with `args`, the arguments in two pieces.
fn calls(name: &str, args: &str) -> Reply {
    let (a, b) = args.split_at(args.len() / 2);
    let start = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_x", "type": "function", "function": {"name": name, "arguments": a}}]}}]});
    let more =
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}}]});
    let fin = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
    let sse = format!("data: {start}\n\ndata: {more}\n\ndata: {fin}\n\ndata: [DONE]\n\n");
    vec![
        (ms(5), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
        (ms(5), Step::Body(sse.into_bytes())),
        (ms(5), Step::End),
    ]
}

fn run_with(recipe: &Recipe, tools: Option<Tools>, format: ResponseFormat, script: impl FnMut(&Req) -> Reply) -> Trace {
    let options = RunOptions { tools, response_format: format, ..RunOptions::default() };
    let conversation = vec![Message::user("Weather in Oslo?")];
    let run = Run::with_options(recipe, conversation, T0, options).expect("starts");
    simulate(run, T0, script)
}

#[test]
fn under_the_aggregator_policy_proposers_advise_and_the_aggregator_calls() {
    let trace = run_with(&recipe("aggregator"), Some(weather(ToolChoice::Auto)), ResponseFormat::Text, |req| match req
        .model
        .as_str()
    {
        "agg" => calls("weather", r#"{"city": "Oslo"}"#),
        _ => answer("Call weather with city Oslo.", ms(5)),
    });
    assert_consistent(&trace.events);
    for r in trace.requests.iter().filter(|r| r.model != "agg") {
        assert!(r.body.get("tools").is_none(), "proposers get no real tools");
        assert!(r.system().expect("a system note").contains("- weather: Today's weather"));
    }
    let agg = trace.requests.iter().find(|r| r.model == "agg").expect("aggregated");
    assert_eq!(agg.body["tools"][0]["function"]["name"], "weather");
    assert_eq!(agg.body["tool_choice"], "auto");
    let outcome = &trace.outcome;
    assert_eq!(outcome.tool_calls, vec![ToolCall::new("call_x", "weather", r#"{"city": "Oslo"}"#)]);
    assert_eq!(outcome.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(outcome.answer.as_deref().ok(), Some(""));
    let last = trace.events.iter().rev().find_map(|e| match e {
        Event::Final { tool_calls, .. } => Some(tool_calls.clone()),
        _ => None,
    });
    assert_eq!(last, Some(outcome.tool_calls.clone()), "the Final event carries the calls");
}

#[test]
fn a_call_whose_arguments_are_not_json_or_do_not_fit_is_retried_with_the_reason_then_reported() {
    let mut n = 0;
    let trace = run_with(&recipe("aggregator"), Some(weather(ToolChoice::Auto)), ResponseFormat::Text, |req| match req
        .model
        .as_str()
    {
        "agg" => {
            n += 1;
            if n == 1 { calls("weather", r#"{"city": "Os"#) } else { calls("weather", r#"{"town": "Oslo"}"#) }
        }
        _ => answer("Use weather.", ms(5)),
    });
    let aggs: Vec<&Req> = trace.requests.iter().filter(|r| r.model == "agg").collect();
    assert_eq!(aggs.len(), 2, "retried once (policy.retries = 1)");
    let told = aggs[1].messages.last().expect("a correction");
    assert_eq!(told.role, Role::User);
    assert!(told.content.contains("the arguments of weather are not JSON"), "{}", told.content);
    match trace.outcome.answer.as_ref().err() {
        Some(RunError::TooFewSuccesses { failures, .. }) => {
            assert_eq!(failures[0].kind, ErrorKind::Rejected);
            assert!(failures[0].error.contains("missing required property \"city\""), "{}", failures[0].error);
        }
        other => panic!("expected the aggregator to fail, got {other:?}"),
    }
    assert!(trace.outcome.tool_calls.is_empty());
}

#[test]
fn a_required_call_answered_in_words_is_never_the_answer() {
    let trace = run_with(&recipe("aggregator"), Some(weather(ToolChoice::Required)), ResponseFormat::Text, |req| {
        match req.model.as_str() {
            "agg" => answer("It is probably sunny.", ms(5)),
            _ => answer("No tool needed.", ms(5)),
        }
    });
    assert_eq!(trace.requests.iter().filter(|r| r.model == "agg").count(), 2);
    assert!(trace.outcome.answer.is_err());
    // Nothing of the refused answers was delivered as text.
    assert!(!trace.events.iter().any(|e| matches!(e, Event::TextDelta { at, .. } if at.layer == 1)));
    assert!(!trace.events.iter().any(|e| matches!(e, Event::Final { .. })));
}

#[test]
fn under_the_vote_policy_a_majority_of_identical_calls_decides_without_an_aggregator() {
    let trace = run_with(&recipe("vote"), Some(weather(ToolChoice::Auto)), ResponseFormat::Text, |req| {
        match req.model.as_str() {
            "a" => calls("weather", r#"{"city":"Oslo"}"#),
            "b" => calls("weather", r#"{ "city" : "Oslo" }"#),
            "c" => calls("weather", r#"{"city":"Bergen"}"#),
            _ => panic!("no aggregator call expected"),
        }
    });
    assert!(trace.requests.iter().all(|r| r.body["tools"][0]["function"]["name"] == "weather"));
    assert_eq!(trace.outcome.tool_calls.len(), 1);
    assert_eq!(trace.outcome.tool_calls[0].canonical(), r#"weather({"city":"Oslo"})"#);
    assert!(trace.outcome.decided_by.as_deref().is_some_and(|d| d.contains("2 of 3")));
}

#[test]
fn under_the_vote_policy_without_a_majority_the_aggregator_decides_from_every_call() {
    let trace = run_with(&recipe("vote"), Some(weather(ToolChoice::Auto)), ResponseFormat::Text, |req| {
        match req.model.as_str() {
            "a" => calls("weather", r#"{"city":"Oslo"}"#),
            "b" => calls("weather", r#"{"city":"Bergen"}"#),
            "c" => answer("No call needed.", ms(5)),
            _ => calls("weather", r#"{"city":"Oslo"}"#),
        }
    });
    let agg = trace.requests.iter().find(|r| r.model == "agg").expect("the aggregator decides");
    assert!(agg.system().expect("references").contains(r#"weather({"city":"Bergen"})"#));
    assert_eq!(trace.outcome.tool_calls.len(), 1);
}

#[test]
fn tool_results_reach_the_aggregator_natively_and_proposers_as_text() {
    let conversation = vec![
        Message::user("Weather in Oslo?"),
        Message::tool_calls("", vec![ToolCall::new("c1", "weather", r#"{"city":"Oslo"}"#)]),
        Message::tool_result("c1", "12 C, rain"),
    ];
    let options = RunOptions { tools: Some(weather(ToolChoice::Auto)), ..RunOptions::default() };
    let run = Run::with_options(&recipe("aggregator"), conversation, T0, options).expect("starts");
    let trace = simulate(run, T0, |_| answer("12 C and rain in Oslo.", ms(5)));
    let agg = trace.requests.iter().find(|r| r.model == "agg").expect("aggregated");
    let tool = agg.body["messages"].as_array().expect("messages").iter().find(|m| m["role"] == "tool").cloned();
    assert_eq!(tool.expect("a tool message")["tool_call_id"], "c1");
    let proposer = trace.requests.iter().find(|r| r.model == "a").expect("proposed");
    assert!(proposer.body["messages"].as_array().expect("messages").iter().all(|m| m["role"] != "tool"));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("12 C and rain in Oslo."));
}

fn schema_format() -> ResponseFormat {
    let schema = json!({"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"],
                        "additionalProperties": false});
    ResponseFormat::JsonSchema { json_schema: JsonSchemaFormat { name: "weather".into(), schema, strict: Some(true) } }
}

#[test]
fn a_structured_answer_is_checked_before_it_is_delivered_and_retried_with_the_error() {
    let mut n = 0;
    let trace = run_with(&recipe("aggregator"), None, schema_format(), |req| match req.model.as_str() {
        "agg" => {
            n += 1;
            if n == 1 { answer(r#"{"temp": "warm"}"#, ms(5)) } else { answer(r#"{"temp": 12.5}"#, ms(5)) }
        }
        _ => answer("About 12.5 degrees.", ms(5)),
    });
    assert_consistent(&trace.events);
    let aggs: Vec<&Req> = trace.requests.iter().filter(|r| r.model == "agg").collect();
    assert_eq!(aggs[0].body["response_format"]["type"], "json_schema", "asked natively");
    assert!(aggs[0].system().expect("a note").contains("matches this JSON schema"));
    assert!(trace.requests.iter().filter(|r| r.model != "agg").all(|r| r.body.get("response_format").is_none()));
    assert!(aggs[1].messages.last().expect("why").content.contains("at /temp: expected number, got string"));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some(r#"{"temp": 12.5}"#));
    // Only the accepted answer was ever delivered.
    let shown: String = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { at, text } if at.layer == 1 => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(shown, r#"{"temp": 12.5}"#);
}

#[test]
fn a_structured_answer_that_never_matches_is_an_error_never_an_answer() {
    let trace = run_with(&recipe("aggregator"), None, schema_format(), |_| answer("Twelve degrees.", ms(5)));
    match trace.outcome.answer.as_ref().err() {
        Some(RunError::TooFewSuccesses { failures, .. }) => {
            assert_eq!(failures[0].kind, ErrorKind::Rejected);
            assert!(failures[0].error.contains("not JSON"), "{}", failures[0].error);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn unusable_tools_and_formats_are_refused_at_the_start_naming_the_field() {
    let start = |tools: Option<Tools>, format: ResponseFormat| {
        let options = RunOptions { tools, response_format: format, ..RunOptions::default() };
        Run::with_options(&recipe("aggregator"), vec![Message::user("Hi")], T0, options).err()
    };
    let mut bad = weather(ToolChoice::Auto);
    bad.tools[0].parameters = json!({"type": "objectt"});
    let field = |e: Option<RunError>| match e {
        Some(RunError::Tools { field, .. }) => field,
        other => panic!("expected a tools error, got {other:?}"),
    };
    assert_eq!(field(start(Some(bad), ResponseFormat::Text)), "tools[0].function.parameters");
    assert_eq!(field(start(Some(weather(ToolChoice::Function("nope".into()))), ResponseFormat::Text)), "tool_choice");
    let format = ResponseFormat::JsonSchema {
        json_schema: JsonSchemaFormat { name: "x".into(), schema: json!({"required": 3}), strict: None },
    };
    assert_eq!(field(start(None, format)), "response_format.json_schema.schema");
    // A tool result that answers no call.
    let orphan = vec![Message::user("Hi"), Message::tool_result("c9", "12 C")];
    let e = Run::with_options(&recipe("aggregator"), orphan, T0, RunOptions::default()).err();
    assert!(
        matches!(&e, Some(RunError::Conversation(m)) if m.contains("messages[1]") && m.contains("\"c9\"")),
        "{e:?}"
    );
}

#[test]
fn a_provider_that_cannot_take_tools_gets_them_as_text_and_calls_in_json() {
    let recipe = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "tools": false}},
            "layers": [{"agents": ["p:a"]}], "aggregator": "p:agg"}"#,
    )
    .expect("valid");
    let trace =
        run_with(&recipe, Some(weather(ToolChoice::Required)), ResponseFormat::Text, |req| match req.model.as_str() {
            "agg" => answer(r#"{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}"#, ms(5)),
            _ => answer("Call weather for Oslo.", ms(5)),
        });
    let agg = trace.requests.iter().find(|r| r.model == "agg").expect("aggregated");
    assert!(agg.body.get("tools").is_none(), "no native tools");
    let system = agg.system().expect("the tools as text");
    assert!(system.contains("reply with only a JSON object") && system.contains("You must call at least one tool"));
    assert_eq!(trace.outcome.tool_calls, vec![ToolCall::new("call_0", "weather", r#"{"city":"Oslo"}"#)]);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some(""), "the JSON was the call, not the answer");
}

#[test]
fn with_irrevocable_output_a_refused_answer_is_still_retried_because_nothing_was_delivered() {
    let mut n = 0;
    let options = RunOptions { response_format: schema_format(), irrevocable_answer: true, ..RunOptions::default() };
    let run = Run::with_options(&recipe("aggregator"), vec![Message::user("Weather?")], T0, options).expect("starts");
    let trace = simulate(run, T0, |req| match req.model.as_str() {
        "agg" => {
            n += 1;
            if n == 1 { answer("Twelve degrees.", ms(5)) } else { answer(r#"{"temp": 12}"#, ms(5)) }
        }
        _ => answer("12", ms(5)),
    });
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some(r#"{"temp": 12}"#), "{:?}", trace.outcome.answer);
    // The refused attempt showed nothing, so it voids nothing.
    let voided = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { at, discarded_chars, .. } if at.layer == 1 => Some(*discarded_chars),
        _ => None,
    });
    assert_eq!(voided, Some(0));
}

#[test]
fn agreeing_advisers_and_strategies_that_pick_a_proposal_never_bypass_the_aggregators_call() {
    // Three advisers agree word for word; early exit would end the run with their advice.
    let early = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b", "p:c"], "early_exit": true}], "aggregator": "p:agg"}"#,
    )
    .expect("valid");
    let script = |req: &Req| match req.model.as_str() {
        "agg" => calls("weather", r#"{"city":"Oslo"}"#),
        _ => answer("7", ms(5)),
    };
    let trace = run_with(&early, Some(weather(ToolChoice::Auto)), ResponseFormat::Text, script);
    assert_eq!(trace.outcome.tool_calls.len(), 1, "{:?}", trace.outcome.answer);
    // A vote strategy would pick the majority proposal as the answer.
    let voted = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b", "p:c"]}], "aggregator": {"model": "p:agg", "strategy": "vote"}}"#,
    )
    .expect("valid");
    let trace = run_with(&voted, Some(weather(ToolChoice::Auto)), ResponseFormat::Text, script);
    assert_eq!(trace.outcome.tool_calls.len(), 1, "{:?}", trace.outcome.answer);
    assert!(trace.requests.iter().any(|r| r.model == "agg"), "the aggregator decided");
}

#[test]
fn a_json_answer_shaped_like_a_call_is_an_answer_unless_it_names_a_tool() {
    let recipe = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "tools": false}},
            "layers": [], "aggregator": "p:agg"}"#,
    )
    .expect("valid");
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let format =
        ResponseFormat::JsonSchema { json_schema: JsonSchemaFormat { name: "person".into(), schema, strict: None } };
    let trace = run_with(&recipe, Some(weather(ToolChoice::Auto)), format, |_| answer(r#"{"name": "Ada"}"#, ms(5)));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some(r#"{"name": "Ada"}"#), "{:?}", trace.outcome.answer);
    assert!(trace.outcome.tool_calls.is_empty());
    // With tools as text the format is asked in words only: a grammar would forbid calls.
    assert!(trace.requests[0].body.get("response_format").is_none());
}
