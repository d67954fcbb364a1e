//! HTTP/1.1 to the daemon over a Unix socket or TCP (plain, or TLS with a
//! client certificate), with kept-alive connections.
//!
//! Connections are hyper's low-level `http1` client connections. Idle ones
//! wait in a small pool; a request takes one (or dials a new one when none
//! is idle) and the connection returns to the pool when its response body
//! has been read to the end. A body dropped half-read closes its connection,
//! since nothing else could be sent on it. Upgrade requests (attach, exec
//! with stdin) go over a connection of their own, made by hand (`hijack`),
//! which never returns.
//!
//! A connection is driven by a task of the tokio runtime that made it, so
//! it is only ever taken again on that runtime: on another one, its task
//! may be gone with its runtime (a test's, a helper thread's) while the
//! pool still holds its sender.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{Stream, TryStreamExt};
use http::header::HOST;
use http::HeaderValue;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::{hijack, Body, BoxError, Duplex, Request, RequestBody, Response, Transport, TransportError, Upgrade};
use crate::host::Endpoint;

type WireBody = UnsyncBoxBody<Bytes, BoxError>;
type Sender = SendRequest<WireBody>;

/// Idle connections kept for reuse. More concurrent requests than this still
/// work; their connections are closed instead of kept when they finish.
const DEFAULT_MAX_IDLE: usize = 32;
/// Each read from the daemon asks for this much (hyper's adaptive default
/// starts at 8 KiB): a log or export stream takes fewer reads, and so less
/// of the CPU the daemon needs to produce it.
const READ_BUF: usize = 64 * 1024;

/// The real transport. Cheap to share: clones of a client share one pool.
pub struct SocketTransport {
    endpoint: Endpoint,
    host: HeaderValue,
    pool: Arc<Pool>,
    /// TLS over a TCP endpoint.
    tls: Option<crate::tls::TlsClient>,
}

struct Pool {
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

/// A kept-alive connection and the runtime whose task drives it.
struct Conn {
    sender: Sender,
    runtime: tokio::runtime::Id,
}

impl Pool {
    /// An idle connection driven on the current runtime. Closed ones met on
    /// the way are dropped; those of other runtimes stay for their own.
    fn take(&self) -> Option<Conn> {
        let here = tokio::runtime::Handle::try_current().ok()?.id();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| !c.sender.is_closed());
        let at = idle.iter().rposition(|c| c.runtime == here)?;
        Some(idle.swap_remove(at))
    }

