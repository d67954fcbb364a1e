//! HTTP/1.1 to the daemon over a Unix socket or TCP, with kept-alive connections.
//!
//! Connections are hyper's low-level `http1` client connections. Idle ones
//! wait in a small pool; a request takes one (or dials a new one when none
//! is idle) and the connection returns to the pool when its response body
//! has been read to the end. A body dropped half-read closes its connection,
//! since nothing else could be sent on it. Upgraded connections never return.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, TryStreamExt};
use http::header::{CONNECTION, HOST, UPGRADE};
use http::HeaderValue;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use super::{Body, BoxError, Request, RequestBody, Response, Transport, TransportError, Upgrade};
use crate::host::Endpoint;

type WireBody = UnsyncBoxBody<Bytes, BoxError>;
type Sender = SendRequest<WireBody>;

/// Idle connections kept for reuse. More concurrent requests than this still
/// work; their connections are closed instead of kept when they finish.
const DEFAULT_MAX_IDLE: usize = 32;

/// The real transport. Cheap to share: clones of a client share one pool.
pub struct SocketTransport {
    endpoint: Endpoint,
    host: HeaderValue,
    pool: Arc<Pool>,
}

struct Pool {
    idle: Mutex<Vec<Sender>>,
    max_idle: usize,
}

impl Pool {
    fn take(&self) -> Option<Sender> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }
}

impl SocketTransport {
    pub fn new(endpoint: Endpoint) -> Self {
        let host = match &endpoint {
            // The daemon ignores Host on its socket; HTTP/1.1 requires one.
            Endpoint::Unix(_) => HeaderValue::from_static("docker"),
            Endpoint::Tcp(addr) => HeaderValue::from_str(addr).unwrap_or(HeaderValue::from_static("docker")),
        };
        SocketTransport {
            endpoint,
            host,
            pool: Arc::new(Pool { idle: Mutex::new(Vec::new()), max_idle: DEFAULT_MAX_IDLE }),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Number of idle connections now in the pool (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// An idle connection from the pool (`reused`), or a new one.
    async fn checkout(&self) -> Result<(Sender, bool), TransportError> {
        while let Some(mut sender) = self.pool.take() {
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    async fn connect(&self) -> Result<Sender, TransportError> {
        let connect_err = |source| TransportError::Connect { endpoint: self.endpoint.to_string(), source };
        match &self.endpoint {
            Endpoint::Unix(path) => handshake(UnixStream::connect(path).await.map_err(connect_err)?).await,
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str()).await.map_err(connect_err)?;
                stream.set_nodelay(true).map_err(connect_err)?;
                handshake(stream).await
            }
        }
    }

    fn to_http(&self, request: Request) -> Result<http::Request<WireBody>, TransportError> {
        let body: WireBody = match request.body {
            RequestBody::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            RequestBody::Full(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed_unsync(),
            RequestBody::Stream(stream) => {
                StreamBody::new(stream.map_ok(Frame::data).map_err(BoxError::from)).boxed_unsync()
            }
        };
        let mut req = http::Request::builder()
            .method(request.method)
            .uri(request.target)
            .body(body)
            .map_err(|e| TransportError::Http(Box::new(e)))?;
        *req.headers_mut() = request.headers;
        req.headers_mut().insert(HOST, self.host.clone());
        Ok(req)
    }
}

async fn handshake<S>(stream: S) -> Result<Sender, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(|e| TransportError::Http(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(%err, "daemon connection ended with an error");
        }
    });
    Ok(sender)
}

impl Transport for SocketTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            // A kept-alive connection may have been closed by the daemon while
            // idle (dockerd closes the connection of a finished `wait`, for one)
            // before this side noticed. Such a request never reached the daemon,
            // so it is sent once more on a fresh connection when its body can be
            // sent again. A streamed body always takes a fresh connection.
            let replay = match &request.body {
                RequestBody::Empty => Some(RequestBody::Empty),
                RequestBody::Full(bytes) => Some(RequestBody::Full(bytes.clone())),
                RequestBody::Stream(_) => None,
            };
            let head = (request.method.clone(), request.target.clone(), request.headers.clone());
            let (mut sender, reused) = match replay {
                Some(_) => self.checkout().await?,
                None => (self.connect().await?, false),
            };
            let result = sender.send_request(self.to_http(request)?).await;
            let res = match (result, replay) {
                (Ok(res), _) => res,
                (Err(err), Some(body)) if reused && stale_connection(&err) => {
                    tracing::debug!(%err, "kept-alive connection was closed by the daemon; sending again");
                    let (method, target, headers) = head;
                    sender = self.connect().await?;
                    let retry = self.to_http(Request { method, target, headers, body })?;
                    sender.send_request(retry).await.map_err(|e| TransportError::Http(Box::new(e)))?
                }
                (Err(err), _) => return Err(TransportError::Http(Box::new(err))),
            };
            let (parts, incoming) = res.into_parts();
            let body = PooledBody::new(incoming, sender, self.pool.clone());
            Ok(Response { status: parts.status, headers: parts.headers, body: Body::from_stream(body) })
        })
    }

    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>> {
        Box::pin(async move {
            let mut req = self.to_http(request)?;
            req.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            req.headers_mut().insert(UPGRADE, HeaderValue::from_static("tcp"));
            // A fresh connection: it will not come back to the pool either way.
            let mut sender = self.connect().await?;
            let mut res = sender.send_request(req).await.map_err(|e| TransportError::Http(Box::new(e)))?;
            if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                let (parts, incoming) = res.into_parts();
                let body = PooledBody::new(incoming, sender, self.pool.clone());
                return Ok(Upgrade::Refused(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body: Body::from_stream(body),
                }));
            }
            let headers = std::mem::take(res.headers_mut());
            let upgraded = hyper::upgrade::on(res).await.map_err(|e| TransportError::Upgrade(Box::new(e)))?;
            Ok(Upgrade::Upgraded { headers, io: Box::new(TokioIo::new(upgraded)) })
        })
    }
}

