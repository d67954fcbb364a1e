//! Operating berth over HTTP: liveness, readiness (which reports the
//! engine), the caller's audit trail and the warm pools' numbers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::{AppState, Query, Tenant};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/audit", get(audit))
        .route("/v1/pools", get(pools))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    /// `docker` or `oci-dry-run`.
    pub backend: String,
    /// `up` or `down` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// Liveness: berth answers.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
pub async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), backend: s.core.backend.name().into(), engine: None })
}

/// Readiness: the engine answers too.
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let up = s.core.backend.ping().await.is_ok();
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health {
        status: if up { "ok" } else { "degraded" }.into(),
        backend: s.core.backend.name().into(),
        engine: Some(if up { "up" } else { "down" }.into()),
    };
    (status, Json(body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One thing done on the caller's behalf.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// The caller's audit trail, newest first.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn audit(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let entries = s.core.store.audit_trail(&tenant, q.limit.unwrap_or(100).min(1000))?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditView { at: e.at, action: e.action, target: e.target, outcome: e.outcome })
            .collect(),
    ))
}

/// A warm pool of code sandboxes and its counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// The language the pool serves.
    pub name: String,
    pub image: String,
    /// Members ready now.
    pub idle: usize,
    /// Members being made now.
    pub creating: usize,
    pub min: usize,
    pub max: usize,
    /// Runs served by a member.
    pub hits: u64,
    /// Runs of the language that took the cold path (the pool was empty, or
    /// the run did not fit the pool's limits).
    pub misses: u64,
    /// Members made.
    pub refills: u64,
    pub refill_failures: u64,
    /// Members found gone when taken.
    pub lost: u64,
    /// How long the last member took to be created and started.
    pub last_refill_ms: Option<u64>,
}

/// The warm pools (empty when pools are off). They serve every tenant; any
/// authenticated caller may read their numbers.
#[utoipa::path(get, path = "/v1/pools",
    responses((status = 200, body = Vec<PoolView>), (status = 401, body = ErrorBody)))]
pub async fn pools(State(s): State<AppState>, Tenant(_): Tenant) -> Json<Vec<PoolView>> {
    let stats = s.core.pools.as_ref().map(|p| p.stats()).unwrap_or_default();
    Json(
        stats
            .into_iter()
            .map(|p| PoolView {
                name: p.name,
                image: p.image,
                idle: p.idle,
                creating: p.creating,
                min: p.min,
                max: p.max,
                hits: p.hits,
                misses: p.misses,
                refills: p.refills,
                refill_failures: p.refill_failures,
                lost: p.lost,
                last_refill_ms: p.last_refill_ms,
            })
            .collect(),
    )
}
