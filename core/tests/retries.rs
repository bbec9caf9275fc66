//! Retries, deadlines and failures in simulated time: what is retried, when, and what is not.

mod common;

use common::*;
use moa_core::recipe::{self, Layer};
use moa_core::{Action, CallError, Event, Input, Message, Run, RunError, Time};
use std::time::Duration;

#[test]
fn retry_after_seconds_is_honoured_in_simulated_time() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut first = true;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && std::mem::take(&mut first) {
            return status(
                429,
                &[("retry-after", "7")],
                r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
                ms(5),
            );
        }
        answer("fine", ms(50))
    });
    assert_consistent(&trace.events);
    let dbrx: Vec<_> = trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").collect();
    assert_eq!(dbrx.len(), 2);
    assert_eq!(dbrx[1].at, dbrx[0].at + ms(5) + Duration::from_secs(7));
    let failed = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { error, will_retry, retry_in_ms, .. } => Some((error.clone(), *will_retry, *retry_in_ms)),
        _ => None,
    });
    assert_eq!(failed, Some(("HTTP 429: slow down".into(), true, Some(7000.0))));
    assert!(trace.outcome.answer.is_ok());
}

#[test]
fn retry_after_http_date_is_measured_against_the_date_header() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut first = true;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if std::mem::take(&mut first) {
            let hs = [("Retry-After", "Wed, 21 Oct 2015 07:28:12 GMT"), ("Date", "Wed, 21 Oct 2015 07:28:00 GMT")];
            return status(503, &hs, "overloaded", ms(0));
        }
        let _ = req;
        answer("fine", ms(50))
    });
    assert_eq!(trace.requests[6].at, T0 + Duration::from_secs(12), "the retry comes 12 s later");
}

#[test]
fn server_errors_back_off_with_seeded_jitter_and_give_up_after_the_retries() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.retries = 2;
    recipe.policy.min_successes = 5;
    let trace = simulate(start(&recipe, 9), T0, |req| {
        if req.model == "databricks/dbrx-instruct" { status(500, &[], "boom", ms(10)) } else { answer("fine", ms(50)) }
    });
    let times: Vec<Time> =
        trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").map(|r| r.at).collect();
    assert_eq!(times.len(), 3, "one try and two retries");
    let gap1 = times[1].since(times[0]) - ms(10);
    let gap2 = times[2].since(times[1]) - ms(10);
    assert!(gap1 >= ms(500) && gap1 <= ms(1000), "first backoff in [0.5, 1] s: {gap1:?}");
    assert!(gap2 >= ms(1000) && gap2 <= ms(2000), "second backoff in [1, 2] s: {gap2:?}");
    // Five of six suffice; the failed one never reaches the aggregator's prompt.
    let agg = trace.requests.last().expect("aggregator");
    assert_eq!(references(agg).len(), 5);
    assert!(!agg.http.body.contains("boom") && !agg.http.body.contains("HTTP 500"));
    let report = &trace.outcome.layers[0].calls[5];
    assert_eq!((report.ok, report.attempts, report.errors.len()), (false, 3, 3));
}

#[test]
fn client_errors_are_not_retried() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            status(401, &[], r#"{"error":{"message":"invalid key"}}"#, ms(1))
        } else {
            answer("ok", ms(5))
        }
    });
    assert_eq!(trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").count(), 1);
    assert!(
        trace.events.iter().any(
            |e| matches!(e, Event::CallFailed { error, will_retry: false, .. } if error == "HTTP 401: invalid key")
        )
    );
}

#[test]
fn too_few_successes_fails_the_run_listing_every_failure() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.min_successes = 3;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model.starts_with("Qwen") || req.model.contains("WizardLM") || req.model.contains("Llama") {
            status(403, &[], &format!("no access to {}", req.model), ms(3))
        } else {
            answer("ok", ms(5))
        }
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.requests.len(), 6, "no aggregator call");
    let Some(RunError::TooFewSuccesses { what, succeeded, needed, failures }) = &trace.outcome.answer.as_ref().err()
    else {
        panic!("expected TooFewSuccesses, got {:?}", trace.outcome.answer.as_ref().err())
    };
    assert_eq!((what.as_str(), *succeeded, *needed, failures.len()), ("layer 0", 2, 3, 4));
    let msg = trace.outcome.answer.as_ref().err().as_ref().expect("error").to_string();
    assert!(msg.contains("together:Qwen/Qwen1.5-110B-Chat: HTTP 403: no access to Qwen/Qwen1.5-110B-Chat"), "{msg}");
    assert!(msg.contains("meta-llama/Llama-3-70b-chat-hf"), "{msg}");
}

