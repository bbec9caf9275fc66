//! `moa serve`: every recipe as a model behind an OpenAI-compatible chat-completions API,
//! so any OpenAI client, tool or chat UI can use MoA by changing only its base URL.
//!
//! The contract (what is honoured, refused and ignored) is in [`request`]; who may call
//! is in [`guard`]; the connection loop and its limits are in [`server`].

mod guard;
pub mod openai;
pub mod page;
pub mod request;
pub mod server;

pub use server::{Limits, run};

use crate::clock::Clock;
use crate::keys;
use crate::transport::Transport;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use moa_core::{Event, Outcome, Recipe, Run, RunError, RunOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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
    /// A folder to serve at `/` instead of the page built into the binary.
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
    /// How long a request's body may take to arrive once its headers are in.
    pub body_timeout: Duration,
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
            body_timeout: Duration::from_secs(30),
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
    max_body: usize,
    body_timeout: Duration,
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
        max_body: config.max_body,
        body_timeout: config.body_timeout,
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
        None => api.fallback(page::serve),
    };
    router.layer(middleware::from_fn(openai_errors)).layer(middleware::from_fn(access_log))
}

/// A JSON response.
fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    let mut r = (status, openai::to_json(body)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An OpenAI-shaped error response.
fn error(status: StatusCode, kind: &str, param: Option<&str>, code: Option<&str>, message: &str) -> Response {
    json_response(status, &openai::ErrorBody { error: openai::ErrorDetail { message, kind, param, code } })
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    error(StatusCode::NOT_FOUND, "invalid_request_error", None, Some("unknown_url"), &message)
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
    let mut r = error(status, kind, None, Some(code), &message);
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

async fn models(State(app): State<Arc<App>>) -> Response {
    let data = app
        .recipes
        .iter()
        .map(|(id, r)| openai::Model { id, object: "model", created: 0, owned_by: "moa", description: &r.description })
        .collect();
    json_response(StatusCode::OK, &openai::ModelList { object: "list", data })
}

fn bad_request(e: request::BadRequest) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", e.param.as_deref(), e.code, &e.message)
}

/// What a client may be told about a failed run: which agents failed and the kind of
/// failure, never a provider's own words, a URL, a host, a port or a file path. The
/// full error goes to the server's log.
pub fn client_message(e: &RunError) -> String {
    match e {
        RunError::TooFewSuccesses { what, succeeded, needed, failures } => {
            // A refused answer says why in the engine's words (what the model wrote is the
            // client's own answer; keys were redacted from it).
            let why = |f: &moa_core::engine::Failure| match f.kind {
                moa_core::engine::ErrorKind::Rejected => f.error.clone(),
                _ => f.summary(),
            };
            let list: Vec<String> = failures.iter().map(|f| format!("{} ({})", f.agent, why(f))).collect();
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
        // The engine's own words (a refused answer quotes the model's, which the client
        // would have read anyway; keys were redacted from it).
        RunError::Recipe(_) | RunError::Conversation(_) | RunError::Tools { .. } | RunError::Rejected { .. } => {
            e.to_string()
        }
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

async fn chat(State(app): State<Arc<App>>, request: Request) -> Response {
    let body = match read_body(&app, request).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let id = app.ids.next();
    match prepare(&app, id, &body) {
        Err(refused) => refused,
        Ok(p) if p.req.stream => stream(&app, p),
        Ok(p) => whole(&app, p).await,
    }
}

/// The request's body, whole: at most `max_body` bytes (413 past it), within
/// `body_timeout` of its headers (408 past it, and the connection closed: a client that
/// sends a byte a second does not hold it).
async fn read_body(app: &App, request: Request) -> Result<axum::body::Bytes, Response> {
    let read = axum::body::to_bytes(request.into_body(), app.max_body);
    match tokio::time::timeout(app.body_timeout, read).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(match over {
                true => error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    None,
                    Some("request_too_large"),
                    "the request body is over the server's limit (--max-body)",
                ),
                false => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    None,
                    Some("invalid_body"),
                    "the request body could not be read",
                ),
            })
        }
        Err(_) => {
            let secs = app.body_timeout.as_secs_f64();
            let message = format!("the request body did not arrive within {secs} s (--body-timeout-secs)");
            let mut r =
                error(StatusCode::REQUEST_TIMEOUT, "invalid_request_error", None, Some("request_timeout"), &message);
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// A request that will run: its id, what it asked, the run, and its place among the runs.
struct Prepared {
    id: String,
    req: request::ChatRequest,
    run: Run,
    clock: Clock,
    permit: OwnedSemaphorePermit,
    /// The recipe's proposer layers: the aggregator's text is the next layer's.
    layers: usize,
}

/// Reads and checks a request and starts its run; the error response when it cannot run.
// The error is the response itself, returned once to the handler: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn prepare(app: &App, id: String, body: &[u8]) -> Result<Prepared, Response> {
    let req = request::parse(body).map_err(|e| {
        tracing::info!(target: "moa::access", id = %id, status = 400, param = ?e.param, error = %e.message, "chat completion refused");
        bad_request(e)
    })?;
    let Some(recipe) = app.recipes.get(&req.model) else {
        let known: Vec<&str> = app.recipes.keys().map(String::as_str).collect();
        tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 404, "chat completion: no such model");
        let message = format!("model {:?} does not exist (models: {})", req.model, known.join(", "));
        return Err(error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
            &message,
        ));
    };
    let recipe = req.apply(recipe).map_err(|e| {
        tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 400, param = ?e.param, "chat completion refused");
        bad_request(e)
    })?;
    if app.log_prompts {
        tracing::info!(target: "moa::prompts", id = %id, messages = ?req.messages, knobs = ?req.knob_names(), "prompt");
    }
    let Ok(permit) = app.runs.clone().try_acquire_owned() else {
        tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 429, "chat completion: too many runs");
        let message = "too many runs in progress; retry shortly";
        let mut r =
            error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", None, Some("rate_limit_exceeded"), message);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(r);
    };
    let clock = Clock::new();
    // A streamed response cannot take back text it sent: an aggregator that breaks
    // after some text ends the response with an error instead of a second answer.
    let mut options = RunOptions {
        keys: keys::from_env(&recipe).into_iter().collect(),
        reports_sent: true,
        irrevocable_answer: req.stream,
        tools: req.tools.clone(),
        response_format: req.response_format.clone(),
        ..RunOptions::default()
    };
    if let Some(r) = &app.resolver {
        options.resolver = r.as_ref();
    }
    let run = Run::with_options(&recipe, req.messages.clone(), clock.now(), options).map_err(|e| match &e {
        RunError::MissingKey { .. } => {
            tracing::error!(target: "moa::access", id = %id, model = %req.model, status = 500, error = %e, "chat completion: missing key");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, None, &client_message(&e))
        }
        _ => {
            tracing::info!(target: "moa::access", id = %id, model = %req.model, status = 400, error = %e, "chat completion refused");
            let param = match &e {
                RunError::Tools { field, .. } => field.as_str(),
                _ => "messages",
            };
            error(StatusCode::BAD_REQUEST, "invalid_request_error", Some(param), None, &client_message(&e))
        }
    })?;
    Ok(Prepared { id, layers: recipe.layers.len(), req, run, clock, permit })
}

