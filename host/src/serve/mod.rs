//! `moa serve`: every recipe as a model behind an OpenAI-compatible chat-completions API,
//! so any OpenAI client, tool or chat UI can use MoA by changing only its base URL.
//!
//! The contract (what is honoured, refused and ignored) is in [`request`]; who may call
//! is in [`guard`]; the connection loop and its limits are in [`server`].

mod guard;
pub mod request;
pub mod server;

pub use server::{Limits, run};

use crate::clock::Clock;
use crate::keys;
use crate::transport::Transport;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use moa_core::{Event, Outcome, Recipe, Run, RunError, RunOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// How to serve.
pub struct Config {
    /// Recipes by model name.
    pub recipes: BTreeMap<String, Recipe>,
    /// Bearer token clients must send, if any.
    pub token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Runs at once; past this, 429 with Retry-After.
    pub max_runs: usize,
    /// The web page's folder, served at `/`.
    pub www: Option<PathBuf>,
    /// Resolves plugin strategies; built-ins only when `None`.
    pub resolver: Option<Arc<crate::plugin::HostResolver>>,
    /// The address the server listens on: requests must name it (or `localhost`) in
    /// their `Host` unless a token is set.
    pub listen: SocketAddr,
    /// Web origins allowed to call the API from a browser (with CORS headers).
    pub allow_origins: Vec<String>,
    /// Put prompts in the access log.
    pub log_prompts: bool,
    /// How often a stream sends an SSE comment while nothing else is sent.
    pub keep_alive: Duration,
}

impl Config {
    /// A configuration with the command line's defaults.
    pub fn new(recipes: BTreeMap<String, Recipe>, listen: SocketAddr) -> Config {
        Config {
            recipes,
            token: None,
            max_body: 4 << 20,
            max_runs: 16,
            www: None,
            resolver: None,
            listen,
            allow_origins: Vec::new(),
            log_prompts: false,
            keep_alive: Duration::from_secs(15),
        }
    }
}

struct App {
    recipes: BTreeMap<String, Recipe>,
    token: Option<String>,
    runs: Arc<Semaphore>,
    transport: Transport,
    ids: Ids,
    resolver: Option<Arc<crate::plugin::HostResolver>>,
    listen: SocketAddr,
    allow_origins: Vec<String>,
    log_prompts: bool,
    keep_alive: Duration,
}

impl App {
    /// Whether `host` (a `Host` header) names this server: its listening address, or a
    /// loopback name with its port.
    fn is_local_host(&self, host: &str) -> bool {
        let port = self.listen.port();
        let host = host.to_ascii_lowercase();
        let names = [
            self.listen.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        names.contains(&host) || (port == 80 && ["localhost", "127.0.0.1", "[::1]"].contains(&host.as_str()))
    }
}

/// Request ids, unique across restarts: a random per-process prefix and a counter.
struct Ids {
    prefix: u64,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Ids {
        use std::hash::{BuildHasher, Hasher};
        // std's RandomState is seeded from the OS's randomness: enough for ids.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        Ids { prefix: h.finish(), next: AtomicU64::new(1) }
    }

    fn next(&self) -> String {
        format!("chatcmpl-moa-{:016x}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// The router: `/v1/models`, `/v1/chat/completions`, and the page at `/`.
pub fn router(config: Config, transport: Transport) -> Router {
    // Each provider's max_concurrency holds across every request, whatever recipe it uses.
    let transport = transport.with_provider_limits(config.recipes.values());
    let app = Arc::new(App {
        recipes: config.recipes,
        token: config.token,
        runs: Arc::new(Semaphore::new(config.max_runs.max(1))),
        transport,
        ids: Ids::new(),
        resolver: config.resolver,
        listen: config.listen,
        allow_origins: config.allow_origins.clone(),
        log_prompts: config.log_prompts,
        keep_alive: config.keep_alive,
    });
    let mut api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/{*rest}", any(not_found))
        // The checks guard the API only; the page at / is static files.
        .route_layer(middleware::from_fn_with_state(app.clone(), guard::check))
        .layer(DefaultBodyLimit::max(config.max_body))
        .with_state(app);
    if !config.allow_origins.is_empty() {
        let origins: Vec<HeaderValue> = config.allow_origins.iter().filter_map(|o| o.parse().ok()).collect();
        api = api.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    let router = match config.www {
        Some(dir) => api.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => api.fallback(not_found),
    };
    router.layer(middleware::from_fn(openai_errors)).layer(middleware::from_fn(access_log))
}

/// An OpenAI-shaped error response.
fn error(
    status: StatusCode,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let body = json!({ "error": { "message": message.into(), "type": kind, "param": param, "code": code } });
    (status, Json(body)).into_response()
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        Some("unknown_url"),
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// Makes every error an OpenAI error: axum's and tower's own rejections (405, 413, a
/// body that is not JSON, ...) come back with OpenAI's error body, never plain text.
async fn openai_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (kind, code, message) = match status {
        StatusCode::NOT_FOUND => ("invalid_request_error", "unknown_url", "not found".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("invalid_request_error", "method_not_allowed", "this method is not allowed here".to_owned())
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "invalid_request_error",
            "request_too_large",
            "the request body is over the server's limit (--max-body)".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "invalid_request_error",
            "unsupported_media_type",
            "the body must be JSON, sent with content-type: application/json".to_owned(),
        ),
        s if s.is_client_error() => {
            ("invalid_request_error", "invalid_request", s.canonical_reason().unwrap_or("bad request").to_owned())
        }
        s => ("server_error", "server_error", s.canonical_reason().unwrap_or("server error").to_owned()),
    };
    let mut r = error(status, kind, None, Some(code), message);
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = response.headers().get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// One access-log line for every request but chat completions, which log their runs.
async fn access_log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    if !(path == "/v1/chat/completions" && response.status().is_success()) {
        tracing::info!(
            target: "moa::access",
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            wall_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
    }
    response
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let data: Vec<Value> = app
        .recipes
        .iter()
        .map(|(name, r)| json!({ "id": name, "object": "model", "created": 0, "owned_by": "moa", "description": r.description }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

fn bad_request(e: request::BadRequest) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", e.param.as_deref(), e.code, e.message)
}

/// What a client may be told about a failed run: which agents failed and the kind of
/// failure, never a provider's own words, a URL, a host, a port or a file path. The
/// full error goes to the server's log.
fn client_message(e: &RunError) -> String {
    match e {
        RunError::TooFewSuccesses { what, succeeded, needed, failures } => {
            let list: Vec<String> = failures.iter().map(|f| format!("{} ({})", f.agent, f.summary())).collect();
            format!("{what}: {succeeded} agent(s) succeeded, {needed} needed; failed: {}", list.join(", "))
        }
        RunError::AnswerBroken { delivered_chars, kind, .. } => format!(
            "the aggregator's answer broke off ({kind}) after {delivered_chars} characters had been streamed; \
             not retried, because streamed text cannot be taken back"
        ),
        RunError::Strategy(s) => {
            let name = std::path::Path::new(&s.strategy).file_name().map(|n| n.to_string_lossy().into_owned());
            format!("strategy {} failed", name.unwrap_or_default())
        }
        RunError::MissingKey { provider, .. } => format!("the server has no API key for provider {provider:?}"),
        RunError::Cancelled => "the run was cancelled".into(),
        RunError::Recipe(_) | RunError::Conversation(_) => e.to_string(),
    }
}

/// The run's accounts for the access log.
fn calls_and_ttft(o: &Outcome) -> (usize, Option<f64>) {
    let calls = o.layers.iter().flat_map(|l| &l.calls).map(|c| c.attempts as usize).sum();
    (calls, o.ttft_ms)
}

fn log_run(id: &str, model: &str, status: u16, outcome: &Outcome, stream: bool) {
    let (calls, ttft_ms) = calls_and_ttft(outcome);
    tracing::info!(
        target: "moa::access",
        id = %id,
        model = %model,
        status,
        stream,
        calls,
        tokens = outcome.usage.total(),
        wasted_tokens = outcome.wasted.total(),
        wall_ms = outcome.wall_ms,
        ttft_ms,
        "chat completion"
    );
    for l in &outcome.layers {
        for c in l.calls.iter().filter(|c| !c.errors.is_empty()) {
            tracing::warn!(target: "moa::upstream", id = %id, layer = l.layer, agent = %c.agent, ok = c.ok, errors = ?c.errors, "upstream call failed");
        }
    }
    if let Err(e) = &outcome.answer {
        tracing::warn!(target: "moa::upstream", id = %id, error = %e, "run failed");
    }
}

async fn chat(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let id = app.ids.next();
    let req = match request::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(target: "moa::access", id = %id, status = 400, param = ?e.param, error = %e.message, "chat completion refused");
            return bad_request(e);
        }
    };
    let Some(recipe) = app.recipes.get(&req.model) else {
        let known: Vec<&str> = app.recipes.keys().map(String::as_str).collect();
        tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 404, "chat completion: no such model");
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
            format!("model {:?} does not exist (models: {})", req.model, known.join(", ")),
        );
    };
    let recipe = match req.apply(recipe) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 400, param = ?e.param, "chat completion refused");
            return bad_request(e);
        }
    };
    if app.log_prompts {
        tracing::info!(target: "moa::prompts", id = %id, messages = ?req.messages, knobs = ?req.knob_names(), "prompt");
    }
    let Ok(permit) = app.runs.clone().try_acquire_owned() else {
        tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 429, "chat completion: too many runs");
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            None,
            Some("rate_limit_exceeded"),
            "too many runs in progress; retry shortly",
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let clock = Clock::new();
    // A streamed response cannot take back text it sent: an aggregator that breaks
    // after some text ends the response with an error instead of a second answer.
    let mut options = RunOptions {
        keys: keys::from_env(&recipe),
        reports_sent: true,
        irrevocable_answer: req.stream,
        ..RunOptions::default()
    };
    if let Some(r) = &app.resolver {
        options.resolver = r.as_ref();
    }
    let mut run = match Run::with_options(&recipe, req.messages.clone(), clock.now(), options) {
        Ok(r) => r,
        Err(e @ RunError::MissingKey { .. }) => {
            tracing::error!(target: "moa::access", id = %id, model = %req.model, status = 500, error = %e, "chat completion: missing key");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, None, client_message(&e));
        }
        Err(e) => {
            tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 400, error = %e, "chat completion refused");
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("messages"), None, client_message(&e));
        }
    };
    let model = req.model.clone();
    let layers = recipe.layers.len();
    if !req.stream {
        // Dropping this future (the client went away) drops the run and aborts its calls.
        let outcome = app.transport.drive(&mut run, &clock, &CancellationToken::new(), |_| {}).await;
        drop(permit);
        return match outcome.result() {
            Ok(answer) => {
                log_run(&id, &model, 200, &outcome, false);
                let finish = outcome.finish_reason.clone().unwrap_or_else(|| "stop".into());
                let mut body = json!({
                    "id": id, "object": "chat.completion", "created": now_secs(), "model": model,
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": finish }],
                    "usage": usage(&outcome),
                });
                if req.moa_proposals {
                    body["moa"] = json!({ "layers": outcome.layers, "decided_by": outcome.decided_by });
                }
                Json(body).into_response()
            }
            Err(e) => {
                log_run(&id, &model, 502, &outcome, false);
                error(StatusCode::BAD_GATEWAY, "api_error", None, Some("upstream_failed"), client_message(e))
            }
        };
    }
    let (tx, rx) = mpsc::unbounded_channel::<SseEvent>();
    let cancel = CancellationToken::new();
    let guard = cancel.clone().drop_guard();
    let transport = app.transport.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let created = now_secs();
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        };
        let send = |v: Value| tx.send(SseEvent::default().data(v.to_string()));
        let _ = send(chunk(json!({ "role": "assistant", "content": "" }), None));
        let mut streamed = false;
        let outcome = transport
            .drive(&mut run, &clock, &cancel, |e| match e {
                Event::TextDelta { at, text } if at.layer == layers => {
                    streamed = true;
                    let _ = send(chunk(json!({ "content": text }), None));
                }
                Event::Final { text, .. } if !streamed => {
                    let _ = send(chunk(json!({ "content": text }), None));
                }
                _ => {}
            })
            .await;
        match outcome.result() {
            Ok(_) => {
                log_run(&id, &model, 200, &outcome, true);
                let finish = outcome.finish_reason.clone().unwrap_or_else(|| "stop".into());
                let _ = send(chunk(json!({}), Some(&finish)));
                if req.include_usage {
                    let _ = send(
                        json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage(&outcome) }),
                    );
                }
                if req.moa_proposals {
                    let _ = send(
                        json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "moa": { "layers": outcome.layers } }),
                    );
                }
            }
            Err(RunError::Cancelled) => {
                log_run(&id, &model, 499, &outcome, true);
                return;
            }
            // An error event and no finish_reason and no [DONE]: a client must not take
            // a broken answer for a whole one.
            Err(e) => {
                log_run(&id, &model, 502, &outcome, true);
                let _ = send(
                    json!({ "error": { "message": client_message(e), "type": "api_error", "param": null, "code": "upstream_failed" } }),
                );
                return;
            }
        }
        let _ = tx.send(SseEvent::default().data("[DONE]"));
    });
    // The body owns the drop guard: when the client disconnects, the body is dropped,
    // the token fires, and the run cancels every upstream call.
    let body = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|e| (Ok::<_, std::convert::Infallible>(e), (rx, guard)))
    });
    // While the proposers work nothing else is sent: comments keep proxies from timing out.
    Sse::new(body).keep_alive(KeepAlive::new().interval(app.keep_alive)).into_response()
}

/// Usage over every attempt of every call of the run, failed ones included (OpenAI's
/// shape), with moa's own breakdown: how much went to failed or cancelled attempts, and
/// whether some of it is estimated.
fn usage(o: &Outcome) -> Value {
    json!({
        "prompt_tokens": o.usage.input_tokens,
        "completion_tokens": o.usage.output_tokens,
        "total_tokens": o.usage.total(),
        "moa_wasted_tokens": o.wasted.total(),
        "moa_estimated": o.usage.estimated,
    })
}
