//! Relics over HTTP: session-scoped services on the session's private
//! network, started and reported healthy, listed by session, stopped,
//! removed, with their logs and stats.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::observe::{self, LogQuery, LogsView, StatsQuery, UsageView};
use super::{AppState, Body, Path, Query, Tenant};
use berth_core::observe::Target;
use berth_core::relics::{RelicRecord, RelicRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/relics", post(start_relic).get(list_relics))
        .route("/v1/relics/{id}", get(get_relic).delete(delete_relic))
        .route("/v1/relics/{id}/stop", post(stop_relic))
        .route("/v1/relics/{id}/logs", get(relic_logs))
        .route("/v1/relics/{id}/stats", get(relic_stats))
}

/// A relic to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelicBody {
    pub relic_name: String,
    pub session_id: String,
    pub image: String,
    /// Replaces the image's command.
    pub command: Option<Vec<String>>,
    /// Memory limit such as `1g` (the relic default when absent).
    pub memory: Option<String>,
    /// CPU cores.
    pub cpu: Option<f64>,
    /// Join the session's private network, made on first use (default true).
    pub create_private_network: Option<bool>,
    /// A path probed inside the relic until it answers, such as `/health`.
    pub health_check_endpoint: Option<String>,
    /// How long it may take to become healthy (default 30).
    pub health_check_timeout_seconds: Option<u64>,
    /// The port it serves on inside (default 8000).
    pub port: Option<u16>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// RFC 3339: the reaper removes it then (within the policy's maximum lifetime).
    pub expires_at: Option<String>,
}

/// A relic as berth reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelicView {
    pub relic_id: String,
    pub relic_name: String,
    pub session_id: String,
    /// `running`, `stopped` or `failed`.
    pub status: String,
    pub container_id: Option<String>,
    pub container_name: String,
    pub network_id: Option<String>,
    /// Reachable from the session's network only.
    pub internal_url: String,
    pub healthy: bool,
    /// Why it failed, with its last logs.
    pub error: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

impl From<RelicRecord> for RelicView {
    fn from(r: RelicRecord) -> Self {
        RelicView {
            relic_id: r.relic_id,
            relic_name: r.relic_name,
            session_id: r.session_id,
            status: r.status.as_str().into(),
            container_id: r.container_id,
            container_name: r.container_name,
            network_id: r.network_id,
            internal_url: r.internal_url,
            healthy: r.healthy,
            error: r.error,
            created_at: r.created_at.to_rfc3339(),
            expires_at: r.expires_at.map(|t| t.to_rfc3339()),
        }
    }
}

fn request(tenant: &str, b: RelicBody) -> Result<RelicRequest, ApiError> {
    let (memory, cpu) = super::limits(b.memory.as_deref(), b.cpu)?;
    Ok(RelicRequest {
        tenant: tenant.into(),
        relic_name: b.relic_name,
        session_id: b.session_id,
        image: b.image,
        cmd: b.command,
        memory,
        cpu,
        create_private_network: b.create_private_network.unwrap_or(true),
        health_check_endpoint: b.health_check_endpoint,
        health_check_timeout: Duration::from_secs(b.health_check_timeout_seconds.unwrap_or(30)),
        port: b.port.unwrap_or(8000),
        env: b.env,
        expires_at: b.expires_at.as_deref().map(|t| super::agents::parse_time("expires_at", t)).transpose()?,
    })
}

/// Starts a relic and answers once it is healthy (or has failed: then
/// `status` is `failed` and `error` holds why, with its last logs).
#[utoipa::path(post, path = "/v1/relics", request_body = RelicBody,
    responses((status = 201, body = RelicView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn start_relic(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(body): Body<RelicBody>,
) -> Result<(StatusCode, Json<RelicView>), ApiError> {
    let req = request(&tenant, body)?;
    Ok((StatusCode::CREATED, Json(s.core.start_relic(req).await?.into())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RelicFilter {
    /// Only this session's relics.
    pub session_id: Option<String>,
}

/// The caller's relics, of one session or all.
#[utoipa::path(get, path = "/v1/relics", params(RelicFilter),
    responses((status = 200, body = Vec<RelicView>), (status = 400, body = ErrorBody)))]
pub async fn list_relics(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Query(q): Query<RelicFilter>,
) -> Result<Json<Vec<RelicView>>, ApiError> {
    let relics = s.core.relics(&tenant, q.session_id.as_deref())?;
    Ok(Json(relics.into_iter().map(RelicView::from).collect()))
}

/// One of the caller's relics.
#[utoipa::path(get, path = "/v1/relics/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RelicView), (status = 404, body = ErrorBody)))]
pub async fn get_relic(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<RelicView>, ApiError> {
    Ok(Json(s.core.relic(&tenant, &id)?.into()))
}

/// Stops a relic (its record stays, `stopped`).
#[utoipa::path(post, path = "/v1/relics/{id}/stop", params(("id" = String, Path)),
    responses((status = 200, body = RelicView), (status = 404, body = ErrorBody)))]
pub async fn stop_relic(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<RelicView>, ApiError> {
    Ok(Json(s.core.stop_relic(&tenant, &id).await?.into()))
}

/// Removes a relic: its container and its record.
#[utoipa::path(delete, path = "/v1/relics/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_relic(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.core.delete_relic(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A relic's logs: at once as JSON, or followed.
#[utoipa::path(get, path = "/v1/relics/{id}/logs", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = LogsView, description = "JSON; with `follow=true`, NDJSON or SSE of `FollowEvent`s"),
              (status = 404, body = ErrorBody)))]
pub async fn relic_logs(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    observe::logs(&s, &tenant, Target::Relic(id), &q, &headers).await
}

/// A relic's resource use: one sample, or a stream.
#[utoipa::path(get, path = "/v1/relics/{id}/stats", params(("id" = String, Path), StatsQuery),
    responses((status = 200, body = UsageView), (status = 404, body = ErrorBody)))]
pub async fn relic_stats(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    observe::stats(&s, &tenant, Target::Relic(id), &q, &headers).await
}
