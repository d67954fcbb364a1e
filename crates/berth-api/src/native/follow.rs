//! Followed output as an HTTP body: NDJSON or server-sent events, with
//! keep-alives while the container is quiet and one final event that says
//! how it ended.
//!
//! A pump task reads the backend's stream into a small bounded channel that
//! the body drains, so a slow client slows the engine read instead of
//! growing a buffer, and a client that hangs up ends the pump (and with it
//! the engine connection) at the next item or keep-alive. This module knows
//! the wire formats only; what the final event says is the caller's.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use berth_core::engine::{EngineError, LogChunk, LogStream, Stream};

/// How a followed stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON event per line (`application/x-ndjson`).
    Ndjson,
    /// `text/event-stream`: `event:` is the event's kind, `data:` its JSON.
    Sse,
}

impl Format {
    /// `format=sse|ndjson` wins; else an `Accept: text/event-stream` asks for SSE.
    pub fn choose(format: Option<&str>, accept: Option<&str>) -> Result<Format, String> {
        match format {
            Some("ndjson") => Ok(Format::Ndjson),
            Some("sse") => Ok(Format::Sse),
            Some(other) => Err(format!("format {other:?} is neither `ndjson` nor `sse`")),
            None if accept.is_some_and(|a| a.contains("text/event-stream")) => Ok(Format::Sse),
            None => Ok(Format::Ndjson),
        }
    }
}

/// One event of a followed stream.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FollowEvent {
    /// A piece of output (UTF-8, invalid bytes replaced).
    Log {
        #[schema(value_type = String)]
        stream: Stream,
        data: String,
    },
    /// Nothing new; the connection is alive.
    Keepalive,
    /// The last event: how the container ended (`exit_code` is absent when it
    /// is still running, for a follow that stopped on the engine's side).
    Exit { status: String, exit_code: Option<i64>, oom_killed: bool },
    /// The stream broke; nothing follows.
    Error { message: String },
    /// A resource sample (streamed stats).
    Stats {
        #[schema(value_type = Object)]
        usage: serde_json::Value,
    },
}

impl FollowEvent {
    fn kind(&self) -> &'static str {
        match self {
            FollowEvent::Log { .. } => "log",
            FollowEvent::Keepalive => "keepalive",
            FollowEvent::Exit { .. } => "exit",
            FollowEvent::Error { .. } => "error",
            FollowEvent::Stats { .. } => "stats",
        }
    }

    fn from_chunk(item: Result<LogChunk, EngineError>) -> FollowEvent {
        match item {
            Ok(chunk) => {
                FollowEvent::Log { stream: chunk.stream, data: String::from_utf8_lossy(&chunk.data).into_owned() }
            }
            Err(e) => FollowEvent::Error { message: e.to_string() },
        }
    }

    /// The event framed for the wire.
    pub fn encode(&self, format: Format) -> Bytes {
        let json = serde_json::to_string(self).expect("events serialize");
        match format {
            Format::Ndjson => Bytes::from(json + "\n"),
            // A keep-alive is an SSE comment: clients skip it without an event.
            Format::Sse if matches!(self, FollowEvent::Keepalive) => Bytes::from_static(b": keepalive\n\n"),
            Format::Sse => Bytes::from(format!("event: {}\ndata: {json}\n\n", self.kind())),
        }
    }
}

/// Items in flight between the pump and the body.
const CHANNEL: usize = 16;

/// Follows `events` as a response body, with a keep-alive after `keepalive`
/// of quiet, then the event `end` resolves to. An error event ends the stream.
pub fn respond(
    events: BoxStream<'static, FollowEvent>,
    end: BoxFuture<'static, FollowEvent>,
    format: Format,
    keepalive: Duration,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<FollowEvent>(CHANNEL);
    tokio::spawn(pump(events, end, tx, keepalive));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) })
        .map(move |ev| Ok::<_, Infallible>(ev.encode(format)));
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Sse => "text/event-stream",
    };
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], Body::from_stream(body)).into_response()
}