/// Whether a failed exchange on a reused connection means the daemon had
/// already closed it: nothing of a response came back.
fn stale_connection(err: &hyper::Error) -> bool {
    if err.is_canceled() || err.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        source = e.source();
    }
    false
}

/// A response body that gives its connection back to the pool at its end.
struct PooledBody {
    incoming: Incoming,
    give_back: Option<(Sender, Arc<Pool>)>,
}

impl PooledBody {
    fn new(incoming: Incoming, sender: Sender, pool: Arc<Pool>) -> Self {
        let mut body = PooledBody { incoming, give_back: Some((sender, pool)) };
        if body.incoming.is_end_stream() {
            // Nothing to read (204, 304, Content-Length: 0): free the connection now,
            // whether or not the caller ever polls this body.
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.give_back.take() {
            pool.put(sender);
        }
    }
}

impl Stream for PooledBody {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.incoming).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Some(Err(err)) => {
                    self.give_back = None;
                    return Poll::Ready(Some(Err(TransportError::Body(Box::new(err)))));
                }
                None => {
                    self.release();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    use super::*;

    /// A peer that answers one request per connection and then closes it,
    /// without saying so in its answer, as a server dropping idle
    /// connections does.
    fn one_answer_per_connection(path: std::path::PathBuf, connections: usize) -> std::thread::JoinHandle<usize> {
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                let mut stream = stream;
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").unwrap();
                // Close a moment later, when the client has filed the connection as idle.
                std::thread::sleep(Duration::from_millis(20));
                drop(stream);
            }
            connections
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tcp_endpoints_carry_requests_too_with_the_address_as_host() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut head) = (String::new(), String::new());
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            let mut stream = stream;
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").unwrap();
            head
        });
        let transport = SocketTransport::new(Endpoint::Tcp(addr.to_string()));
        let res = transport.send(ping()).await.unwrap();
        assert_eq!(res.status, http::StatusCode::OK);
        let head = peer.join().unwrap();
        assert!(head.starts_with("GET /_ping HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("host: {addr}")), "{head}");
    }

    fn ping() -> Request {
        Request {
            method: http::Method::GET,
            target: "/_ping".into(),
            headers: Default::default(),
            body: RequestBody::Empty,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pooled_connection_closed_by_the_peer_is_replaced_and_the_request_sent_again() {
        let dir = std::env::temp_dir().join(format!("berth-socket-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer.sock");
        let _ = std::fs::remove_file(&path);
        let peer = one_answer_per_connection(path.clone(), 2);
        let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
        for _ in 0..2 {
            let res = transport.send(ping()).await.unwrap();
            assert_eq!(res.status, http::StatusCode::OK);
            let body: Vec<Bytes> =
                futures_util::StreamExt::collect::<Vec<_>>(res.body).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(body.concat(), b"OK");
            // Let the close arrive while this runtime is not looking.
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(peer.join().unwrap(), 2, "the second request went out on a second connection");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