    fn put(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
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
            tls: None,
        }
    }

    /// The same transport speaking TLS with `tls` (a `tcp://` endpoint's:
    /// a Unix socket refuses every connection so made).
    pub fn with_tls(mut self, tls: crate::tls::TlsClient) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Number of idle connections now in the pool (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// An idle connection from the pool (`reused`), or a new one.
    async fn checkout(&self) -> Result<(Conn, bool), TransportError> {
        while let Some(mut conn) = self.pool.take() {
            if conn.sender.ready().await.is_ok() {
                return Ok((conn, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    async fn connect(&self) -> Result<Conn, TransportError> {
        let sender = handshake(self.dial().await?).await?;
        Ok(Conn { sender, runtime: tokio::runtime::Handle::current().id() })
    }

    /// A new connection to the daemon.
    async fn dial(&self) -> Result<Box<dyn Duplex>, TransportError> {
        let connect_err = |source| TransportError::Connect { endpoint: self.endpoint.to_string(), source };
        match &self.endpoint {
            Endpoint::Unix(_) if self.tls.is_some() => Err(connect_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "TLS is spoken over tcp:// endpoints, not a Unix socket",
            ))),
            Endpoint::Unix(path) => Ok(Box::new(UnixStream::connect(path).await.map_err(connect_err)?)),
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str()).await.map_err(connect_err)?;
                stream.set_nodelay(true).map_err(connect_err)?;
                match &self.tls {
                    Some(tls) => Ok(Box::new(tls.connect(stream).await.map_err(connect_err)?)),
                    None => Ok(Box::new(stream)),
                }
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
    let (sender, conn) = http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| TransportError::Http(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
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
            let (mut conn, reused) = match replay {
                Some(_) => self.checkout().await?,
                None => (self.connect().await?, false),
            };
            let result = conn.sender.send_request(self.to_http(request)?).await;
            let res = match (result, replay) {
                (Ok(res), _) => res,
                (Err(err), Some(body)) if reused && stale_connection(&err) => {
                    tracing::debug!(%err, "kept-alive connection was closed by the daemon; sending again");
                    let (method, target, headers) = head;
                    conn = self.connect().await?;
                    let retry = self.to_http(Request { method, target, headers, body })?;
                    conn.sender.send_request(retry).await.map_err(|e| TransportError::Http(Box::new(e)))?
                }
                (Err(err), _) => return Err(TransportError::Http(Box::new(err))),
            };
            let (parts, incoming) = res.into_parts();
            let body = PooledBody::new(incoming, conn, self.pool.clone());
            Ok(Response { status: parts.status, headers: parts.headers, body: Body::from_stream(body) })
        })
    }

    fn upgrade(&self, request: Request) -> BoxFuture<'_, Result<Upgrade, TransportError>> {
        Box::pin(async move {
            let body = match request.body {
                RequestBody::Empty => Bytes::new(),
                RequestBody::Full(bytes) => bytes,
                RequestBody::Stream(_) => {
                    return Err(TransportError::Other("an upgrade request cannot stream its body".into()))
                }
            };
            // A fresh connection, made by hand (see `hijack`): it never goes
            // back to the pool, whatever the answer.
            let mut io = self.dial().await?;
            let head = hijack::request_head(&request.method, &request.target, &self.host, &request.headers, body.len())
                .map_err(|e| TransportError::Upgrade(Box::new(e)))?;
            let sent = async {
                io.write_all(&head).await?;
                io.write_all(&body).await?;
                io.flush().await
            };
            sent.await.map_err(|e| TransportError::Http(Box::new(e)))?;
            let mut buf = BytesMut::with_capacity(4096);
            let (head, taken) = loop {
                match hijack::parse_head(&buf).map_err(|e| TransportError::Upgrade(Box::new(e)))? {
                    // `100 Continue` and the like: the answer comes after.
                    Some((head, taken)) if head.interim() => {
                        let _ = buf.split_to(taken);
                        continue;
                    }
                    Some(found) => break found,
                    None => {}
                }
                if io.read_buf(&mut buf).await.map_err(|e| TransportError::Http(Box::new(e)))? == 0 {
                    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before answering");
                    return Err(TransportError::Http(Box::new(eof)));
                }
            };
            // What came behind the head is the stream's (or the body's) first bytes.
            let rest = buf.split_off(taken).freeze();
            if head.hijacked() {
                return Ok(Upgrade::Upgraded { headers: head.headers, io: Box::new(Hijacked { first: rest, io }) });
            }
            let framing = head.framing().map_err(|e| TransportError::Upgrade(Box::new(e)))?;
            let decoder = hijack::BodyDecoder::new(framing);
            Ok(Upgrade::Refused(Response {
                status: head.status,
                headers: head.headers,
                body: Body::from_stream(refused_body(io, rest, decoder)),
            }))
        })
    }
}

/// The body of an answer that did not hijack the connection, read to its end.
fn refused_body(
    io: Box<dyn Duplex>,
    first: Bytes,
    decoder: hijack::BodyDecoder,
) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static {
    let state = (io, decoder, Some(first), false);
    futures_util::stream::unfold(state, |(mut io, mut decoder, mut first, ended)| async move {
        if ended {
            return None;
        }
        loop {
            match decoder.next_payload() {
                Ok(Some(payload)) => return Some((Ok(payload), (io, decoder, first, false))),
                Ok(None) if decoder.is_done() => return None,
                Ok(None) => {}
                Err(e) => return Some((Err(TransportError::Body(Box::new(e))), (io, decoder, first, true))),
            }
            if let Some(bytes) = first.take() {
                decoder.push(&bytes);
                continue;
            }
            let mut buf = BytesMut::with_capacity(8192);
            match io.read_buf(&mut buf).await {
                Ok(0) => {
                    let end = decoder.finish().map_err(|e| TransportError::Body(Box::new(e)));
                    return end.err().map(|e| (Err(e), (io, decoder, first, true)));
                }
                Ok(_) => decoder.push(&buf),
                Err(e) => return Some((Err(TransportError::Body(Box::new(e))), (io, decoder, first, true))),
            }
        }
    })
}

/// A hijacked connection: the bytes that came behind the response head
/// first, then the connection itself. Shutting it down half-closes it, which
/// is how the daemon learns that stdin has ended.
struct Hijacked {
    first: Bytes,
    io: Box<dyn Duplex>,
}

impl AsyncRead for Hijacked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            let first = self.first.split_to(n);
            buf.put_slice(&first);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
    give_back: Option<(Conn, Arc<Pool>)>,
}

