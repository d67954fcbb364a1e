//! What a container says about itself, over HTTP: its logs (read at once
//! or followed) and its resource use (one sample or a stream), shared by
//! agents and relics. Reads are capped: a log read keeps at most the
//! policy's output cap.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::follow::{self, FollowEvent, Format};
use super::AppState;
use berth_core::engine::{LogRequest, Usage};
use berth_core::observe::{EndingFuture, LogsRead, Target};
use berth_core::runs::RunRecord;

/// Which logs, and how.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Keep following until the container ends (NDJSON or SSE of `FollowEvent`s).
    #[serde(default)]
    pub follow: bool,
    /// Only the last this many lines.
    pub tail: Option<u64>,
    /// Only lines since this Unix time (seconds).
    pub since: Option<i64>,
    /// Prefix each line with its RFC 3339 time.
    #[serde(default)]
    pub timestamps: bool,
    /// `ndjson` (default) or `sse`; `Accept: text/event-stream` also asks for SSE.
    pub format: Option<String>,
}

impl LogQuery {
    pub fn format(&self, headers: &HeaderMap) -> Result<Format, ApiError> {
        let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
        Format::choose(self.format.as_deref(), accept).map_err(ApiError::bad_request)
    }

    pub fn request(&self) -> LogRequest {
        LogRequest { follow: self.follow, tail: self.tail, since: self.since, timestamps: self.timestamps }
    }
}

/// Logs read at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsView {
    pub stdout: String,
    pub stderr: String,
    /// Both streams in the order they came (what a terminal would show).
    pub logs: String,
    /// True when the cap cut them short.
    pub truncated: bool,
}

impl LogsView {
    pub fn of_run(r: &RunRecord) -> LogsView {
        LogsView {
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            logs: format!("{}{}", r.stdout, r.stderr),
            truncated: r.stdout_truncated || r.stderr_truncated,
        }
    }
}

impl From<LogsRead> for LogsView {
    fn from(r: LogsRead) -> Self {
        LogsView { stdout: r.stdout, stderr: r.stderr, logs: r.logs, truncated: r.truncated }
    }
}

/// Resource use, in numbers a person reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Percent of one CPU (absent without two samples to compare).
    pub cpu_percent: Option<f64>,
    pub cpu_time_ns: u64,
    pub memory_used_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub network_rx_bytes: u64,
    pub network_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: Option<u64>,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        UsageView {
            cpu_percent: u.cpu_percent,
            cpu_time_ns: u.cpu_time_ns,
            memory_used_bytes: u.memory_used,
            memory_peak_bytes: u.memory_peak,
            memory_limit_bytes: u.memory_limit,
            network_rx_bytes: u.net_rx,
            network_tx_bytes: u.net_tx,
            block_read_bytes: u.block_read,
            block_write_bytes: u.block_write,
            pids: u.pids,
        }
    }
}

/// Whether stats are one sample or a stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Stream a sample about once a second (NDJSON or SSE of `stats` events) until the container ends.
    #[serde(default)]
    pub stream: bool,
    /// `ndjson` (default) or `sse`.
    pub format: Option<String>,
}

/// The final event of a followed container: how it ended.
fn exit_of(end: EndingFuture) -> BoxFuture<'static, FollowEvent> {
    Box::pin(async move {
        match end.await {
            Ok(e) => {
                FollowEvent::Exit { status: e.status.as_str().into(), exit_code: e.exit_code, oom_killed: e.oom_killed }
            }
            Err(e) => FollowEvent::Error { message: e.to_string() },
        }
    })
}

/// A target's logs as the query asks: JSON at once, or followed.
pub async fn logs(
    s: &AppState,
    tenant: &str,
    target: Target,
    q: &LogQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = q.format(headers)?;
    if !q.follow {
        return Ok(Json(LogsView::from(s.core.read_logs(tenant, &target, &q.request()).await?)).into_response());
    }
    let followed = s.core.follow_logs(tenant, &target, &q.request()).await?;
    Ok(follow::respond(follow::logs(followed.output), exit_of(followed.end), format, s.keepalive))
}

/// A target's resource use as the query asks: one sample or a stream.
pub async fn stats(
    s: &AppState,
    tenant: &str,
    target: Target,
    q: &StatsQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::choose(q.format.as_deref(), accept).map_err(ApiError::bad_request)?;
    if !q.stream {
        return Ok(Json(UsageView::from(s.core.usage(tenant, &target).await?)).into_response());
    }
    let followed = s.core.follow_usage(tenant, &target).await?;
    let samples = followed
        .samples
        .map(|u| FollowEvent::Stats { usage: serde_json::to_value(UsageView::from(u)).unwrap_or_default() })
        .boxed();
    Ok(follow::respond(samples, exit_of(followed.end), format, s.keepalive))
}
