//! What failed on the network, told from reqwest's error and its sources by their types
//! (an `io::Error`'s kind, rustls's and hyper's errors, our resolver's), never by their
//! messages.

use moa_core::engine::NetError;
use std::error::Error;
use std::io;

/// A name the system resolver could not resolve: our resolver's error, so a failure to
/// resolve is known by its type.
#[derive(Debug, thiserror::Error)]
#[error("{name} did not resolve ({error})")]
pub struct NameNotResolved {
    name: String,
    error: io::Error,
}

/// The system resolver (as reqwest's default), failing with [`NameNotResolved`].
#[derive(Debug, Default)]
pub struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await.map(|a| a.collect::<Vec<_>>());
            match found {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(error) => Err(Box::new(NameNotResolved { name, error }) as Box<dyn Error + Send + Sync>),
            }
        })
    }
}

/// The kind of a failed request.
pub fn classify(e: &reqwest::Error) -> NetError {
    let mut source: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(kind) = kind_of(cause) {
            return kind;
        }
        source = cause.source();
    }
    if e.is_timeout() {
        NetError::Timeout
    } else if e.is_connect() {
        NetError::Connect
    } else {
        NetError::Other
    }
}

/// The kind one error in the chain says, if it says one.
fn kind_of(cause: &(dyn Error + 'static)) -> Option<NetError> {
    if cause.is::<NameNotResolved>() {
        return Some(NetError::Dns);
    }
    if cause.is::<rustls::Error>() {
        return Some(NetError::Tls);
    }
    if let Some(e) = cause.downcast_ref::<hyper::Error>()
        && (e.is_incomplete_message() || e.is_closed() || e.is_canceled())
    {
        return Some(NetError::Reset);
    }
    let io = cause.downcast_ref::<io::Error>()?;
    // An io::Error's source() skips the error it wraps: look inside it first.
    if let Some(inner) = io.get_ref()
        && let Some(kind) = kind_of(inner)
    {
        return Some(kind);
    }
    match io.kind() {
        io::ErrorKind::ConnectionRefused => Some(NetError::Refused),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Some(NetError::Reset),
        io::ErrorKind::TimedOut => Some(NetError::Timeout),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Some(NetError::Connect),
        _ => None,
    }
}