impl PooledBody {
    fn new(incoming: Incoming, conn: Conn, pool: Arc<Pool>) -> Self {
        let mut body = PooledBody { incoming, give_back: Some((conn, pool)) };
        if body.incoming.is_end_stream() {
            // Nothing to read (204, 304, Content-Length: 0): free the connection now,
            // whether or not the caller ever polls this body.
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((conn, pool)) = self.give_back.take() {
            pool.put(conn);
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

    /// TLS material for one test: a CA, a daemon certificate for `node-a`
    /// and a client certificate, the client's files written under `dir`.
    struct Pki {
        server: Arc<rustls::ServerConfig>,
        files: crate::tls::TlsFiles,
    }

    fn make_pki(dir: &std::path::Path, client_certified: bool) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server =
            CertificateParams::new(vec!["node-a".to_owned()]).unwrap().signed_by(&server_key, &ca, &ca_key).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        // A client certificate of another CA, where the test wants one the daemon refuses.
        let client = if client_certified {
            client_params.signed_by(&client_key, &ca, &ca_key).unwrap()
        } else {
            client_params.self_signed(&client_key).unwrap()
        };
        let files = crate::tls::TlsFiles::in_dir(dir);
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.cert, client.pem()).unwrap();
        std::fs::write(&files.key, client_key.serialize_pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(server.pem().as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        Pki { server: Arc::new(server), files }
    }

    /// A daemon over TLS that answers each request with `OK`; its address.
    async fn tls_daemon(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(stream).await else { continue };
                let mut buf = vec![0; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK").await;
                let _ = tls.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_daemon_over_tls_answers_a_client_with_its_certificate_when_it_proves_the_expected_name() {
        let dir = std::env::temp_dir().join(format!("berth-tls-ok-{}", std::process::id()));
        let pki = make_pki(&dir, true);
        let addr = tls_daemon(pki.server.clone()).await;
        let tls = crate::tls::TlsClient::new(&pki.files, "node-a").unwrap();
        let transport = SocketTransport::new(Endpoint::Tcp(addr.to_string())).with_tls(tls);
        let res = transport.send(ping()).await.unwrap();
        assert_eq!(res.status, http::StatusCode::OK);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_daemon_whose_certificate_names_another_node_or_a_client_it_does_not_trust_is_no_connection() {
        let dir = std::env::temp_dir().join(format!("berth-tls-refused-{}", std::process::id()));
        let pki = make_pki(&dir, true);
        let addr = tls_daemon(pki.server.clone()).await;
        // The daemon at that address proves node-a; berth expects node-b there.
        let tls = crate::tls::TlsClient::new(&pki.files, "node-b").unwrap();
        let transport = SocketTransport::new(Endpoint::Tcp(addr.to_string())).with_tls(tls);
        let err = transport.send(ping()).await.unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err}");
        assert!(format!("{:?}", err).contains("NotValidForName"), "{err:?}");
        // Plain HTTP to a TLS daemon gets no answer either.
        let plain = SocketTransport::new(Endpoint::Tcp(addr.to_string()));
        assert!(plain.send(ping()).await.is_err());

        let untrusted = std::env::temp_dir().join(format!("berth-tls-untrusted-{}", std::process::id()));
        let mut other = make_pki(&untrusted, false);
        other.files.ca = pki.files.ca.clone();
        let tls = crate::tls::TlsClient::new(&other.files, "node-a").unwrap();
        let transport = SocketTransport::new(Endpoint::Tcp(addr.to_string())).with_tls(tls);
        assert!(transport.send(ping()).await.is_err(), "a client certificate of another CA is refused");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&untrusted);
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

    /// A peer that keeps each connection alive and answers every request on
    /// it; gives how many connections it was dialled on.
    fn keep_alive_peer(path: &std::path::Path, connections: usize) -> std::thread::JoinHandle<usize> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let serve = |stream: std::os::unix::net::UnixStream| {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" && stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").is_err() {
                        return;
                    }
                }
            };
            let peers: Vec<_> = (0..connections)
                .map(|_| listener.accept().unwrap().0)
                .map(|s| std::thread::spawn(move || serve(s)))
                .collect();
            peers.len()
        })
    }

    async fn ping_ok(transport: &SocketTransport) {
        let res = transport.send(ping()).await.unwrap();
        let body: Vec<Bytes> =
            futures_util::StreamExt::collect::<Vec<_>>(res.body).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(body.concat(), b"OK");
    }

    #[test]
    fn a_connection_kept_on_one_runtime_is_not_taken_on_another_whether_that_one_is_idle_or_gone() {
        let path = socket_path("runtimes");
        let peer = keep_alive_peer(&path, 3);
        let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
        let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let bounded = |transport| async move {
            tokio::time::timeout(Duration::from_secs(5), ping_ok(transport)).await.expect("the ping was answered");
        };
        let first = runtime();
        first.block_on(bounded(&transport));
        assert_eq!(transport.idle_connections(), 1);
        // The first runtime lives on but drives nothing now: its connection
        // would never send a request made on the second.
        runtime().block_on(bounded(&transport));
        drop(first);
        // Now its connection's task is gone with it.
        runtime().block_on(bounded(&transport));
        assert_eq!(peer.join().unwrap(), 3, "each runtime dialled a connection of its own");
    }