/// A backend log stream as follow events.
pub fn logs(stream: LogStream) -> BoxStream<'static, FollowEvent> {
    stream.map(FollowEvent::from_chunk).boxed()
}

async fn pump(
    mut events: BoxStream<'static, FollowEvent>,
    end: BoxFuture<'static, FollowEvent>,
    tx: tokio::sync::mpsc::Sender<FollowEvent>,
    keepalive: Duration,
) {
    loop {
        let next = tokio::time::timeout(keepalive, events.next()).await;
        let event = match next {
            Err(_) => FollowEvent::Keepalive,
            Ok(Some(ev)) => ev,
            Ok(None) => break,
        };
        let broken = matches!(event, FollowEvent::Error { .. });
        if tx.send(event).await.is_err() || broken {
            return;
        }
    }
    // The output is over; its end may take a moment to be known.
    drop(events);
    let _ = tx.send(end.await).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_as_json_lines_or_as_server_sent_events() {
        let ev = FollowEvent::Log { stream: Stream::Stdout, data: "hi\n".into() };
        assert_eq!(
            ev.encode(Format::Ndjson),
            Bytes::from("{\"event\":\"log\",\"stream\":\"stdout\",\"data\":\"hi\\n\"}\n")
        );
        assert_eq!(
            ev.encode(Format::Sse),
            Bytes::from("event: log\ndata: {\"event\":\"log\",\"stream\":\"stdout\",\"data\":\"hi\\n\"}\n\n")
        );
        assert_eq!(FollowEvent::Keepalive.encode(Format::Sse), Bytes::from(": keepalive\n\n"));
        let exit = FollowEvent::Exit { status: "exited".into(), exit_code: Some(3), oom_killed: false };
        assert!(exit.encode(Format::Sse).starts_with(b"event: exit\ndata: {\"event\":\"exit\""));
    }

    #[test]
    fn the_format_comes_from_the_query_then_the_accept_header() {
        assert_eq!(Format::choose(None, None), Ok(Format::Ndjson));
        assert_eq!(Format::choose(None, Some("text/event-stream")), Ok(Format::Sse));
        assert_eq!(Format::choose(Some("ndjson"), Some("text/event-stream")), Ok(Format::Ndjson));
        assert!(Format::choose(Some("xml"), None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_keepalives_and_ends_with_the_final_event() {
        let (tx, rx) = tokio::sync::mpsc::channel::<FollowEvent>(4);
        let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let end =
            Box::pin(async { FollowEvent::Exit { status: "exited".into(), exit_code: Some(0), oom_killed: false } });
        let (out_tx, mut out) = tokio::sync::mpsc::channel(16);
        let pump = tokio::spawn(pump(events.boxed(), end, out_tx, Duration::from_secs(5)));
        tx.send(FollowEvent::Log { stream: Stream::Stdout, data: "a".into() }).await.unwrap();
        assert!(matches!(out.recv().await, Some(FollowEvent::Log { .. })));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(out.recv().await, Some(FollowEvent::Keepalive));
        assert_eq!(out.recv().await, Some(FollowEvent::Keepalive));
        drop(tx);
        assert!(matches!(out.recv().await, Some(FollowEvent::Exit { exit_code: Some(0), .. })));
        assert_eq!(out.recv().await, None);
        pump.await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_ends_the_pump() {
        let events = futures_util::stream::pending::<FollowEvent>().boxed();
        let end = Box::pin(async { FollowEvent::Keepalive });
        let (out_tx, out) = tokio::sync::mpsc::channel(1);
        drop(out);
        let pump = tokio::spawn(pump(events, end, out_tx, Duration::from_millis(10)));
        tokio::time::timeout(Duration::from_secs(5), pump).await.expect("the pump ends").unwrap();
    }
}
