//! Who may use the API: the checks every `/v1` request passes before anything runs.
//!
//! The server listens on the user's machine, where every web page they open can send it
//! requests. So: a browser request from another origin is refused unless that origin was
//! allowed (`--allow-origin`); without a token, a `Host` other than the listening address
//! or `localhost` is refused (DNS rebinding: a page whose own name resolves to 127.0.0.1);
//! a body that is not JSON is refused (a page can POST `text/plain` without a preflight).

use super::{App, error};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Largest request header block accepted, in bytes (431 past it).
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// The checks, in the order a refusal is most useful to the client.
pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Err(r) = allowed(&app, request.method(), request.headers()) {
        return r;
    }
    next.run(request).await
}

// The refusal is the response itself, made once per refused request: boxing buys nothing.
#[allow(clippy::result_large_err)]
fn allowed(app: &App, method: &Method, headers: &HeaderMap) -> Result<(), Response> {
    let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        return Err(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            None,
            None,
            &format!("the request's headers are {size} bytes; at most {MAX_HEADER_BYTES}"),
        ));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if app.token.is_none() && !app.is_local_host(host) {
        return Err(forbidden(format!(
            "Host {host:?} is not this server's address; without --token only localhost names are served"
        )));
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let site = headers.get("sec-fetch-site").and_then(|s| s.to_str().ok());
    let same_origin = origin.is_some_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")));
    let allowed_origin = origin.is_some_and(|o| app.allow_origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
    let cross = match origin {
        Some(_) => !(same_origin || allowed_origin),
        None => matches!(site, Some("cross-site" | "same-site")),
    };
    if cross {
        return Err(forbidden(format!(
            "requests from web pages on other origins ({}) are refused; start moa serve with --allow-origin ORIGIN to allow one",
            origin.unwrap_or("unknown")
        )));
    }
    if let Some(token) = &app.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(char::is_whitespace))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        // Constant time: how long a wrong guess takes says nothing about the token.
        let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())));
        if !ok {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
                "missing or wrong bearer token",
            ));
        }
    }
    if method == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                None,
                Some("unsupported_media_type"),
                "the body must be JSON, sent with content-type: application/json",
            ));
        }
    }
    Ok(())
}

fn forbidden(message: String) -> Response {
    error(StatusCode::FORBIDDEN, "invalid_request_error", None, Some("forbidden"), &message)
}
