//! Agents over HTTP: define (and start), read, list, start, stop, restart,
//! remove, logs, stats, exec (buffered, or interactive over a WebSocket)
//! and renewal of an agent's expiry.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::observe::{self, LogQuery, LogsView, StatsQuery, UsageView};
use super::{AppState, Body, Path, Query, Tenant};
use berth_core::agents::{AgentDefinition, AgentRecord, Worktree};
use berth_core::engine::{ExecOutput, ExecRequest, Stream, TtySize};
use berth_core::observe::Target;
use berth_core::{Agent, Core};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", post(create_agent).get(list_agents))
        .route("/v1/agents/{id}", get(get_agent).delete(delete_agent))
        .route("/v1/agents/{id}/start", post(start_agent))
        .route("/v1/agents/{id}/stop", post(stop_agent))
        .route("/v1/agents/{id}/restart", post(restart_agent))
        .route("/v1/agents/{id}/logs", get(agent_logs))
        .route("/v1/agents/{id}/stats", get(agent_stats))
        .route("/v1/agents/{id}/exec", post(agent_exec))
        .route("/v1/agents/{id}/exec/ws", get(agent_exec_ws))
        .route("/v1/agents/{id}/renew", post(renew_agent))
}

/// A worktree mounted read-write for a uid/gid.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeBody {
    /// Host folder (within the configured bind roots).
    pub host_path: String,
    /// Where it appears inside (default `/workspace`); also the working directory.
    pub mount_at: Option<String>,
    pub uid: u32,
    pub gid: u32,
}

/// An agent to define.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    /// berth picks `agent_<hex>` when absent.
    pub id: Option<String>,
    pub image: String,
    /// Replaces the image's command.
    pub command: Option<Vec<String>>,
    /// Host folder of the agent's code, mounted read-only at `/app/agent`.
    pub code_dir: Option<String>,
    pub worktree: Option<WorktreeBody>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A named network to join (the default bridge when absent).
    pub network: Option<String>,
    /// Container ports to publish on ports of the host's pool.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Memory limit such as `512m`.
    pub memory: Option<String>,
    /// CPU cores, such as `0.5`.
    pub cpu: Option<f64>,
    /// RFC 3339; the reaper removes the container after it.
    pub expires_at: Option<String>,
    /// Extra labels (not under `io.berth.`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub session_id: Option<String>,
    /// Start it now (default true).
    pub start: Option<bool>,
}

/// A published port.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortView {
    pub container: u16,
    pub host: u16,
}

/// An agent and its container.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub image: String,
    pub session_id: Option<String>,
    /// The container's state (`running`, `exited`, …), or `defined` before it exists.
    pub status: String,
    pub container_id: Option<String>,
    pub container_name: String,
    pub ports: Vec<PortView>,
    /// The node it runs on, on a backend of several nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where its published ports are reached, on a backend of several
    /// nodes: its node's address (on one machine, the host's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        let mut view = AgentView::new(a.record, a.status.map(|p| p.as_str().to_owned()));
        view.address = a.address;
        view
    }
}

impl AgentView {
    pub fn new(r: AgentRecord, status: Option<String>) -> AgentView {
        let d = r.definition;
        AgentView {
            node: r.placement.node().map(str::to_owned),
            address: None,
            id: d.id,
            image: d.image,
            session_id: d.session,
            status: status.unwrap_or_else(|| if r.container_id.is_some() { "missing" } else { "defined" }.into()),
            container_id: r.container_id,
            container_name: r.container_name,
            ports: r.published.iter().map(|p| PortView { container: p.container, host: p.host }).collect(),
            expires_at: d.expires_at.map(|t| t.to_rfc3339()),
            created_at: r.created_at.to_rfc3339(),
        }
    }
}

pub(crate) fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::unprocessable(format!("{field}: not an RFC 3339 time ({e})")))
}

