//! The core's one error classification: every use case of [`crate::Core`]
//! fails with an [`Error`] whose [`ErrorKind`] says what sort of failure it
//! is, so that each front end maps kinds to its own answers once (the
//! native API to statuses and codes, a seed dialect to its `detail` shape).
//!
//! The module errors (`RunError`, `AgentError`, `EngineError`, …) stay
//! what their modules speak; an [`Error`] keeps the one it came from as its
//! [`source`](std::error::Error::source), so nothing of the chain is
//! flattened into a string.

use std::fmt;

use crate::agents::AgentError;
use crate::engine::{EngineError, EngineErrorKind};
use crate::lifetime::reaper::ReaperError;
use crate::policy::PolicyViolation;
use crate::relics::RelicError;
use crate::runs::RunError;
use crate::sandboxes::SandboxError;
use crate::sessions::SessionError;
use crate::store::StoreError;

/// What sort of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// What was asked for does not exist (for this tenant).
    NotFound,
    /// It exists already, or is in a state that does not allow the change.
    Conflict,
    /// The request itself is malformed.
    Invalid,
    /// The request is well formed but asks for more than policy allows.
    Policy,
    /// Something berth needs (the engine, a free port) is not there now;
    /// the same request may succeed later.
    Unavailable,
    /// A sandbox's writable space is full.
    NoSpace,
    /// The caller did not prove it may (a wrong access token).
    Unauthorized,
    /// berth or its engine failed in a way the caller cannot mend.
    Internal,
}

/// A failed use case: its kind, a stable machine-readable code
/// (`not_found`, `exists`, `policy_violation`, …), a message for people,
/// and the error it came from.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` with its code and message, from nothing below.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error { kind, code, message: message.into(), source: None }
    }

    /// A missing object, with the core's `not_found` code.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, "not_found", message)
    }

    /// A malformed request, with the core's `bad_request` code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, "bad_request", message)
    }

    /// A failure of berth itself, with the core's `internal` code.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, "internal", message)
    }

    fn from_source(
        kind: ErrorKind,
        code: &'static str,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error { kind, code, message: message.into(), source: Some(Box::new(source)) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A stable code that names the failure more finely than its kind.
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        let (kind, code) = match e.kind() {
            EngineErrorKind::NotFound => (ErrorKind::NotFound, "engine_not_found"),
            EngineErrorKind::Conflict => (ErrorKind::Conflict, "conflict"),
            EngineErrorKind::Invalid => (ErrorKind::Invalid, "engine_refused"),
            EngineErrorKind::Unavailable => (ErrorKind::Unavailable, "engine_unavailable"),
            EngineErrorKind::Failed => (ErrorKind::Internal, "engine_error"),
            EngineErrorKind::Lost => (ErrorKind::Unavailable, "workload_lost"),
        };
        let message = e.message().to_owned();
        Error::from_source(kind, code, message, e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::from_source(ErrorKind::Internal, "store_error", e.to_string(), e)
    }
}

impl From<PolicyViolation> for Error {
    fn from(e: PolicyViolation) -> Self {
        Error::from_source(ErrorKind::Policy, "policy_violation", e.to_string(), e)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Policy(v) => v.into(),
            RunError::Engine(b) => b.into(),
            RunError::Store(s) => s.into(),
            RunError::UnknownLanguage(..) | RunError::BadRequest(_) => {
                Error::from_source(ErrorKind::Invalid, "bad_request", e.to_string(), e)
            }
            RunError::ShuttingDown => Error::from_source(ErrorKind::Unavailable, "shutting_down", e.to_string(), e),
            RunError::NotFound(_) => Error::from_source(ErrorKind::NotFound, "not_found", e.to_string(), e),
        }
    }
}

impl From<AgentError> for Error {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Policy(v) => v.into(),
            AgentError::Engine(b) => b.into(),
            AgentError::Store(s) => s.into(),
            AgentError::NotFound(_) => Error::from_source(ErrorKind::NotFound, "not_found", e.to_string(), e),
            AgentError::Exists(_) | AgentError::NameTaken(_) => {
                Error::from_source(ErrorKind::Conflict, "exists", e.to_string(), e)
            }
            AgentError::NoPorts(..) => Error::from_source(ErrorKind::Unavailable, "no_ports", e.to_string(), e),
        }
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Engine(b) => b.into(),
            SessionError::Running { .. } => {
                Error::from_source(ErrorKind::Conflict, "session_running", e.to_string(), e)
            }
            SessionError::BadId(_) | SessionError::NoIsolation(_) => {
                Error::from_source(ErrorKind::Invalid, "bad_request", e.to_string(), e)
            }
        }
    }
}

impl From<RelicError> for Error {
    fn from(e: RelicError) -> Self {
        match e {
            RelicError::Policy(v) => v.into(),
            RelicError::Session(s) => s.into(),
            RelicError::Engine(b) => b.into(),
            RelicError::Store(s) => s.into(),
            RelicError::NotFound(_) => Error::from_source(ErrorKind::NotFound, "not_found", e.to_string(), e),
            RelicError::BadRequest(_) => Error::from_source(ErrorKind::Invalid, "bad_request", e.to_string(), e),
        }
    }
}

