//! Runs over HTTP: a tool image or a code snippet run to completion, its
//! record, its output and its cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::follow::{self, FollowEvent};
use super::observe::LogQuery;
use super::{AppState, Body, Path, Query, Tenant};
use berth_core::runs::{RunId, RunRecord, RunRequest, Workload};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", post(create_run).get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/logs", get(run_logs))
}

/// A run request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// A tool image to run; or give `language` and `code`.
    pub image: Option<String>,
    /// The tool's command (the image's own when absent).
    pub command: Option<Vec<String>>,
    /// A language of the code table (`python`, `sh`).
    pub language: Option<String>,
    pub code: Option<String>,
    /// A name for people.
    pub tool_name: Option<String>,
    pub session_id: Option<String>,
    /// Passed as `PARAM_<NAME>` variables and as `BERTH_PARAMETERS`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Memory limit such as `512m`.
    pub memory: Option<String>,
    /// CPU cores, such as `0.5`.
    pub cpu: Option<f64>,
    pub timeout_seconds: Option<u64>,
    /// Remove the container when the run is over (the record stays). Default true.
    pub cleanup: Option<bool>,
    /// Answer when the run is over (`true`, the default, 201 with the
    /// whole record), or as soon as it is recorded (`false`: 202 with the
    /// record as it stands and a `Location`; follow its logs or fetch it).
    pub wait: Option<bool>,
    /// The runtime to run it with: `runc` or `runsc` (straight on an OCI
    /// runtime; code and tool runs with no network only) or `docker` (the
    /// engine), as `/v1/health` lists them. Default: the server's choice.
    pub runtime: Option<String>,
    /// A tool run's network: `bridge` (the default) or `none` (sealed: it
    /// may then run straight on an OCI runtime). Code runs have none.
    pub network: Option<String>,
}

/// A run's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub image: String,
    pub tool_name: Option<String>,
    pub session_id: Option<String>,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    pub container_id: Option<String>,
    pub container_removed: bool,
    pub error: Option<String>,
    pub path: String,
    /// What ran it: `runc`, `runsc`, `docker`, `docker-runsc` or `swarm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The node its container ran on, on a backend of several nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What would have run, for a `dry_run` (the OCI bundle, with its `config.json`).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            id: r.id.0,
            status: r.status.as_str().into(),
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            stdout_truncated: r.stdout_truncated,
            stderr_truncated: r.stderr_truncated,
            result: r.result,
            image: r.image,
            tool_name: r.name,
            session_id: r.session,
            wall_ms: r.usage.wall_ms,
            cpu_ms: r.usage.cpu_ms,
            peak_memory_bytes: r.usage.peak_memory_bytes,
            container_id: r.container_id,
            container_removed: r.container_removed,
            error: r.error,
            path: r.path,
            runtime: r.runtime,
            node: r.placement.node().map(str::to_owned),
            plan: r.plan,
            created_at: r.created_at.to_rfc3339(),
            finished_at: r.finished_at.map(|t| t.to_rfc3339()),
        }
    }
}

fn run_request(tenant: String, body: RunBody) -> Result<RunRequest, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m);
    let workload = match (body.image, body.language, body.code) {
        (Some(image), None, None) => Workload::Tool { image, command: body.command },
        (None, Some(language), Some(code)) => Workload::Code { language, code },
        _ => return Err(bad("give either `image` (a tool run) or `language` and `code` (a code run)")),
    };
    let (memory, cpu) = super::limits(body.memory.as_deref(), body.cpu)?;
    let mut req = RunRequest::new(&tenant, workload);
    req.name = body.tool_name;
    req.session = body.session_id;
    req.parameters = body.parameters;
    req.env = body.env;
    req.memory = memory;
    req.cpu = cpu;
    req.timeout = body.timeout_seconds.map(Duration::from_secs);
    req.cleanup = body.cleanup.unwrap_or(true);
    req.runtime = body.runtime;
    req.network = match body.network.as_deref() {
        None | Some("bridge") => true,
        Some("none") => false,
        Some(other) => return Err(bad(&format!("network: {other:?} is not bridge or none"))),
    };
    Ok(req)
}

/// Runs a tool image or a code snippet to completion and returns its
/// record; with `"wait": false`, answers as soon as the run is recorded.
#[utoipa::path(post, path = "/v1/runs", request_body = RunBody,
    responses((status = 201, body = RunView), (status = 202, body = RunView, description = "recorded, still going (`wait: false`)"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(body): Body<RunBody>,
) -> Result<Response, ApiError> {
    let wait = body.wait.unwrap_or(true);
    let req = run_request(tenant, body)?;
    // The run goes on in the core's own task: a client that hangs up
    // does not abandon a container half-way.
    let (recorded_tx, recorded) = tokio::sync::oneshot::channel();
    let run = s.core.run(req, Some(recorded_tx));
    if !wait {
        tokio::pin!(run);
        // A refusal comes before the record: the run ends with it and the sender unused.
        tokio::select! {
            Ok(record) = recorded => {
                // The run's task was started by the first poll of `run`
                // and goes on when this request lets go of it.
                let location = format!("/v1/runs/{}", record.id.0);
                let headers = [(axum::http::header::LOCATION, location)];
                return Ok((StatusCode::ACCEPTED, headers, Json(RunView::from(record))).into_response());
            }
            ended = &mut run => {
                return Ok((StatusCode::CREATED, Json(RunView::from(ended?))).into_response());
            }
        }
    }
    let record = run.await?;
    Ok((StatusCode::CREATED, Json(RunView::from(record))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The caller's runs, newest first.
#[utoipa::path(get, path = "/v1/runs", params(ListQuery),
    responses((status = 200, body = Vec<RunView>), (status = 401, body = ErrorBody)))]
pub async fn list_runs(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(1000);
    let runs = s.core.runs(&tenant, limit)?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

/// One run of the caller's.
#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(s.core.run_record(&tenant, &RunId(id))?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// False when the run had already ended.
    pub cancelled: bool,
}

/// Cancels a run in progress.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = Cancelled), (status = 404, body = ErrorBody)))]
pub async fn cancel_run(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    Ok(Json(Cancelled { cancelled: s.core.cancel_run(&tenant, &RunId(id))? }))
}

/// A run's output: its record's once it has ended; followed from its
/// container while it runs, ending with an `exit` event that carries the
/// run's status and exit code.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = super::observe::LogsView,
               description = "JSON; with `follow=true`, NDJSON or SSE of `FollowEvent`s"),
              (status = 404, body = ErrorBody)))]
pub async fn run_logs(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = RunId(id);
    let format = q.format(&headers)?;
    if !q.follow {
        let record = s.core.run_record(&tenant, &id)?;
        return Ok(Json(super::observe::LogsView::of_run(&record)).into_response());
    }
    let followed = s.core.follow_run(&tenant, &id, &q.request()).await?;
    let end = Box::pin(async move {
        match followed.end.await {
            Ok(record) => FollowEvent::Exit {
                status: record.status.as_str().into(),
                exit_code: record.exit_code,
                oom_killed: record.status == berth_core::runs::RunStatus::OomKilled,
            },
            Err(e) => FollowEvent::Error { message: e.to_string() },
        }
    });
    Ok(follow::respond(follow::logs(followed.output), end, format, s.keepalive))
}
