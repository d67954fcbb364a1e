//! Sandboxes over HTTP: long-lived workspaces made from a template, with
//! commands (to their end, or in the background and followed by pid),
//! files and a directory tree, a timeout that refreshes, pause and resume.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::follow::{self, FollowEvent, Format};
use super::{AppState, BearerTenant, Body, Path, Query, Tenant};
use berth_core::engine::Stream;
use berth_core::model::sandbox::SandboxRecord;
use berth_core::policy::NetworkRequest;
use berth_core::sandboxes::link::ProcessEvent;
use berth_core::sandboxes::SandboxRequest;
use berth_core::sandboxes::{Entry, EntryType, Process, PtySize, Spawn, StreamName};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sandboxes", post(create_sandbox).get(list_sandboxes))
        .route("/v1/sandboxes/{id}", get(get_sandbox).delete(kill_sandbox))
        .route("/v1/sandboxes/{id}/timeout", post(set_timeout))
        .route("/v1/sandboxes/{id}/pause", post(pause_sandbox))
        .route("/v1/sandboxes/{id}/resume", post(resume_sandbox))
        .route("/v1/sandboxes/{id}/commands", post(run_command))
        .route("/v1/sandboxes/{id}/processes", get(list_processes))
        .route("/v1/sandboxes/{id}/processes/{pid}/output", get(process_output))
        .route("/v1/sandboxes/{id}/processes/{pid}/stdin", post(process_stdin))
        .route("/v1/sandboxes/{id}/processes/{pid}/close-stdin", post(close_stdin))
        .route("/v1/sandboxes/{id}/processes/{pid}/signal", post(signal_process))
        .route("/v1/sandboxes/{id}/processes/{pid}/resize", post(resize_process))
        // A file's body is streamed to the sandbox; the core bounds its size.
        .route("/v1/sandboxes/{id}/files", get(read_file).put(write_file).delete(remove_path))
        .route("/v1/sandboxes/{id}/fs/stat", get(stat_path))
        .route("/v1/sandboxes/{id}/fs/list", get(list_dir))
        .route("/v1/sandboxes/{id}/fs/mkdir", post(make_dir))
        .route("/v1/sandboxes/{id}/fs/move", post(move_path))
        .route("/v1/sandboxes/{id}/ports/{port}", any(port_root))
        .route("/v1/sandboxes/{id}/ports/{port}/{*path}", any(port_path))
}

/// HTTP to a port a sandbox's process listens on, for the sandbox's tenant
/// (by its bearer token: a console pass does not reach a sandbox's server).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/ports/{port}/{path}",
    params(("id" = String, Path), ("port" = u16, Path), ("path" = String, Path)),
    responses((status = 200, description = "what the sandbox's server answers (any method)"),
              (status = 404, body = ErrorBody), (status = 502, description = "nothing listens there")))]
pub async fn port_path(
    State(s): State<AppState>,
    BearerTenant(tenant): BearerTenant,
    Path((id, port, path)): Path<(String, u16, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    s.core.sandbox(&tenant, &id).await?;
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(crate::proxy::forward(&s.core, &tenant, &id, port, &format!("/{path}{query}"), request).await)
}

pub async fn port_root(
    State(s): State<AppState>,
    BearerTenant(tenant): BearerTenant,
    Path((id, port)): Path<(String, u16)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    s.core.sandbox(&tenant, &id).await?;
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(crate::proxy::forward(&s.core, &tenant, &id, port, &format!("/{query}"), request).await)
}

/// A sandbox to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxBody {
    /// A configured template (`base` is built in).
    #[serde(default = "base")]
    pub template: String,
    /// Seconds from now (and from each refresh) until it is removed.
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Set in every process's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `none` (the default), `bridge`, or the name of a network (a session's).
    pub network: Option<String>,
}

fn base() -> String {
    "base".into()
}

/// A sandbox as berth reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxView {
    pub sandbox_id: String,
    pub template: String,
    /// `starting`, `running`, `paused` or `ended`.
    pub state: String,
    /// Why it ended: `killed`, `expired`, `engine_lost` or `failed`.
    pub ended: Option<String>,
    /// `cold` (made for this creation) or `pooled` (a spare adopted).
    pub path: String,
    pub metadata: BTreeMap<String, String>,
    pub container_name: String,
    /// The node it runs on, on a backend of several nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub memory_bytes: u64,
    pub cpu_cores: f64,
    /// The size of its writable space (its home).
    pub disk_bytes: u64,
    pub created_at: String,
    /// When it will be removed while it runs.
    pub expires_at: String,
    pub error: Option<String>,
}