/// The core's definition of an agent from the body of a request.
pub fn definition(tenant: &str, body: AgentBody) -> Result<AgentDefinition, ApiError> {
    let (memory, cpu) = super::limits(body.memory.as_deref(), body.cpu)?;
    let expires_at = body.expires_at.as_deref().map(|t| parse_time("expires_at", t)).transpose()?;
    if let Some(id) = &body.id {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(ApiError::unprocessable("id: 1 to 64 of [A-Za-z0-9_.-]"));
        }
    }
    Ok(AgentDefinition {
        id: body.id.unwrap_or_default(),
        tenant: tenant.into(),
        session: body.session_id,
        image: body.image,
        cmd: body.command,
        code_dir: body.code_dir,
        worktree: body.worktree.map(|w| Worktree {
            host_path: w.host_path,
            mount_at: w.mount_at.unwrap_or_else(|| "/workspace".into()),
            uid: w.uid,
            gid: w.gid,
        }),
        env: body.env,
        network: body.network,
        ports: body.ports,
        memory,
        cpu,
        expires_at,
        labels: body.labels,
        name: None,
    })
}

/// Defines an agent and, unless `start` is false, starts it.
#[utoipa::path(post, path = "/v1/agents", request_body = AgentBody,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(body): Body<AgentBody>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let start = body.start.unwrap_or(true);
    let def = definition(&tenant, body)?;
    let agent = s.core.create_agent(def, start).await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

/// The caller's agents.
#[utoipa::path(get, path = "/v1/agents", responses((status = 200, body = Vec<AgentView>), (status = 401, body = ErrorBody)))]
pub async fn list_agents(State(s): State<AppState>, Tenant(tenant): Tenant) -> Result<Json<Vec<AgentView>>, ApiError> {
    Ok(Json(s.core.agents(&tenant).await?.into_iter().map(AgentView::from).collect()))
}

/// One of the caller's agents.
#[utoipa::path(get, path = "/v1/agents/{id}", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn get_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(s.core.agent(&tenant, &id).await?.into()))
}

/// Removes an agent: its container (killed if running), its ports, its record.
#[utoipa::path(delete, path = "/v1/agents/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.core.remove_agent(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts an agent, creating its container when it is missing.
#[utoipa::path(post, path = "/v1/agents/{id}/start", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(s.core.start_agent(&tenant, &id).await?.into()))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StopQuery {
    /// Seconds between SIGTERM and SIGKILL (default 10, at most 300).
    pub grace_seconds: Option<u64>,
}

impl StopQuery {
    pub fn grace(&self) -> Result<Duration, ApiError> {
        match self.grace_seconds {
            Some(g) if g > 300 => Err(ApiError::unprocessable("grace_seconds: at most 300")),
            Some(g) => Ok(Duration::from_secs(g)),
            None => Ok(Core::DEFAULT_GRACE),
        }
    }
}

/// Stops an agent: SIGTERM, then SIGKILL after the grace period.
#[utoipa::path(post, path = "/v1/agents/{id}/stop", params(("id" = String, Path), StopQuery),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn stop_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(s.core.stop_agent(&tenant, &id, q.grace()?).await?.into()))
}

/// Stops, then starts an agent.
#[utoipa::path(post, path = "/v1/agents/{id}/restart", params(("id" = String, Path), StopQuery),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn restart_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(s.core.restart_agent(&tenant, &id, q.grace()?).await?.into()))
}

/// An agent's logs: at once as JSON, or followed.
#[utoipa::path(get, path = "/v1/agents/{id}/logs", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = LogsView, description = "JSON; with `follow=true`, NDJSON or SSE of `FollowEvent`s"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn agent_logs(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    observe::logs(&s, &tenant, Target::Agent(id), &q, &headers).await
}

/// An agent's resource use: one sample, or a stream.
#[utoipa::path(get, path = "/v1/agents/{id}/stats", params(("id" = String, Path), StatsQuery),
    responses((status = 200, body = UsageView, description = "JSON; with `stream=true`, NDJSON or SSE of `stats` events"),
              (status = 404, body = ErrorBody)))]
pub async fn agent_stats(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    observe::stats(&s, &tenant, Target::Agent(id), &q, &headers).await
}

/// A command to run in a running agent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// A terminal of this size for the command (the interactive exec only):
    /// its output then comes as one stream, and `{"resize":{…}}` resizes it.
    pub tty: Option<TtyBody>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtyBody {
    pub cols: u16,
    pub rows: u16,
}

