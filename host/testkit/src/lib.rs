//! A fault- and latency-injecting OpenAI-compatible server for the tests and benchmarks,
//! on 127.0.0.1. It is a fake, on purpose: it injects what real providers do only
//! sometimes (429s, resets, stalls, garbage) on demand. Behaviour comes from the
//! request's `model`, as `key=value` pairs joined by `;`:
//!
//! - `text=...` the answer (default "hello from fake"); `tokens=N` sends N pieces `tN `
//!   instead; `ttft=MS` delay before the head and first piece; `rate=TPS` pieces per second.
//!   `capped=1` makes `tokens=N` one answer of N pieces as a real model writes it: the
//!   request's `max_tokens` stops it early (finish `length`), and an answer carried forward
//!   (a staircase's "Your response so far:") counts as that many pieces already written.
//! - `fault=429|500|reset` for the first `times=N` requests (default 1) of that model:
//!   429 with `Retry-After: retry_after` (default 1), a 500, or a connection reset after half
//!   the pieces. `fault=malformed` always sends a broken chunk; `fault=hang` sends the head
//!   and one piece and never ends; `fault=slowhead;delay=MS` delays the head;
//!   `fault=keepopen` sends the whole answer and `[DONE]`, then keeps the connection open
//!   forever, as some proxies do; `fault=echo;status=N` answers N with the request's
//!   `Authorization` in its error (400: the whole header block); `fault=echostream` sends
//!   it in a mid-stream error event; `fault=redirect;to=URL` answers 307 to URL;
//!   `finish=REASON` ends with that finish reason (default
//!   `stop`).
//! - `acc=P`: a model of known accuracy for a question whose last user message holds
//!   `gold=N`: it answers "Answer: N" with probability P, else a wrong number near N. The
//!   draw is a hash of the model, the question and how many times this model was asked it,
//!   so samples differ and a rerun of the same requests answers the same.

pub mod batch_api;
pub mod needs;

/// A port on 127.0.0.1 that refuses connections for as long as this lives: a socket bound
/// to it and never listening, so (unlike a port bound and released) nothing else can take
/// the port and answer meanwhile.
pub struct RefusingPort {
    _socket: socket2::Socket,
    /// The port.
    pub port: u16,
}

/// A port that refuses connections while the result lives.
pub fn refusing_port() -> RefusingPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
    socket.bind(&any.into()).expect("bind");
    let port = socket.local_addr().expect("addr").as_socket().expect("an IP address").port();
    RefusingPort { _socket: socket, port }
}
pub mod plugins;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the server received a request, sent its first piece and ended its stream.
#[derive(Clone, Debug)]
pub struct Span {
    /// The request's model string.
    pub model: String,
    /// Request received.
    pub received: Instant,
    /// First piece sent.
    pub first: Option<Instant>,
    /// Last byte sent.
    pub end: Option<Instant>,
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Requests per model string.
    pub counts: Mutex<HashMap<String, u32>>,
    /// Every request's Authorization header.
    pub auth: Mutex<Vec<Option<String>>>,
    /// Every request body.
    pub bodies: Mutex<Vec<serde_json::Value>>,
    /// Response streams open now.
    pub open: AtomicUsize,
    /// The most response streams open at once.
    pub max_open: AtomicUsize,
    /// Streams the client dropped before their end.
    pub dropped: AtomicUsize,
    /// Streams sent to the end.
    pub completed: AtomicUsize,
    /// Server-side timings of every streamed response, in arrival order.
    pub spans: Mutex<Vec<Span>>,
    /// Keep no per-request records (bodies, headers, spans): for benchmarks of hundreds of
    /// thousands of requests, whose records would be most of the memory measured.
    pub quiet: std::sync::atomic::AtomicBool,
    /// Microseconds from receiving a request to ending its stream, summed over the
    /// streams sent to the end (kept in quiet mode too: a mean needs no records).
    pub served_us: std::sync::atomic::AtomicU64,
    /// `acc=` models: how often each model was asked each question.
    pub asked: Mutex<HashMap<(String, String), u32>>,
}