impl From<SandboxRecord> for SandboxView {
    fn from(r: SandboxRecord) -> Self {
        SandboxView {
            sandbox_id: r.id,
            template: r.template,
            state: r.state.as_str().into(),
            ended: r.ended.map(|e| e.as_str().into()),
            path: r.path.as_str().into(),
            metadata: r.metadata,
            node: r.placement.node().map(str::to_owned),
            container_name: r.container_name,
            memory_bytes: r.memory_bytes,
            cpu_cores: r.cpu_nanos as f64 / 1e9,
            disk_bytes: r.disk_bytes,
            created_at: r.created_at.to_rfc3339(),
            expires_at: r.expires_at.to_rfc3339(),
            error: r.error,
        }
    }
}

fn network(asked: Option<String>) -> NetworkRequest {
    match asked.as_deref() {
        None | Some("none") => NetworkRequest::None,
        Some("bridge") => NetworkRequest::Bridge,
        Some(name) => NetworkRequest::Named { name: name.into(), aliases: vec![] },
    }
}

/// Makes a sandbox and answers once its helper answers.
#[utoipa::path(post, path = "/v1/sandboxes", request_body = SandboxBody,
    responses((status = 201, body = SandboxView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn create_sandbox(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(b): Body<SandboxBody>,
) -> Result<(StatusCode, Json<SandboxView>), ApiError> {
    let req = SandboxRequest {
        tenant,
        template: b.template,
        timeout: b.timeout_seconds.map(Duration::from_secs),
        metadata: b.metadata,
        env: b.env,
        network: network(b.network),
    };
    Ok((StatusCode::CREATED, Json(s.core.create_sandbox(req).await?.into())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SandboxFilter {
    /// `key=value`: only sandboxes whose metadata has it.
    pub metadata: Option<String>,
    /// Only sandboxes in this state.
    pub state: Option<String>,
}

/// The caller's sandboxes, newest first.
#[utoipa::path(get, path = "/v1/sandboxes", params(SandboxFilter),
    responses((status = 200, body = Vec<SandboxView>), (status = 400, body = ErrorBody)))]
pub async fn list_sandboxes(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Query(f): Query<SandboxFilter>,
) -> Result<Json<Vec<SandboxView>>, ApiError> {
    let wanted = f
        .metadata
        .as_deref()
        .map(|m| m.split_once('=').ok_or_else(|| ApiError::bad_request("metadata: key=value")))
        .transpose()?;
    let all = s.core.sandboxes(&tenant).await?;
    Ok(Json(
        all.into_iter()
            .filter(|r| wanted.is_none_or(|(k, v)| r.metadata.get(k).is_some_and(|have| have == v)))
            .filter(|r| f.state.as_deref().is_none_or(|st| r.state.as_str() == st))
            .map(SandboxView::from)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
pub async fn get_sandbox(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    Ok(Json(s.core.sandbox(&tenant, &id).await?.into()))
}

/// Removes a sandbox; its record stays, ended as killed.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn kill_sandbox(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    Ok(Json(s.core.kill_sandbox(&tenant, &id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutBody {
    pub timeout_seconds: u64,
}

/// Sets the timeout, counted from now.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/timeout", params(("id" = String, Path)), request_body = TimeoutBody,
    responses((status = 200, body = SandboxView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_timeout(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(b): Body<TimeoutBody>,
) -> Result<Json<SandboxView>, ApiError> {
    Ok(Json(s.core.set_sandbox_timeout(&tenant, &id, Duration::from_secs(b.timeout_seconds)).await?.into()))
}

/// Freezes a running sandbox; its timeout stops.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause_sandbox(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    Ok(Json(s.core.pause_sandbox(&tenant, &id).await?.into()))
}

/// Thaws a paused sandbox.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume_sandbox(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    Ok(Json(s.core.resume_sandbox(&tenant, &id).await?.into()))
}

/// A command to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// A shell line, run by `/bin/bash -l -c` (or give `argv`).
    pub cmd: Option<String>,
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// Keep stdin open for `/stdin`.
    #[serde(default)]
    pub stdin: bool,
    /// Answer at once with the pid; follow `/processes/{pid}/output`.
    #[serde(default)]
    pub background: bool,
    /// A terminal of this size.
    pub pty: Option<SizeBody>,
    /// For a foreground command: killed after this long (default 60).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeBody {
    pub cols: u16,
    pub rows: u16,
}

/// How a foreground command ended (a background one answers its pid only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandView {
    pub pid: u32,
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// Runs a command: to its end, or in the background.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/commands", params(("id" = String, Path)), request_body = CommandBody,
    responses((status = 200, body = CommandView), (status = 202, body = CommandView),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_command(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(b): Body<CommandBody>,
) -> Result<(StatusCode, Json<CommandView>), ApiError> {
    let argv = match (b.cmd, b.argv) {
        (Some(line), None) => vec!["/bin/bash".into(), "-l".into(), "-c".into(), line],
        (None, Some(argv)) if !argv.is_empty() => argv,
        _ => return Err(ApiError::bad_request("give one of cmd (a shell line) or argv (not empty)")),
    };
    let spawn = Spawn {
        argv,
        env: b.env,
        cwd: b.cwd,
        pty: b.pty.map(|p| PtySize { cols: p.cols, rows: p.rows }),
        stdin: b.stdin,
        tag: None,
    };
    if b.background {
        let pid = s.core.start_process(&tenant, &id, spawn).await?;
        let view = CommandView { pid, exit_code: None, signal: None, stdout: None, stderr: None };
        return Ok((StatusCode::ACCEPTED, Json(view)));
    }
    let timeout = Duration::from_secs(b.timeout_seconds.unwrap_or(60).max(1));
    let out = s.core.run_command(&tenant, &id, spawn, timeout).await?;
    let view = CommandView {
        pid: out.pid,
        exit_code: out.exit_code,
        signal: out.signal,
        stdout: Some(out.stdout),
        stderr: Some(out.stderr),
    };
    Ok((StatusCode::OK, Json(view)))
}

/// A running process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessView {
    pub pid: u32,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub tag: Option<String>,
    pub pty: bool,
}

impl From<Process> for ProcessView {
    fn from(p: Process) -> Self {
        ProcessView { pid: p.pid, argv: p.argv, cwd: p.cwd, tag: p.tag, pty: p.pty }
    }
}

/// The processes still running.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ProcessView>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn list_processes(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Vec<ProcessView>>, ApiError> {
    Ok(Json(s.core.processes(&tenant, &id).await?.into_iter().map(ProcessView::from).collect()))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// `ndjson` (the default) or `sse`.
    pub format: Option<String>,
}

fn log_event(stream: StreamName, data: &[u8]) -> FollowEvent {
    let stream = match stream {
        StreamName::Stderr => Stream::Stderr,
        StreamName::Stdout => Stream::Stdout,
        StreamName::Pty => Stream::Console,
    };
    FollowEvent::Log { stream, data: String::from_utf8_lossy(data).into_owned() }
}

fn exit_event(code: Option<i32>, signal: Option<i32>) -> FollowEvent {
    let status = if signal.is_some() { "killed" } else { "exited" };
    FollowEvent::Exit { status: status.into(), exit_code: code.map(i64::from), oom_killed: false }
}

/// A process's output, from what is still kept of it, then as it comes,
/// then its exit: what a client that went away reconnects to by pid.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}/output",
    params(("id" = String, Path), ("pid" = u32, Path), OutputQuery),
    responses((status = 200, description = "NDJSON or SSE of `FollowEvent`s"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn process_output(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, pid)): Path<(String, u32)>,
    Query(q): Query<OutputQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::choose(q.format.as_deref(), accept).map_err(ApiError::bad_request)?;
    let following = s.core.follow_process(&tenant, &id, pid).await?;
    // The exit ends the events; it is the follow's last event.
    let exit: Arc<Mutex<Option<FollowEvent>>> = Arc::new(Mutex::new(None));
    let seen = exit.clone();
    let events = following
        .into_stream()
        .filter_map(move |event| {
            let seen = seen.clone();
            std::future::ready(match event {
                Ok(ProcessEvent::Output { stream, data }) => Some(log_event(stream, &data)),
                Ok(ProcessEvent::Exited { code, signal }) => {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(exit_event(code, signal));
                    None
                }
                Err(lost) => Some(FollowEvent::Error { message: lost.to_string() }),
            })
        })
        .boxed();
    let end = Box::pin(async move {
        exit.lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(FollowEvent::Error { message: "the sandbox's link closed before the process ended".into() })
    });
    Ok(follow::respond(events, end, format, s.keepalive))
}

/// Sends the body to the process's stdin (or terminal).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/stdin",
    params(("id" = String, Path), ("pid" = u32, Path)), request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn process_stdin(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, pid)): Path<(String, u32)>,
    data: Bytes,
) -> Result<StatusCode, ApiError> {
    s.core.process_input(&tenant, &id, pid, &data).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/close-stdin",
    params(("id" = String, Path), ("pid" = u32, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close_stdin(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, pid)): Path<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    s.core.close_process_stdin(&tenant, &id, pid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    /// A signal number (9 kills, 15 asks to end).
    pub signal: i32,
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/signal",
    params(("id" = String, Path), ("pid" = u32, Path)), request_body = SignalBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn signal_process(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, pid)): Path<(String, u32)>,
    Body(b): Body<SignalBody>,
) -> Result<StatusCode, ApiError> {
    if !(1..=64).contains(&b.signal) {
        return Err(ApiError::bad_request("signal: 1 to 64"));
    }
    s.core.signal_process(&tenant, &id, pid, b.signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/resize",
    params(("id" = String, Path), ("pid" = u32, Path)), request_body = SizeBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resize_process(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, pid)): Path<(String, u32)>,
    Body(b): Body<SizeBody>,
) -> Result<StatusCode, ApiError> {
    s.core.resize_process(&tenant, &id, pid, PtySize { cols: b.cols, rows: b.rows }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// A path in the sandbox (relative ones start at the home).
    pub path: String,
    /// Levels listed below the path (1: its own entries).
    pub depth: Option<u32>,
}

/// A file system entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub name: String,
    pub path: String,
    /// `file`, `dir`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    pub modified: i64,
    pub symlink_target: Option<String>,
}

impl From<Entry> for EntryView {
    fn from(e: Entry) -> Self {
        let kind = match e.kind {
            EntryType::File => "file",
            EntryType::Dir => "dir",
            EntryType::Symlink => "symlink",
            EntryType::Other => "other",
        };
        EntryView {
            name: e.name,
            path: e.path,
            kind: kind.into(),
            size: e.size,
            mode: e.mode,
            modified: e.modified,
            symlink_target: e.symlink_target,
        }
    }
}

/// A file's bytes, streamed as the sandbox gives them.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files", params(("id" = String, Path), PathQuery),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn read_file(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let pieces = s.core.read_file_stream(&tenant, &id, &q.path).await?;
    let body =
        axum::body::Body::from_stream(pieces.map(|piece| piece.map_err(|e| std::io::Error::other(e.to_string()))));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Writes a file from the body as it comes (its parents made); nothing is
/// in place unless all of it was written. A file that does not fit the
/// sandbox's space is a 507; one over the server's file bound is a 400.
#[utoipa::path(put, path = "/v1/sandboxes/{id}/files", params(("id" = String, Path), PathQuery),
    request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 200, body = EntryView), (status = 400, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn write_file(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    body: axum::body::Body,
) -> Result<Json<EntryView>, ApiError> {
    let pieces = body.into_data_stream().boxed();
    Ok(Json(s.core.write_file_stream(&tenant, &id, &q.path, pieces).await?.into()))
}

/// Removes a file, or a directory with what it holds.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/files", params(("id" = String, Path), PathQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_path(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<StatusCode, ApiError> {
    s.core.remove_path(&tenant, &id, &q.path).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/fs/stat", params(("id" = String, Path), PathQuery),
    responses((status = 200, body = EntryView), (status = 404, body = ErrorBody)))]
