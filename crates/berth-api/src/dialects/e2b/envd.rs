//! The in-sandbox API the e2b SDK calls (envd's): the process and
//! filesystem services over Connect with the JSON codec, `/files` and
//! `/health`. A request names its sandbox by the `E2b-Sandbox-Id` header
//! and opens it with the sandbox's access token (`X-Access-Token`); the
//! work goes to berth's helper in that sandbox through the core.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::connect::{end_of_stream, envelope, ConnectError, Envelope, Envelopes, STREAM_JSON};
use super::signed::{self, Operation};
use super::wire::{self, b64, decode};
use super::{E2bError, ENVD_PORT};
use crate::native::AppState;
use berth_core::sandboxes::link::{FollowLost, Following, ProcessEvent};
use berth_core::sandboxes::{PtySize, Spawn, StreamName};

/// The largest unary or stream-opening message read.
const MAX_RPC_BODY: usize = 4 * 1024 * 1024;
/// How long a process stream may be quiet before a keep-alive, when the
/// client names no interval.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(50);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/process.Process/{method}", post(process_rpc))
        .route("/filesystem.Filesystem/{method}", post(filesystem_rpc))
        .route("/files", get(download).post(upload).layer(DefaultBodyLimit::disable()))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .fallback(|| async { E2bError::not_found("no such route") })
}

/// The listener's health, or with `E2b-Sandbox-Id` a sandbox's: 204 while
/// it runs, 502 "was not found" once it is paused, killed or gone (what the
/// SDK's `is_running` reads).
async fn health(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if headers.get("e2b-sandbox-id").is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let o = match open(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r.plain().into_response(),
    };
    match s.core.sandbox(&o.tenant, &o.id).await {
        Ok(r) if r.state == berth_core::model::sandbox::SandboxState::Running => StatusCode::NO_CONTENT.into_response(),
        _ => Refusal::Gone(o.id).plain().into_response(),
    }
}

/// Sends a request for another port of a sandbox (`E2b-Sandbox-Port`, as
/// `get_host(port)` addresses it) to that port, opened by the sandbox's
/// access token; envd's own port goes on to the routes.
pub async fn ports(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(port) = header("e2b-sandbox-port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p != ENVD_PORT) else {
        return next.run(request).await;
    };
    let Some(id) = header("e2b-sandbox-id").map(str::to_owned) else {
        return Refusal::Missing("E2b-Sandbox-Id").plain().into_response();
    };
    let token = header("x-access-token").or_else(|| header("e2b-traffic-access-token")).unwrap_or("");
    let tenant = match s.core.sandbox_tenant(&id, token) {
        Ok(t) => t,
        Err(e) if e.kind() == berth_core::ErrorKind::Unauthorized => return Refusal::Token.plain().into_response(),
        Err(_) => return Refusal::Gone(id).plain().into_response(),
    };
    let path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    crate::proxy::forward(&s.core, &tenant, &id, port, &path, request).await
}

/// The sandbox a request is for and its tenant, proven by the access token.
struct Opened {
    tenant: String,
    id: String,
}

/// Why a request does not reach a sandbox, in the shape the SDK reads.
enum Refusal {
    Missing(&'static str),
    Gone(String),
    Token,
}

impl Refusal {
    fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            Refusal::Missing(what) => (StatusCode::BAD_REQUEST, format!("the {what} header is required")),
            // The SDK turns "was not found" into its sandbox-not-running error.
            Refusal::Gone(id) => (StatusCode::BAD_GATEWAY, format!("The sandbox {id} was not found")),
            Refusal::Token => (StatusCode::UNAUTHORIZED, "unauthorized access: the access token is wrong".into()),
        }
    }

    fn connect(&self) -> ConnectError {
        let (_, message) = self.status_and_message();
        let code = match self {
            Refusal::Missing(_) => "invalid_argument",
            Refusal::Gone(_) => "unavailable",
            Refusal::Token => "unauthenticated",
        };
        ConnectError::new(code, message)
    }

    fn plain(&self) -> E2bError {
        let (status, message) = self.status_and_message();
        E2bError::new(status, message)
    }
}

fn open(s: &AppState, headers: &HeaderMap) -> Result<Opened, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let id = header("e2b-sandbox-id").ok_or(Refusal::Missing("E2b-Sandbox-Id"))?.to_owned();
    let token = header("x-access-token").unwrap_or("");
    match s.core.sandbox_tenant(&id, token) {
        Ok(tenant) => Ok(Opened { tenant, id }),
        Err(e) if e.kind() == berth_core::ErrorKind::Unauthorized => Err(Refusal::Token),
        Err(_) => Err(Refusal::Gone(id)),
    }
}

