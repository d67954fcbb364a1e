//! The LAIS docker orchestrator (port 8000): agents deployed from a
//! pre-built runner image with their generated code mounted read-only at
//! `/app/agent`, managed as containers, with metrics, logs (read, or
//! streamed over a WebSocket) and health.
//!
//! The LAIS README lists routes but no bodies; the shapes here are the
//! obvious ones, documented in README.md. `{id}` is the agent id that
//! deploy answers with (a container name or id works too).

use std::collections::BTreeMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{find_agent, usage_numbers, Caller, Detail, DialectState, Form, Params};
use berth_core::agents::{AgentDefinition, AgentRecord};
use berth_core::engine::LogRequest;
use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::observe::Target;
use berth_core::{Agent, Core};

pub fn routes() -> Router<DialectState> {
    Router::new()
        .route("/api/deploy", post(deploy))
        .route("/api/containers", get(list))
        .route("/api/containers/{id}", get(details).delete(remove))
        .route("/api/containers/{id}/start", post(start))
        .route("/api/containers/{id}/stop", post(stop))
        .route("/api/containers/{id}/metrics", get(metrics))
        .route("/api/containers/{id}/logs", get(logs))
        .route("/api/containers/{id}/logs/stream", get(stream_logs))
        .route("/api/health", get(health))
        .route("/api/health/docker", get(health_docker))
        .route("/api/health/containers", get(health_containers))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deploy {
    /// berth picks one when absent.
    agent_id: Option<String>,
    /// A name for people; also the container's name when given.
    name: Option<String>,
    /// The runner image (`LAIS_RUNNER_IMAGE` when absent).
    image: Option<String>,
    /// Host folder of the generated code (`LAIS_AGENTS_DIR/<agent_id>` when absent).
    code_path: Option<String>,
    #[serde(default, alias = "env_vars", alias = "environment")]
    env: BTreeMap<String, String>,
    /// Container ports to publish on pool ports of the host.
    #[serde(default)]
    ports: Vec<u16>,
    /// Such as `512m`.
    memory_limit: Option<String>,
    cpu_limit: Option<f64>,
    network: Option<String>,
    command: Option<Vec<String>>,
}

fn view(a: Agent) -> Value {
    let status = a.status.map_or("created", |p| p.as_str());
    let r = a.record;
    let d = &r.definition;
    json!({
        "id": d.id,
        "agent_id": d.id,
        "name": d.name.clone().unwrap_or_else(|| r.container_name.clone()),
        "container_id": r.container_id,
        "image": d.image,
        "status": status,
        "ports": r.published.iter().map(|p| json!({"container_port": p.container, "host_port": p.host})).collect::<Vec<_>>(),
        "created_at": r.created_at.to_rfc3339(),
    })
}

async fn deploy(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<Deploy>,
) -> Result<(StatusCode, Json<Value>), Detail> {
    let core = &s.app.core;
    let unprocessable = |m: String| Detail::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let memory = body
        .memory_limit
        .map(|m| m.parse::<ByteSize>())
        .transpose()
        .map_err(|e| unprocessable(format!("memory_limit: {e}")))?;
    let cpu =
        body.cpu_limit.map(CpuLimit::from_cores).transpose().map_err(|e| unprocessable(format!("cpu_limit: {e}")))?;
    let mut def = AgentDefinition {
        id: body.agent_id.unwrap_or_default(),
        tenant: tenant.clone(),
        session: None,
        image: body.image.unwrap_or_else(|| s.env.lais_image.clone()),
        cmd: body.command,
        code_dir: body.code_path,
        worktree: None,
        env: body.env,
        network: body.network,
        ports: body.ports,
        memory,
        cpu,
        expires_at: None,
        labels: BTreeMap::new(),
        name: body.name,
    };
    if def.code_dir.is_none() && !def.id.is_empty() {
        def.code_dir = Some(format!("{}/{}", s.env.lais_agents_dir.trim_end_matches('/'), def.id));
    }
    Ok((StatusCode::CREATED, Json(view(core.create_agent(def, true).await?))))
}

async fn list(State(s): State<DialectState>, Caller(tenant): Caller) -> Result<Json<Vec<Value>>, Detail> {
    Ok(Json(s.app.core.agents(&tenant).await?.into_iter().map(view).collect()))
}

async fn details(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    Ok(Json(view(s.app.core.agent(&tenant, &r.definition.id).await?)))
}

async fn start(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    Ok(Json(view(s.app.core.start_agent(&tenant, &r.definition.id).await?)))
}

async fn stop(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    Ok(Json(view(s.app.core.stop_agent(&tenant, &r.definition.id, Core::DEFAULT_GRACE).await?)))
}

async fn remove(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    s.app.core.remove_agent(&tenant, &r.definition.id).await?;
    Ok(Json(json!({"id": r.definition.id, "removed": true})))
}

/// The agent as a target to observe, once its container has been made.
fn observed(r: &AgentRecord) -> Result<Target, Detail> {
    match r.container_id {
        Some(_) => Ok(Target::Agent(r.definition.id.clone())),
        None => Err(Detail::not_found(format!("Container {} has not been created", r.definition.id))),
    }
}

async fn metrics(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    let u = s.app.core.usage(&tenant, &observed(&r)?).await?;
    let mut v = usage_numbers(&u);
    v.insert("id".into(), json!(r.definition.id));
    Ok(Json(Value::Object(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogParams {
    /// Last lines (default 100).
    tail: Option<u64>,
    #[serde(default)]
    timestamps: bool,
    /// Unix seconds.
    since: Option<i64>,
}

async fn logs(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    Params(q): Params<LogParams>,
) -> Result<Json<Value>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    let request =
        LogRequest { follow: false, tail: Some(q.tail.unwrap_or(100)), since: q.since, timestamps: q.timestamps };
    let read = s.app.core.read_logs(&tenant, &observed(&r)?, &request).await?;
    Ok(Json(json!({"id": r.definition.id, "logs": read.logs, "truncated": read.truncated})))
}

/// Logs followed over a WebSocket: each piece of output as a text message,
/// a ping while the agent is quiet, a close when it ends.
async fn stream_logs(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    let target = observed(&r)?;
    let ws = ws.map_err(|e| Detail::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let request = LogRequest { follow: true, tail: Some(100), since: None, timestamps: false };
    let stream = s.app.core.follow_logs(&tenant, &target, &request).await?.output;
    let keepalive = s.app.keepalive;
    Ok(ws.on_upgrade(move |socket| forward(socket, stream, keepalive)))
}

async fn forward(mut socket: WebSocket, mut stream: berth_core::engine::LogStream, keepalive: std::time::Duration) {
    loop {
        let msg = match tokio::time::timeout(keepalive, stream.next()).await {
            Err(_) => Message::Ping(Default::default()),
            Ok(Some(Ok(chunk))) => Message::Text(String::from_utf8_lossy(&chunk.data).into_owned().into()),
            Ok(Some(Err(e))) => Message::Text(format!("[berth: log stream broke: {e}]").into()),
            Ok(None) => break,
        };
        if socket.send(msg).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn health(State(s): State<DialectState>) -> Json<Value> {
    Json(json!({"status": "healthy", "service": "docker-orchestrator", "backend": s.app.core.backend_name()}))
}

async fn health_docker(State(s): State<DialectState>) -> (StatusCode, Json<Value>) {
    match s.app.core.engine_health().await.error {
        None => (StatusCode::OK, Json(json!({"status": "connected", "connected": true}))),
        Some(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "disconnected", "connected": false, "error": e})))
        }
    }
}

async fn health_containers(State(s): State<DialectState>, Caller(tenant): Caller) -> Result<Json<Value>, Detail> {
    let containers = s.app.core.containers(&tenant, Some(berth_core::spec::Kind::Agent)).await?;
    let running = containers.iter().filter(|c| c.phase == berth_core::engine::Phase::Running).count();
    Ok(Json(json!({
        "total": containers.len(),
        "running": running,
        "stopped": containers.len() - running,
        "containers": containers.iter().map(|c| json!({"name": c.name, "status": c.phase.as_str()})).collect::<Vec<_>>(),
    })))
}