impl From<SandboxError> for Error {
    fn from(e: SandboxError) -> Self {
        use berth_sandbox_wire::ErrorKind as H;
        let (kind, code) = match &e {
            SandboxError::Policy(v) => return Error::from(v.clone()),
            SandboxError::Engine(b) => return Error::from(b.clone()),
            SandboxError::NotFound(_) => (ErrorKind::NotFound, "not_found"),
            SandboxError::NoProcess(_) => (ErrorKind::NotFound, "no_such_process"),
            SandboxError::PortClosed(_) => (ErrorKind::NotFound, "port_closed"),
            SandboxError::BadToken => (ErrorKind::Unauthorized, "bad_access_token"),
            SandboxError::UnknownTemplate(..) => (ErrorKind::Invalid, "unknown_template"),
            SandboxError::Invalid(_) => (ErrorKind::Invalid, "bad_request"),
            SandboxError::NotRunning { .. } => (ErrorKind::Conflict, "not_running"),
            SandboxError::NoPause(_) => (ErrorKind::Conflict, "cannot_pause"),
            SandboxError::TooMany(_) => (ErrorKind::Policy, "too_many_sandboxes"),
            SandboxError::TooManyProcesses(_) => (ErrorKind::Policy, "too_many_processes"),
            SandboxError::TooManyWatchers(_) => (ErrorKind::Policy, "too_many_watchers"),
            // What this server is configured with, not a passing failure.
            SandboxError::NoHelper => (ErrorKind::Policy, "no_sandbox_helper"),
            // The backend lacks a capability: the server's state, as for a pause.
            SandboxError::Unsupported(_) => (ErrorKind::Conflict, "sandboxes_unsupported"),
            SandboxError::Helper { kind, .. } => match kind {
                H::NotFound => (ErrorKind::NotFound, "no_such_path"),
                H::Exists => (ErrorKind::Conflict, "exists"),
                H::NoSpace => (ErrorKind::NoSpace, "no_space"),
                H::Invalid => (ErrorKind::Invalid, "bad_request"),
                H::Denied => (ErrorKind::Policy, "permission_denied"),
                H::Ended => (ErrorKind::Conflict, "process_ended"),
                H::Io => (ErrorKind::Internal, "sandbox_io"),
            },
            SandboxError::Link(_) => (ErrorKind::Unavailable, "sandbox_unreachable"),
            SandboxError::Store(_) => (ErrorKind::Internal, "store"),
        };
        Error::from_source(kind, code, e.to_string(), e)
    }
}

impl From<ReaperError> for Error {
    fn from(e: ReaperError) -> Self {
        match e {
            ReaperError::Engine(b) => b.into(),
            ReaperError::Store(s) => s.into(),
            ReaperError::NotRemoved { ref failed, .. } => {
                // Classified as the first failure is.
                let first = failed.first().map(|(_, b)| Error::from(b.clone()));
                let (kind, code) = first.map_or((ErrorKind::Internal, "engine_error"), |f| (f.kind(), f.code()));
                Error::from_source(kind, code, e.to_string(), e)
            }
            ReaperError::TooLong { .. } | ReaperError::Past(_) => {
                Error::from_source(ErrorKind::Policy, "policy_violation", e.to_string(), e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_engine_failure_keeps_the_backend_error_as_its_source() {
        let e = Error::from(RunError::Engine(EngineError::unavailable("no socket")));
        assert_eq!((e.kind(), e.code(), e.message()), (ErrorKind::Unavailable, "engine_unavailable", "no socket"));
        let source = e.source().expect("the backend error is kept");
        assert!(source.downcast_ref::<EngineError>().is_some(), "{source:?}");
    }

    #[test]
    fn each_module_error_is_classified_once() {
        let cases: Vec<(Error, ErrorKind, &str)> = vec![
            (AgentError::Exists("a".into()).into(), ErrorKind::Conflict, "exists"),
            (AgentError::NoPorts(1, 2).into(), ErrorKind::Unavailable, "no_ports"),
            (RunError::NotFound("r".into()).into(), ErrorKind::NotFound, "not_found"),
            (RunError::ShuttingDown.into(), ErrorKind::Unavailable, "shutting_down"),
            (SessionError::BadId("x y".into()).into(), ErrorKind::Invalid, "bad_request"),
            (
                RelicError::Session(SessionError::Running { session: "s".into(), running: 1 }).into(),
                ErrorKind::Conflict,
                "session_running",
            ),
            (
                PolicyViolation { field: "memory".into(), reason: "too much".into() }.into(),
                ErrorKind::Policy,
                "policy_violation",
            ),
        ];
        for (e, kind, code) in cases {
            assert_eq!((e.kind(), e.code()), (kind, code), "{e}");
        }
    }
}
