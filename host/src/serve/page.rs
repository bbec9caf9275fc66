//! The web page, built into the binary (`host/build.rs`), served at `/` wherever `moa
//! serve` is started; `--www DIR` serves a folder instead.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/www.rs"));

/// The browser module's file: without it the page cannot run.
const MODULE: &str = "pkg/moa_wasm_bg.wasm";

/// The embedded file at `path` (under `www/`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}

/// Whether the browser module was built into this binary.
pub fn has_module() -> bool {
    file(MODULE).is_some()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Shown at `/` by a binary built without the browser module.
const NO_MODULE: &str = "<!doctype html><meta charset=utf-8><title>moa</title>\
<p>This <code>moa</code> was built without the browser module, so its page cannot run.\
 Build it with <code>scripts/build-wasm</code> and rebuild <code>moa</code>, or start\
 <code>moa serve --www DIR</code> with a built page. The API is at <code>/v1</code>.</p>";

/// Serves the embedded page: `/` is `index.html`; GET and HEAD only (405 otherwise, as
/// a folder served with `--www` answers).
pub async fn serve(request: Request) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = super::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            None,
            Some("method_not_allowed"),
            "this method is not allowed here",
        );
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = match request.uri().path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    if path == "index.html" && !has_module() {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            NO_MODULE,
        )
            .into_response();
    }
    match file(path) {
        Some(bytes) => {
            let kind = HeaderValue::from_static(content_type(path));
            (StatusCode::OK, [(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        None => super::not_found(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_built_in_and_typed() {
        let index = std::str::from_utf8(file("index.html").expect("index.html is built in")).expect("utf-8");
        assert!(index.contains("<title>moa"), "{index}");
        assert!(file("app.js").is_some() && file("style.css").is_some());
        assert!(FILES.iter().all(|(p, _)| !p.starts_with("screenshot")), "screenshots are not the page's");
        assert_eq!(content_type("pkg/moa_wasm_bg.wasm"), "application/wasm");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    }
}