    /// A socket path of its own for one test.
    fn socket_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-socket-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer.sock");
        let _ = std::fs::remove_file(&path);
        path
    }

    /// A daemon that answers one upgrade request with `answer` (in the same
    /// write as its head), then, when `echo`, reads to the client's
    /// half-close and writes back what it read. Gives the request it got.
    fn upgrade_peer(path: &std::path::Path, answer: &'static [u8], echo: bool) -> std::thread::JoinHandle<String> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            let head = String::from_utf8(request).unwrap();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |n| n.trim().parse().unwrap());
            let mut body = vec![0; length];
            stream.read_exact(&mut body).unwrap();
            stream.write_all(answer).unwrap();
            if echo {
                let mut got = Vec::new();
                stream.read_to_end(&mut got).unwrap();
                stream.write_all(b"echo:").unwrap();
                stream.write_all(&got).unwrap();
            } else {
                // Keep the connection open: a body must end by its framing, not by a close.
                std::thread::sleep(Duration::from_millis(500));
            }
            head + &String::from_utf8(body).unwrap()
        })
    }

    fn exec_start() -> Request {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Request {
            method: http::Method::POST,
            target: "/v1.41/exec/e1/start".into(),
            headers,
            body: RequestBody::Full(Bytes::from_static(b"{\"Detach\":false,\"Tty\":false}")),
        }
    }

    /// Upgrades, reads what came first, writes `ping`, half-closes, reads the rest.
    async fn round_trip(transport: &SocketTransport) -> (Vec<u8>, Vec<u8>) {
        let Upgrade::Upgraded { mut io, .. } = transport.upgrade(exec_start()).await.unwrap() else {
            panic!("not upgraded")
        };
        let mut first = vec![0; 5];
        io.read_exact(&mut first).await.unwrap();
        io.write_all(b"ping").await.unwrap();
        io.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest)).await.unwrap().unwrap();
        (first, rest)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_101_without_upgrade_headers_hands_over_the_connection_with_the_bytes_sent_behind_its_head() {
        let path = socket_path("101");
        let peer = upgrade_peer(&path, b"HTTP/1.1 101 UPGRADED\r\n\r\nearly", true);
        let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
        let (first, rest) = round_trip(&transport).await;
        assert_eq!(first, b"early", "the bytes that came with the head are the stream's first");
        assert_eq!(rest, b"echo:ping", "stdin reached the daemon and its end was a half-close");
        let request = peer.join().unwrap();
        assert!(request.starts_with("POST /v1.41/exec/e1/start HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Connection: Upgrade\r\nUpgrade: tcp\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"Detach\":false,\"Tty\":false}"), "{request}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_interim_answer_before_the_upgrade_is_passed_over() {
        let path = socket_path("100");
        let peer = upgrade_peer(&path, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 UPGRADED\r\n\r\nearly", true);
        let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
        assert_eq!(round_trip(&transport).await, (b"early".to_vec(), b"echo:ping".to_vec()));
        peer.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_200_raw_stream_answer_hijacks_the_connection_both_ways() {
        let path = socket_path("200");
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nearly";
        let peer = upgrade_peer(&path, answer, true);
        let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
        assert_eq!(round_trip(&transport).await, (b"early".to_vec(), b"echo:ping".to_vec()));
        peer.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_error_answer_to_an_upgrade_is_refused_with_its_whole_body_without_waiting_for_a_close() {
        for (name, answer) in [
            ("length", &b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"message\":\"No such exec\"}\n"[..]),
            ("chunked", &b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\n16\r\nsage\":\"No such exec\"}\n\r\n0\r\n\r\n"[..]),
        ] {
            let path = socket_path(name);
            let peer = upgrade_peer(&path, answer, false);
            let transport = SocketTransport::new(Endpoint::Unix(path.clone()));
            let Upgrade::Refused(res) = transport.upgrade(exec_start()).await.unwrap() else { panic!("upgraded") };
            assert_eq!(res.status, http::StatusCode::NOT_FOUND);
            let read = futures_util::StreamExt::collect::<Vec<_>>(res.body);
            let body: Vec<Bytes> = tokio::time::timeout(Duration::from_millis(400), read)
                .await
                .expect("the body ends at its framing, before the peer closes")
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(body.concat(), b"{\"message\":\"No such exec\"}\n", "{name}");
            peer.join().unwrap();
        }
    }
}
