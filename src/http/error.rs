//! The one error shape of the native API: `{"error": {"code", "message"}}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::runs::RunError;

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

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        use crate::backend::BackendError as B;
        match e {
            RunError::Policy(v) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "policy_violation", v.to_string()),
            RunError::UnknownLanguage(..) | RunError::BadRequest(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            RunError::NotFound(id) => ApiError::not_found(format!("no such run: {id}")),
            RunError::Backend(B::NotFound(m)) => ApiError::new(StatusCode::NOT_FOUND, "engine_not_found", m),
            RunError::Backend(B::Conflict(m)) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RunError::Backend(B::Invalid(m)) => ApiError::new(StatusCode::BAD_REQUEST, "engine_refused", m),
            RunError::Backend(B::Unavailable(m)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", m)
            }
            RunError::Backend(B::Engine(m)) => ApiError::new(StatusCode::BAD_GATEWAY, "engine_error", m),
            RunError::Store(s) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", s.to_string()),
        }
    }
}
