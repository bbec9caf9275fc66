//! The HTTP requests the engine asks a transport to make, and the header rules it applies
//! to responses.

use crate::time::Time;
use std::fmt;
use std::time::Duration;

/// A request for the transport to send as it is. The body is JSON; the response is read
/// as a stream and fed back with [`crate::Input::Body`].
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The HTTP method (every provider call is a `POST` today); transports send this one.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Header names in lower case, with values. May include a secret key.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
    /// The provider's identity: its base URL, normalized ([`normalize_base_url`]). A
    /// transport that shares a provider's `max_concurrency` across runs keys it by this,
    /// never by a URL prefix (`.../v1` must not capture `.../v1beta`).
    pub endpoint: String,
    /// Which wire format it speaks: a batch transport picks the provider's batch API by
    /// it (never by guessing from the URL).
    pub kind: crate::vocab::ProviderKind,
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
            .field("endpoint", &self.endpoint)
            .field("kind", &self.kind)
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
    if let Some(wait) = fractional_seconds(value) {
        // Not standard, but some APIs send fractional seconds; honour them.
        return Some(wait);
    }
    let at = http_date(value)?;
    let reference = header(headers, "date").and_then(http_date).map_or(now.as_micros() / 1_000_000, |s| s);
    Some(Duration::from_secs(at.saturating_sub(reference)))
}

/// `1.5`, `.25` or `3.`: digits and one point, read without a float parser (the browser
/// module would carry one for this alone); at most a billion seconds.
fn fractional_seconds(value: &str) -> Option<Duration> {
    let (whole, frac) = value.split_once('.')?;
    if (whole.is_empty() && frac.is_empty()) || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = whole.trim_start_matches('0');
    let secs = if secs.len() > 9 { 1_000_000_000 } else { secs.parse::<u64>().unwrap_or(0) };
    let nanos = frac.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Duration::new(secs, nanos))
}

/// Seconds since the Unix epoch of an HTTP date in any of the three forms RFC 9110 has
/// recipients accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`; years 70–99 are 19xx, 00–69 20xx) and asctime
/// (`Sun Nov  6 08:49:37 1994`); years 1970–9999, the weekday checked against the date.
///
/// Written here rather than taken from `httpdate` to keep the browser module small (2 KB
/// gzipped); `core/tests/http_date_props.rs` holds it to `httpdate`'s answers.
pub fn http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let num = |s: &str, len: usize| -> Option<u64> {
        if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let month = |s: &str| MONTHS.iter().position(|m| *m == s).map(|m| m as u64 + 1);
    let short = |s: &str| DAYS.iter().position(|d| *d == s);
    let (wday, day, mon, year, clock) = if let Some((wday, rest)) = text.split_once(", ") {
        let mut parts = rest.split(' ');
        let date = parts.next()?;
        let fields = if date.len() == 9 {
            // RFC 850: `06-Nov-94`.
            if date.get(2..3)? != "-" || date.get(6..7)? != "-" {
                return None;
            }
            let yy = num(date.get(7..)?, 2)?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (LONG.iter().position(|d| *d == wday)?, num(date.get(..2)?, 2)?, month(date.get(3..6)?)?, year)
        } else {
            // IMF-fixdate: `06 Nov 1994`.
            (short(wday)?, num(date, 2)?, month(parts.next()?)?, num(parts.next()?, 4)?)
        };
        let clock = parts.next()?;
        if parts.next()? != "GMT" || parts.next().is_some() {
            return None;
        }
        (fields.0, fields.1, fields.2, fields.3, clock)
    } else {
        // asctime: `Sun Nov  6 08:49:37 1994` (a one-digit day after two spaces).
        let b = text.as_bytes();
        if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
            return None;
        }
        let day = if b[8] == b' ' { num(text.get(9..10)?, 1)? } else { num(text.get(8..10)?, 2)? };
        (short(text.get(..3)?)?, day, month(text.get(4..7)?)?, num(text.get(20..)?, 4)?, text.get(11..19)?)
    };
    let c = clock.as_bytes();
    if c.len() != 8 || c[2] != b':' || c[5] != b':' {
        return None;
    }
    let (h, m, s) = (num(clock.get(..2)?, 2)?, num(clock.get(3..5)?, 2)?, num(clock.get(6..)?, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&year) || day == 0 || day > month_days[mon as usize - 1] || h > 23 || m > 59 || s > 59 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil, for years from 1970).
    let (y, mp) = if mon > 2 { (year, mon - 3) } else { (year - 1, mon + 9) };
    let (era, yoe) = (y / 400, y % 400);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * mp + 2) / 5 + day - 1;
    let days = era * 146_097 + doe - 719_468;
    // 1970-01-01 was a Thursday (index 3 from Monday).
    if (days + 3) % 7 != wday as u64 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Checks a provider's `base_url` the way a transport will use it, and returns it
