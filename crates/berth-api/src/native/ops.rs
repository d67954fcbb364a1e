//! Operating berth over HTTP: liveness, readiness (which reports the
//! engine), the caller's audit trail and the warm pools' numbers.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::{exposition, AppState, Query, Tenant};
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
    /// The OCI runtimes probed at start-up: whether sealed runs (code runs,
    /// tool runs with no network) go to each, and why not when not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<RuntimeView>,
    /// Why the engine is not ready (readiness only, when it is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A cluster's nodes and their states (readiness only, on a cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// The node's configured name.
    pub name: String,
    /// `ready`, `down`, `disconnected` or `unknown`, as the manager sees it.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeView {
    pub runtime: String,
    /// `ok` or `refused`.
    pub probe: String,
    /// Its version, or why the probe failed.
    pub detail: String,
}

fn runtimes(s: &AppState) -> Vec<RuntimeView> {
    s.core
        .runtimes()
        .iter()
        .map(|p| RuntimeView {
            runtime: p.runtime.clone(),
            probe: if p.ok { "ok" } else { "refused" }.into(),
            detail: p.detail.clone(),
        })
        .collect()
}

/// Liveness: berth answers.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
pub async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        backend: s.core.backend_name().into(),
        engine: None,
        runtimes: runtimes(&s),
        reason: None,
        nodes: Vec::new(),
    })
}

/// Readiness: the engine answers too, and on a cluster some node can take
/// work (every node's state is in the answer).
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let health = s.core.engine_health().await;
    let up = health.error.is_none();
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let nodes = health
        .nodes
        .iter()
        .map(|n| NodeView {
            name: n.name.clone(),
            state: n.state.as_str().into(),
            availability: n.availability.as_str().into(),
        })
        .collect();
    let body = Health {
        status: if up { "ok" } else { "degraded" }.into(),
        backend: s.core.backend_name().into(),
        engine: Some(if up { "up" } else { "down" }.into()),
        runtimes: runtimes(&s),
        reason: health.error,
        nodes,
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
    /// The language the pool serves (`python`), `tool:` and the tool
    /// image, or `sandbox:` and a template.
    pub name: String,
    pub image: String,
    /// `configured` (a language's, kept at its min), `demand` (a tool
    /// image's, sized by its runs within the last window) or `spares` (a
    /// sandbox template's, `sandbox:` and its name; hits and misses count
    /// sandbox creations).
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

/// berth's numbers in the OpenMetrics text format, for a scraper (README.md
/// lists them): runs started and finished and each phase's latency, engine
/// calls, what exists now (workloads, sessions, sandboxes, nodes), the
/// requests served, and the warm pools: gauges of members
/// (`berth_pool_idle`, `_creating`, `_min`, `_max`), the counters
/// (`berth_pool_hits_total`, `_misses_total`, `_refills_total`,
/// `_refill_failures_total`, `_lost_total`) and the last refill's time,
/// each labelled with its pool and its origin. `Accept: text/plain` alone
/// gets the Prometheus text format instead ([`exposition`]).
#[utoipa::path(get, path = "/v1/metrics",
    responses((status = 200, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
              (status = 401, body = ErrorBody)))]
pub async fn metrics(
    State(s): State<AppState>,
    Tenant(_): Tenant,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let pools = pool_registry(&s.core.pool_stats());
    let text = exposition(&[s.core.metrics().registry(), &pools, s.traffic.registry()]).map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the metrics could not be written")
    })?;
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    Ok(if exposition::wants_prometheus_text(accept) {
        ([(axum::http::header::CONTENT_TYPE, exposition::PROMETHEUS_TEXT)], exposition::prometheus_text(&text))
    } else {
        ([(axum::http::header::CONTENT_TYPE, exposition::OPENMETRICS)], text)
    })
}

/// The labels of a pool's samples.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    origin: String,
}

impl PoolLabels {
    fn of(p: &PoolStats) -> PoolLabels {
        PoolLabels { pool: p.name.clone(), origin: p.origin.as_str().into() }
    }
}