/// Opens the sandbox of a `/files` request: by its access token, or, when
/// the request carries none, by a signed URL's `signature` (and
/// `signature_expiration`) made with it for this path, user and operation.
fn open_files(s: &AppState, headers: &HeaderMap, q: &Option<String>, op: Operation) -> Result<Opened, Refusal> {
    let Some(signature) = query_param(q, "signature").filter(|_| headers.get("x-access-token").is_none()) else {
        return open(s, headers);
    };
    let id = headers.get("e2b-sandbox-id").and_then(|v| v.to_str().ok()).ok_or(Refusal::Missing("E2b-Sandbox-Id"))?;
    let expiration = match query_param(q, "signature_expiration") {
        Some(e) => Some(e.parse::<i64>().map_err(|_| Refusal::Token)?),
        None => None,
    };
    let path = query_param(q, "path").unwrap_or_default();
    let user = query_param(q, "username").unwrap_or_default();
    let claim = signed::Signed { path: &path, operation: op, user: &user, signature: &signature, expiration };
    let now = s.core.now().timestamp();
    match s.core.sandbox_tenant_if(id, |token| signed::check(&claim, token, now).is_ok()) {
        Ok(tenant) => Ok(Opened { tenant, id: id.to_owned() }),
        Err(e) if e.kind() == berth_core::ErrorKind::Unauthorized => Err(Refusal::Token),
        Err(_) => Err(Refusal::Gone(id.to_owned())),
    }
}

/// The user a request names (`Authorization: Basic <user>:` or `username=`):
/// every process runs as the sandbox's user, so another is refused.
fn check_user(user: Option<&str>) -> Result<(), ConnectError> {
    match user {
        None | Some("") | Some("user") => Ok(()),
        Some(other) => Err(ConnectError::new(
            "permission_denied",
            format!("berth runs every process of a sandbox as its user `user`, not {other:?}"),
        )),
    }
}

fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or("").to_owned())
}

/// A core error as an envd answer: a sandbox that stopped running reads
/// as gone, as envd's proxy says it.
fn connect_error(id: &str, e: berth_core::Error) -> ConnectError {
    if e.code() == "not_running" {
        return ConnectError::new("unavailable", format!("The sandbox {id} was not found: {}", e.message()));
    }
    e.into()
}

fn unary(result: Result<Value, ConnectError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => (e.status(), Json(e.body())).into_response(),
    }
}

/// A server stream's answer: its envelopes, the end envelope last.
fn streamed(envelopes: BoxStream<'static, Vec<u8>>) -> Response {
    let body = Body::from_stream(envelopes.map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e))));
    ([(CONTENT_TYPE, STREAM_JSON)], body).into_response()
}

fn is_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with(STREAM_JSON))
}

/// An error as a stream's end or as a unary answer, as the call was made.
fn answer_error(enveloped: bool, e: ConnectError) -> Response {
    if enveloped {
        stream_error(e)
    } else {
        unary(Err(e))
    }
}

fn stream_error(e: ConnectError) -> Response {
    streamed(futures_util::stream::once(async move { end_of_stream(Some(&e)) }).boxed())
}

/// The one message that opens a server stream (or a unary call's body).
fn first_message(bytes: &[u8], enveloped: bool) -> Result<Vec<u8>, ConnectError> {
    if !enveloped {
        return Ok(bytes.to_vec());
    }
    let mut envelopes = Envelopes::default();
    envelopes.feed(bytes);
    match envelopes.next_envelope()? {
        Some(Envelope::Message(m)) => Ok(m),
        _ => Err(ConnectError::new("invalid_argument", "the stream opens with no message")),
    }
}