#[test]
fn a_call_past_its_deadline_is_cancelled_and_retried() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.timeout_secs = 30.0;
    recipe.policy.stall_timeout_secs = 1000.0;
    let mut hung = false;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut hung, true) {
            // Headers come, then a token every 5 s: never stalled, but far too slow.
            let mut r = openai_stream(&["x"; 20], (1, 1), ms(100), Duration::from_secs(5));
            r.retain(|(t, _)| *t < Duration::from_secs(60));
            return r;
        }
        answer("ok", ms(5))
    });
    let dbrx: Vec<_> = trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").collect();
    assert_eq!(dbrx.len(), 2);
    assert!(trace.aborted.contains(&dbrx[0].call), "the slow call is cancelled");
    assert!(dbrx[1].at >= T0 + Duration::from_secs(30));
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { error, will_retry: true, t_ms, .. } if error.contains("timeout_secs") && *t_ms == 30_000.0)));
    // The retry's text replaces the cancelled attempt's: the aggregator sees "ok", not "xxxx".
    let agg = trace.requests.last().expect("aggregator");
    assert!(references(agg).iter().all(|r| r.ends_with(". ok")), "{:?}", references(agg));
}

#[test]
fn a_stream_that_goes_silent_is_cut_at_the_stall_timeout() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.stall_timeout_secs = 2.0;
    recipe.policy.retries = 0;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            vec![(ms(10), Step::Head(200, vec![]))] // then nothing, ever
        } else {
            answer("ok", ms(5))
        }
    });
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { error, will_retry: false, t_ms, .. } if error.contains("stall") && *t_ms == 2010.0)));
    assert!(trace.outcome.answer.is_ok(), "five proposals are enough");
}

#[test]
fn a_connection_reset_mid_stream_is_retried_from_scratch() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut reset = false;
    let trace = simulate(start(&recipe, 3), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut reset, true) {
            let mut r = openai_stream(&["partial ", "text"], (1, 1), ms(10), ms(10));
            r.truncate(2);
            r.push((ms(15), Step::Fail("connection reset by peer".into())));
            return r;
        }
        answer(&format!("full {}", req.model), ms(20))
    });
    assert_consistent(&trace.events);
    let agg = trace.requests.last().expect("aggregator");
    assert!(references(agg).contains(&"6. full databricks/dbrx-instruct".to_owned()), "{:?}", references(agg));
    assert!(!agg.http.body.contains("partial"));
}

#[test]
fn malformed_sse_fails_the_call_with_a_clear_error() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            vec![
                (ms(1), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
                (ms(2), Step::Body(b"data: {\"choices\": [oops\n\n".to_vec())),
                (ms(3), Step::End),
            ]
        } else {
            answer("ok", ms(5))
        }
    });
    let err = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { at, error, will_retry, .. } => Some((at.call, error.clone(), *will_retry)),
        _ => None,
    });
    let (call, error, will_retry) = err.expect("a failure");
    assert!(error.starts_with("malformed response: stream chunk:"), "{error}");
    assert!(!will_retry);
    assert!(trace.aborted.contains(&call), "the broken stream is cancelled");
}

#[test]
fn a_stream_cut_before_its_end_is_truncated_and_retried() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut cut = false;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        let mut r = answer("ok", ms(5));
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut cut, true) {
            r.remove(2); // drop the finish, usage and [DONE] chunk
        }
        r
    });
    assert!(
        trace
            .events
            .iter()
            .any(|e| matches!(e, Event::CallFailed { error, will_retry: true, .. } if error.contains("ended before")))
    );
    assert!(trace.outcome.answer.is_ok());
}

#[test]
fn anthropic_overload_error_events_are_retried() {
    let recipe = one_model("a", "anthropic", 1);
    let mut n = 0;
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        n += 1;
        let body = if n == 1 {
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".to_owned()
        } else {
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned()
        };
        vec![(ms(1), Step::Head(200, vec![])), (ms(2), Step::Body(body.into_bytes())), (ms(3), Step::End)]
    });
    assert!(trace.events.iter().any(
        |e| matches!(e, Event::CallFailed { error, will_retry: true, .. } if error == "overloaded_error: Overloaded")
    ));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("ok"));
}

