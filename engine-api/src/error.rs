//! The one error type of the client.
//!
//! Daemon answers are sorted by status into variants that carry the daemon's
//! own message (read with a size cap); failures of the exchange itself,
//! timeouts, undecodable bodies and version trouble are variants of their own.
//! Outcomes a caller expects as data (an exit code, `304` from start/stop)
//! are never errors.

use std::time::Duration;

use crate::decode::json_lines::JsonLinesError;
use crate::decode::mux::MuxError;
use crate::host::HostError;
use crate::transport::TransportError;
use crate::version::VersionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 404: no such container, image, network, volume or exec.
    #[error("not found: {message}")]
    NotFound { message: String },
    /// 409: a name taken, a running container removed without force, …
    #[error("conflict: {message}")]
    Conflict { message: String },
    /// 304 where "already so" is not an acceptable answer.
    #[error("not modified: {message}")]
    NotModified { message: String },
    /// 400: the daemon refused a parameter.
    #[error("bad parameter: {message}")]
    BadParameter { message: String },
    /// 5xx.
    #[error("daemon error ({status}): {message}")]
    Server { status: u16, message: String },
    /// Any other non-success status (401, 403, …).
    #[error("daemon answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The daemon reported a failure inside a successful streaming answer:
    /// a systemerr frame, or an `errorDetail` line of a pull or load.
    #[error("daemon reported an error in the stream: {message}")]
    Stream { message: String, code: Option<i64> },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("no answer from the daemon within {after:?} ({what})")]
    Timeout { what: String, after: Duration },
    #[error("cannot decode the daemon's answer to {what}: {source}")]
    Decode { what: String, source: DecodeError },
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// An upgrade request was answered with neither 101 nor an error status.
    #[error("expected 101 Switching Protocols for {what}, got {status}")]
    NotUpgraded { what: String, status: u16 },
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON ({source}) in {snippet:?}")]
    Json { source: serde_json::Error, snippet: String },
    #[error(transparent)]
    Output(#[from] MuxError),
    #[error(transparent)]
    Lines(#[from] JsonLinesError),
    #[error("body larger than the bound of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("header {name}: {reason}")]
    Header { name: &'static str, reason: String },
}

impl DecodeError {
    /// A JSON error with a short, lossless-enough excerpt of what failed to parse.
    pub fn json(source: serde_json::Error, bytes: &[u8]) -> Self {
        const SNIPPET: usize = 200;
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(SNIPPET)]).into_owned();
        DecodeError::Json { source, snippet }
    }
}

impl Error {
    /// The daemon's answer for a non-success `status` with the `message` it sent.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            304 => Error::NotModified { message },
            400 => Error::BadParameter { message },
            404 => Error::NotFound { message },
            409 => Error::Conflict { message },
            500..=599 => Error::Server { status, message },
            _ => Error::Status { status, message },
        }
    }

    pub(crate) fn decode(what: impl Into<String>, source: impl Into<DecodeError>) -> Self {
        Error::Decode { what: what.into(), source: source.into() }
    }

    /// True for a 404 from the daemon.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for a 409 from the daemon.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

impl From<MuxError> for Error {
    fn from(err: MuxError) -> Self {
        match err {
            MuxError::Systemerr { message } => Error::Stream { message, code: None },
            other => Error::decode("a multiplexed stream", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants_that_keep_the_daemons_message() {
        let msg = || "No such container: x".to_owned();
        assert!(matches!(Error::from_status(404, msg()), Error::NotFound { message } if message == msg()));
        assert!(matches!(Error::from_status(409, msg()), Error::Conflict { .. }));
        assert!(matches!(Error::from_status(400, msg()), Error::BadParameter { .. }));
        assert!(matches!(Error::from_status(304, msg()), Error::NotModified { .. }));
        assert!(matches!(Error::from_status(503, msg()), Error::Server { status: 503, .. }));
        assert!(matches!(Error::from_status(403, msg()), Error::Status { status: 403, .. }));
    }

    #[test]
    fn a_systemerr_frame_becomes_a_stream_error() {
        let err: Error = MuxError::Systemerr { message: "boom".into() }.into();
        assert!(matches!(err, Error::Stream { message, .. } if message == "boom"));
    }
}
