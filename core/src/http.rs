//! The HTTP requests the engine asks a transport to make, and the header rules it applies
//! to responses.

use crate::time::Time;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// A request for the transport to send as it is. The body is JSON; the response is read
/// as a stream and fed back with [`crate::Input::Body`].
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Always `POST` today; kept so transports need not assume it.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Header names in lower case, with values. May include a secret key.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

/// Headers whose values are secrets and never printed.
const SECRET_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

impl fmt::Debug for HttpRequest {
    /// Prints the request with key headers redacted, so logging one cannot leak a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if SECRET_HEADERS.contains(&k.as_str()) { "<redacted>" } else { v.as_str() };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// The value of header `name` (case-insensitive), if present.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// How long a response's `Retry-After` asks us to wait, in seconds or as an HTTP date.
///
/// A date is measured against the response's own `Date` header when it has one, so a
/// skewed local clock does not matter; otherwise against `now`. A date in the past
/// means "now". Unparseable values are ignored, as RFC 9110 allows.
pub fn retry_after(headers: &[(String, String)], now: Time) -> Option<Duration> {
    let value = header(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        // Not standard, but some APIs send fractional seconds; honour them if sane.
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let reference = header(headers, "date")
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_micros(now.as_micros()));
    Some(at.duration_since(reference).unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth retrying: rate limits, timeouts and server errors.
pub fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429) || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(retry_after(&h(&[("Retry-After", "7")]), Time::EPOCH), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&h(&[("retry-after", "0.5")]), Time::EPOCH), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(&h(&[("retry-after", "soon")]), Time::EPOCH), None);
        assert_eq!(retry_after(&h(&[("retry-after", "-3")]), Time::EPOCH), None);
        assert_eq!(retry_after(&h(&[]), Time::EPOCH), None);
    }

    #[test]
    fn retry_after_http_date_against_date_header_then_now() {
        let hs = h(&[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Date", "Sun, 06 Nov 1994 08:49:30 GMT")]);
        assert_eq!(retry_after(&hs, Time::EPOCH), Some(Duration::from_secs(7)));
        // 784111777 is 1994-11-06T08:49:37Z.
        let now = Time::from_millis(784_111_777_000 - 12_000);
        let hs = h(&[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(retry_after(&hs, now), Some(Duration::from_secs(12)));
        // The obsolete RFC 850 and asctime forms are accepted too.
        let hs = h(&[("Retry-After", "Sunday, 06-Nov-94 08:49:37 GMT")]);
        assert_eq!(retry_after(&hs, now), Some(Duration::from_secs(12)));
        let hs = h(&[("Retry-After", "Sun Nov  6 08:49:37 1994")]);
        assert_eq!(retry_after(&hs, now), Some(Duration::from_secs(12)));
        // A date in the past means retry now.
        let later = Time::from_millis(784_111_777_000 + 5_000);
        assert_eq!(retry_after(&hs, later), Some(Duration::ZERO));
    }

    #[test]
    fn debug_redacts_keys() {
        let r = HttpRequest {
            method: "POST",
            url: "https://x".into(),
            headers: h(&[("authorization", "Bearer sk-SECRET"), ("x-api-key", "SECRET2")]),
            body: "{}".into(),
        };
        let s = format!("{r:?}");
        assert!(!s.contains("SECRET"), "{s}");
    }
}
