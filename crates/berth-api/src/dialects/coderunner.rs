//! The CodeRunner orchestrator (port 8080): code executed in a sandbox
//! with no network, no capabilities, no new privileges and limits, which
//! is what every berth code run is.
//!
//! Its README shows requests only; the answer of `/execute` is berth's run
//! under the names such a client reads (`success`, `output`, `stdout`,
//! `stderr`, `exit_code`, `execution_time`), documented in README.md.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Caller, Detail, DialectState, Form};
use berth_core::runs::{RunRequest, RunStatus, Workload};

pub fn routes() -> Router<DialectState> {
    Router::new().route("/", get(root)).route("/health", get(health)).route("/execute", post(execute))
}

async fn root(State(s): State<DialectState>) -> Json<Value> {
    Json(json!({
        "service": "orchestrator",
        "status": "running",
        "backend": s.app.core.backend_name(),
        "languages": s.app.core.languages(),
    }))
}

async fn health(State(s): State<DialectState>) -> (StatusCode, Json<Value>) {
    let docker = s.app.core.engine_health().await.error;
    let code = if docker.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        Json(json!({
            "status": if docker.is_none() { "healthy" } else { "unhealthy" },
            "docker": if docker.is_none() { "connected" } else { "disconnected" },
            "sandbox": {"network": "none", "capabilities": "dropped", "no_new_privileges": true},
            "error": docker,
        })),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Execute {
    code: String,
    /// A language of berth's table (default `python`).
    language: Option<String>,
    /// Seconds (the language's default when absent).
    timeout: Option<u64>,
}

async fn execute(
    State(s): State<DialectState>,
    Caller(tenant): Caller,
    Form(body): Form<Execute>,
) -> Result<Json<Value>, Detail> {
    let language = body.language.unwrap_or_else(|| "python".into());
    let mut req = RunRequest::new(&tenant, Workload::Code { language: language.clone(), code: body.code });
    req.timeout = body.timeout.map(Duration::from_secs);
    let r = s.app.core.run(req, None).await?;
    Ok(Json(json!({
        "success": r.status == RunStatus::Succeeded,
        "status": r.status.as_str(),
        "output": r.stdout,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "exit_code": r.exit_code,
        "execution_time": r.usage.wall_ms as f64 / 1000.0,
        "language": language,
        "execution_id": r.id.0,
        "error": r.error,
    })))
}
