//! The kinds of failure: words the engine, its events and every front end share.

use serde::{Deserialize, Serialize};

/// What went wrong on the network, as the transport tells it from its HTTP library's
/// error (reqwest's error and its sources natively; the browser cannot tell these apart
/// and says [`NetError::Other`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetError {
    /// Nothing listens at the address.
    Refused,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake or a certificate failed.
    Tls,
    /// Connecting failed otherwise (no route, unreachable).
    Connect,
    /// The connection was reset or closed before the response was whole.
    Reset,
    /// The HTTP library's own timeout.
    Timeout,
    /// Anything else (the browser's `TypeError: Failed to fetch`, CORS).
    Other,
}

/// The kind of a failure: what a front end switches on (a cut proposal is shown
/// differently from a broken one) and what a server may tell its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ErrorKind {
    /// The provider answered with an error status.
    Status,
    /// The provider reported an error inside its stream.
    Provider,
    /// The stream ended before it was complete.
    Truncated,
    /// The response could not be read.
    Malformed,
    /// Nothing listens at the address.
    Refused,
    /// The host name did not resolve.
    Dns,
    /// TLS failed.
    Tls,
    /// Connecting failed otherwise.
    Connect,
    /// The connection was reset or closed mid-response.
    Reset,
    /// Another transport failure.
    Transport,
    /// The attempt ran past `policy.timeout_secs` (or the HTTP library's own timeout).
    Timeout,
    /// No byte arrived for `policy.stall_timeout_secs`.
    Stalled,
    /// The transport could not make the request at all.
    Invalid,
    /// The run was cancelled.
    Cancelled,
    /// The layer went on without it (quorum, agreement).
    Cut,
    /// The answer came back whole but was refused: a tool call that does not fit the
    /// tools, or an answer that does not match the format asked for.
    Rejected,
}

impl From<NetError> for ErrorKind {
    fn from(e: NetError) -> ErrorKind {
        match e {
            NetError::Refused => ErrorKind::Refused,
            NetError::Dns => ErrorKind::Dns,
            NetError::Tls => ErrorKind::Tls,
            NetError::Connect => ErrorKind::Connect,
            NetError::Reset => ErrorKind::Reset,
            NetError::Timeout => ErrorKind::Timeout,
            NetError::Other => ErrorKind::Transport,
        }
    }
}

/// A kind in a few words, with the status for [`ErrorKind::Status`].
pub(crate) fn summary(kind: ErrorKind, status: Option<u16>) -> String {
    let words = match kind {
        ErrorKind::Status => return status.map_or_else(|| "HTTP error".into(), |s| format!("HTTP {s}")),
        ErrorKind::Provider => "provider error",
        ErrorKind::Truncated => "truncated stream",
        ErrorKind::Malformed => "malformed response",
        ErrorKind::Refused => "connection refused",
        ErrorKind::Dns => "name resolution failed",
        ErrorKind::Tls => "TLS error",
        ErrorKind::Connect => "connection failed",
        ErrorKind::Reset => "connection lost",
        ErrorKind::Transport => "transport error",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Stalled => "stalled",
        ErrorKind::Invalid => "invalid request",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Cut => "cut",
        ErrorKind::Rejected => "answer refused",
    };
    words.into()
}

impl std::fmt::Display for ErrorKind {
    /// In a few words (`HTTP error`, `timeout`); [`summary`] adds a status.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&summary(*self, None))
    }
}
