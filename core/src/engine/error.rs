//! Why a call failed, as a type: the kind ([`ErrorKind`]) is set where the failure
//! happens (by the transport from its HTTP library's own error, by the engine's clocks,
//! by the response parser), never found again by reading a message.

use crate::provider::ProviderError;
use crate::vocab::failure::summary;
pub use crate::vocab::failure::{ErrorKind, NetError};
use thiserror::Error;

/// Why one attempt of a call failed.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum CallError {
    /// The provider answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The response could not be used.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The transport failed.
    #[error("{}: {message}", if *.kind == NetError::Refused { "connection refused" } else { "transport" })]
    Transport {
        /// What failed, as the transport told it.
        kind: NetError,
        /// The transport's description.
        message: String,
        /// Whether the address is this machine's own (a refused connection there is not
        /// retried: a local server that is not running will not start by itself).
        loopback: bool,
    },
    /// The attempt ran past `policy.timeout_secs`.
    #[error("no complete answer within {} s (policy.timeout_secs)", crate::float::Shortest(*.0))]
    Timeout(f64),
    /// No byte arrived for `policy.stall_timeout_secs`.
    #[error("no data for {} s (policy.stall_timeout_secs)", crate::float::Shortest(*.0))]
    Stalled(f64),
    /// The transport could not make the request at all (a URL or header value it
    /// rejects).
    #[error("the request could not be made: {0}")]
    Invalid(String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The layer went on without it: it had its quorum, or its agents agreed.
    #[error("cut: {0}")]
    Cut(&'static str),
    /// The answer was refused: tool calls that do not fit, or not the format asked for.
    #[error("refused: {0}")]
    Rejected(#[from] super::tooling::Rejection),
}

impl CallError {
    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::Status { .. } => ErrorKind::Status,
            CallError::Provider(ProviderError::Api { .. }) => ErrorKind::Provider,
            CallError::Provider(ProviderError::Truncated) => ErrorKind::Truncated,
            CallError::Provider(_) => ErrorKind::Malformed,
            CallError::Transport { kind, .. } => (*kind).into(),
            CallError::Timeout(_) => ErrorKind::Timeout,
            CallError::Stalled(_) => ErrorKind::Stalled,
            CallError::Invalid(_) => ErrorKind::Invalid,
            CallError::Cancelled => ErrorKind::Cancelled,
            CallError::Cut(_) => ErrorKind::Cut,
            CallError::Rejected(_) => ErrorKind::Rejected,
        }
    }

    /// The HTTP status, when the provider answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The kind in a few words, with nothing a provider wrote and no URL, host or port:
    /// what a server may tell its clients (`HTTP 503`, `timeout`, `connection refused`...).
    /// The full error is for the operator's log.
    pub fn summary(&self) -> String {
        summary(self.kind(), self.status())
    }

    /// Whether trying again may work.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Status { status, .. } => crate::http::status_is_retryable(*status),
            CallError::Provider(e) => e.retryable(),
            CallError::Transport { kind: NetError::Refused, loopback, .. } => !loopback,
            // A refused answer is tried again, told why.
            CallError::Transport { .. } | CallError::Timeout(_) | CallError::Stalled(_) | CallError::Rejected(_) => {
                true
            }
            CallError::Invalid(_) | CallError::Cancelled | CallError::Cut(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_tags_and_summaries_hide_what_providers_wrote() {
        assert_eq!(serde_json::to_value(ErrorKind::Cut).expect("json"), "cut");
        let status = CallError::Status { status: 503, message: "upstream said sk-secret".into() };
        assert_eq!((status.kind(), status.summary()), (ErrorKind::Status, "HTTP 503".to_owned()));
        let refused = CallError::Transport { kind: NetError::Refused, message: "at 10.0.0.1".into(), loopback: false };
        assert_eq!(refused.summary(), "connection refused");
        assert!(refused.to_string().starts_with("connection refused: "));
        assert!(refused.retryable());
        let local = CallError::Transport { kind: NetError::Refused, message: "here".into(), loopback: true };
        assert!(!local.retryable());
        let reset = CallError::Transport { kind: NetError::Reset, message: "eof".into(), loopback: true };
        assert!(reset.retryable() && reset.to_string().starts_with("transport: "));
    }
}
