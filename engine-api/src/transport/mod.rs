//! The seam between the endpoint code and the bytes on the wire.
//!
//! [`Transport`] takes a fully formed [`Request`] (method, versioned path and
//! query, headers, body) and returns a [`Response`] whose body is a stream of
//! byte chunks exactly as they arrived. Endpoint code knows only this trait,
//! so a recording, replaying or fault-injecting transport can stand in for
//! the socket with no change above it. [`SocketTransport`] is the real one:
//! HTTP/1.1 over a Unix socket or TCP with a keep-alive connection pool.
//!
//! A transport knows nothing of API versions, error bodies or decoding: the
//! status code is data here, interpreted by [`crate::client`].

pub mod cassette;
mod diff;
pub mod fault;
pub mod hijack;
pub mod record;
pub mod replay;
pub mod scenario;
mod socket;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use http::{HeaderMap, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

pub use fault::{Fault, FaultyTransport};
pub use record::RecordingTransport;
pub use replay::{ReplayError, ReplayTransport};
pub use socket::SocketTransport;

/// Any error a transport wraps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A stream of body chunks going to the daemon (tar uploads).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + 'static>>;

/// Failures below HTTP semantics: the daemon could not be reached or the
/// exchange broke off.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to the daemon at {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("HTTP exchange with the daemon failed: {0}")]
    Http(#[source] BoxError),
    #[error("reading the response body failed: {0}")]
    Body(#[source] BoxError),
    #[error("connection upgrade failed: {0}")]
    Upgrade(#[source] BoxError),
    /// A transport that is not a socket (replay, fault injection) refused or
    /// failed the exchange; the message says why.
    #[error("{0}")]
    Other(String),
}

/// A request as it goes on the wire (the path already carries its version prefix).
pub struct Request {
    pub method: Method,
    /// Origin-form target: path and query, e.g. `/v1.47/containers/json?all=1`.
    pub target: String,
    pub headers: HeaderMap,
    pub body: RequestBody,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

/// The body of a request.
pub enum RequestBody {
    Empty,
    Full(Bytes),
    Stream(ByteStream),
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Full(b) => write!(f, "Full({} bytes)", b.len()),
            RequestBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// A response head with its streaming body.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response").field("status", &self.status).field("headers", &self.headers).finish()
    }
}

/// A response body: chunks as they arrived, then end of stream.
pub struct Body {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send + 'static>>,
}

impl Body {
    pub fn empty() -> Body {
        Body::from_stream(futures_util::stream::empty())
    }

    pub fn from_stream<S>(stream: S) -> Body
    where
        S: Stream<Item = Result<Bytes, TransportError>> + Send + 'static,
    {
        Body { inner: Box::pin(stream) }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Both directions of a connection taken over after `101 Switching Protocols`.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Duplex for T {}

/// What an upgrade request came back with.
pub enum Upgrade {
    /// `101`: the connection is now a raw duplex byte stream. Bytes the daemon
    /// sent right after its response head are the first bytes read from `io`.
    Upgraded { headers: HeaderMap, io: Box<dyn Duplex> },
    /// Any other status (an error, as a rule): the response as it came.
    Refused(Response),
}

/// Carries requests to the daemon. See the module documentation.
pub trait Transport: Send + Sync + 'static {
    /// Sends a request and returns as soon as the response head is here.
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>>;

    /// Sends a request with `Connection: Upgrade`, `Upgrade: tcp` and, on
    /// `101`, hands over the connection.
    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>>;
}
