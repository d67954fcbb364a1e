//! The E2B dialect: E2B's control-plane REST API and the in-sandbox API
//! its SDK calls (envd's process and filesystem services over the Connect
//! protocol, `/files`, `/health`), each on a listener of its own, over
//! berth's sandboxes. Unchanged E2B client code points at berth with
//! `E2B_API_URL` and `E2B_SANDBOX_URL`.
//!
//! - [`control`]: `/v2/sandboxes`, `/sandboxes/{id}/…`; the API key
//!   (`X-API-KEY`) is a berth tenant token; errors are `{code, message}`
//!   with the status as a number.
//! - [`envd`]: requests routed by the `E2b-Sandbox-Id` header and opened by
//!   the sandbox's access token (`X-Access-Token`), never by the API key.
//! - [`connect`]: the Connect protocol's framing, sans IO.
//! - [`wire`]: the JSON shapes of envd's messages (protobuf's JSON mapping).

pub mod connect;
pub mod control;
pub mod envd;
pub mod signed;
pub mod wire;

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::native::AppState;

/// The envd version berth answers: every wire path the pinned SDK
/// (e2b 2.63.0) gates on a version is served at it.
pub const ENVD_VERSION: &str = "0.6.4";

/// The port the SDK names for envd in `E2b-Sandbox-Port`.
pub const ENVD_PORT: u16 = 49983;

/// Where the two listeners are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    pub api: SocketAddr,
    pub envd: SocketAddr,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners { api: SocketAddr::from(([127, 0, 0, 1], 3000)), envd: SocketAddr::from(([127, 0, 0, 1], ENVD_PORT)) }
    }
}

/// The control plane's router.
pub fn api_router(app: AppState) -> axum::Router {
    crate::native::layered(control::routes().with_state(app.clone()), "e2b", &app)
}

/// The in-sandbox API's router.
pub fn envd_router(app: AppState) -> axum::Router {
    let routes = envd::routes().layer(axum::middleware::from_fn_with_state(app.clone(), envd::ports));
    crate::native::layered(routes.with_state(app.clone()), "e2b-envd", &app)
}

/// An error as E2B's APIs answer it: `{"code": <status>, "message": …}`.
#[derive(Debug)]
pub struct E2bError {
    pub status: StatusCode,
    pub message: String,
}

impl E2bError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        E2bError { status, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        E2bError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        E2bError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "code": self.status.as_u16(), "message": self.message })))
            .into_response()
    }
}

impl From<berth_core::Error> for E2bError {
    fn from(e: berth_core::Error) -> Self {
        E2bError::new(crate::native::error::status_of(e.kind()), e.message())
    }
}

impl From<crate::native::error::ApiError> for E2bError {
    fn from(e: crate::native::error::ApiError) -> Self {
        E2bError::new(e.status, e.message)
    }
}
