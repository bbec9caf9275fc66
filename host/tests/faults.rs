//! The native transport against a fault-injecting HTTP server on 127.0.0.1: each fault
//! is handled as the recipe's policy says, with a clear error when the run cannot finish.

use moa_testkit as common;

use common::{Fake, recipe};
use moa_core::{Event, Message, Outcome, Recipe, Run, RunOptions};
use moa_host::{Clock, Transport};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn drive(recipe: &Recipe, cancel: CancellationToken) -> (Outcome, Vec<Event>) {
    let clock = Clock::new();
    let mut run = Run::with_options(
        recipe,
        vec![Message::user("hi")],
        clock.now(),
        RunOptions { seed: 1, ..RunOptions::default() },
    )
    .expect("starts");
    let mut events = Vec::new();
    let outcome = Transport::new().expect("client").drive(&mut run, &clock, &cancel, |e| events.push(e.clone())).await;
    (outcome, events)
}

fn failures(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallFailed { error, will_retry, .. } => Some((error.clone(), *will_retry)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn streams_a_whole_run_and_counts_the_servers_tokens() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;tokens=5", "b;tokens=7", "c;text=x y z"], "agg;text=the final answer", "");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert_eq!(outcome.answer.as_deref().ok(), Some("the final answer"));
    assert_eq!(outcome.usage.output_tokens, 5 + 7 + 3 + 3);
    let deltas = events.iter().filter(|e| matches!(e, Event::TextDelta { .. })).count();
    assert_eq!(deltas, 5 + 7 + 3 + 3, "every piece became an event as it arrived");
    assert_eq!(fake.seen.completed.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_retried() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;fault=429;retry_after=1"], "agg", "");
    let t = Instant::now();
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert!(outcome.answer.is_ok(), "{:?}", outcome.answer.as_ref().err());
    assert!(t.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    assert_eq!(failures(&events), [("HTTP 429: rate limited".to_owned(), true)]);
    assert_eq!(fake.count("a;fault=429;retry_after=1"), 2);
}

#[tokio::test]
async fn a_500_then_success_is_retried_with_backoff() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;fault=500"], "agg", "[policy]\nbackoff_secs = 0.05");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert!(outcome.answer.is_ok());
    assert_eq!(failures(&events), [("HTTP 500: internal error".to_owned(), true)]);
}

#[tokio::test]
async fn a_connection_reset_mid_stream_is_retried() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;tokens=10;rate=200;fault=reset"], "agg", "[policy]\nbackoff_secs = 0.05");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    let f = failures(&events);
    assert_eq!(f.len(), 1);
    assert!(f[0].0.starts_with("transport: ") && f[0].1, "{f:?}");
    assert_eq!(kinds(&events), [moa_core::engine::ErrorKind::Reset]);
    assert_eq!(
        outcome.layers[0].calls[0].text, "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9",
        "the retry's whole text, not the cut one"
    );
}

#[tokio::test]
async fn malformed_sse_fails_the_agent_clearly_and_the_run_goes_on() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;fault=malformed", "b"], "agg", "");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert!(outcome.answer.is_ok());
    let f = failures(&events);
    assert!(f[0].0.starts_with("malformed response: stream chunk: ") && !f[0].1, "{f:?}");
}

#[tokio::test]
async fn a_first_byte_later_than_the_deadline_times_out() {
    let fake = Fake::start();
    let r =
        recipe(&fake.base_url, &["a;fault=slowhead;delay=5000"], "agg", "[policy]\ntimeout_secs = 0.3\nretries = 0");
    let t = Instant::now();
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert!(t.elapsed() < Duration::from_secs(3), "gave up at the deadline, not after the server's delay");
    assert_eq!(failures(&events), [("no complete answer within 0.3 s (policy.timeout_secs)".to_owned(), false)]);
    let err = outcome.answer.as_ref().expect_err("fails").to_string();
    assert!(err.contains("layer 0: 0 agent(s) succeeded, 1 needed") && err.contains("fake:a;fault=slowhead"), "{err}");
}