fn header_ms(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let ms: u64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn keepalive(headers: &HeaderMap) -> Duration {
    headers
        .get("keepalive-ping-interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_KEEPALIVE)
}

async fn pid_of(s: &AppState, o: &Opened, selector: &wire::Selector) -> Result<u32, ConnectError> {
    if let Some(pid) = selector.pid {
        return Ok(pid);
    }
    let tag = selector.tag.as_deref().ok_or_else(|| ConnectError::new("invalid_argument", "a pid or a tag"))?;
    let processes = s.core.processes(&o.tenant, &o.id).await.map_err(|e| connect_error(&o.id, e))?;
    processes
        .iter()
        .find(|p| p.tag.as_deref() == Some(tag))
        .map(|p| p.pid)
        .ok_or_else(|| ConnectError::new("not_found", format!("no process tagged {tag:?}")))
}

async fn process_rpc(
    State(s): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let enveloped = is_stream(&headers);
    let o = match open(&s, &headers) {
        Ok(o) => o,
        Err(r) => return answer_error(enveloped, r.connect()),
    };
    if method == "StreamInput" {
        return stream_input(s, o, body).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_RPC_BODY).await {
        Ok(b) => b,
        Err(e) => return unary(Err(ConnectError::new("resource_exhausted", format!("the body: {e}")))),
    };
    let message = match first_message(&bytes, enveloped) {
        Ok(m) => m,
        Err(e) => return answer_error(enveloped, e),
    };
    match method.as_str() {
        "Start" => match start(&s, &o, &headers, &message).await {
            Ok(envelopes) => streamed(envelopes),
            Err(e) => stream_error(e),
        },
        "Connect" => match reconnect(&s, &o, &headers, &message).await {
            Ok(envelopes) => streamed(envelopes),
            Err(e) => stream_error(e),
        },
        "List" => unary(list(&s, &o).await),
        "SendInput" => unary(send_input(&s, &o, &message).await),
        "SendSignal" => unary(send_signal(&s, &o, &message).await),
        "Update" => unary(update(&s, &o, &message).await),
        "CloseStdin" => unary(close_stdin(&s, &o, &message).await),
        other => unary(Err(ConnectError::new("unimplemented", format!("process.Process/{other} is not served")))),
    }
}

async fn start(
    s: &AppState,
    o: &Opened,
    headers: &HeaderMap,
    message: &[u8],
) -> Result<BoxStream<'static, Vec<u8>>, ConnectError> {
    check_user(basic_user(headers).as_deref())?;
    let r: wire::StartRequest = decode(message)?;
    if r.process.cmd.is_empty() {
        return Err(ConnectError::new("invalid_argument", "process.cmd is empty"));
    }
    let mut argv = vec![r.process.cmd];
    argv.extend(r.process.args);
    let pty = r.pty.map(|p| PtySize { cols: p.size.cols.max(1), rows: p.size.rows.max(1) });
    let spawn = Spawn {
        argv,
        env: r.process.envs,
        cwd: r.process.cwd,
        stdin: pty.is_some() || r.stdin.unwrap_or(true),
        pty,
        tag: r.tag,
    };
    let pid = s.core.start_process(&o.tenant, &o.id, spawn).await.map_err(|e| connect_error(&o.id, e))?;
    // envd ends a process when the client's timeout for it runs out.
    if let Some(limit) = header_ms(headers, "connect-timeout-ms") {
        let (core, tenant, id) = (s.core.clone(), o.tenant.clone(), o.id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let _ = core.signal_process(&tenant, &id, pid, 9).await;
        });
    }
    let following = s.core.follow_process(&o.tenant, &o.id, pid).await.map_err(|e| connect_error(&o.id, e))?;
    Ok(process_stream(pid, following, keepalive(headers)))
}

async fn reconnect(
    s: &AppState,
    o: &Opened,
    headers: &HeaderMap,
    message: &[u8],
) -> Result<BoxStream<'static, Vec<u8>>, ConnectError> {
    let r: wire::Selecting = decode(message)?;
    let pid = pid_of(s, o, &r.process).await?;
    let following = s.core.follow_process(&o.tenant, &o.id, pid).await.map_err(|e| connect_error(&o.id, e))?;
    Ok(process_stream(pid, following, keepalive(headers)))
}

fn data_event(stream: StreamName, data: &[u8]) -> Vec<u8> {
    let key = match stream {
        StreamName::Stdout => "stdout",
        StreamName::Stderr => "stderr",
        StreamName::Pty => "pty",
    };
    envelope(&json!({ "event": { "data": { key: b64(data) } } }))
}

fn end_envelopes(code: Option<i32>, signal: Option<i32>) -> Vec<u8> {
    let mut out = envelope(&json!({ "event": { "end": wire::end_event(code, signal) } }));
    out.extend(end_of_stream(None));
    out
}