#[test]
fn a_provider_that_is_down_fails_with_the_transport_error() {
    let mut recipe = recipe::preset("local-smollm").expect("preset");
    recipe.policy.retries = 1;
    recipe.layers = vec![Layer::new(vec![recipe::Agent::new("smollm:m")])];
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        vec![(ms(1), Step::Fail("connection refused (127.0.0.1:8081)".into()))]
    });
    let err = trace.outcome.answer.as_ref().expect_err("fails").to_string();
    assert_eq!(
        err,
        "layer 0: 0 agent(s) succeeded, 1 needed\n  smollm:m: transport: connection refused (127.0.0.1:8081)"
    );
    assert_eq!(trace.requests.len(), 2, "tried twice");
}

#[test]
fn a_refused_connection_to_this_machine_is_not_retried_but_to_another_is() {
    // Nothing listening on 127.0.0.1 will not start listening by itself: retrying only
    // prints retry lines for seconds before failing the same way.
    let mut recipe = recipe::preset("local-smollm").expect("preset");
    recipe.policy.retries = 3;
    recipe.layers = vec![Layer::new(vec![recipe::Agent::new("smollm:m")])];
    let refused = |_: &Req| vec![(ms(1), Step::Refused("tcp connect error: Connection refused".into()))];
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, refused);
    assert_eq!(trace.requests.len(), 1, "tried once");
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { will_retry: false, .. })));
    let err = trace.outcome.answer.as_ref().expect_err("fails").to_string();
    assert!(err.ends_with("smollm:m: connection refused: tcp connect error: Connection refused"), "{err}");

    // The same refusal from a remote host (a restarting server behind a balancer) is retried.
    recipe.providers.get_mut("smollm").expect("provider").base_url = "https://llm.example.org/v1".into();
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, refused);
    assert_eq!(trace.requests.len(), 4, "tried 1 + 3 times");
}

#[test]
fn loopback_addresses_are_recognized() {
    for url in ["http://127.0.0.1:8081/v1", "http://localhost/v1", "http://[::1]:9/v1", "http://127.1.2.3:80"] {
        assert!(moa_core::http::is_loopback(url), "{url}");
    }
    for url in [
        "https://api.example.org/v1",
        "http://127.0.0.1.example.org/v1",
        "http://10.0.0.1:8081/v1",
        "http://127.0.0.example/v1",
    ] {
        assert!(!moa_core::http::is_loopback(url), "{url}");
    }
}

#[test]
fn errors_name_what_failed() {
    assert!(CallError::Timeout(30.0).retryable());
    assert!(!CallError::Status { status: 400, message: "bad".into() }.retryable());
    assert!(CallError::Status { status: 529, message: "overloaded".into() }.retryable());
}

#[test]
fn a_request_the_transport_cannot_make_is_not_retried() {
    let recipe = one_and_aggregator();
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let Some(call) = std::iter::from_fn(|| Some(run.poll())).find_map(|a| match a {
        Action::Request { call, .. } => Some(call),
        _ => None,
    }) else {
        panic!("a request")
    };
    run.handle(Input::Invalid { call, error: "invalid header value".into(), now: T0 });
    let events: Vec<Event> = std::iter::from_fn(|| match run.poll() {
        Action::Event(e) => Some(e),
        _ => None,
    })
    .collect();
    assert!(events.iter().any(|e| matches!(e, Event::CallFailed { will_retry: false, error, .. }
        if error == "the request could not be made: invalid header value")));
    assert!(run.is_done());
}

#[test]
fn cancelling_an_agent_that_waits_to_retry_ends_its_retrying_state() {
    let mut recipe = one_and_aggregator();
    recipe.layers[0].agents.push(recipe::Agent::new("p:slow"));
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate_with(
        &mut run,
        T0,
        &mut |req| match req.model.as_str() {
            "slow" => answer("slowly", Duration::from_secs(6)),
            _ => status(429, &[("retry-after", "60")], "slow down", ms(1)),
        },
        |run, now| {
            if now >= T0 + Duration::from_secs(5) {
                run.cancel(now);
                return true;
            }
            false
        },
    );
    assert_consistent(&trace.events);
    let stopped: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AgentStopped { layer, slot, reason, .. } => Some((*layer, *slot, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(stopped, [(0, 0, moa_core::engine::ErrorKind::Cancelled)], "{:#?}", trace.events);
}
