//! The native HTTP API under `/v1`: the orchestration core behind axum.
//!
//! This module owns the wire shapes (DTOs with OpenAPI schemas), the error
//! shape, tenants from bearer tokens and the request id; it converts to and
//! from the core's types by hand and knows nothing of the engine. The seed
//! dialects (`crate::dialects`) are other front ends over the same core and
//! reuse its extractors and error conversions, not its routes.
//!
//! Built as `app(state) -> Router` so tests drive it in-process.

pub mod agents;
pub mod error;
pub mod exposition;
pub mod follow;
pub mod images;
pub mod observe;
pub mod ops;
pub mod relics;
pub mod runs;
pub mod sandboxes;
pub mod sessions;
pub mod traffic;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Json};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::Core;
use error::ApiError;

/// Bearer tokens and the tenant each belongs to. Empty: no auth, one tenant.
#[derive(Debug, Clone, Default)]
pub struct Tokens(pub BTreeMap<String, String>);

impl Tokens {
    /// The tenant `token` belongs to (space around it ignored).
    pub fn tenant(&self, token: &str) -> Option<&String> {
        self.0.get(token.trim())
    }
}

/// The tenant of an anonymous request when no tokens are configured.
pub const DEFAULT_TENANT: &str = "default";

/// How long a followed stream may be quiet before a keep-alive is sent.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub tokens: Arc<Tokens>,
    pub keepalive: Duration,
    /// The requests every front end over this state served.
    pub traffic: Arc<traffic::Traffic>,
    /// The console's passes (cookies that stand for a token, for reads).
    pub passes: Arc<std::sync::Mutex<crate::console::passes::Passes>>,
}

impl AppState {
    pub fn new(core: Arc<Core>, tokens: Tokens) -> Self {
        AppState {
            core,
            tokens: Arc::new(tokens),
            keepalive: DEFAULT_KEEPALIVE,
            traffic: Arc::new(traffic::Traffic::default()),
            passes: Arc::default(),
        }
    }
}

/// The caller's tenant, from its bearer token.
pub struct Tenant(pub String);

impl Tenant {
    /// The tenant a request's headers name, against a token table.
    pub fn from_headers(headers: &axum::http::HeaderMap, tokens: &Tokens) -> Result<Tenant, ApiError> {
        if tokens.0.is_empty() {
            return Ok(Tenant(DEFAULT_TENANT.into()));
        }
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required");
        let header = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(unauthorized)?;
        let token = header.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthorized)?;
        tokens.tenant(token).map(|t| Tenant(t.clone())).ok_or_else(unauthorized)
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    /// A bearer token, or for a read without one, the console's pass.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Tenant::from_headers(&parts.headers, &state.tokens) {
            Err(refused) if crate::console::reads_on_pass(parts) => {
                crate::console::tenant_of_pass(&parts.headers, state).map(Tenant).ok_or(refused)
            }
            decided => decided,
        }
    }
}

/// The caller's tenant by its bearer token alone, never by the console's
/// pass: for routes whose answer is not berth's but a sandbox's server's
/// (its HTML would run in berth's origin, with the pass's reach).
pub struct BearerTenant(pub String);

impl FromRequestParts<AppState> for BearerTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Tenant::from_headers(&parts.headers, &state.tokens).map(|t| BearerTenant(t.0))
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

/// Query parameters whose rejections answer in the API's error shape.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Query(axum::extract::Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// A path parameter whose rejections answer in the API's error shape.
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Path(axum::extract::Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// The memory and CPU limits a request gives as text (`512m`) and cores
/// (`0.5`); a malformed one is a 422 naming the field.
pub fn limits(memory: Option<&str>, cpu: Option<f64>) -> Result<(Option<ByteSize>, Option<CpuLimit>), ApiError> {
    let memory = memory
        .map(|m| m.parse::<ByteSize>())
        .transpose()
        .map_err(|e| ApiError::unprocessable(format!("memory: {e}")))?;
    let cpu = cpu.map(CpuLimit::from_cores).transpose().map_err(|e| ApiError::unprocessable(format!("cpu: {e}")))?;
    Ok((memory, cpu))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth", description = "A container orchestrator for AI agents and their tools: the native API."),
    paths(
        runs::create_run,
        runs::list_runs,
        runs::get_run,
        runs::cancel_run,
        runs::run_logs,
        agents::create_agent,
        agents::list_agents,
        agents::get_agent,
        agents::delete_agent,
        agents::start_agent,
        agents::stop_agent,
        agents::restart_agent,
        agents::agent_logs,
        agents::agent_stats,
        agents::agent_exec,
        agents::agent_exec_ws,
        agents::renew_agent,
        relics::start_relic,
        relics::list_relics,
        relics::get_relic,
        relics::stop_relic,
        relics::delete_relic,
        relics::relic_logs,
        relics::relic_stats,
        sandboxes::create_sandbox,
        sandboxes::list_sandboxes,
        sandboxes::get_sandbox,
        sandboxes::kill_sandbox,
        sandboxes::set_timeout,
        sandboxes::pause_sandbox,
        sandboxes::resume_sandbox,
        sandboxes::run_command,
        sandboxes::list_processes,
        sandboxes::process_output,
        sandboxes::process_stdin,
        sandboxes::close_stdin,
        sandboxes::signal_process,
        sandboxes::resize_process,
        sandboxes::read_file,
        sandboxes::write_file,
        sandboxes::remove_path,
        sandboxes::stat_path,
        sandboxes::list_dir,
        sandboxes::make_dir,
        sandboxes::move_path,
        sandboxes::port_path,
        sessions::create_session,
        sessions::list_sessions,
        sessions::get_session,
        sessions::end_session,
        images::pull_image,
        ops::health,
        ops::ready,
        ops::audit,
        ops::pools,
        ops::metrics,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, follow::FollowEvent))
)]
pub struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such route")
}

/// Request ids, an access log and the error-shaped 404 around any router.
pub fn layered(router: Router, api: &'static str, state: &AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let traffic = state.traffic.clone();
    router
        .layer(axum::middleware::from_fn(move |request, next| traffic::count(traffic.clone(), api, request, next)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The target of [`request_span`]: a log filter keeps it on whatever else
/// it turns off (`berth serve` does), so every line names its request.
pub const REQUEST_SPAN_TARGET: &str = "berth::request";

/// The span of one request: its method, path and id (set by the layer
/// outside it), so that every line logged while it is served names it.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    let (method, path) = (request.method(), request.uri().path());
    tracing::info_span!(target: REQUEST_SPAN_TARGET, "request", %method, %path, request_id = %id)
}

/// The native API.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .merge(runs::routes())
        .merge(agents::routes())
        .merge(relics::routes())
        .merge(sessions::routes())
        .merge(sandboxes::routes())
        .merge(ops::routes())
        .merge(images::routes())
        .merge(crate::console::routes())
        .route("/openapi.json", axum::routing::get(openapi))
        .fallback(fallback)
        .with_state(state.clone());
    layered(router, "native", &state)
}
