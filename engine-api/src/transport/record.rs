//! A transport that records every exchange of the transport it wraps.
//!
//! Each request takes a slot in order of its start; the response body and,
//! for upgrades, both directions of the connection are appended to that slot
//! as they pass, chunk by chunk, so the cassette holds what the daemon sent
//! with its boundaries. [`RecordingTransport::save`] writes a snapshot.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::cassette::{
    kept_headers, Cassette, CassetteError, Data, Exchange, IoEvent, RecordedRequest, RecordedResponse, Transcript,
    REQUEST_HEADERS, RESPONSE_HEADERS,
};
use super::{Body, Duplex, Request, RequestBody, Response, Transport, TransportError, Upgrade};

/// Records what passes through `inner`. Cheap to clone: clones share the recording.
#[derive(Clone)]
pub struct RecordingTransport {
    inner: Arc<dyn Transport>,
    scenario: String,
    slots: Arc<Mutex<Vec<Arc<Mutex<Slot>>>>>,
}

struct Slot {
    exchange: Exchange,
    /// A streamed request body, gathered as it is sent.
    streamed_body: Option<Arc<Mutex<Vec<u8>>>>,
    /// The exchange failed below HTTP: nothing to replay.
    failed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RecordingTransport {
    pub fn new(inner: impl Transport, scenario: &str) -> Self {
        RecordingTransport { inner: Arc::new(inner), scenario: scenario.to_owned(), slots: Default::default() }
    }

    /// What has been recorded so far.
    pub fn cassette(&self) -> Cassette {
        let slots = lock(&self.slots);
        let exchanges = slots
            .iter()
            .filter_map(|slot| {
                let slot = lock(slot);
                if slot.failed {
                    return None;
                }
                let mut exchange = slot.exchange.clone();
                if let Some(body) = &slot.streamed_body {
                    exchange.request.body = Some(Data::from_bytes(&lock(body)));
                }
                Some(exchange)
            })
            .collect();
        Cassette { scenario: self.scenario.clone(), exchanges }
    }

    pub fn save(&self, path: &Path) -> Result<(), CassetteError> {
        self.cassette().save(path)
    }

    /// Takes a slot for `request` and returns it with the request to send on.
    fn open(&self, mut request: Request) -> (Arc<Mutex<Slot>>, Request) {
        let mut streamed_body = None;
        let body = match request.body {
            RequestBody::Empty => None,
            RequestBody::Full(ref bytes) => Some(Data::from_bytes(bytes)),
            RequestBody::Stream(stream) => {
                let gathered = Arc::new(Mutex::new(Vec::new()));
                let tee = gathered.clone();
                request.body = RequestBody::Stream(Box::pin(stream.map(move |chunk| {
                    if let Ok(bytes) = &chunk {
                        lock(&tee).extend_from_slice(bytes);
                    }
                    chunk
                })));
                streamed_body = Some(gathered);
                None
            }
        };
        let exchange = Exchange {
            request: RecordedRequest {
                method: request.method.to_string(),
                target: request.target.clone(),
                headers: kept_headers(&request.headers, REQUEST_HEADERS),
                body,
            },
            response: RecordedResponse { ended: false, ..Default::default() },
            upgraded: None,
        };
        let slot = Arc::new(Mutex::new(Slot { exchange, streamed_body, failed: false }));
        lock(&self.slots).push(slot.clone());
        (slot, request)
    }
}

fn record_head(slot: &Arc<Mutex<Slot>>, status: u16, headers: &http::HeaderMap) {
    let mut slot = lock(slot);
    slot.exchange.response.status = status;
    slot.exchange.response.headers = kept_headers(headers, RESPONSE_HEADERS);
}

fn recorded_response(slot: Arc<Mutex<Slot>>, response: Response) -> Response {
    record_head(&slot, response.status.as_u16(), &response.headers);
    let body = RecordingBody { inner: response.body, slot };
    Response { status: response.status, headers: response.headers, body: Body::from_stream(body) }
}

impl Transport for RecordingTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let (slot, request) = self.open(request);
            match self.inner.send(request).await {
                Ok(response) => Ok(recorded_response(slot, response)),
                Err(err) => {
                    lock(&slot).failed = true;
                    Err(err)
                }
            }
        })
    }

    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>> {
        Box::pin(async move {
            let (slot, request) = self.open(request);
            match self.inner.upgrade(request).await {
                Ok(Upgrade::Upgraded { headers, io }) => {
                    record_head(&slot, 101, &headers);
                    {
                        let mut s = lock(&slot);
                        s.exchange.response.ended = true;
                        s.exchange.upgraded = Some(Transcript::default());
                    }
                    Ok(Upgrade::Upgraded { headers, io: Box::new(RecordingIo { inner: io, slot }) })
                }
                Ok(Upgrade::Refused(response)) => Ok(Upgrade::Refused(recorded_response(slot, response))),
                Err(err) => {
                    lock(&slot).failed = true;
                    Err(err)
                }
            }
        })
    }
}

struct RecordingBody {
    inner: Body,
    slot: Arc<Mutex<Slot>>,
}

impl Stream for RecordingBody {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        let mut slot = lock(&self.slot);
        match &item {
            Some(Ok(chunk)) => slot.exchange.response.chunks.push(Data::from_bytes(chunk)),
            // A broken body is not a recordable answer.
            Some(Err(_)) => slot.failed = true,
            None => slot.exchange.response.ended = true,
        }
        Poll::Ready(item)
    }
}

struct RecordingIo {
    inner: Box<dyn Duplex>,
    slot: Arc<Mutex<Slot>>,
}

impl RecordingIo {
    fn note(&self, event: IoEvent) {
        if let Some(t) = lock(&self.slot).exchange.upgraded.as_mut() {
            t.events.push(event);
        }
    }
}

impl AsyncRead for RecordingIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if res.is_ok() {
            let read = &buf.filled()[before..];
            let event = if read.is_empty() { IoEvent::Eof } else { IoEvent::Read(Data::from_bytes(read)) };
            self.note(event);
        }
        Poll::Ready(res)
    }
}

impl AsyncWrite for RecordingIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if let Ok(n) = res {
            self.note(IoEvent::Write(Data::from_bytes(&buf[..n])));
        }
        Poll::Ready(res)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        if res.is_ok() {
            self.note(IoEvent::Shutdown);
        }
        Poll::Ready(res)
    }
}
