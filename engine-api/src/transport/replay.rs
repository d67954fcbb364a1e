//! A transport that serves a recorded cassette, strictly.
//!
//! Each request is matched by its identity (method, target with its query,
//! body bytes); requests of one identity get that identity's exchanges in
//! recorded order, so calls that run concurrently need not come in one
//! global order. A request the cassette does not hold fails with a readable
//! comparison of what came and what was recorded, and
//! [`ReplayTransport::finish`] fails when exchanges were left unused or an
//! upgraded connection was written other bytes than recorded.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::cassette::{Cassette, CassetteError, Data, Exchange, IoEvent};
use super::diff;
use super::{Body, Request, RequestBody, Response, Transport, TransportError, Upgrade};

/// Serves one cassette. Cheap to clone: clones share the replay's state.
#[derive(Clone)]
pub struct ReplayTransport {
    state: Arc<Mutex<State>>,
}

type Identity = (String, String, Bytes);

struct State {
    name: String,
    exchanges: Vec<Exchange>,
    used: Vec<bool>,
    queues: HashMap<Identity, VecDeque<usize>>,
    problems: Vec<String>,
    upgrades: Vec<Arc<Mutex<WriteCheck>>>,
}

/// Why a replay did not go as recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(pub String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn body_bytes(data: &Option<Data>) -> Result<Bytes, CassetteError> {
    data.as_ref().map(Data::to_bytes).transpose().map(Option::unwrap_or_default)
}

impl ReplayTransport {
    /// Replays the cassette at `path`.
    pub fn load(path: &Path) -> Result<ReplayTransport, CassetteError> {
        let cassette = Cassette::load(path)?;
        ReplayTransport::new(cassette, &path.display().to_string())
    }

    /// Replays `cassette`; `name` says where it came from in error messages.
    pub fn new(cassette: Cassette, name: &str) -> Result<ReplayTransport, CassetteError> {
        let mut queues: HashMap<Identity, VecDeque<usize>> = HashMap::new();
        for (i, e) in cassette.exchanges.iter().enumerate() {
            let id = (e.request.method.clone(), e.request.target.clone(), body_bytes(&e.request.body)?);
            queues.entry(id).or_default().push_back(i);
        }
        let used = vec![false; cassette.exchanges.len()];
        let name = format!("scenario {:?} ({name})", cassette.scenario);
        let state = State { name, exchanges: cassette.exchanges, used, queues, problems: vec![], upgrades: vec![] };
        Ok(ReplayTransport { state: Arc::new(Mutex::new(state)) })
    }

    /// Checks that the replay went exactly as recorded: every request found,
    /// every exchange used, every upgraded connection written as recorded.
    pub fn finish(&self) -> Result<(), ReplayError> {
        let state = lock(&self.state);
        let mut problems = state.problems.clone();
        for (i, used) in state.used.iter().enumerate() {
            if !used {
                let r = &state.exchanges[i].request;
                problems.push(format!("exchange {i} was recorded but never requested: {} {}", r.method, r.target));
            }
        }
        for check in &state.upgrades {
            problems.extend(lock(check).problem());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ReplayError(format!("replay of {} went differently:\n- {}", state.name, problems.join("\n- "))))
        }
    }

    async fn take(&self, request: Request) -> Result<Exchange, TransportError> {
        let body = match request.body {
            RequestBody::Empty => Bytes::new(),
            RequestBody::Full(bytes) => bytes,
            RequestBody::Stream(mut stream) => {
                let mut all = BytesMut::new();
                while let Some(chunk) = stream.next().await {
                    all.extend_from_slice(&chunk.map_err(|e| TransportError::Body(Box::new(e)))?);
                }
                all.freeze()
            }
        };
        let id = (request.method.to_string(), request.target, body);
        let mut state = lock(&self.state);
        let found = state.queues.get_mut(&id).and_then(VecDeque::pop_front);
        match found {
            Some(i) => {
                state.used[i] = true;
                Ok(state.exchanges[i].clone())
            }
            None => {
                let message = state.mismatch(&id);
                state.problems.push(message.clone());
                Err(TransportError::Other(message))
            }
        }
    }
}