impl TtyBody {
    fn size(self) -> Result<TtySize, ApiError> {
        if self.cols == 0 || self.rows == 0 {
            return Err(ApiError::unprocessable("tty: cols and rows are at least 1"));
        }
        Ok(TtySize { cols: self.cols, rows: self.rows })
    }
}

impl ExecBody {
    pub fn request(self) -> Result<ExecRequest, ApiError> {
        if self.cmd.is_empty() || self.cmd[0].is_empty() {
            return Err(ApiError::unprocessable("cmd: give the command and its arguments"));
        }
        if let Some(bad) = self.env.iter().find(|e| !e.contains('=')) {
            return Err(ApiError::unprocessable(format!("env: {bad:?} is not NAME=value")));
        }
        Ok(ExecRequest {
            cmd: self.cmd,
            env: self.env,
            working_dir: self.workdir,
            user: self.user,
            stdin: false,
            tty: self.tty.map(TtyBody::size).transpose()?,
        })
    }
}

/// What a command printed and how it exited.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecView {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl From<ExecOutput> for ExecView {
    fn from(o: ExecOutput) -> Self {
        ExecView { exit_code: o.exit_code, stdout: o.stdout, stderr: o.stderr }
    }
}

/// Runs a command in a running agent to its end (output capped).
#[utoipa::path(post, path = "/v1/agents/{id}/exec", params(("id" = String, Path)), request_body = ExecBody,
    responses((status = 200, body = ExecView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn agent_exec(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(body): Body<ExecBody>,
) -> Result<Json<ExecView>, ApiError> {
    if body.tty.is_some() {
        return Err(ApiError::unprocessable("tty: a terminal is for the interactive exec (/exec/ws)"));
    }
    let request = body.request()?;
    Ok(Json(s.core.exec_agent(&tenant, &id, &request).await?.into()))
}

/// An interactive command over a WebSocket. The first message (text) is an
/// `ExecBody`; then binary or text messages are the command's stdin, and a
/// text message `{"eof": true}` (or closing) ends it. berth sends the output
/// as text messages `{"event":"log","stream","data"}` and, last,
/// `{"event":"exit","exit_code"}`, then closes.
#[utoipa::path(get, path = "/v1/agents/{id}/exec/ws", params(("id" = String, Path)),
    responses((status = 101, description = "WebSocket"), (status = 404, body = ErrorBody)))]
pub async fn agent_exec_ws(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Whose agent it is comes first: another tenant learns nothing, not even a 400.
    let record = s.core.agent_record(&tenant, &id)?;
    if record.container_id.is_none() {
        return Err(ApiError::not_found(format!("agent {id} has no container yet")));
    }
    let ws = ws.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let core = s.core.clone();
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| async move {
            if let Err(message) = exec_over(socket, core, tenant, id).await {
                tracing::debug!(%message, "interactive exec ended early");
            }
        })
        .into_response())
}

/// A control message of the interactive exec, sent as text among the stdin:
/// `{"eof": true}` ends the command's input, `{"resize":{"cols","rows"}}`
/// resizes its terminal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum Control {
    Eof(bool),
    Resize(TtyBody),
}

/// The control message a text message is, in any spacing; `None` for the
/// command's input.
fn control(text: &str) -> Option<Control> {
    serde_json::from_str::<Control>(text).ok().filter(|c| !matches!(c, Control::Eof(false)))
}

fn event(ev: &super::follow::FollowEvent) -> Message {
    Message::Text(serde_json::to_string(ev).expect("events serialize").into())
}

