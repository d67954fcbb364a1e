//! The one error shape of the native API: `{"error": {"code", "message"}}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use berth_core::agents::AgentError;
use berth_core::backend::BackendError;
use berth_core::policy::PolicyViolation;
use berth_core::reaper::ReaperError;
use berth_core::relics::RelicError;
use berth_core::runs::RunError;
use berth_core::sessions::SessionError;
use berth_core::store::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `policy_violation`, …).
    pub code: String,
    pub message: String,
}

/// An error answer: status, code and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message } };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = if r.status() == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, "bad_request", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "engine_not_found", m),
            BackendError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            BackendError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "engine_refused", m),
            BackendError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", m),
            BackendError::Engine(m) => ApiError::new(StatusCode::BAD_GATEWAY, "engine_error", m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e.to_string())
    }
}

fn policy(v: PolicyViolation) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "policy_violation", v.to_string())
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Policy(v) => policy(v),
            RunError::UnknownLanguage(..) | RunError::BadRequest(_) => ApiError::bad_request(e.to_string()),
            RunError::NotFound(id) => ApiError::not_found(format!("no such run: {id}")),
            RunError::Backend(b) => b.into(),
            RunError::Store(s) => s.into(),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::NotFound(_) => ApiError::not_found(e.to_string()),
            AgentError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            AgentError::NoPorts(..) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_ports", e.to_string()),
            AgentError::Policy(v) => policy(v),
            AgentError::Backend(b) => b.into(),
            AgentError::Store(s) => s.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Running { .. } => ApiError::new(StatusCode::CONFLICT, "session_running", e.to_string()),
            SessionError::BadId(_) => ApiError::bad_request(e.to_string()),
            SessionError::Backend(b) => b.into(),
        }
    }
}

impl From<RelicError> for ApiError {
    fn from(e: RelicError) -> Self {
        match e {
            RelicError::NotFound(_) => ApiError::not_found(e.to_string()),
            RelicError::BadRequest(m) => ApiError::bad_request(m),
            RelicError::Policy(v) => policy(v),
            RelicError::Session(s) => s.into(),
            RelicError::Backend(b) => b.into(),
            RelicError::Store(s) => s.into(),
        }
    }
}

impl From<ReaperError> for ApiError {
    fn from(e: ReaperError) -> Self {
        match e {
            ReaperError::TooLong { .. } | ReaperError::Past(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "policy_violation", e.to_string())
            }
            ReaperError::Backend(b) => b.into(),
            ReaperError::Store(s) => s.into(),
        }
    }
}
