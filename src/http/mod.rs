//! The native HTTP API under `/v1`: the orchestration core behind axum.
//!
//! This module owns the wire shapes (DTOs with OpenAPI schemas), the error
//! shape, tenants from bearer tokens and the request id; it converts to and
//! from the core's types by hand and knows nothing of the engine.
//!
//! Built as `app(state) -> Router` so tests drive it in-process.

pub mod error;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};

use crate::backend::Backend;
use crate::runs::{RunId, RunRecord, RunRequest, Runs, Workload};
use crate::units::{ByteSize, CpuLimit};
use error::{ApiError, ErrorBody};

/// Bearer tokens and the tenant each belongs to. Empty: no auth, one tenant.
#[derive(Debug, Clone, Default)]
pub struct Tokens(pub BTreeMap<String, String>);

/// The tenant of an anonymous request when no tokens are configured.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Clone)]
pub struct AppState {
    pub runs: Arc<Runs>,
    pub backend: Arc<dyn Backend>,
    pub tokens: Arc<Tokens>,
}

/// The caller's tenant, from its bearer token.
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.tokens.0.is_empty() {
            return Ok(Tenant(DEFAULT_TENANT.into()));
        }
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required");
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(unauthorized)?;
        let token = header.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthorized)?;
        state.tokens.0.get(token.trim()).map(|t| Tenant(t.clone())).ok_or_else(unauthorized)
    }
}

/// A JSON body whose rejections answer in the API's error shape.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Body(Json::<T>::from_request(req, state).await?.0))
    }
}

/// A run request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// A tool image to run; or give `language` and `code`.
    pub image: Option<String>,
    /// The tool's command (the image's own when absent).
    pub command: Option<Vec<String>>,
    /// A language of the code table (`python`, `sh`).
    pub language: Option<String>,
    pub code: Option<String>,
    /// A name for people.
    pub tool_name: Option<String>,
    pub session_id: Option<String>,
    /// Passed as `PARAM_<NAME>` variables and as `BERTH_PARAMETERS`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Memory limit such as `512m`.
    pub memory: Option<String>,
    /// CPU cores, such as `0.5`.
    pub cpu: Option<f64>,
    pub timeout_seconds: Option<u64>,
    /// Remove the container when the run is over (the record stays). Default true.
    pub cleanup: Option<bool>,
}

/// A run's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub image: String,
    pub tool_name: Option<String>,
    pub session_id: Option<String>,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    pub container_id: Option<String>,
    pub container_removed: bool,
    pub error: Option<String>,
    pub path: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            id: r.id.0,
            status: r.status.as_str().into(),
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            stdout_truncated: r.stdout_truncated,
            stderr_truncated: r.stderr_truncated,
            result: r.result,
            image: r.image,
            tool_name: r.name,
            session_id: r.session,
            wall_ms: r.usage.wall_ms,
            cpu_ms: r.usage.cpu_ms,
            peak_memory_bytes: r.usage.peak_memory_bytes,
            container_id: r.container_id,
            container_removed: r.container_removed,
            error: r.error,
            path: r.path,
            created_at: r.created_at.to_rfc3339(),
            finished_at: r.finished_at.map(|t| t.to_rfc3339()),
        }
    }
}

fn run_request(tenant: String, body: RunBody) -> Result<RunRequest, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m);
    let workload = match (body.image, body.language, body.code) {
        (Some(image), None, None) => Workload::Tool { image, command: body.command },
        (None, Some(language), Some(code)) => Workload::Code { language, code },
        _ => return Err(bad("give either `image` (a tool run) or `language` and `code` (a code run)")),
    };
    let memory = body.memory.map(|m| m.parse::<ByteSize>()).transpose().map_err(|e| bad(&format!("memory: {e}")))?;
    let cpu = body.cpu.map(CpuLimit::from_cores).transpose().map_err(|e| bad(&format!("cpu: {e}")))?;
    let mut req = RunRequest::new(&tenant, workload);
    req.name = body.tool_name;
    req.session = body.session_id;
    req.parameters = body.parameters;
    req.env = body.env;
    req.memory = memory;
    req.cpu = cpu;
    req.timeout = body.timeout_seconds.map(Duration::from_secs);
    req.cleanup = body.cleanup.unwrap_or(true);
    Ok(req)
}

/// Runs a tool image or a code snippet to completion and returns its record.
#[utoipa::path(post, path = "/v1/runs", request_body = RunBody,
    responses((status = 201, body = RunView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(body): Body<RunBody>,
) -> Result<impl IntoResponse, ApiError> {
    let req = run_request(tenant, body)?;
    // The run goes on in its own task: a client that hangs up does not
    // abandon a container half-way; the record is there to fetch later.
    let runs = s.runs.clone();
    let record = tokio::spawn(async move { runs.execute(req).await })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok((StatusCode::CREATED, Json(RunView::from(record))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The caller's runs, newest first.
#[utoipa::path(get, path = "/v1/runs", params(ListQuery),
    responses((status = 200, body = Vec<RunView>), (status = 401, body = ErrorBody)))]
async fn list_runs(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let limit = q?.0.limit.unwrap_or(100).min(1000);
    let runs = s.runs.list(&tenant, limit)?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

/// One run of the caller's.
#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(s.runs.get(&tenant, &RunId(id))?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// False when the run had already ended.
    pub cancelled: bool,
}

/// Cancels a run in progress.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = Cancelled), (status = 404, body = ErrorBody)))]
async fn cancel_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    Ok(Json(Cancelled { cancelled: s.runs.cancel(&tenant, &RunId(id))? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub backend: String,
    /// `up` or `down` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// Liveness: berth answers.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), backend: s.backend.name().into(), engine: None })
}

/// Readiness: the engine answers too.
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let up = s.backend.ping().await.is_ok();
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health {
        status: if up { "ok" } else { "degraded" }.into(),
        backend: s.backend.name().into(),
        engine: Some(if up { "up" } else { "down" }.into()),
    };
    (status, Json(body))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth", description = "A container orchestrator for AI agents and their tools: the native API."),
    paths(create_run, list_runs, get_run, cancel_run, health, ready),
    components(schemas(RunBody, RunView, Cancelled, Health, ErrorBody, error::ErrorDetail))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such route")
}

/// The native API.
pub fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v1/runs", post(create_run).get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/openapi.json", get(openapi))
        .fallback(fallback)
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
