//! docker-spawner (port 7435): agent containers spawned for a bead with its
//! worktree mounted for a uid/gid and an expiry, their status, stop (10 s
//! graceful, then removed) and exec, with its `com.tidepool.*` labels.
//!
//! The container is named after the hostname the spawner answers with
//! (`tidepool-agent-<bead_id>`) and the worktree appears at `/workspace`,
//! the working directory of its exec example. `{id}` is the bead id, the
//! container's name or its id.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ensure_named_network, find_agent, Caller, Detail, DialectState, Form};
use crate::native::agents::{ExecBody, ExecView};
use berth_core::agents::{AgentDefinition, Worktree};
use berth_core::engine::ExecRequest;

pub fn routes() -> Router<DialectState> {
    Router::new()
        .route("/health", get(health))
        .route("/spawn", post(spawn))
        .route("/status/{id}", get(status))
        .route("/stop/{id}", post(stop))
        .route("/exec/{id}", post(exec))
}

/// Where the worktree is mounted, and the exec's default working directory.
const WORKSPACE: &str = "/workspace";

async fn health() -> Json<&'static str> {
    Json("OK")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spawn {
    bead_id: String,
    worktree_path: String,
    /// The agent's model backend (`claude`, …), given to the container as
    /// `TIDEPOOL_BACKEND`; the seed's field `backend`, not berth's engine.
    #[serde(rename = "backend")]
    model_backend: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    /// RFC 3339; `None` is "never" (the policy's maximum lifetime still holds).
    expires_at: Option<String>,
}

async fn spawn(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<Spawn>,
) -> Result<Json<Value>, Detail> {
    let bad = |m: String| Detail::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)))
        .transpose()
        .map_err(|e| bad(format!("expires_at: not an RFC 3339 time ({e})")))?;
    let hostname = format!("tidepool-agent-{}", body.bead_id);
    let mut env = BTreeMap::from([("TIDEPOOL_BEAD_ID".to_owned(), body.bead_id.clone())]);
    if let Some(b) = &body.model_backend {
        env.insert("TIDEPOOL_BACKEND".into(), b.clone());
    }
    let labels = BTreeMap::from([
        ("com.tidepool.bead_id".to_owned(), body.bead_id.clone()),
        ("com.tidepool.role".to_owned(), "agent".to_owned()),
        ("com.tidepool.expires_at".to_owned(), expires_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())),
    ]);
    let def = AgentDefinition {
        id: body.bead_id.clone(),
        tenant: tenant.clone(),
        session: None,
        image: s.env.tidepool_image.clone(),
        cmd: None,
        code_dir: None,
        worktree: Some(Worktree {
            host_path: body.worktree_path,
            mount_at: WORKSPACE.into(),
            uid: body.uid.unwrap_or(s.env.host_uid),
            gid: body.gid.unwrap_or(s.env.host_gid),
        }),
        env,
        network: Some(s.env.tidepool_network.clone()),
        ports: vec![],
        memory: None,
        cpu: None,
        expires_at,
        labels,
        name: Some(hostname.clone()),
    };
    let core = &s.app.core;
    ensure_named_network(&s, &s.env.tidepool_network).await?;
    let agent = match core.create_agent(def, true).await {
        Ok(a) => a,
        Err(e) => {
            // A spawn that fails leaves nothing behind, so the bead can be spawned again.
            if e.kind() != berth_core::ErrorKind::Conflict {
                let _ = core.remove_agent(&tenant, &body.bead_id).await;
            }
            return Err(e.into());
        }
    };
    Ok(Json(json!({"container_id": agent.record.container_id, "hostname": hostname})))
}

async fn status(State(s): State<DialectState>, Caller(tenant): Caller, Path(id): Path<String>) -> Json<Value> {
    let Ok(r) = find_agent(&s, &tenant, &id) else {
        return Json(json!({"status": "not_found"}));
    };
    let status = match s.app.core.agent(&tenant, &r.definition.id).await {
        Ok(a) => a.status.map_or("not_found", |p| p.as_str()),
        Err(_) => "not_found",
    };
    Json(json!({ "status": status }))
}

async fn stop(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    let core = &s.app.core;
    core.stop_agent(&tenant, &r.definition.id, Duration::from_secs(10)).await?;
    core.remove_agent(&tenant, &r.definition.id).await?;
    Ok(StatusCode::OK)
}

async fn exec(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    Form(body): Form<ExecBody>,
) -> Result<Json<ExecView>, Detail> {
    let r = find_agent(&s, &tenant, &id)?;
    let mut request: ExecRequest = body.request()?;
    if request.working_dir.is_none() && r.definition.worktree.is_some() {
        request.working_dir = Some(WORKSPACE.into());
    }
    let out = s.app.core.exec_agent(&tenant, &r.definition.id, &request).await?;
    // In the README's field order: exit_code, stdout, stderr.
    Ok(Json(out.into()))
}
