//! Warder's agent container routes (berth's port 8001: Warder's own server
//! runs on uvicorn's default, which LAIS has): start (creating the
//! container when missing, from `AGENT_IMAGE` on `AGENT_NETWORK` with a
//! port from `AGENT_PORT_RANGE_START`–`END`), stop, logs and stats, in the
//! `message`, `logs` and `stats` shapes of its documentation.
//!
//! Warder keeps an agent's container settings with the agent in its own
//! database; berth takes them, when a client has them, as an optional body
//! of the start request (`container_config`, as in Warder's agent create).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ensure_named_network, mib, Caller, Detail, DialectState, Params};
use berth_core::agents::AgentDefinition;
use berth_core::engine::LogRequest;
use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::observe::Target;
use berth_core::Core;

pub fn routes() -> Router<DialectState> {
    Router::new()
        .route("/api/agents/{agent_id}/start", post(start))
        .route("/api/agents/{agent_id}/stop", post(stop))
        .route("/api/agents/{agent_id}/logs", get(logs))
        .route("/api/agents/{agent_id}/stats", get(stats))
}

/// The port an agent serves on inside its container, published from the pool.
const AGENT_PORT: u16 = 8000;

#[derive(Debug, Default, Deserialize)]
struct ContainerConfig {
    image: Option<String>,
    /// Such as `512m`.
    memory_limit: Option<String>,
    cpu_limit: Option<f64>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
}

/// The start request's optional body: Warder's agent, or its `container_config` alone.
#[derive(Debug, Default, Deserialize)]
struct StartBody {
    container_config: Option<ContainerConfig>,
    #[serde(flatten)]
    direct: ContainerConfig,
}

fn not_found() -> Detail {
    Detail::not_found("Agent not found")
}

fn message(text: &str) -> Json<Value> {
    Json(json!({ "message": text }))
}

async fn start(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(agent_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Detail> {
    let core = &s.app.core;
    let bad = |m: String| Detail::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    if core.agent_record(&tenant, &agent_id).is_err() {
        let given: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
            StartBody::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| bad(format!("body: {e}")))?
        };
        let c = given.container_config.unwrap_or(given.direct);
        let memory =
            c.memory_limit.map(|m| m.parse::<ByteSize>()).transpose().map_err(|e| bad(format!("memory_limit: {e}")))?;
        let cpu = c.cpu_limit.map(CpuLimit::from_cores).transpose().map_err(|e| bad(format!("cpu_limit: {e}")))?;
        ensure_named_network(&s, &s.env.warder_network).await?;
        let def = AgentDefinition {
            id: agent_id.clone(),
            tenant: tenant.clone(),
            session: None,
            image: c.image.unwrap_or_else(|| s.env.warder_image.clone()),
            cmd: None,
            code_dir: None,
            worktree: None,
            env: c.env_vars,
            network: Some(s.env.warder_network.clone()),
            ports: vec![AGENT_PORT],
            memory,
            cpu,
            expires_at: None,
            labels: BTreeMap::from([("warder.agent_id".to_owned(), agent_id.clone())]),
            name: Some(format!("warder-agent-{agent_id}")),
        };
        match core.define_agent(def) {
            Ok(_) => {}
            // Defined a moment ago by a start racing this one.
            Err(e) if e.kind() == berth_core::ErrorKind::Conflict => {}
            Err(e) => return Err(e.into()),
        }
    }
    core.start_agent(&tenant, &agent_id).await?;
    Ok(message("Agent container started successfully"))
}

async fn stop(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, Detail> {
    s.app.core.agent_record(&tenant, &agent_id).map_err(|_| not_found())?;
    s.app.core.stop_agent(&tenant, &agent_id, Core::DEFAULT_GRACE).await?;
    Ok(message("Agent container stopped successfully"))
}

/// The agent as a target to observe, once its container has been made.
fn observed(s: &DialectState, tenant: &str, agent_id: &str) -> Result<Target, Detail> {
    let r = s.app.core.agent_record(tenant, agent_id).map_err(|_| not_found())?;
    match r.container_id {
        Some(_) => Ok(Target::Agent(agent_id.to_owned())),
        None => Err(Detail::not_found("Agent container not found")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lines {
    /// Number of log lines (default 100).
    lines: Option<u64>,
}

async fn logs(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(agent_id): Path<String>,
    Params(q): Params<Lines>,
) -> Result<Json<Value>, Detail> {
    let target = observed(&s, &tenant, &agent_id)?;
    let request = LogRequest { tail: Some(q.lines.unwrap_or(100)), ..Default::default() };
    let read = s.app.core.read_logs(&tenant, &target, &request).await?;
    Ok(Json(json!({ "logs": read.logs })))
}

async fn stats(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let target = observed(&s, &tenant, &agent_id)?;
    let u = s.app.core.usage(&tenant, &target).await?;
    let mb = |b: Option<u64>| b.map(|b| format!("{}MB", mib(b)));
    let percent = u.memory_percent().map(|p| format!("{p:.2}%"));
    Ok(Json(json!({
        "stats": {
            "cpu_usage": format!("{:.2}%", u.cpu_percent.unwrap_or(0.0)),
            "memory_usage": mb(u.memory_used),
            "memory_limit": mb(u.memory_limit),
            "memory_percent": percent,
            "network_rx_bytes": u.net_rx,
            "network_tx_bytes": u.net_tx,
            "block_read_bytes": u.block_read,
            "block_write_bytes": u.block_write,
            "pids": u.pids,
        }
    })))
}