impl State {
    /// What came, beside the recorded exchange it most likely should have been.
    fn mismatch(&self, (method, target, body): &Identity) -> String {
        let path = |t: &str| t.split('?').next().unwrap_or("").to_owned();
        let unused: Vec<usize> = (0..self.exchanges.len()).filter(|&i| !self.used[i]).collect();
        let same = |i: &&usize, path_too: bool| {
            let r = &self.exchanges[**i].request;
            r.method == *method && (!path_too || path(&r.target) == path(target))
        };
        let nearest = unused.iter().find(|i| same(i, true)).or_else(|| unused.iter().find(|i| same(i, false)));
        let nearest = nearest.or(unused.first());
        let mut msg = format!("{}: no recorded exchange left for this request\n", self.name);
        let _ = writeln!(msg, "    came:     {method} {target}{}", show_body(body));
        match nearest {
            Some(&i) => {
                let r = &self.exchanges[i].request;
                let recorded = body_bytes(&r.body).unwrap_or_default();
                let _ = write!(msg, "    recorded: {} {}{} (exchange {i})", r.method, r.target, show_body(&recorded));
                let differences: Vec<String> =
                    diff::targets(target, &r.target).into_iter().chain(diff::bodies(body, &recorded)).collect();
                if !differences.is_empty() {
                    let _ = write!(msg, "\n    what differs:\n      - {}", differences.join("\n      - "));
                }
            }
            None => msg.push_str("    recorded: nothing (every exchange was used)"),
        }
        msg
    }
}

fn show_body(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
    format!("\n              body: {text}{}", if body.len() > 400 { " …" } else { "" })
}

fn headers(map: &std::collections::BTreeMap<String, String>) -> HeaderMap {
    map.iter()
        .filter_map(|(k, v)| Some((HeaderName::try_from(k.as_str()).ok()?, HeaderValue::try_from(v.as_str()).ok()?)))
        .collect()
}

fn response(exchange: &Exchange) -> Result<Response, TransportError> {
    let corrupt = |e: CassetteError| TransportError::Other(e.to_string());
    let chunks: Vec<Result<Bytes, TransportError>> =
        exchange.response.chunks.iter().map(|d| d.to_bytes().map_err(corrupt)).collect();
    let status = StatusCode::from_u16(exchange.response.status)
        .map_err(|e| TransportError::Other(format!("bad status in a fixture: {e}")))?;
    let recorded = futures_util::stream::iter(chunks);
    let body = if exchange.response.ended {
        Body::from_stream(recorded)
    } else {
        // The client stopped reading a stream that was still open: so it stays.
        Body::from_stream(recorded.chain(futures_util::stream::pending()))
    };
    Ok(Response { status, headers: headers(&exchange.response.headers), body })
}

impl Transport for ReplayTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move { response(&self.take(request).await?) })
    }

    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>> {
        Box::pin(async move {
            let exchange = self.take(request).await?;
            let Some(transcript) = &exchange.upgraded else {
                return Ok(Upgrade::Refused(response(&exchange)?));
            };
            let mut reads = VecDeque::new();
            let mut check = WriteCheck { label: exchange.request.target.clone(), ..Default::default() };
            let mut eof = false;
            for event in &transcript.events {
                match event {
                    IoEvent::Read(d) => {
                        reads.push_back(d.to_bytes().map_err(|e| TransportError::Other(e.to_string()))?)
                    }
                    IoEvent::Write(d) => check
                        .expected
                        .extend_from_slice(&d.to_bytes().map_err(|e| TransportError::Other(e.to_string()))?),
                    IoEvent::Shutdown => check.expect_shutdown = true,
                    IoEvent::Eof => eof = true,
                }
            }
            let check = Arc::new(Mutex::new(check));
            lock(&self.state).upgrades.push(check.clone());
            let io = ReplayIo { reads, eof, check };
            Ok(Upgrade::Upgraded { headers: headers(&exchange.response.headers), io: Box::new(io) })
        })
    }
}

/// What the client wrote to a replayed upgraded connection, against the recording.
#[derive(Default)]
struct WriteCheck {
    label: String,
    expected: Vec<u8>,
    expect_shutdown: bool,
    written: Vec<u8>,
    shut: bool,
}

impl WriteCheck {
    fn problem(&self) -> Option<String> {
        if self.written != self.expected {
            let show = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            return Some(format!(
                "the upgraded connection of {} was written {} bytes ({:?}…), {} recorded ({:?}…)",
                self.label,
                self.written.len(),
                show(&self.written),
                self.expected.len(),
                show(&self.expected)
            ));
        }
        (self.shut != self.expect_shutdown).then(|| {
            format!(
                "the upgraded connection of {}: half-close {}, recorded {}",
                self.label, self.shut, self.expect_shutdown
            )
        })
    }
}

/// The daemon's side of a recorded upgraded connection: its bytes in
/// recorded chunks, then end of stream if it was recorded; writes are kept
/// for [`ReplayTransport::finish`] to compare.
struct ReplayIo {
    reads: VecDeque<Bytes>,
    eof: bool,
    check: Arc<Mutex<WriteCheck>>,
}