/// A family that is described even while it has no sample (no pools, or no
/// pool with a last refill), so a scraper always sees every name berth serves.
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// `registries` in one exposition, ended once.
fn exposition(registries: &[&Registry]) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    for registry in registries {
        encode_registry(&mut out, registry)?;
    }
    encode_eof(&mut out)?;
    Ok(out)
}

/// One family per number, one sample per pool, in a registry made for this
/// scrape from the pools' numbers of now.
fn pool_registry(stats: &[PoolStats]) -> Registry {
    type Read = fn(&PoolStats) -> u64;
    // The registry adds the `_total` of counters and the `.` of help texts.
    let gauges: [(&str, &str, Read); 4] = [
        ("idle", "Members ready now", |p| p.idle as u64),
        ("creating", "Members being made now", |p| p.creating as u64),
        ("min", "Members the pool keeps ready", |p| p.min as u64),
        ("max", "Members the pool holds at most", |p| p.max as u64),
    ];
    let counters: [(&str, &str, Read); 5] = [
        ("hits", "Runs served by a member", |p| p.hits),
        ("misses", "Runs of the pool that went cold", |p| p.misses),
        ("refills", "Members made", |p| p.refills),
        ("refill_failures", "Members that could not be made", |p| p.refill_failures),
        ("lost", "Members found gone when taken", |p| p.lost),
    ];
    let mut registry = Registry::with_prefix("berth_pool");
    for (name, help, read) in gauges {
        let family = Family::<PoolLabels, Gauge<u64, AtomicU64>>::default();
        for p in stats {
            family.get_or_create(&PoolLabels::of(p)).set(read(p));
        }
        registry.register(name, help, Described(family));
    }
    for (name, help, read) in counters {
        let family = Family::<PoolLabels, Counter>::default();
        for p in stats {
            family.get_or_create(&PoolLabels::of(p)).inc_by(read(p));
        }
        registry.register(name, help, Described(family));
    }
    let last_refill = Family::<PoolLabels, Gauge<f64, AtomicU64>>::default();
    for p in stats {
        if let Some(ms) = p.last_refill_ms {
            last_refill.get_or_create(&PoolLabels::of(p)).set(ms as f64 / 1000.0);
        }
    }
    registry.register_with_unit(
        "last_refill",
        "How long the last member took to be made",
        Unit::Seconds,
        Described(last_refill),
    );
    registry
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
        let text = exposition(&[&pool_registry(&[pool("tool:a\"b\\c\nd", Some(250)), pool("sh", None)])]).unwrap();
        let tool = "{pool=\"tool:a\\\"b\\\\c\\nd\",origin=\"demand\"}";
        assert!(text.contains("# TYPE berth_pool_hits counter\n"), "{text}");
        assert!(text.contains("# HELP berth_pool_hits Runs served by a member.\n"), "{text}");
        assert!(text.contains(&format!("berth_pool_hits_total{tool} 7\n")), "{text}");
        assert!(text.contains(&format!("berth_pool_idle{tool} 2\n")), "{text}");
        assert!(text.contains(&format!("berth_pool_last_refill_seconds{tool} 0.25\n")), "{text}");
        assert!(text.contains("# UNIT berth_pool_last_refill_seconds seconds\n"), "{text}");
        assert!(!text.contains("berth_pool_last_refill_seconds{pool=\"sh\""), "no sample without a value: {text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("berth_pool_idle{")).count(), 2);
        for name in [
            "idle",
            "creating",
            "min",
            "max",
            "hits_total",
            "misses_total",
            "refills_total",
            "refill_failures_total",
            "lost_total",
            "last_refill_seconds",
        ] {
            assert!(text.contains(&format!("\nberth_pool_{name}{tool} ")), "{name} missing: {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn without_pools_every_family_is_described_and_has_no_sample() {
        let text = exposition(&[&pool_registry(&[])]).unwrap();
        assert!(text.contains("# TYPE berth_pool_hits counter\n"), "{text}");
        assert!(text.contains("# TYPE berth_pool_idle gauge\n"), "{text}");
        assert!(text.contains("# UNIT berth_pool_last_refill_seconds seconds\n"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), 10, "{text}");
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
