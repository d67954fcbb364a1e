//! E2B's control plane: make, list, look at, kill, time out, pause and
//! resume sandboxes, their metrics and logs; and a clear refusal for what
//! berth does not do (template builds, snapshots, forks, volumes, secrets).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{E2bError, ENVD_VERSION};
use crate::native::{AppState, Tokens, DEFAULT_TENANT};
use berth_core::model::sandbox::{SandboxRecord, SandboxState};
use berth_core::policy::NetworkRequest;
use berth_core::sandboxes::SandboxRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sandboxes", post(create).get(list))
        .route("/v2/sandboxes", post(create).get(list))
        .route("/sandboxes/{id}", get(info).delete(kill))
        .route("/sandboxes/{id}/timeout", post(set_timeout))
        .route("/sandboxes/{id}/refreshes", post(refresh))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(resume))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/metrics", get(metrics))
        .route("/sandboxes/{id}/logs", get(logs))
        .route("/v2/sandboxes/{id}/logs", get(logs))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/sandboxes/{id}/snapshots", any(refused))
        .route("/sandboxes/{id}/fork", any(refused))
        .route("/sandboxes/{id}/network", any(refused))
        .route("/snapshots", any(refused))
        .route("/snapshots/{*rest}", any(refused))
        .route("/templates", any(refused))
        .route("/templates/{*rest}", any(refused))
        .route("/v2/templates", any(refused))
        .route("/v2/templates/{*rest}", any(refused))
        .route("/v3/templates", any(refused))
        .route("/v3/templates/{*rest}", any(refused))
        .route("/volumes", any(refused))
        .route("/volumes/{*rest}", any(refused))
        .route("/secrets", any(refused))
        .route("/secrets/{*rest}", any(refused))
        .fallback(|| async { E2bError::not_found("no such route") })
}

/// The tenant the API key names (every request is the default tenant when
/// berth has no tokens).
fn tenant(headers: &HeaderMap, tokens: &Tokens) -> Result<String, E2bError> {
    if tokens.0.is_empty() {
        return Ok(DEFAULT_TENANT.into());
    }
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim);
    key.and_then(|k| tokens.0.get(k))
        .cloned()
        .ok_or_else(|| E2bError::new(StatusCode::UNAUTHORIZED, "Invalid API key: X-API-KEY must be a berth token"))
}

/// The caller's tenant, from its API key.
pub struct Caller(pub String);

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, E2bError> {
        tenant(&parts.headers, &s.tokens).map(Caller)
    }
}

/// A sandbox id from the path.
type Id = axum::extract::Path<String>;

/// A request's JSON body; an empty body is `{}`.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, E2bError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| E2bError::bad_request(format!("the body does not decode: {e}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: Option<String>,
    timeout: Option<u64>,
    metadata: Option<BTreeMap<String, String>>,
    env_vars: Option<BTreeMap<String, String>>,
    #[serde(rename = "allow_internet_access")]
    allow_internet_access: Option<bool>,
    auto_pause: Option<bool>,
    auto_resume: Option<Value>,
    network: Option<Value>,
    volume_mounts: Option<Value>,
    mcp: Option<Value>,
    secure: Option<bool>,
}

fn sandbox_json(r: &SandboxRecord) -> Value {
    json!({
        "sandboxID": r.id,
        "templateID": r.template,
        "clientID": "berth",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": r.access_token,
        "domain": Value::Null,
    })
}

/// When a sandbox will end if nothing changes: its expiry, or (paused)
/// now plus the running time it has left.
fn end_at(r: &SandboxRecord) -> chrono::DateTime<chrono::Utc> {
    match (r.state, r.remaining_ms) {
        (SandboxState::Paused, Some(ms)) => chrono::Utc::now() + chrono::Duration::milliseconds(ms as i64),
        _ => r.expires_at,
    }
}

fn detail_json(r: &SandboxRecord) -> Value {
    json!({
        "templateID": r.template,
        "sandboxID": r.id,
        "clientID": "berth",
        "startedAt": r.created_at.to_rfc3339(),
        "endAt": end_at(r).to_rfc3339(),
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": r.access_token,
        "cpuCount": (r.cpu_nanos / 1_000_000_000).max(1),
        "memoryMB": r.memory_bytes / (1024 * 1024),
        "diskSizeMB": r.disk_bytes / (1024 * 1024),
        "state": if r.state == SandboxState::Paused { "paused" } else { "running" },
        "metadata": r.metadata,
        "domain": Value::Null,
    })
}

