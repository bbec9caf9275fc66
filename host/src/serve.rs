//! `moa serve`: every recipe as a model behind an OpenAI-compatible chat-completions API,
//! so any OpenAI client, tool or chat UI can use MoA by changing only its base URL.

use crate::clock::Clock;
use crate::keys;
use crate::transport::Transport;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use moa_core::{Event, Message, Outcome, Recipe, Role, Run, RunError, RunOptions};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
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
}

struct App {
    recipes: BTreeMap<String, Recipe>,
    token: Option<String>,
    runs: Arc<Semaphore>,
    transport: Transport,
    next_id: AtomicU64,
    resolver: Option<Arc<crate::plugin::HostResolver>>,
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
        next_id: AtomicU64::new(1),
        resolver: config.resolver,
    });
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .layer(DefaultBodyLimit::max(config.max_body))
        .with_state(app);
    match config.www {
        Some(dir) => api.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => api,
    }
}

/// An OpenAI-shaped error response.
fn error(status: StatusCode, kind: &str, code: Option<&str>, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "message": message.into(), "type": kind, "param": null, "code": code } });
    (status, Json(body)).into_response()
}

async fn auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                "missing or wrong bearer token",
            );
        }
    }
    next.run(request).await
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

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    /// Extension: also return every layer's proposals.
    #[serde(default)]
    moa_proposals: bool,
}

fn to_message(m: ChatMessage, i: usize) -> Result<Message, String> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(format!("messages[{i}].role: {other:?} is not supported (system, developer, user, assistant)"));
        }
    };
    let content = match m.content {
        Value::String(s) => s,
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => Ok(t),
                _ => Err(format!("messages[{i}].content: only text parts are supported")),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(""),
        Value::Null => String::new(),
        _ => return Err(format!("messages[{i}].content must be a string or a list of text parts")),
    };
    Ok(Message { role, content })
}

async fn chat(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, format!("invalid request body: {e}"));
        }
    };
    let Some(recipe) = app.recipes.get(&req.model) else {
        let known: Vec<&str> = app.recipes.keys().map(String::as_str).collect();
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("model {:?} does not exist (models: {})", req.model, known.join(", ")),
        );
    };
    let mut recipe = recipe.clone();
    if let Some(t) = req.temperature {
        recipe.aggregator.temperature = Some(t);
    }
    if let Some(n) = req.max_completion_tokens.or(req.max_tokens) {
        recipe.aggregator.max_tokens = Some(n);
    }
    let messages =
        match req.messages.into_iter().enumerate().map(|(i, m)| to_message(m, i)).collect::<Result<Vec<_>, _>>() {
            Ok(m) => m,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, e),
        };
    let Ok(permit) = app.runs.clone().try_acquire_owned() else {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
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
    let mut run = match Run::with_options(&recipe, messages, clock.now(), options) {
        Ok(r) => r,
        Err(e @ RunError::MissingKey { .. }) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, e.to_string());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, e.to_string()),
    };
    let id = format!("chatcmpl-moa-{}", app.next_id.fetch_add(1, Ordering::Relaxed));
    let model = req.model.clone();
    let layers = recipe.layers.len();
    if !req.stream {
        // Dropping this future (the client went away) drops the run and aborts its calls.
        let outcome = app.transport.drive(&mut run, &clock, &CancellationToken::new(), |_| {}).await;
        drop(permit);
        return match outcome.result() {
            Ok(answer) => {
                let mut body = json!({
                    "id": id, "object": "chat.completion", "created": now_secs(), "model": model,
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
                    "usage": usage(&outcome),
                });
                if req.moa_proposals {
                    body["moa"] = json!({ "layers": outcome.layers, "decided_by": outcome.decided_by });
                }
                Json(body).into_response()
            }
            Err(e) => error(StatusCode::BAD_GATEWAY, "api_error", Some("upstream_failed"), e.to_string()),
        };
    }
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let (tx, rx) = mpsc::unbounded_channel::<String>();
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
        let send = |v: Value| tx.send(format!("data: {v}\n\n"));
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
                let _ = send(chunk(json!({}), Some("stop")));
                if include_usage {
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
            Err(RunError::Cancelled) => return,
            // An error event and no finish_reason and no [DONE]: a client must not take
            // a broken answer for a whole one.
            Err(e) => {
                let _ = send(
                    json!({ "error": { "message": e.to_string(), "type": "api_error", "code": "upstream_failed" } }),
                );
                return;
            }
        }
        let _ = tx.send("data: [DONE]\n\n".to_owned());
    });
    // The body owns the drop guard: when the client disconnects, the body is dropped,
    // the token fires, and the run cancels every upstream call.
    let body = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|s| (Ok::<_, std::convert::Infallible>(s), (rx, guard)))
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, axum::body::Body::from_stream(body)).into_response()
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
