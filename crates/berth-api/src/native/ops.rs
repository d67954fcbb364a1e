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
use berth_core::pool::PoolStats;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/audit", get(audit))
        .route("/v1/pools", get(pools))
        .route("/v1/metrics", get(metrics))
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
    Json(Health { status: "ok".into(), backend: s.core.backend_name().into(), engine: None })
}

/// Readiness: the engine answers too.
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let up = s.core.engine_health().await.error.is_none();
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health {
        status: if up { "ok" } else { "degraded" }.into(),
        backend: s.core.backend_name().into(),
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
    let entries = s.core.audit_trail(&tenant, q.limit.unwrap_or(100).min(1000))?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditView { at: e.at, action: e.action, target: e.target, outcome: e.outcome })
            .collect(),
    ))
}

/// The warm pools (empty when pools are off). They serve every tenant; any
/// authenticated caller may read their numbers.
#[utoipa::path(get, path = "/v1/pools",
    responses((status = 200, body = Vec<PoolView>), (status = 401, body = ErrorBody)))]
pub async fn pools(State(s): State<AppState>, Tenant(_): Tenant) -> Json<Vec<PoolView>> {
    Json(s.core.pool_stats().into_iter().map(PoolView::from).collect())
}

/// A pool's numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolView {
    /// The language the pool serves (`python`), or `tool:` and the tool image.
    pub name: String,
    pub image: String,
    /// `configured` (a language's, kept at its min) or `demand` (a tool
    /// image's, sized by its runs within the last window).
    pub origin: String,
    /// Members ready now.
    pub idle: usize,
    /// Members being made now.
    pub creating: usize,
    pub min: usize,
    pub max: usize,
    /// Runs served by a member.
    pub hits: u64,
    /// Runs of the pool's language that took the cold path (the pool was
    /// empty, or the request did not fit the pool's profile).
    pub misses: u64,
    /// Members made.
    pub refills: u64,
    /// Members that could not be made.
    pub refill_failures: u64,
    /// Members found gone (reaped, engine restarted) when taken.
    pub lost: u64,
    /// How long the last member took to be created and started.
    pub last_refill_ms: Option<u64>,
}

impl From<PoolStats> for PoolView {
    fn from(p: PoolStats) -> Self {
        PoolView {
            name: p.name,
            image: p.image,
            origin: p.origin.as_str().into(),
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
        }
    }
}

/// The warm pools' numbers in the Prometheus text format, for a scraper:
/// gauges of members (`berth_pool_idle`, `_creating`, `_min`, `_max`), the
/// counters (`berth_pool_hits_total`, `_misses_total`, `_refills_total`,
/// `_refill_failures_total`, `_lost_total`) and the last refill's time,
/// each labelled with its pool.
#[utoipa::path(get, path = "/v1/metrics",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String), (status = 401, body = ErrorBody)))]
pub async fn metrics(State(s): State<AppState>, Tenant(_): Tenant) -> impl axum::response::IntoResponse {
    let stats = s.core.pool_stats();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], exposition(&stats))
}

/// One family per number, one sample per pool.
fn exposition(stats: &[PoolStats]) -> String {
    type Read = fn(&PoolStats) -> Option<f64>;
    let families: [(&str, &str, &str, Read); 10] = [
        ("berth_pool_idle", "gauge", "Members ready now.", |p| Some(p.idle as f64)),
        ("berth_pool_creating", "gauge", "Members being made now.", |p| Some(p.creating as f64)),
        ("berth_pool_min", "gauge", "Members the pool keeps ready.", |p| Some(p.min as f64)),
        ("berth_pool_max", "gauge", "Members the pool holds at most.", |p| Some(p.max as f64)),
        ("berth_pool_hits_total", "counter", "Runs served by a member.", |p| Some(p.hits as f64)),
        ("berth_pool_misses_total", "counter", "Runs of the pool that went cold.", |p| Some(p.misses as f64)),
        ("berth_pool_refills_total", "counter", "Members made.", |p| Some(p.refills as f64)),
        ("berth_pool_refill_failures_total", "counter", "Members that could not be made.", |p| {
            Some(p.refill_failures as f64)
        }),
        ("berth_pool_lost_total", "counter", "Members found gone when taken.", |p| Some(p.lost as f64)),
        ("berth_pool_last_refill_seconds", "gauge", "How long the last member took to be made.", |p| {
            p.last_refill_ms.map(|ms| ms as f64 / 1000.0)
        }),
    ];
    let mut out = String::new();
    for (name, kind, help, read) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for p in stats {
            if let Some(value) = read(p) {
                out.push_str(&format!(
                    "{name}{{pool=\"{}\",origin=\"{}\"}} {value}\n",
                    label(&p.name),
                    label(p.origin.as_str())
                ));
            }
        }
    }
    out
}

/// A label value with `\\`, `"` and newlines escaped, as the format asks.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_every_pool_with_escaped_labels() {
        let pool = |name: &str, last| PoolStats {
            name: name.into(),
            image: "busybox:1.35".into(),
            origin: berth_core::pool::PoolOrigin::Demand,
            idle: 2,
            creating: 0,
            min: 2,
            max: 4,
            hits: 7,
            misses: 1,
            refills: 9,
            refill_failures: 0,
            lost: 0,
            last_refill_ms: last,
        };
        let text = exposition(&[pool("tool:a\"b", Some(250)), pool("sh", None)]);
        assert!(text.contains("# TYPE berth_pool_hits_total counter\n"), "{text}");
        assert!(text.contains("berth_pool_hits_total{pool=\"tool:a\\\"b\",origin=\"demand\"} 7\n"), "{text}");
        assert!(text.contains("berth_pool_last_refill_seconds{pool=\"tool:a\\\"b\",origin=\"demand\"} 0.25\n"));
        assert!(!text.contains("berth_pool_last_refill_seconds{pool=\"sh\""), "no sample without a value");
        assert_eq!(text.lines().filter(|l| l.starts_with("berth_pool_idle{")).count(), 2);
    }
}