async fn create(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    raw: axum::body::Bytes,
) -> Result<Response, E2bError> {
    let b: NewSandbox = body(&raw)?;
    if b.auto_pause == Some(true) || b.auto_resume.as_ref().is_some_and(|v| v["enabled"] == json!(true)) {
        return Err(E2bError::bad_request(
            "berth removes a sandbox at its timeout: autoPause and autoResume are not served",
        ));
    }
    if b.network.as_ref().is_some_and(|n| !n.is_null() && n != &json!({})) {
        return Err(E2bError::bad_request("network rules are not served by berth: use allow_internet_access"));
    }
    if b.volume_mounts.as_ref().is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
        return Err(E2bError::bad_request("volumes are not served by berth"));
    }
    if b.mcp.as_ref().is_some_and(|m| !m.is_null()) {
        return Err(E2bError::bad_request("the MCP gateway is not served by berth"));
    }
    let _ = b.secure;
    let req = SandboxRequest {
        tenant,
        template: b.template_id.unwrap_or_else(|| "base".into()),
        timeout: b.timeout.map(Duration::from_secs),
        metadata: b.metadata.unwrap_or_default(),
        env: b.env_vars.unwrap_or_default(),
        network: if b.allow_internet_access == Some(true) { NetworkRequest::Bridge } else { NetworkRequest::None },
    };
    let r = s.core.create_sandbox(req).await?;
    Ok((StatusCode::CREATED, Json(sandbox_json(&r))).into_response())
}

/// A live (running or paused) sandbox of the tenant's; an ended one is not found.
async fn live(s: &AppState, tenant: &str, id: &str) -> Result<SandboxRecord, E2bError> {
    let r = s.core.sandbox(tenant, id).await.map_err(|e| match e.kind() {
        berth_core::ErrorKind::NotFound => E2bError::not_found(format!("sandbox {id} not found")),
        _ => e.into(),
    })?;
    if r.state == SandboxState::Ended {
        return Err(E2bError::not_found(format!("sandbox {id} not found")));
    }
    Ok(r)
}

/// `key=value&…`, each part percent-encoded once more inside the query (as
/// the SDK sends metadata filters).
fn metadata_filter(text: &str) -> BTreeMap<String, String> {
    form_pairs(text).into_iter().map(|(k, v)| (percent_decode(&k), percent_decode(&v))).collect()
}

/// A query string's pairs, each part unescaped once (`+` is a space).
pub(super) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest page of a list.
const MAX_PAGE: usize = 100;

async fn list(State(s): State<AppState>, Caller(tenant): Caller, RawQuery(q): RawQuery) -> Result<Response, E2bError> {
    let params = form_pairs(q.as_deref().unwrap_or(""));
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let wanted = param("metadata").map(|m| metadata_filter(&m)).unwrap_or_default();
    let states: Vec<String> = match param("state") {
        Some(st) => st.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect(),
        None => vec!["running".into(), "paused".into()],
    };
    if let Some(bad) = states.iter().find(|st| *st != "running" && *st != "paused") {
        return Err(E2bError::bad_request(format!("state {bad:?}: running or paused")));
    }
    let limit = match param("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| E2bError::bad_request("limit: a number from 1 to 100"))?,
        None => MAX_PAGE,
    }
    .clamp(1, MAX_PAGE);
    let skip = match param("nextToken") {
        Some(t) => t.parse::<usize>().map_err(|_| E2bError::bad_request("nextToken: not one berth gave"))?,
        None => 0,
    };
    let mut all: Vec<SandboxRecord> = s
        .core
        .sandboxes(&tenant)
        .await?
        .into_iter()
        .filter(|r| matches!(r.state, SandboxState::Running | SandboxState::Paused))
        .filter(|r| states.iter().any(|st| st == if r.state == SandboxState::Paused { "paused" } else { "running" }))
        .filter(|r| wanted.iter().all(|(k, v)| r.metadata.get(k) == Some(v)))
        .collect();
    if param("order").as_deref() == Some("asc") {
        all.reverse();
    }
    let page: Vec<Value> = all.iter().skip(skip).take(limit).map(detail_json).collect();
    let mut response = Json(page).into_response();
    if skip + limit < all.len() {
        let next = (skip + limit).to_string();
        response.headers_mut().insert("x-next-token", next.parse().expect("digits are a header value"));
    }
    Ok(response)
}

async fn info(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
) -> Result<Json<Value>, E2bError> {
    Ok(Json(detail_json(&live(&s, &tenant, &id).await?)))
}