/// A running fake server; stops when dropped.
pub struct Fake {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    /// What it saw.
    pub seen: Arc<Seen>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Fake {
    /// Starts a server on an ephemeral 127.0.0.1 port, on its own runtime thread.
    pub fn start() -> Fake {
        let seen = Arc::new(Seen::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let state = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
                ready_tx.send(listener.local_addr().expect("addr")).expect("ready");
                // As real servers (and `moa serve`) do: without TCP_NODELAY, each small
                // SSE write waits on the client's delayed ACK (tens of ms).
                let listener = axum::serve::ListenerExt::tap_io(listener, |s: &mut tokio::net::TcpStream| {
                    let _ = s.set_nodelay(true);
                });
                let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = ready_rx.recv().expect("server started");
        Fake { base_url: format!("http://{addr}/v1"), seen, stop: Some(stop), thread: Some(thread) }
    }

    /// Requests seen for `model`.
    pub fn count(&self, model: &str) -> u32 {
        self.seen.counts.lock().expect("lock").get(model).copied().unwrap_or(0)
    }
}

fn params(model: &str) -> HashMap<String, String> {
    model
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The rest of an answer of `n` pieces (`t0 t1 ...`): after the pieces a carried-forward
/// answer already holds, at most the request's `max_tokens`.
fn capped_pieces(n: usize, body: &serde_json::Value) -> Vec<String> {
    let system = body["messages"][0]["content"].as_str().unwrap_or("");
    let written =
        system.split_once("Your response so far:\n").map_or(0, |(_, so_far)| so_far.split_whitespace().count());
    let max = body["max_tokens"].as_u64().map_or(usize::MAX, |m| m as usize);
    (written..n).take(max).map(|i| format!("t{i} ")).collect()
}

fn num(p: &HashMap<String, String>, k: &str, default: f64) -> f64 {
    p.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Counts a live stream; notes whether it ended or was dropped.
struct Guard {
    seen: Arc<Seen>,
    done: bool,
    span: usize,
    received: Instant,
}

impl Guard {
    fn mark(&self, first: bool) {
        let now = Instant::now();
        if let Some(s) = self.seen.spans.lock().expect("lock").get_mut(self.span) {
            if first {
                s.first.get_or_insert(now);
            } else {
                s.end = Some(now);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.seen.open.fetch_sub(1, Ordering::SeqCst);
        if self.done {
            let us = self.received.elapsed().as_micros() as u64;
            self.seen.served_us.fetch_add(us, Ordering::Relaxed);
        }
        let counter = if self.done { &self.seen.completed } else { &self.seen.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn chunk(piece: &str) -> Bytes {
    let v = serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
    Bytes::from(format!("data: {v}\n\n"))
}

async fn chat(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("{{\"error\":{{\"message\":\"bad json: {e}\"}}}}"))
                .into_response();
        }
    };
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let n = {
        let mut counts = seen.counts.lock().expect("lock");
        let c = counts.entry(model.clone()).or_default();
        *c += 1;
        *c
    };
    if !seen.quiet.load(Ordering::Relaxed) {
        seen.auth
            .lock()
            .expect("lock")
            .push(headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
        seen.bodies.lock().expect("lock").push(body.clone());
    }
    let p = params(&model);
    let fault = p.get("fault").map(String::as_str).unwrap_or("");
    let faulty = n as f64 <= num(&p, "times", 1.0);
    let ttft = Duration::from_millis(num(&p, "ttft", 0.0) as u64);
    match fault {
        "429" if faulty => {
            tokio::time::sleep(ttft).await;
            let retry = num(&p, "retry_after", 1.0).to_string();
            let mut r =
                (StatusCode::TOO_MANY_REQUESTS, r#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#)
                    .into_response();
            r.headers_mut().insert("retry-after", retry.parse().expect("header"));
            return r;
        }
        // A provider that echoes the request's credentials back in its error.
        "echo" if faulty => {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let code = StatusCode::from_u16(num(&p, "status", 401.0) as u16).expect("status");
            let body = if code == StatusCode::BAD_REQUEST {
                // The whole request header block, as some debugging proxies answer.
                headers.iter().map(|(k, v)| format!("{k}: {}\r\n", v.to_str().unwrap_or(""))).collect::<String>()
            } else {
                format!(
                    r#"{{"error":{{"message":"Incorrect API key provided: {auth} ({})"}}}}"#,
                    &auth[auth.len().min(7)..auth.len().min(21)]
                )
            };
            let mut r = (code, body).into_response();
            r.headers_mut().insert("retry-after", "0".parse().expect("header"));
            return r;
        }
        "echostream" if faulty => {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let ev =
                serde_json::json!({"error": {"message": format!("overloaded for {auth}"), "type": "server_error"}});
            let mut r = Response::new(Body::from(format!("data: {ev}\n\n")));
            r.headers_mut().insert("content-type", "text/event-stream".parse().expect("header"));
            return r;
        }
        "redirect" => {
            let to = p.get("to").cloned().unwrap_or_default();
            let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
            r.headers_mut().insert("location", to.parse().expect("header"));
            return r;
        }
        "500" if faulty => {
            return (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":{"message":"internal error"}}"#).into_response();
        }
        "slowhead" => tokio::time::sleep(Duration::from_millis(num(&p, "delay", 1000.0) as u64)).await,
        _ => {}
    }
    let accuracy_answer = p.get("acc").map(|_| {
        let question = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
            .and_then(|x| x["content"].as_str())
            .unwrap_or("")
            .to_owned();
        let gold: i64 = question
            .split("gold=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let k = {
            let mut asked = seen.asked.lock().expect("lock");
            let c = asked.entry((model.clone(), question.clone())).or_default();
            *c += 1;
            *c
        };
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(&model, &question, k), &mut h);
        let draw = std::hash::Hasher::finish(&h);
        let right = ((draw % 10_000) as f64) < num(&p, "acc", 0.0) * 10_000.0;
        let n = if right { gold } else { gold + 1 + ((draw >> 20) % 3) as i64 };
        format!("Answer: {n}")
    });
    // A model that calls tools (`tool=NAME;args=JSON`): with tools offered it calls NAME,
    // its arguments in two pieces; once the conversation ends with a tool's result it
    // answers with that result. `texts=A|B|...`: the nth request answers the nth text
    // (the last repeats), for answers that are refused and then right.
    if let Some(name) = p.get("tool") {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let last = messages.last().cloned().unwrap_or_default();
        if body.get("tools").is_some() && last["role"] != "tool" {
            let args = p.get("args").cloned().unwrap_or_else(|| "{}".into());
            return tool_call_response(name, &args, n);
        }
    }
    let texts: Option<String> = p.get("texts").map(|t| {
        let options: Vec<&str> = t.split('|').collect();
        options[(n as usize - 1).min(options.len() - 1)].to_owned()
    });
    let tool_result = p.get("tool").and_then(|_| {
        let last = body["messages"].as_array().and_then(|m| m.last().cloned()).unwrap_or_default();
        (last["role"] == "tool").then(|| format!("The tool said: {}", last["content"].as_str().unwrap_or("")))
    });
    let pieces: Vec<String> = match p.get("tokens") {
        _ if accuracy_answer.is_some() => vec![accuracy_answer.clone().unwrap_or_default()],
        _ if tool_result.is_some() => vec![tool_result.clone().unwrap_or_default()],
        _ if texts.is_some() => vec![texts.clone().unwrap_or_default()],
        Some(_) if p.contains_key("capped") => capped_pieces(num(&p, "tokens", 1.0) as usize, &body),
        Some(_) => (0..num(&p, "tokens", 1.0) as usize).map(|i| format!("t{i} ")).collect(),
        None => {
            let text = p.get("text").cloned().unwrap_or_else(|| "hello from fake".into());
            let words: Vec<&str> = text.split(' ').collect();
            words
                .iter()
                .enumerate()
                .map(|(i, w)| if i + 1 < words.len() { format!("{w} ") } else { (*w).to_owned() })
                .collect()
        }
    };
    let gap = match num(&p, "rate", 0.0) {
        r if r > 0.0 => Duration::from_secs_f64(1.0 / r),
        _ => Duration::ZERO,
    };
    let prompt_tokens = body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().map(|x| x["content"].as_str().unwrap_or("").len() / 4).sum::<usize>());
    let total = pieces.len();
    let reset_at = if fault == "reset" && faulty { Some(total / 2) } else { None };
    let now_open = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_open.fetch_max(now_open, Ordering::SeqCst);
    let span = if seen.quiet.load(Ordering::Relaxed) {
        usize::MAX
    } else {
        let mut spans = seen.spans.lock().expect("lock");
        spans.push(Span { model: model.clone(), received, first: None, end: None });
        spans.len() - 1
    };
    let guard = Guard { seen: seen.clone(), done: false, span, received };
    let fault = fault.to_owned();
    let cut = p.contains_key("capped") && body["max_tokens"].as_u64().is_some_and(|m| m as usize == pieces.len());
    let finish = p.get("finish").cloned().unwrap_or_else(|| if cut { "length" } else { "stop" }.into());
    // state: (next piece index, guard); yields one SSE chunk per step.
    let stream = futures_util::stream::unfold((0usize, guard), move |(i, mut guard)| {
        let pieces = pieces.clone();
        let fault = fault.clone();
        let finish = finish.clone();
        async move {
            if i == 0 {
                tokio::time::sleep(ttft).await;
            } else if i <= total {
                tokio::time::sleep(gap).await;
            }
            if reset_at == Some(i) {
                return Some((Err(std::io::Error::other("injected reset")), (usize::MAX, guard)));
            }
            if i > total && fault == "keepopen" {
                std::future::pending::<()>().await;
            }
            if i == usize::MAX || i > total {
                return None;
            }
            if fault == "malformed" && i == 0 {
                return Some((Ok(Bytes::from_static(b"data: {\"choices\": [nope\n\n")), (i + 1, guard)));
            }
            if fault == "hang" && i == 1 {
                std::future::pending::<()>().await;
            }
            if i == total {
                guard.done = true;
                guard.mark(false);
                let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total, "total_tokens": prompt_tokens + total}});
                let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
                return Some((
                    Ok(Bytes::from(format!("data: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n"))),
                    (i + 1, guard),
                ));
            }
            if i == 0 {
                guard.mark(true);
            }
            Some((Ok(chunk(&pieces[i])), (i + 1, guard)))
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert("content-type", "text/event-stream".parse().expect("header"));
    r
}

/// A streamed answer that calls `name` with `args` (in two pieces), as OpenAI streams it.
fn tool_call_response(name: &str, args: &str, n: u32) -> Response {
    let cut = args.char_indices().nth(args.chars().count() / 2).map_or(0, |(i, _)| i);
    let (a, b) = args.split_at(cut);
    let first = serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
        {"index": 0, "id": format!("call_fake_{n}"), "type": "function", "function": {"name": name, "arguments": a}}]}}]});
    let second = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}}]});
    let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}});
    let body = format!("data: {first}\n\ndata: {second}\n\ndata: {fin}\n\ndata: [DONE]\n\n");
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert("content-type", "text/event-stream".parse().expect("header"));
    r
}

/// A recipe with one provider `fake` at `base_url`, proposers `models`, and `aggregator`.
pub fn recipe(base_url: &str, models: &[&str], aggregator: &str, extra: &str) -> moa_core::Recipe {
    let agents: Vec<String> = models.iter().map(|m| format!("\"fake:{m}\"")).collect();
    let toml = format!(
        "name = \"fake\"\n{extra}\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\n[[layers]]\nagents = [{}]\n\n[aggregator]\nmodel = \"fake:{aggregator}\"\n",
        agents.join(", ")
    );
    moa_core::Recipe::from_toml(&toml).unwrap_or_else(|e| panic!("test recipe: {e}\n{toml}"))
}
