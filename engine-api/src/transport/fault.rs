//! A transport that breaks the exchanges of the transport it wraps, on purpose.
//!
//! Each rule names a fault and the requests it hits (by a substring of the
//! target); a rule fires once, on the first request that matches, so the
//! calls after it show whether anything was left half-done. The faults are
//! the ways a daemon or a connection fails mid-answer: a body that stops, a
//! connection that breaks, garbage in a stream, chunks that come late, a
//! connection dropped before any answer, an answer lost after the daemon
//! acted on the request, and a daemon that never answers.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};

use tokio_util::io::{ReaderStream, StreamReader};

use super::{Body, Duplex, Request, Response, Transport, TransportError, Upgrade};

#[derive(Debug, Clone)]
pub enum Fault {
    /// The body ends cleanly after `after` bytes, as if the daemon stopped there.
    Truncate { after: usize },
    /// The connection breaks after `after` bytes of the body.
    Cut { after: usize },
    /// From byte `at` of the body on, the daemon sends `bytes` instead.
    Garbage { at: usize, bytes: Bytes },
    /// Every chunk of the body comes `delay` late.
    Delay { delay: Duration },
    /// The connection drops before any answer; the daemon never saw the request.
    Drop,
    /// The daemon receives the request and acts on it, but its answer is
    /// lost: the caller cannot know whether, say, a container was made.
    LoseAnswer,
    /// The daemon never answers.
    Stall,
}

#[derive(Clone)]
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    rules: Arc<Mutex<Vec<(String, Fault)>>>,
}

impl FaultyTransport {
    pub fn new(inner: impl Transport) -> Self {
        FaultyTransport { inner: Arc::new(inner), rules: Default::default() }
    }

    /// Breaks the next request whose target contains `target` with `fault`.
    pub fn inject(&self, target: &str, fault: Fault) -> &Self {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).push((target.to_owned(), fault));
        self
    }

    fn fault_for(&self, target: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let i = rules.iter().position(|(t, _)| target.contains(t.as_str()))?;
        Some(rules.remove(i).1)
    }
}

fn dropped() -> TransportError {
    TransportError::Http(Box::new(injected_reset()))
}

/// A body with a fault applied.
struct Broken {
    inner: Body,
    fault: Fault,
    offset: usize,
    queued: VecDeque<Result<Bytes, TransportError>>,
    done: bool,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

fn broken(body: Body, fault: Fault) -> Body {
    Body::from_stream(Broken { inner: body, fault, offset: 0, queued: VecDeque::new(), done: false, delay: None })
}

impl Stream for Broken {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(item) = this.queued.pop_front() {
            return Poll::Ready(Some(item));
        }
        if this.done {
            return Poll::Ready(None);
        }
        if let Fault::Delay { delay } = this.fault {
            let sleep = this.delay.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            ready!(sleep.as_mut().poll(cx));
        }
        let chunk = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(chunk)) => chunk,
            other => return Poll::Ready(other),
        };
        this.delay = None;
        let start = this.offset;
        this.offset += chunk.len();
        let head = |at: usize| chunk.slice(..at.saturating_sub(start).min(chunk.len()));
        match &this.fault {
            Fault::Truncate { after } if this.offset >= *after => {
                this.done = true;
                this.queued.push_back(Ok(head(*after)));
            }
            Fault::Cut { after } if this.offset >= *after => {
                this.done = true;
                this.queued.push_back(Ok(head(*after)));
                this.queued.push_back(Err(dropped()));
            }
            Fault::Garbage { at, bytes } if this.offset >= *at => {
                this.done = true;
                this.queued.push_back(Ok(head(*at)));
                this.queued.push_back(Ok(bytes.clone()));
            }
            _ => this.queued.push_back(Ok(chunk)),
        }
        this.queued.retain(|item| !matches!(item, Ok(b) if b.is_empty()));
        match this.queued.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if this.done => Poll::Ready(None),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl Transport for FaultyTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let fault = self.fault_for(&request.target);
            match fault {
                Some(Fault::Drop) => Err(dropped()),
                Some(Fault::LoseAnswer) => {
                    drop(self.inner.send(request).await);
                    Err(dropped())
                }
                Some(Fault::Stall) => std::future::pending().await,
                Some(fault) => {
                    let res = self.inner.send(request).await?;
                    Ok(Response { status: res.status, headers: res.headers, body: broken(res.body, fault) })
                }
                None => self.inner.send(request).await,
            }
        })
    }

    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>> {
        Box::pin(async move {
            match self.fault_for(&request.target) {
                Some(Fault::Drop) => Err(dropped()),
                Some(Fault::LoseAnswer) => {
                    drop(self.inner.upgrade(request).await);
                    Err(dropped())
                }
                Some(Fault::Stall) => std::future::pending().await,
                Some(fault) => match self.inner.upgrade(request).await? {
                    Upgrade::Upgraded { headers, io } => Ok(Upgrade::Upgraded { headers, io: broken_reads(io, fault) }),
                    Upgrade::Refused(res) => Ok(Upgrade::Refused(Response {
                        status: res.status,
                        headers: res.headers,
                        body: broken(res.body, fault),
                    })),
                },
                None => self.inner.upgrade(request).await,
            }
        })
    }
}

/// An upgraded connection whose reads break as the fault says, the faults
/// applied as to a body (through [`broken`]); what berth writes goes through
/// untouched.
fn broken_reads(io: Box<dyn Duplex>, fault: Fault) -> Box<dyn Duplex> {
    let (read, write) = tokio::io::split(io);
    let reads = ReaderStream::new(read).map(|r| r.map_err(|e| TransportError::Body(Box::new(e))));
    let reads = broken(Body::from_stream(reads), fault).map(|r| r.map_err(io::Error::other));
    Box::new(tokio::io::join(StreamReader::new(reads), write))
}

fn injected_reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection dropped (injected)")
}
