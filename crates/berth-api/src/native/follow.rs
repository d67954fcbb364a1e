//! Followed output as an HTTP body: NDJSON or server-sent events, with
//! keep-alives while the container is quiet and one final event that says
//! how it ended.
//!
//! The body pulls one event at a time from the backend's stream as the
//! connection takes it, so a slow client slows the engine read instead of
//! growing a buffer, and a client that hangs up drops the body and with it
//! the engine connection. Server-sent events are axum's (`Sse`, with its
//! `KeepAlive`), JSON lines axum-extra's (`JsonLines`). This module knows
//! the wire formats only; what the final event says is the caller's.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::json_lines::JsonLines;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
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
    /// A step of an image pull: a layer's status and, while its bytes
    /// move, how many of how many (no layer: a line about the image).
    Progress {
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        current: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// The last event of a pull that succeeded: the image is there.
    Pulled { image: String },
}

impl FollowEvent {
    fn kind(&self) -> &'static str {
        match self {
            FollowEvent::Log { .. } => "log",
            FollowEvent::Keepalive => "keepalive",
            FollowEvent::Exit { .. } => "exit",
            FollowEvent::Error { .. } => "error",
            FollowEvent::Stats { .. } => "stats",
            FollowEvent::Progress { .. } => "progress",
            FollowEvent::Pulled { .. } => "pulled",
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

    /// The event as a server-sent event: `event:` is its kind, `data:` its
    /// JSON; a keep-alive is a comment, which clients skip.
    fn sse(&self) -> Result<Event, axum::Error> {
        match self {
            FollowEvent::Keepalive => Ok(Event::default().comment(KEEPALIVE)),
            _ => Event::default().event(self.kind()).json_data(self),
        }
    }
}

/// The text of a keep-alive comment of server-sent events.
const KEEPALIVE: &str = "keepalive";

/// The shortest quiet before a keep-alive, for a zero one from the caller.
const MIN_KEEPALIVE: Duration = Duration::from_millis(1);

/// Follows `events` as a response body, with a keep-alive after `keepalive`
/// of quiet, then the event `end` resolves to. An error event ends the stream.
pub fn respond(
    events: BoxStream<'static, FollowEvent>,
    end: BoxFuture<'static, FollowEvent>,
    format: Format,
    keepalive: Duration,
) -> Response {
    let keepalive = keepalive.max(MIN_KEEPALIVE);
    let followed = then_end(events, end);
    match format {
        Format::Ndjson => {
            let lines = with_keepalives(followed, keepalive).map(Ok::<_, Infallible>);
            ([(CONTENT_TYPE, "application/x-ndjson"), (CACHE_CONTROL, "no-cache")], JsonLines::new(lines))
                .into_response()
        }
        Format::Sse => Sse::new(followed.map(|ev| ev.sse()))
            .keep_alive(KeepAlive::new().interval(keepalive).text(KEEPALIVE))
            .into_response(),
    }
}

/// A backend log stream as follow events.
pub fn logs(stream: LogStream) -> BoxStream<'static, FollowEvent> {
    stream.map(FollowEvent::from_chunk).boxed()
}

/// The output's events, then the event `end` resolves to once the output is
/// over; after an error event nothing follows, not even the end.
fn then_end(
    events: BoxStream<'static, FollowEvent>,
    end: BoxFuture<'static, FollowEvent>,
) -> impl futures_util::Stream<Item = FollowEvent> + Send + 'static {
    futures_util::stream::unfold(Some((events, end)), |state| async move {
        let (mut events, end) = state?;
        match events.next().await {
            Some(ev @ FollowEvent::Error { .. }) => Some((ev, None)),
            Some(ev) => Some((ev, Some((events, end)))),
            None => {
                // The output is over; its end may take a moment to be known.
                drop(events);
                Some((end.await, None))
            }
        }
    })
}