impl AsyncRead for ReplayIo {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.reads.pop_front() {
            Some(mut chunk) => {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk.split_to(n));
                if !chunk.is_empty() {
                    self.reads.push_front(chunk);
                }
                Poll::Ready(Ok(()))
            }
            None if self.eof => Poll::Ready(Ok(())),
            // Recorded as still open: it stays open.
            None => Poll::Pending,
        }
    }
}

impl AsyncWrite for ReplayIo {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        lock(&self.check).written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.check).shut = true;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::cassette::{RecordedRequest, RecordedResponse};
    use crate::transport::RecordingTransport;

    fn exchange(method: &str, target: &str, answer: &str) -> Exchange {
        Exchange {
            request: RecordedRequest {
                method: method.into(),
                target: target.into(),
                headers: Default::default(),
                body: None,
            },
            response: RecordedResponse {
                status: 200,
                headers: Default::default(),
                chunks: vec![Data::Text(answer.into())],
                ended: true,
            },
            upgraded: None,
        }
    }

    fn get(target: &str) -> Request {
        Request {
            method: http::Method::GET,
            target: target.into(),
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
        }
    }

    async fn answer(t: &impl Transport, target: &str) -> Result<String, TransportError> {
        let res = t.send(get(target)).await?;
        let chunks: Vec<Bytes> = res.body.map(|c| c.unwrap()).collect().await;
        Ok(String::from_utf8(chunks.concat()).unwrap())
    }

    fn cassette() -> Cassette {
        Cassette {
            scenario: "t".into(),
            exchanges: vec![exchange("GET", "/a", "a1"), exchange("GET", "/b", "b1"), exchange("GET", "/a", "a2")],
        }
    }

    #[tokio::test]
    async fn identities_are_matched_independently_each_in_recorded_order() {
        let replay = ReplayTransport::new(cassette(), "test").unwrap();
        // /b first, although it was recorded second: concurrent calls may come in any order.
        assert_eq!(answer(&replay, "/b").await.unwrap(), "b1");
        assert_eq!(answer(&replay, "/a").await.unwrap(), "a1");
        assert_eq!(answer(&replay, "/a").await.unwrap(), "a2");
        replay.finish().unwrap();
    }

    #[tokio::test]
    async fn unused_exchanges_and_unknown_requests_fail_the_replay() {
        let replay = ReplayTransport::new(cassette(), "test").unwrap();
        assert_eq!(answer(&replay, "/a").await.unwrap(), "a1");
        let err = answer(&replay, "/c").await.unwrap_err().to_string();
        assert!(err.contains("came:     GET /c") && err.contains("recorded: GET /b"), "{err}");
        let finish = replay.finish().unwrap_err().0;
        assert!(finish.contains("GET /c"), "{finish}");
        assert!(finish.contains("exchange 1 was recorded but never requested: GET /b"), "{finish}");
        assert!(finish.contains("exchange 2 was recorded but never requested: GET /a"), "{finish}");
    }

    #[tokio::test]
    async fn recording_a_replay_gives_back_the_same_cassette() {
        let recorder = RecordingTransport::new(ReplayTransport::new(cassette(), "test").unwrap(), "t");
        for target in ["/a", "/b", "/a"] {
            answer(&recorder, target).await.unwrap();
        }
        assert_eq!(recorder.cassette(), cassette());
    }

    #[tokio::test]
    async fn an_upgraded_connection_replays_its_reads_and_checks_its_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut e = exchange("POST", "/exec/x/start", "");
        e.response = RecordedResponse { status: 101, ended: true, ..Default::default() };
        e.upgraded = Some(crate::transport::cassette::Transcript {
            events: vec![
                IoEvent::Write(Data::Text("hi".into())),
                IoEvent::Shutdown,
                IoEvent::Read(Data::Text("hi".into())),
                IoEvent::Eof,
            ],
        });
        let replay = ReplayTransport::new(Cassette { scenario: "t".into(), exchanges: vec![e] }, "test").unwrap();
        let request = Request {
            method: http::Method::POST,
            target: "/exec/x/start".into(),
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
        };
        let Upgrade::Upgraded { mut io, .. } = replay.upgrade(request).await.unwrap() else { panic!("not upgraded") };
        io.write_all(b"ho").await.unwrap();
        let mut read = String::new();
        io.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "hi");
        let finish = replay.finish().unwrap_err().0;
        assert!(finish.contains("written 2 bytes (\"ho\"…), 2 recorded (\"hi\"…)"), "{finish}");
        assert!(finish.contains("half-close false, recorded true") || finish.contains("written"), "{finish}");
    }
}