/// A process's events as envd streams them: its start, what is kept of
/// its output, what comes, keep-alives while it is quiet, its end.
fn process_stream(pid: u32, following: Following, keepalive: Duration) -> BoxStream<'static, Vec<u8>> {
    let start = futures_util::stream::once(async move { envelope(&json!({ "event": { "start": { "pid": pid } } })) });
    let rest = futures_util::stream::unfold(Some(following.into_stream()), move |events| async move {
        let mut events = events?;
        tokio::select! {
            next = events.next() => match next {
                Some(Ok(ProcessEvent::Output { stream, data })) => Some((data_event(stream, &data), Some(events))),
                Some(Ok(ProcessEvent::Exited { code, signal })) => Some((end_envelopes(code, signal), None)),
                Some(Err(lost @ FollowLost::Lagged(_))) => {
                    Some((end_of_stream(Some(&ConnectError::new("data_loss", lost.to_string()))), None))
                }
                Some(Err(FollowLost::LinkClosed)) | None => {
                    let e = ConnectError::new("unavailable", "the sandbox's helper went away");
                    Some((end_of_stream(Some(&e)), None))
                }
            },
            _ = tokio::time::sleep(keepalive) => Some((envelope(&json!({ "event": { "keepalive": {} } })), Some(events))),
        }
    });
    start.chain(rest).boxed()
}

async fn list(s: &AppState, o: &Opened) -> Result<Value, ConnectError> {
    let processes = s.core.processes(&o.tenant, &o.id).await.map_err(|e| connect_error(&o.id, e))?;
    Ok(json!({ "processes": processes.iter().map(wire::process_info).collect::<Vec<_>>() }))
}

async fn input(s: &AppState, o: &Opened, selector: &wire::Selector, input: wire::Input) -> Result<(), ConnectError> {
    let pid = pid_of(s, o, selector).await?;
    let data = input.stdin.or(input.pty).unwrap_or_default();
    s.core.process_input(&o.tenant, &o.id, pid, &data).await.map_err(|e| connect_error(&o.id, e))
}

async fn send_input(s: &AppState, o: &Opened, message: &[u8]) -> Result<Value, ConnectError> {
    let r: wire::SendInputRequest = decode(message)?;
    input(s, o, &r.process, r.input).await?;
    Ok(json!({}))
}

async fn send_signal(s: &AppState, o: &Opened, message: &[u8]) -> Result<Value, ConnectError> {
    let r: wire::SendSignalRequest = decode(message)?;
    let signal = r.number()?;
    let pid = pid_of(s, o, &r.process).await?;
    s.core.signal_process(&o.tenant, &o.id, pid, signal).await.map_err(|e| connect_error(&o.id, e))?;
    Ok(json!({}))
}

async fn update(s: &AppState, o: &Opened, message: &[u8]) -> Result<Value, ConnectError> {
    let r: wire::UpdateRequest = decode(message)?;
    let pid = pid_of(s, o, &r.process).await?;
    if let Some(pty) = r.pty {
        let size = PtySize { cols: pty.size.cols.max(1), rows: pty.size.rows.max(1) };
        s.core.resize_process(&o.tenant, &o.id, pid, size).await.map_err(|e| connect_error(&o.id, e))?;
    }
    Ok(json!({}))
}

async fn close_stdin(s: &AppState, o: &Opened, message: &[u8]) -> Result<Value, ConnectError> {
    let r: wire::Selecting = decode(message)?;
    let pid = pid_of(s, o, &r.process).await?;
    s.core.close_process_stdin(&o.tenant, &o.id, pid).await.map_err(|e| connect_error(&o.id, e))?;
    Ok(json!({}))
}

/// A client stream of input: its start names the process, its data goes
/// to it as it comes; the answer is one empty message.
async fn stream_input(s: AppState, o: Opened, body: Body) -> Response {
    let mut envelopes = Envelopes::default();
    let mut selector: Option<wire::Selector> = None;
    let mut chunks = body.into_data_stream();
    let outcome: Result<(), ConnectError> = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| ConnectError::new("canceled", format!("the input stream broke: {e}")))?;
            envelopes.feed(&chunk);
            while let Some(env) = envelopes.next_envelope()? {
                let Envelope::Message(m) = env else { continue };
                let r: wire::StreamInputRequest = decode(&m)?;
                if let Some(start) = r.start {
                    selector = Some(start.process);
                }
                if let Some(data) = r.data {
                    let sel = selector.as_ref().ok_or_else(|| {
                        ConnectError::new("invalid_argument", "the input stream sends data before its start")
                    })?;
                    input(&s, &o, sel, data.input).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            let mut out = envelope(&json!({}));
            out.extend(end_of_stream(None));
            streamed(futures_util::stream::once(async move { out }).boxed())
        }
        Err(e) => stream_error(e),
    }
}