/// A keep-alive event after each `period` with no event (for NDJSON, which
/// has no keep-alive of its own).
fn with_keepalives(
    events: impl futures_util::Stream<Item = FollowEvent> + Send + 'static,
    period: Duration,
) -> impl futures_util::Stream<Item = FollowEvent> + Send + 'static {
    let mut quiet = tokio::time::interval_at(Instant::now() + period, period);
    quiet.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio_stream::StreamExt::timeout_repeating(events, quiet).map(|ev| ev.unwrap_or(FollowEvent::Keepalive))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;

    fn log(data: &str) -> FollowEvent {
        FollowEvent::Log { stream: Stream::Stdout, data: data.into() }
    }

    fn exit(code: i64) -> BoxFuture<'static, FollowEvent> {
        Box::pin(async move { FollowEvent::Exit { status: "exited".into(), exit_code: Some(code), oom_killed: false } })
    }

    /// The next piece of a body as text, or `None` at its end.
    async fn next(body: &mut axum::body::Body) -> Option<String> {
        let frame = body.frame().await?.expect("the body reads");
        Some(String::from_utf8(frame.into_data().expect("a data frame").to_vec()).expect("UTF-8"))
    }

    async fn whole(response: Response) -> String {
        let bytes = response.into_body().collect().await.expect("the body reads").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[tokio::test]
    async fn events_are_framed_as_json_lines_or_as_server_sent_events() {
        let events = || futures_util::stream::iter([log("hi\n"), FollowEvent::Keepalive]).boxed();
        let line = "{\"event\":\"log\",\"stream\":\"stdout\",\"data\":\"hi\\n\"}";
        let exit_json = "{\"event\":\"exit\",\"status\":\"exited\",\"exit_code\":3,\"oom_killed\":false}";

        let nd = respond(events(), exit(3), Format::Ndjson, Duration::from_secs(60));
        assert_eq!(nd.headers()[CONTENT_TYPE], "application/x-ndjson");
        assert_eq!(nd.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(whole(nd).await, format!("{line}\n{{\"event\":\"keepalive\"}}\n{exit_json}\n"));

        let sse = respond(events(), exit(3), Format::Sse, Duration::from_secs(60));
        assert_eq!(sse.headers()[CONTENT_TYPE], "text/event-stream");
        assert_eq!(sse.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(
            whole(sse).await,
            format!("event: log\ndata: {line}\n\n: keepalive\n\nevent: exit\ndata: {exit_json}\n\n")
        );
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
        for (format, keepalive) in [(Format::Ndjson, "{\"event\":\"keepalive\"}\n"), (Format::Sse, ": keepalive\n\n")] {
            let (tx, rx) = tokio::sync::mpsc::channel::<FollowEvent>(4);
            let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
            let mut body = respond(events.boxed(), exit(0), format, Duration::from_secs(5)).into_body();
            tx.send(log("a")).await.unwrap();
            assert!(next(&mut body).await.unwrap().contains("\"data\":\"a\""));
            let quiet = Instant::now();
            assert_eq!(next(&mut body).await.as_deref(), Some(keepalive));
            assert_eq!(next(&mut body).await.as_deref(), Some(keepalive));
            assert_eq!(quiet.elapsed(), Duration::from_secs(10), "{format:?}");
            // Output resets the quiet.
            tx.send(log("b")).await.unwrap();
            assert!(next(&mut body).await.unwrap().contains("\"data\":\"b\""));
            let quiet = Instant::now();
            assert_eq!(next(&mut body).await.as_deref(), Some(keepalive));
            assert_eq!(quiet.elapsed(), Duration::from_secs(5), "{format:?}");
            drop(tx);
            assert!(next(&mut body).await.unwrap().contains("\"exit_code\":0"), "{format:?}");
            assert_eq!(next(&mut body).await, None);
        }
    }

    #[tokio::test]
    async fn an_error_event_is_the_last() {
        for format in [Format::Ndjson, Format::Sse] {
            let events = futures_util::stream::iter([log("a"), FollowEvent::Error { message: "broke".into() }])
                .chain(futures_util::stream::pending())
                .boxed();
            let never = Box::pin(futures_util::future::pending());
            let response = respond(events, never, format, Duration::from_secs(60));
            let text = tokio::time::timeout(Duration::from_secs(5), whole(response)).await.expect("the body ends");
            assert!(text.contains("\"data\":\"a\""), "{text}");
            assert!(text.trim_end().ends_with("{\"event\":\"error\",\"message\":\"broke\"}"), "{text}");
        }
    }

    #[tokio::test]
    async fn the_body_reads_the_output_only_as_fast_as_the_client_takes_it() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counted = pulled.clone();
        let events = futures_util::stream::repeat_with(|| log("x"))
            .inspect(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .boxed();
        let mut body = respond(events, exit(0), Format::Ndjson, Duration::from_secs(60)).into_body();
        for _ in 0..3 {
            next(&mut body).await.unwrap();
        }
        tokio::task::yield_now().await;
        assert_eq!(pulled.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_drops_the_engine_stream() {
        for format in [Format::Ndjson, Format::Sse] {
            let (tx, rx) = tokio::sync::mpsc::channel::<FollowEvent>(1);
            let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
            let mut body = respond(events.boxed(), exit(0), format, Duration::from_millis(10)).into_body();
            tx.send(log("a")).await.unwrap();
            next(&mut body).await.unwrap();
            assert!(!tx.is_closed());
            drop(body);
            assert!(tx.is_closed(), "{format:?}");
        }
    }
}
