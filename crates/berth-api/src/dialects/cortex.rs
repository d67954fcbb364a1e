//! Cortex-Prime's container orchestrator (port 8086): tool executions run
//! to completion, session-scoped relics on private networks, stats and
//! session cleanup, with the request and response fields of its README.
//!
//! Where the README shows no shape (a tool execution's result, stats), the
//! obvious one is chosen and documented in README.md: an execution is
//! berth's run record under Cortex's names (`execution_id`, `tool_name`,
//! `resource_usage`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{mib, usage_numbers, Caller, Detail, DialectState, Form, Params};
use berth_core::engine::Usage;
use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::relics::{RelicRecord, RelicRequest};
use berth_core::runs::{RunId, RunRecord, RunRequest, RunStatus, Workload};
use berth_core::spec::labels;

pub fn routes() -> Router<DialectState> {
    Router::new()
        .route("/health", get(health))
        .route("/containers/tool/execute", post(execute))
        .route("/containers/tool/{id}", get(tool))
        .route("/containers/tool/{id}/logs", get(tool_logs))
        .route("/containers/tool/{id}/cancel", post(cancel))
        .route("/containers/relic/start", post(start_relic))
        .route("/containers/relic", get(list_relics))
        .route("/containers/relic/{id}", get(relic).delete(delete_relic))
        .route("/containers/relic/{id}/stop", post(stop_relic))
        .route("/containers/stats", get(all_stats))
        .route("/containers/stats/{id}", get(one_stats))
        .route("/containers/cleanup/session", post(cleanup_session))
        .route("/containers/cleanup/all-networks", post(cleanup_networks))
}

async fn health(State(s): State<DialectState>) -> Json<Value> {
    let docker = s.app.core.engine_health().await.error.is_none();
    Json(json!({
        "status": if docker { "healthy" } else { "degraded" },
        "service": "container_orchestrator",
        "docker_connected": docker,
        "backend": s.app.core.backend_name(),
    }))
}

/// Memory, CPU and timeout, as Cortex gives them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceLimits {
    memory_mb: Option<u64>,
    cpu_limit: Option<f64>,
    timeout_seconds: Option<u64>,
}