async fn filesystem_rpc(
    State(s): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let enveloped = is_stream(&headers);
    let o = match open(&s, &headers) {
        Ok(o) => o,
        Err(r) => return answer_error(enveloped, r.connect()),
    };
    if let Err(e) = check_user(basic_user(&headers).as_deref()) {
        return answer_error(enveloped, e);
    }
    let message = match first_message(&body, enveloped) {
        Ok(m) => m,
        Err(e) => return answer_error(enveloped, e),
    };
    if method == "WatchDir" {
        return match watch_dir(&s, &o, &headers, &message).await {
            Ok(envelopes) => streamed(envelopes),
            Err(e) => stream_error(e),
        };
    }
    let (t, id) = (o.tenant.as_str(), o.id.as_str());
    let fail = |e: berth_core::Error| connect_error(id, e);
    let result: Result<Value, ConnectError> = async {
        match method.as_str() {
            "Stat" => {
                let r: wire::PathRequest = decode(&message)?;
                Ok(json!({ "entry": wire::entry(&s.core.stat_path(t, id, &r.path).await.map_err(fail)?) }))
            }
            "MakeDir" => {
                let r: wire::PathRequest = decode(&message)?;
                Ok(json!({ "entry": wire::entry(&s.core.make_dir(t, id, &r.path).await.map_err(fail)?) }))
            }
            "Move" => {
                let r: wire::MoveRequest = decode(&message)?;
                let e = s.core.move_path(t, id, &r.source, &r.destination).await.map_err(fail)?;
                Ok(json!({ "entry": wire::entry(&e) }))
            }
            "ListDir" => {
                let r: wire::PathRequest = decode(&message)?;
                let depth = r.depth.filter(|d| *d > 0).unwrap_or(1);
                let entries = s.core.list_dir(t, id, &r.path, depth).await.map_err(fail)?;
                Ok(json!({ "entries": entries.iter().map(wire::entry).collect::<Vec<_>>() }))
            }
            "Remove" => {
                let r: wire::PathRequest = decode(&message)?;
                s.core.remove_path(t, id, &r.path).await.map_err(fail)?;
                Ok(json!({}))
            }
            "CreateWatcher" => {
                let r: wire::WatchRequest = decode(&message)?;
                let wid = s.core.watch_dir(t, id, &r.path, r.recursive).await.map_err(fail)?;
                Ok(json!({ "watcherId": wid.to_string() }))
            }
            "GetWatcherEvents" => {
                let r: wire::WatcherRequest = decode(&message)?;
                let events = s.core.watch_events(t, id, r.wid()?).await.map_err(fail)?;
                Ok(json!({ "events": events.iter().map(wire::watch_event).collect::<Vec<_>>() }))
            }
            "RemoveWatcher" => {
                let r: wire::WatcherRequest = decode(&message)?;
                s.core.unwatch(t, id, r.wid()?).await.map_err(fail)?;
                Ok(json!({}))
            }
            other => Err(ConnectError::new("unimplemented", format!("filesystem.Filesystem/{other} is not served"))),
        }
    }
    .await;
    unary(result)
}

/// Ends a streamed watch when its client goes away.
struct Unwatch {
    core: std::sync::Arc<berth_core::Core>,
    tenant: String,
    id: String,
    wid: u64,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let (core, tenant, id, wid) = (self.core.clone(), self.tenant.clone(), self.id.clone(), self.wid);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = core.unwatch(&tenant, &id, wid).await;
            });
        }
    }
}

async fn watch_dir(
    s: &AppState,
    o: &Opened,
    headers: &HeaderMap,
    message: &[u8],
) -> Result<BoxStream<'static, Vec<u8>>, ConnectError> {
    let r: wire::WatchRequest = decode(message)?;
    let wid = s.core.watch_dir(&o.tenant, &o.id, &r.path, r.recursive).await.map_err(|e| connect_error(&o.id, e))?;
    let rx = s.core.follow_watch(&o.tenant, &o.id, wid).await.map_err(|e| connect_error(&o.id, e))?;
    let guard = Unwatch { core: s.core.clone(), tenant: o.tenant.clone(), id: o.id.clone(), wid };
    let quiet = keepalive(headers);
    let start = futures_util::stream::once(async { envelope(&json!({ "start": {} })) });
    let later = futures_util::stream::unfold(Some((rx, guard)), move |state| async move {
        let (mut rx, guard) = state?;
        tokio::select! {
            batch = rx.recv() => match batch {
                Ok(events) => {
                    let mut out = Vec::new();
                    for e in &events {
                        out.extend(envelope(&json!({ "filesystem": wire::watch_event(e) })));
                    }
                    Some((out, Some((rx, guard))))
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((Vec::new(), Some((rx, guard)))),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => Some((end_of_stream(None), None)),
            },
            _ = tokio::time::sleep(quiet) => Some((envelope(&json!({ "keepalive": {} })), Some((rx, guard)))),
        }
    });
    Ok(start.chain(later).filter(|e| std::future::ready(!e.is_empty())).boxed())
}