/// Runs a request and answers it whole.
async fn whole(app: &App, mut p: Prepared) -> Response {
    // Dropping this future (the client went away) drops the run and aborts its calls.
    let outcome = app.transport.drive(&mut p.run, &p.clock, &CancellationToken::new(), |_| {}).await;
    drop(p.permit);
    let head = openai::Head { id: &p.id, created: now_secs(), model: &p.req.model };
    match outcome.result() {
        Ok(answer) => {
            log_run(&p.id, &p.req.model, 200, &outcome, false);
            let body = openai::ChatCompletion::new(&head, answer, &outcome, p.req.moa_proposals);
            json_response(StatusCode::OK, &body)
        }
        Err(e) => {
            log_run(&p.id, &p.req.model, 502, &outcome, false);
            error(StatusCode::BAD_GATEWAY, "api_error", None, Some("upstream_failed"), &client_message(e))
        }
    }
}

/// Runs a request and streams its answer as server-sent events.
fn stream(app: &App, p: Prepared) -> Response {
    let (tx, rx) = mpsc::unbounded_channel::<SseEvent>();
    let cancel = CancellationToken::new();
    let guard = cancel.clone().drop_guard();
    tokio::spawn(stream_run(app.transport.clone(), p, tx, cancel));
    // The body owns the drop guard: when the client disconnects, the body is dropped,
    // the token fires, and the run cancels every upstream call.
    let body = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|e| (Ok::<_, std::convert::Infallible>(e), (rx, guard)))
    });
    // While the proposers work nothing else is sent: comments keep proxies from timing out.
    Sse::new(body).keep_alive(KeepAlive::new().interval(app.keep_alive)).into_response()
}

/// The stream's run: the role chunk, the aggregator's text as it comes, then the finish,
/// usage and proposals chunks and `[DONE]`; or an error event and no `[DONE]`, so a client
/// cannot take a broken answer for a whole one.
async fn stream_run(
    transport: Transport,
    mut p: Prepared,
    tx: mpsc::UnboundedSender<SseEvent>,
    cancel: CancellationToken,
) {
    let _permit = p.permit;
    let head = openai::Head { id: &p.id, created: now_secs(), model: &p.req.model };
    let send = |json: String| tx.send(SseEvent::default().data(json));
    let _ = send(openai::to_json(&openai::Chunk::role(&head)));
    let mut streamed = false;
    let layers = p.layers;
    let outcome = transport
        .drive(&mut p.run, &p.clock, &cancel, |e| match e {
            Event::TextDelta { at, text } if at.layer == layers => {
                streamed = true;
                let _ = send(openai::to_json(&openai::Chunk::text(&head, text)));
            }
            Event::Final { text, .. } if !streamed && !text.is_empty() => {
                let _ = send(openai::to_json(&openai::Chunk::text(&head, text)));
            }
            _ => {}
        })
        .await;
    match outcome.result() {
        Ok(_) => {
            log_run(&p.id, &p.req.model, 200, &outcome, true);
            if !outcome.tool_calls.is_empty() {
                let _ = send(openai::to_json(&openai::Chunk::tool_calls(&head, &outcome.tool_calls)));
            }
            let finish = outcome.finish_reason.as_deref().unwrap_or("stop");
            let _ = send(openai::to_json(&openai::Chunk::finish(&head, finish)));
            if p.req.include_usage {
                let _ = send(openai::to_json(&openai::Chunk::usage(&head, &outcome)));
            }
            if p.req.moa_proposals {
                let _ = send(openai::to_json(&openai::Chunk::proposals(&head, &outcome.layers)));
            }
            let _ = tx.send(SseEvent::default().data("[DONE]"));
        }
        Err(RunError::Cancelled) => log_run(&p.id, &p.req.model, 499, &outcome, true),
        Err(e) => {
            log_run(&p.id, &p.req.model, 502, &outcome, true);
            let message = client_message(e);
            let detail = openai::ErrorDetail {
                message: &message,
                kind: "api_error",
                param: None,
                code: Some("upstream_failed"),
            };
            let _ = send(openai::to_json(&openai::ErrorBody { error: detail }));
        }
    }
}