async fn exec_over(
    mut socket: WebSocket,
    core: std::sync::Arc<Core>,
    tenant: String,
    agent: String,
) -> Result<(), String> {
    use super::follow::FollowEvent;
    let first = match socket.recv().await {
        Some(Ok(Message::Text(t))) => t,
        _ => return Err("the first message must be the command, as JSON text".into()),
    };
    let request = match serde_json::from_str::<ExecBody>(&first)
        .map_err(|e| e.to_string())
        .and_then(|b| b.request().map_err(|e| e.message))
    {
        Ok(r) => r,
        Err(message) => {
            let _ = socket.send(event(&FollowEvent::Error { message: message.clone() })).await;
            return Err(message);
        }
    };
    let session = match core.exec_agent_interactive(&tenant, &agent, &request).await {
        Ok(s) => s,
        Err(e) => {
            let _ = socket.send(event(&FollowEvent::Error { message: e.to_string() })).await;
            return Err(e.to_string());
        }
    };
    let (berth_core::engine::StdioSession { mut output, mut stdin, exit }, process) = session;
    let (mut tx, mut rx) = socket.split();
    use futures_util::SinkExt;
    // Stdin flows in while output flows out; either side may finish first.
    let feed = async move {
        while let Some(Ok(msg)) = rx.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Text(t) => match control(&t) {
                    Some(Control::Eof(_)) => break,
                    Some(Control::Resize(size)) => {
                        if let Ok(size) = size.size() {
                            if let Err(e) = core.resize_agent_exec(&tenant, &agent, &process, size).await {
                                tracing::debug!(%e, "the terminal was not resized");
                            }
                        }
                        continue;
                    }
                    None => bytes::Bytes::from(t.as_bytes().to_vec()),
                },
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if stdin.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    };
    let drain = async move {
        while let Some(item) = output.next().await {
            let ev = match item {
                Ok(chunk) => FollowEvent::Log {
                    stream: if chunk.stream == Stream::Stderr { Stream::Stderr } else { Stream::Stdout },
                    data: String::from_utf8_lossy(&chunk.data).into_owned(),
                },
                Err(e) => FollowEvent::Error { message: e.to_string() },
            };
            if tx.send(event(&ev)).await.is_err() {
                return Err("the client went away".to_owned());
            }
        }
        let ev = match exit.await {
            Ok(code) => FollowEvent::Exit { status: "exited".into(), exit_code: Some(code), oom_killed: false },
            Err(e) => FollowEvent::Error { message: e.to_string() },
        };
        let _ = tx.send(event(&ev)).await;
        Ok(tx)
    };
    let mut feeding = tokio::spawn(feed);
    let mut tx = drain.await?;
    // Input the client sent before the end still reaches the command; a
    // client that never ends its input is cut off after a moment.
    if tokio::time::timeout(Duration::from_secs(1), &mut feeding).await.is_err() {
        feeding.abort();
    }
    let _ = tx.send(Message::Close(None)).await;
    Ok(())
}

/// A new expiry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// RFC 3339, within the policy's maximum lifetime from now.
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenewView {
    pub id: String,
    pub expires_at: String,
}

/// Moves an agent's expiry.
#[utoipa::path(post, path = "/v1/agents/{id}/renew", params(("id" = String, Path)), request_body = RenewBody,
    responses((status = 200, body = RenewView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn renew_agent(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(body): Body<RenewBody>,
) -> Result<Json<RenewView>, ApiError> {
    s.core.agent_record(&tenant, &id)?;
    let t = parse_time("expires_at", &body.expires_at)?;
    let t = s.core.renew_agent(&tenant, &id, t)?;
    Ok(Json(RenewView { id, expires_at: t.to_rfc3339() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_stdin_is_parsed_in_any_spacing_and_other_text_is_input() {
        for eof in [r#"{"eof": true}"#, r#"{"eof":true}"#, " {\n  \"eof\" :\ttrue\n}\n"] {
            assert!(matches!(control(eof), Some(Control::Eof(true))), "{eof:?}");
        }
        for input in [
            "hello\n",
            "",
            r#"{"eof": false}"#,
            r#"{"eof": "true"}"#,
            r#"{"eof": true, "data": "x"}"#,
            r#""{\"eof\": true}""#,
            r#"{"eof": true}{"eof": true}"#,
            r#"{"resize": {"cols": 80}}"#,
        ] {
            assert!(control(input).is_none(), "{input:?}");
        }
    }

    #[test]
    fn a_resize_is_a_control_message_and_a_zero_size_is_refused() {
        let Some(Control::Resize(size)) = control(r#"{"resize": {"cols": 120, "rows": 40}}"#) else {
            panic!("a resize")
        };
        assert_eq!(size.size().unwrap(), TtySize { cols: 120, rows: 40 });
        assert!(TtyBody { cols: 0, rows: 40 }.size().is_err());
    }
}
