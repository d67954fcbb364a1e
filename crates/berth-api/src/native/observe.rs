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
use berth_core::backend::{Backend, LogRequest, LogStream, Stream, Usage};
use berth_core::output::CappedOutput;
use berth_core::runs::RunRecord;
use berth_core::spec::ContainerId;

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

    /// Reads a finite log stream, keeping at most `cap` bytes of it.
    pub async fn collect(mut stream: LogStream, cap: usize) -> Result<LogsView, ApiError> {
        let (mut out, mut err, mut all) = (CappedOutput::new(cap), CappedOutput::new(cap), CappedOutput::new(cap));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            match chunk.stream {
                Stream::Stderr => err.push(&chunk.data),
                Stream::Stdout | Stream::Console => out.push(&chunk.data),
            }
            // Memory stays within the caps; the rest is only counted.
            all.push(&chunk.data);
        }
        let truncated = all.truncated();
        Ok(LogsView { stdout: out.into_text(), stderr: err.into_text(), logs: all.into_text(), truncated })
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

/// The final event of a followed container: how it ended, from its state.
fn exit_of(backend: std::sync::Arc<dyn Backend>, id: ContainerId) -> BoxFuture<'static, FollowEvent> {
    Box::pin(async move {
        match backend.state(&id).await {
            Ok(st) => FollowEvent::Exit {
                status: st.status,
                exit_code: if st.running { None } else { st.exit_code },
                oom_killed: st.oom_killed,
            },
            Err(e) => FollowEvent::Error { message: e.to_string() },
        }
    })
}

/// A container's logs as the query asks: JSON at once, or followed.
pub async fn logs(s: &AppState, id: ContainerId, q: &LogQuery, headers: &HeaderMap) -> Result<Response, ApiError> {
    let (backend, cap, keepalive) = (s.core.backend.clone(), s.core.policy.config.output_cap, s.keepalive);
    let format = q.format(headers)?;
    let stream = backend.logs(&id, &q.request()).await?;
    if !q.follow {
        return Ok(Json(LogsView::collect(stream, cap).await?).into_response());
    }
    let end = exit_of(backend, id);
    Ok(follow::respond(follow::logs(stream), end, format, keepalive))
}

/// A container's resource use as the query asks: one sample or a stream.
pub async fn stats(s: &AppState, id: ContainerId, q: &StatsQuery, headers: &HeaderMap) -> Result<Response, ApiError> {
    let (backend, keepalive) = (s.core.backend.clone(), s.keepalive);
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::choose(q.format.as_deref(), accept).map_err(ApiError::bad_request)?;
    if !q.stream {
        return Ok(Json(UsageView::from(backend.usage(&id).await?)).into_response());
    }
    let samples = backend
        .usage_stream(&id)
        .await?
        .map(|u| FollowEvent::Stats { usage: serde_json::to_value(UsageView::from(u)).unwrap_or_default() })
        .boxed();
    Ok(follow::respond(samples, exit_of(backend, id), format, keepalive))
}
