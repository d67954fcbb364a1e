//! Why an engine operation failed: a kind the core can decide on, the
//! engine's own message, and the engine client's error as the source.

use std::fmt;
use std::sync::Arc;

/// What sort of engine failure an [`EngineError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineErrorKind {
    /// The workload, image or network does not exist.
    NotFound,
    /// It exists, or is in a state that does not allow the operation.
    Conflict,
    /// The engine refused the request as invalid.
    Invalid,
    /// The engine could not be reached or did not answer in time.
    Unavailable,
    /// The engine answered with a failure of its own.
    Failed,
    /// The workload is gone with the machine it ran on (a node the cluster
    /// marked down): nothing more of it can be asked.
    Lost,
}

impl EngineErrorKind {
    /// The kind as a word, for a metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineErrorKind::NotFound => "not_found",
            EngineErrorKind::Conflict => "conflict",
            EngineErrorKind::Invalid => "invalid",
            EngineErrorKind::Unavailable => "unavailable",
            EngineErrorKind::Failed => "failed",
            EngineErrorKind::Lost => "lost",
        }
    }
}

/// A failed engine operation.
#[derive(Debug, Clone)]
pub struct EngineError {
    kind: EngineErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl EngineError {
    pub fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        EngineError { kind, message: message.into(), source: None }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::Conflict, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::Invalid, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::Unavailable, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::Failed, message)
    }

    pub fn lost(message: impl Into<String>) -> Self {
        EngineError::new(EngineErrorKind::Lost, message)
    }

    /// The same error, keeping `source` (the engine client's error) as its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub fn kind(&self) -> EngineErrorKind {
        self.kind
    }

    /// The engine's own message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == EngineErrorKind::NotFound
    }
}

impl PartialEq for EngineError {
    /// Equal when of one kind with one message (the sources are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            EngineErrorKind::NotFound => "not found",
            EngineErrorKind::Conflict => "conflict",
            EngineErrorKind::Invalid => "refused by the engine",
            EngineErrorKind::Unavailable => "engine unavailable",
            EngineErrorKind::Failed => "engine error",
            EngineErrorKind::Lost => "workload lost",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Removal and stopping are done when the thing is gone already: the one
/// rule for "not found is fine".
pub trait GoneIsDone {
    /// `Ok` when the operation succeeded or its target no longer exists.
    fn or_gone(self) -> Result<(), EngineError>;
}

impl GoneIsDone for Result<(), EngineError> {
    fn or_gone(self) -> Result<(), EngineError> {
        match self {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_engine_error_keeps_the_clients_error_as_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "no daemon");
        let e = EngineError::unavailable("cannot connect").with_source(io);
        assert_eq!(e.to_string(), "engine unavailable: cannot connect");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("no daemon"));
    }

    #[test]
    fn a_removal_whose_target_is_gone_is_done_and_other_failures_stay() {
        assert_eq!(Err(EngineError::not_found("x")).or_gone(), Ok(()));
        assert!(Err::<(), _>(EngineError::conflict("busy")).or_gone().is_err());
    }
}