async fn kill(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
) -> Result<StatusCode, E2bError> {
    live(&s, &tenant, &id).await?;
    s.core.kill_sandbox(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Timeout {
    timeout: Option<u64>,
    duration: Option<u64>,
}

async fn set_timeout(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
    raw: axum::body::Bytes,
) -> Result<StatusCode, E2bError> {
    let t: Timeout = body(&raw)?;
    let seconds = t.timeout.ok_or_else(|| E2bError::bad_request("timeout: seconds from now"))?;
    live(&s, &tenant, &id).await?;
    s.core.set_sandbox_timeout(&tenant, &id, Duration::from_secs(seconds)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
    raw: axum::body::Bytes,
) -> Result<StatusCode, E2bError> {
    let t: Timeout = body(&raw)?;
    let r = live(&s, &tenant, &id).await?;
    let seconds = t.duration.unwrap_or(60);
    // A refresh only ever lengthens the time left.
    if r.expires_at < chrono::Utc::now() + chrono::Duration::seconds(seconds as i64) {
        s.core.set_sandbox_timeout(&tenant, &id, Duration::from_secs(seconds)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
) -> Result<StatusCode, E2bError> {
    let r = live(&s, &tenant, &id).await?;
    if r.state == SandboxState::Paused {
        return Err(E2bError::new(StatusCode::CONFLICT, format!("sandbox {id} is already paused")));
    }
    s.core.pause_sandbox(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resumes a paused sandbox (and sets its timeout when asked); for a
/// running one, lengthens the timeout when the one asked is longer.
async fn reopen(s: &AppState, tenant: &str, id: &str, raw: &[u8]) -> Result<SandboxRecord, E2bError> {
    let t: Timeout = body(raw)?;
    let r = live(s, tenant, id).await?;
    let r = if r.state == SandboxState::Paused { s.core.resume_sandbox(tenant, id).await? } else { r };
    match t.timeout {
        Some(seconds) if r.expires_at < chrono::Utc::now() + chrono::Duration::seconds(seconds as i64) => {
            Ok(s.core.set_sandbox_timeout(tenant, id, Duration::from_secs(seconds)).await?)
        }
        _ => Ok(r),
    }
}

async fn connect(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
    raw: axum::body::Bytes,
) -> Result<Json<Value>, E2bError> {
    Ok(Json(sandbox_json(&reopen(&s, &tenant, &id, &raw).await?)))
}

async fn resume(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
    raw: axum::body::Bytes,
) -> Result<Response, E2bError> {
    let r = live(&s, &tenant, &id).await?;
    if r.state != SandboxState::Paused {
        return Err(E2bError::new(StatusCode::CONFLICT, format!("sandbox {id} is not paused")));
    }
    let r = reopen(&s, &tenant, &id, &raw).await?;
    Ok((StatusCode::CREATED, Json(sandbox_json(&r))).into_response())
}

async fn metrics(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
) -> Result<Json<Value>, E2bError> {
    let r = live(&s, &tenant, &id).await?;
    if r.state == SandboxState::Paused {
        return Ok(Json(json!([])));
    }
    let u = s.core.sandbox_usage(&tenant, &id).await?;
    let now = chrono::Utc::now();
    Ok(Json(json!([{
        "timestamp": now.to_rfc3339(),
        "timestampUnix": now.timestamp(),
        "cpuCount": (r.cpu_nanos / 1_000_000_000).max(1),
        "cpuUsedPct": u.cpu_percent.unwrap_or(0.0),
        "memUsed": u.memory_used.unwrap_or(0),
        "memTotal": u.memory_limit.unwrap_or(r.memory_bytes),
        "memCache": 0,
        "diskUsed": 0,
        "diskTotal": r.disk_bytes,
    }])))
}

/// What happened to a sandbox (made, paused, resumed, timed out, ended),
/// from berth's audit trail: a sandbox has no engine log.
async fn logs(
    State(s): State<AppState>,
    Caller(tenant): Caller,
    axum::extract::Path(id): Id,
) -> Result<Json<Value>, E2bError> {
    s.core.sandbox(&tenant, &id).await.map_err(|_| E2bError::not_found(format!("sandbox {id} not found")))?;
    let mut entries: Vec<_> = s.core.audit_trail(&tenant, 10_000)?.into_iter().filter(|e| e.target == id).collect();
    entries.reverse();
    let lines: Vec<Value> =
        entries.iter().map(|e| json!({ "timestamp": e.at, "line": format!("{} {}", e.action, e.outcome) })).collect();
    let structured: Vec<Value> = entries
        .iter()
        .map(|e| json!({ "timestamp": e.at, "level": "info", "message": format!("{} {}", e.action, e.outcome), "fields": {} }))
        .collect();
    Ok(Json(json!({ "logs": lines, "logEntries": structured })))
}

/// What berth does not serve, said at once.
async fn refused(uri: axum::http::Uri) -> E2bError {
    let path = uri.path();
    let what = if path.contains("template") {
        "template builds are not served by berth: templates are images named in berth's configuration ([templates])"
    } else if path.contains("snapshot") {
        "snapshots are not served by berth"
    } else if path.ends_with("/fork") {
        "forks are not served by berth"
    } else if path.contains("volume") {
        "volumes are not served by berth"
    } else if path.contains("secret") {
        "secrets are not served by berth"
    } else {
        "network rules are not served by berth"
    };
    E2bError::bad_request(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_filter_encoded_twice_as_the_sdk_sends_it_decodes() {
        // The query value, once the query itself is decoded.
        let f = metadata_filter("user=a%2520b&app=x%2526y");
        assert_eq!(f, BTreeMap::from([("user".to_owned(), "a b".to_owned()), ("app".to_owned(), "x&y".to_owned())]));
        let q = form_pairs("metadata=user%3Da%252520b%26app%3Dx%252526y&state=running%2Cpaused");
        assert_eq!(metadata_filter(&q[0].1)["user"], "a b");
        assert_eq!(q[1].1, "running,paused");
    }
}