#[tokio::test]
async fn a_stream_that_never_ends_is_cut_and_its_connection_closed() {
    let fake = Fake::start();
    let r = recipe(&fake.base_url, &["a;fault=hang", "b"], "agg", "[policy]\nstall_timeout_secs = 0.3\nretries = 0");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert!(outcome.answer.is_ok(), "b alone is enough");
    assert_eq!(failures(&events), [("no data for 0.3 s (policy.stall_timeout_secs)".to_owned(), false)]);
    for _ in 0..500 {
        if fake.seen.open.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 0, "the hung stream was closed");
    assert_eq!(fake.seen.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_provider_that_is_down_fails_with_the_connection_error() {
    let dead = common::refusing_port();
    let port = dead.port;
    let r = recipe(&format!("http://127.0.0.1:{port}/v1"), &["a"], "agg", "[policy]\nretries = 1\nbackoff_secs = 0.01");
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    // On this machine's own address nothing will start listening by itself: one attempt,
    // not retried (the transport tells a refused connection by the OS's error kind).
    assert_eq!(failures(&events), [(failures(&events)[0].0.clone(), false)]);
    let err = outcome.answer.as_ref().expect_err("fails").to_string();
    assert!(err.contains("connection refused: ") && err.contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn cancelling_the_run_closes_every_connection() {
    let fake = Fake::start();
    let r =
        recipe(&fake.base_url, &["a;tokens=100;rate=10", "b;tokens=100;rate=10", "c;tokens=100;rate=10"], "agg", "");
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let (outcome, _) = drive(&r, cancel).await;
    assert_eq!(outcome.answer.as_ref().err(), Some(&moa_core::RunError::Cancelled));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 0);
    assert_eq!(fake.seen.dropped.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_finished_stream_on_a_connection_left_open_completes_the_call_and_is_closed() {
    let fake = Fake::start();
    let r =
        recipe(&fake.base_url, &["a;text=done;fault=keepopen"], "agg;text=final", "[policy]\nstall_timeout_secs = 5");
    let t = Instant::now();
    let (outcome, events) = drive(&r, CancellationToken::new()).await;
    assert_eq!(outcome.answer.as_deref().ok(), Some("final"));
    assert!(failures(&events).is_empty(), "{:?}", failures(&events));
    assert!(t.elapsed() < Duration::from_secs(2), "no wait for the stall timeout: {:?}", t.elapsed());
    // The run is done and its connections are closed, the one left open included.
    for _ in 0..100 {
        if fake.seen.open.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_request_the_http_library_cannot_build_is_not_retried() {
    let fake = Fake::start();
    let r = Recipe::from_toml(&format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"K\"\n[[layers]]\nagents = [\"fake:a\"]\n[aggregator]\nmodel = \"fake:agg\"\n",
        fake.base_url
    ))
    .expect("valid");
    let clock = Clock::new();
    let keys = moa_core::named::Named::from([("fake".to_owned(), "a key\nwith a newline".to_owned())]);
    let mut run =
        Run::with_options(&r, vec![Message::user("hi")], clock.now(), RunOptions { keys, ..RunOptions::default() })
            .expect("starts");
    let mut events = Vec::new();
    let outcome = Transport::new()
        .expect("client")
        .drive(&mut run, &clock, &CancellationToken::new(), |e| events.push(e.clone()))
        .await;
    assert!(outcome.answer.is_err());
    let f = failures(&events);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].0.starts_with("the request could not be made"), "{f:?}");
    assert!(!f[0].0.contains("newline"), "the key's text is not echoed: {f:?}");
    assert!(!f[0].1, "not retried");
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), 0);
}

/// The kinds of the failures a run's calls had, as the events carry them.
fn kinds(events: &[Event]) -> Vec<moa_core::engine::ErrorKind> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallFailed { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

fn one_call(base_url: &str) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"providers": {{"p": {{"kind": "openai", "base_url": "{base_url}"}}}}, "layers": [],
            "aggregator": "p:m", "policy": {{"retries": 0, "timeout_secs": 20}}}}"#
    ))
    .expect("valid")
}

#[tokio::test]
async fn each_transport_failure_carries_its_kind_from_the_http_librarys_error() {
    use moa_core::engine::ErrorKind;
    // Refused: a port nothing listens on.
    let dead = common::refusing_port();
    let port = dead.port;
    let (_, events) = drive(&one_call(&format!("http://127.0.0.1:{port}/v1")), CancellationToken::new()).await;
    assert_eq!(kinds(&events), [ErrorKind::Refused]);
    // A name that cannot resolve (.invalid never does, RFC 6761).
    let (_, events) = drive(&one_call("http://moa-test.invalid/v1"), CancellationToken::new()).await;
    assert_eq!(kinds(&events), [ErrorKind::Dns]);
    // TLS to a server that speaks plain HTTP.
    let fake = Fake::start();
    let tls_url = fake.base_url.replacen("http://", "https://", 1);
    let (_, events) = drive(&one_call(&tls_url), CancellationToken::new()).await;
    assert_eq!(kinds(&events), [ErrorKind::Tls]);
    // A server that accepts and closes without a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let (_, events) = drive(&one_call(&format!("http://{addr}/v1")), CancellationToken::new()).await;
    assert_eq!(kinds(&events), [ErrorKind::Reset]);
}