impl ResourceLimits {
    fn parse(&self) -> Result<(Option<ByteSize>, Option<CpuLimit>), Detail> {
        let cpu = self
            .cpu_limit
            .map(CpuLimit::from_cores)
            .transpose()
            .map_err(|e| Detail::new(StatusCode::UNPROCESSABLE_ENTITY, format!("cpu_limit: {e}")))?;
        Ok((self.memory_mb.map(ByteSize::mib), cpu))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolExecute {
    tool_name: String,
    session_id: Option<String>,
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
    image: String,
    /// berth's addition: the tool's command (the image's own when absent).
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    resource_limits: ResourceLimits,
    cleanup: Option<bool>,
}

/// A tool execution under Cortex's names.
#[derive(Debug, Serialize)]
struct Execution {
    execution_id: String,
    tool_name: Option<String>,
    session_id: Option<String>,
    /// `succeeded`, `failed`, `timed_out`, `oom_killed`, `cancelled` (or `running`).
    status: &'static str,
    success: bool,
    exit_code: Option<i64>,
    stdout: String,
    stderr: String,
    /// The output parsed, when it is JSON.
    result: Option<Value>,
    resource_usage: Value,
    image: String,
    container_id: Option<String>,
    container_removed: bool,
    error: Option<String>,
    started_at: String,
    completed_at: Option<String>,
}

impl From<RunRecord> for Execution {
    fn from(r: RunRecord) -> Self {
        Execution {
            execution_id: r.id.0,
            tool_name: r.name,
            session_id: r.session,
            status: r.status.as_str(),
            success: r.status == RunStatus::Succeeded,
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            result: r.result,
            resource_usage: json!({
                "wall_time_ms": r.usage.wall_ms,
                "cpu_time_ms": r.usage.cpu_ms,
                "peak_memory_mb": r.usage.peak_memory_bytes.map(mib),
            }),
            image: r.image,
            container_id: r.container_id,
            container_removed: r.container_removed,
            error: r.error,
            started_at: r.created_at.to_rfc3339(),
            completed_at: r.finished_at.map(|t| t.to_rfc3339()),
        }
    }
}

async fn execute(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<ToolExecute>,
) -> Result<Json<Execution>, Detail> {
    let (memory, cpu) = body.resource_limits.parse()?;
    let mut req = RunRequest::new(&tenant, Workload::Tool { image: body.image, command: body.command });
    req.name = Some(body.tool_name);
    req.session = body.session_id;
    req.parameters = body.parameters;
    req.env = body.env;
    req.memory = memory;
    req.cpu = cpu;
    req.timeout = body.resource_limits.timeout_seconds.map(Duration::from_secs);
    req.cleanup = body.cleanup.unwrap_or(true);
    let record = s.app.core.run(req, None).await?;
    Ok(Json(record.into()))
}

async fn tool(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Execution>, Detail> {
    Ok(Json(s.app.core.run_record(&tenant, &RunId(id))?.into()))
}

async fn tool_logs(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = s.app.core.run_record(&tenant, &RunId(id))?;
    Ok(Json(json!({
        "execution_id": r.id.0,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "logs": format!("{}{}", r.stdout, r.stderr),
    })))
}

async fn cancel(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let cancelled = s.app.core.cancel_run(&tenant, &RunId(id.clone()))?;
    let status = if cancelled { "cancelling" } else { "already_finished" };
    Ok(Json(json!({"execution_id": id, "cancelled": cancelled, "status": status})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelicStart {
    relic_name: String,
    session_id: String,
    image: String,
    #[serde(default)]
    resource_limits: ResourceLimits,
    create_private_network: Option<bool>,
    health_check_endpoint: Option<String>,
    health_check_timeout_seconds: Option<u64>,
    /// berth's additions: the service's port inside (default 8000), its command, its environment.
    port: Option<u16>,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// A relic in the README's response shape.
fn relic_view(r: RelicRecord) -> Value {
    json!({
        "relic_id": r.relic_id,
        "relic_name": r.relic_name,
        "session_id": r.session_id,
        "status": r.status.as_str(),
        "container_id": r.container_id,
        "container_name": r.container_name,
        "network_id": r.network_id,
        "internal_url": r.internal_url,
        "healthy": r.healthy,
        "error": r.error,
        "created_at": r.created_at.to_rfc3339(),
        "expires_at": r.expires_at.map(|t| t.to_rfc3339()),
    })
}

async fn start_relic(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<RelicStart>,
) -> Result<Json<Value>, Detail> {
    let (memory, cpu) = body.resource_limits.parse()?;
    let req = RelicRequest {
        tenant,
        relic_name: body.relic_name,
        session_id: body.session_id,
        image: body.image,
        cmd: body.command,
        memory,
        cpu,
        create_private_network: body.create_private_network.unwrap_or(true),
        health_check_endpoint: body.health_check_endpoint,
        health_check_timeout: Duration::from_secs(body.health_check_timeout_seconds.unwrap_or(30)),
        port: body.port.unwrap_or(8000),
        env: body.env,
        // Cortex's relic timeout is its lifetime: the reaper ends it then.
        expires_at: body
            .resource_limits
            .timeout_seconds
            .map(|t| s.app.core.now() + chrono::Duration::seconds(t.min(i64::MAX as u64) as i64)),
    };
    Ok(Json(relic_view(s.app.core.start_relic(req).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelicFilter {
    session_id: Option<String>,
}

async fn list_relics(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Params(q): Params<RelicFilter>,
) -> Result<Json<Vec<Value>>, Detail> {
    Ok(Json(s.app.core.relics(&tenant, q.session_id.as_deref())?.into_iter().map(relic_view).collect()))
}

async fn relic(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    Ok(Json(relic_view(s.app.core.relic(&tenant, &id)?)))
}

async fn stop_relic(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    Ok(Json(relic_view(s.app.core.stop_relic(&tenant, &id).await?)))
}

async fn delete_relic(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    s.app.core.delete_relic(&tenant, &id).await?;
    Ok(Json(json!({"relic_id": id, "deleted": true})))
}

/// One container's stats in the Python seeds' numbers.
fn stats_view(c: &berth_core::engine::WorkloadInfo, u: &Usage) -> Value {
    let mut v = usage_numbers(u);
    v.insert("container_id".into(), json!(c.handle.id.0));
    v.insert("container_name".into(), json!(c.name));
    v.insert("kind".into(), json!(c.labels.get(labels::KIND)));
    v.insert("object_id".into(), json!(c.labels.get(labels::OBJECT)));
    v.insert("session_id".into(), json!(c.labels.get(labels::SESSION)));
    v.insert("status".into(), json!(c.phase.as_str()));
    Value::Object(v)
}

async fn all_stats(State(s): State<DialectState>, Caller(tenant): Caller) -> Result<Json<Value>, Detail> {
    let stats: Vec<Value> = s.app.core.running_usage(&tenant).await?.iter().map(|(c, u)| stats_view(c, u)).collect();
    Ok(Json(json!({"total": stats.len(), "containers": stats})))
}

async fn one_stats(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let (c, u) = s.app.core.managed_usage(&tenant, &id).await.map_err(|e| match e.kind() {
        berth_core::ErrorKind::NotFound => Detail::not_found(format!("Container {id} not found")),
        _ => e.into(),
    })?;
    Ok(Json(stats_view(&c, &u)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionCleanup {
    session_id: String,
    #[serde(default)]
    force: bool,
}

async fn cleanup_session(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<SessionCleanup>,
) -> Result<Json<Value>, Detail> {
    let c = s.app.core.end_session(&tenant, &body.session_id, body.force).await?;
    Ok(Json(json!({
        "session_id": body.session_id,
        "containers_removed": c.containers_removed,
        "networks_removed": c.networks_removed,
        "success": true,
    })))
}

async fn cleanup_networks(State(s): State<DialectState>, Caller(_tenant): Caller) -> Result<Json<Value>, Detail> {
    // Only networks no container uses, and not one made a moment ago for a
    // relic that is about to join it: a live session's network stays.
    let removed = s.app.core.sweep_networks(Duration::from_secs(10)).await?;
    Ok(Json(json!({"networks_removed": removed, "count": removed.len()})))
}