pub async fn stat_path(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<EntryView>, ApiError> {
    Ok(Json(s.core.stat_path(&tenant, &id, &q.path).await?.into()))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/fs/list", params(("id" = String, Path), PathQuery),
    responses((status = 200, body = Vec<EntryView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_dir(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<Vec<EntryView>>, ApiError> {
    let entries = s.core.list_dir(&tenant, &id, &q.path, q.depth.unwrap_or(1)).await?;
    Ok(Json(entries.into_iter().map(EntryView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirBody {
    pub path: String,
}

/// Makes a directory and its missing parents; 409 when it exists.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/fs/mkdir", params(("id" = String, Path)), request_body = DirBody,
    responses((status = 201, body = EntryView), (status = 409, body = ErrorBody)))]
pub async fn make_dir(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(b): Body<DirBody>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.core.make_dir(&tenant, &id, &b.path).await?.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    pub from: String,
    pub to: String,
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/fs/move", params(("id" = String, Path)), request_body = MoveBody,
    responses((status = 200, body = EntryView), (status = 404, body = ErrorBody)))]
pub async fn move_path(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Body(b): Body<MoveBody>,
) -> Result<Json<EntryView>, ApiError> {
    Ok(Json(s.core.move_path(&tenant, &id, &b.from, &b.to).await?.into()))
}