/// normalized: scheme and host in lower case, the scheme's default port dropped, no
/// trailing `/`. An error says what is wrong, for a recipe's field error.
///
/// Written by hand because the core stays small for the browser (the `url` crate brings
/// IDNA tables): it accepts exactly `http(s)://host[:port][/path]` where host is a DNS
/// name, an IPv4 address or a bracketed IPv6 address, the port is 1..=65535, and nothing
/// (no user info, query, fragment, space or control character) that would make the
/// request URL mean something other than base + the API's route (`/chat/completions`,
/// `/messages`).
pub fn normalize_base_url(url: &str) -> Result<String, String> {
    // One message format for every problem keeps the browser module small.
    parse_base_url(url).map_err(|why| format!("{} {why}", crate::quote::Quoted(url)))
}

fn parse_base_url(url: &str) -> Result<String, &'static str> {
    let lower = url.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &url[8..])
    } else if lower.starts_with("http://") {
        ("http", &url[7..])
    } else {
        return Err("is not an http:// or https:// URL");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains a space or a control character; a URL has none");
    }
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err("has user info before the host; put credentials in api_key_env, not the URL");
    }
    if path.contains(['?', '#']) {
        return Err("has a query or fragment; a base URL is a path the API's routes are added to");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("has an IPv6 address with no closing ']'")?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err("has an invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p if p.starts_with(':') => Some(&p[1..]),
            _ => return Err("has something after its IPv6 address"),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if !host.starts_with('[') {
        if !host.is_ascii() {
            return Err("has a host that is not ASCII; write it in its xn-- form");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.len() > 253 || !host.trim_end_matches('.').split('.').all(label_ok) {
            return Err("has an invalid host name");
        }
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
            _ => return Err("has a port that is not a number in 1..=65535"),
        },
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = port.filter(|p| *p != default_port).map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{}", path.trim_end_matches('/')))
}

/// Whether a (normalized) base URL's host is this machine: `localhost`, `127.0.0.0/8` or
/// `[::1]`. A refused connection there means nothing listens, and waiting will not change
/// that, where a remote host may be restarting behind a load balancer.
pub fn is_loopback(base_url: &str) -> bool {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = if authority.starts_with('[') {
        authority.split_once(']').map_or(authority, |(h, _)| h).trim_start_matches('[')
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    host == "localhost" || host.parse::<core::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
        assert_eq!(retry_after(&h(&[("retry-after", ".25")]), Time::EPOCH), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&h(&[("retry-after", "3.")]), Time::EPOCH), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&h(&[("retry-after", "1.0000000019")]), Time::EPOCH), Some(Duration::new(1, 1)));
        assert_eq!(
            retry_after(&h(&[("retry-after", "99999999999.5")]), Time::EPOCH),
            Some(Duration::new(1_000_000_000, 500_000_000))
        );
        assert_eq!(retry_after(&h(&[("retry-after", "1.2.3")]), Time::EPOCH), None);
        assert_eq!(retry_after(&h(&[("retry-after", ".")]), Time::EPOCH), None);
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
    fn base_urls_are_checked_and_normalized() {
        let ok = |u: &str| normalize_base_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(ok("https://api.together.xyz/v1"), "https://api.together.xyz/v1");
        assert_eq!(ok("HTTP://LocalHost:8081/v1/"), "http://localhost:8081/v1");
        assert_eq!(ok("https://x.example:443/v1"), "https://x.example/v1");
        assert_eq!(ok("http://127.0.0.1"), "http://127.0.0.1");
        assert_eq!(ok("http://[::1]:8080/v1"), "http://[::1]:8080/v1");
        for (bad, why) in [
            ("https://", "no host"),
            ("http://127.0.0.1:99999/v1", "port"),
            ("http://127.0.0.1:0/v1", "port"),
            ("http://127.0.0.1:/v1", "port"),
            ("http://my host/v1", "contains a space"),
            ("http://host\n/v1", "control character"),
            ("ftp://x/v1", "not an http"),
            ("https://user:pw@x/v1", "user info"),
            ("https://x/v1?key=1", "query"),
            ("https://exämple.com/v1", "ASCII"),
            ("http://[::1/v1", "closing"),
            ("http://-x-/v1", "invalid host"),
        ] {
            let e = normalize_base_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let r = HttpRequest {
            method: "POST",
            url: "https://x".into(),
            headers: h(&[("authorization", "Bearer sk-SECRET"), ("x-api-key", "SECRET2")]),
            body: "{}".into(),
            endpoint: "https://x".into(),
            kind: crate::vocab::ProviderKind::OpenAi,
        };
        let s = format!("{r:?}");
        assert!(!s.contains("SECRET"), "{s}");
    }
}