fn query_param(q: &Option<String>, name: &str) -> Option<String> {
    let q = q.as_deref()?;
    super::control::form_pairs(q).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A core error as `/files` answers it: `{code, message}` with envd's statuses.
fn files_error(id: &str, e: berth_core::Error) -> E2bError {
    if e.code() == "not_running" {
        return Refusal::Gone(id.to_owned()).plain();
    }
    e.into()
}

async fn download(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Result<Response, E2bError> {
    let o = open_files(&s, &headers, &q, Operation::Read).map_err(|r| r.plain())?;
    check_user(query_param(&q, "username").as_deref())
        .map_err(|e| E2bError::new(StatusCode::UNAUTHORIZED, e.message))?;
    let path = query_param(&q, "path").ok_or_else(|| E2bError::bad_request("path is required"))?;
    let stream = s.core.read_file_stream(&o.tenant, &o.id, &path).await.map_err(|e| files_error(&o.id, e))?;
    let body = Body::from_stream(stream.map(|item| item.map_err(|e| std::io::Error::other(e.to_string()))));
    Ok(([(CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

fn written(entry: &berth_core::sandboxes::Entry) -> Value {
    json!({ "name": entry.name, "type": "file", "path": entry.path })
}

async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    request: axum::extract::Request,
) -> Result<Json<Vec<Value>>, E2bError> {
    let o = open_files(&s, &headers, &q, Operation::Write).map_err(|r| r.plain())?;
    check_user(query_param(&q, "username").as_deref())
        .map_err(|e| E2bError::new(StatusCode::UNAUTHORIZED, e.message))?;
    let path = query_param(&q, "path");
    let multipart =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("multipart/form-data"));
    if !multipart {
        let path = path.ok_or_else(|| E2bError::bad_request("path is required for an octet-stream upload"))?;
        let body = request.into_body().into_data_stream().boxed();
        let entry = s.core.write_file_stream(&o.tenant, &o.id, &path, body).await.map_err(|e| files_error(&o.id, e))?;
        return Ok(Json(vec![written(&entry)]));
    }
    let mut form = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
        .await
        .map_err(|e| E2bError::bad_request(format!("the multipart body: {e}")))?;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(field) =
        form.next_field().await.map_err(|e| E2bError::bad_request(format!("the multipart body: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let target = match (&path, field.file_name()) {
            (Some(p), _) if out.is_empty() => p.clone(),
            (_, Some(name)) => name.to_owned(),
            _ => return Err(E2bError::bad_request("a file part needs a path (its filename) when several are sent")),
        };
        if !seen.insert(target.clone()) {
            return Err(E2bError::bad_request(format!("{target} is sent twice")));
        }
        let entry = s
            .core
            .write_file_stream(&o.tenant, &o.id, &target, field.boxed())
            .await
            .map_err(|e| files_error(&o.id, e))?;
        out.push(written(&entry));
    }
    if out.is_empty() {
        return Err(E2bError::bad_request("no part named file"));
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_header_names_the_user_and_only_the_sandbox_user_passes() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic dXNlcjo=".parse().unwrap());
        assert_eq!(basic_user(&h).as_deref(), Some("user"));
        assert!(check_user(basic_user(&h).as_deref()).is_ok());
        h.insert("authorization", "Basic cm9vdDo=".parse().unwrap());
        assert_eq!(check_user(basic_user(&h).as_deref()).unwrap_err().code, "permission_denied");
        assert!(check_user(None).is_ok());
    }

    #[test]
    fn a_query_path_is_unescaped_once() {
        let q = Some("path=%2Fhome%2Fuser%2Fa%20b.txt&username=user".to_owned());
        assert_eq!(query_param(&q, "path").as_deref(), Some("/home/user/a b.txt"));
        assert_eq!(query_param(&q, "username").as_deref(), Some("user"));
    }
}
