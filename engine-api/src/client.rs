//! The client: API version, request building, status handling and timeouts.
//!
//! [`Docker`] turns an endpoint call into a [`Request`] for its
//! [`Transport`], sorts the answer's status into [`Error`] variants and reads
//! bodies with bounds. The endpoint methods themselves live one module per
//! resource in [`crate::endpoints`].
//!
//! Timeouts are per call and cover what a call waits for: the response head,
//! and for buffered answers the whole body. A followed stream (logs, events,
//! stats, wait's body) has no total timeout once its head is here.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::error::{DecodeError, Error, Result};
use crate::host::{Endpoint, HostError};
use crate::query::Query;
use crate::transport::{Body, Duplex, Request, RequestBody, Response, SocketTransport, Transport, Upgrade};
use crate::version::{self, ApiVersion};

/// Default bound on how long a call waits for the daemon.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Error bodies are read up to this many bytes (the Go client's bound).
pub const MAX_ERROR_BODY: usize = 1024 * 1024;
/// Buffered JSON answers (inspect, list) are read up to this many bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// A Docker Engine API client. Cloning is cheap and shares the connection
/// pool and the negotiated version.
#[derive(Clone)]
pub struct Docker {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    /// Shared with the clients made from this one by `with_timeout`, so
    /// that negotiation happens once for all of them.
    version: Arc<OnceCell<ApiVersion>>,
    timeout: Duration,
    /// Output frames above this many bytes are an error, not an allocation.
    max_frame: usize,
}

/// What a call accepts besides 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    Success,
    /// `304 Not Modified` means "already so" (start, stop, pause…).
    SuccessOrNotModified,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker")
            .field("version", &self.inner.version.get())
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl Docker {
    /// A client for the daemon named by `DOCKER_HOST` (default: the local socket).
    /// An API version in `DOCKER_API_VERSION` is used without negotiation
    /// (one outside the range this client speaks is an error).
    ///
    /// With `DOCKER_TLS_VERIFY` set (to anything but `0`), `DOCKER_HOST` must be
    /// a `tcp://` endpoint, spoken to over TLS with `ca.pem`, `cert.pem` and
    /// `key.pem` from `DOCKER_CERT_PATH` (default `~/.docker`), the daemon's
    /// certificate checked against the endpoint's host, as the docker CLI does.
    pub fn from_env() -> Result<Docker> {
        let endpoint = Endpoint::from_env()?;
        let verify = std::env::var("DOCKER_TLS_VERIFY").unwrap_or_default();
        let transport = if !verify.is_empty() && verify != "0" {
            let Endpoint::Tcp(addr) = &endpoint else {
                return Err(HostError::TlsOverUnix(endpoint.to_string()).into());
            };
            let dir = match std::env::var_os("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
                Some(dir) => std::path::PathBuf::from(dir),
                None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"),
            };
            let tls = crate::tls::TlsClient::new(&crate::tls::TlsFiles::in_dir(&dir), crate::tls::host_of(addr))
                .map_err(|e| HostError::Tls(e.to_string()))?;
            SocketTransport::new(endpoint).with_tls(tls)
        } else {
            SocketTransport::new(endpoint)
        };
        let docker = Docker::new(transport);
        match std::env::var("DOCKER_API_VERSION") {
            Ok(v) if !v.is_empty() => Ok(docker.with_version(version::pinned(&v)?)),
            _ => Ok(docker),
        }
    }

    /// A client over any transport (a socket, a replay, a fault injector).
    pub fn new(transport: impl Transport) -> Docker {
        Docker::from_transport(Arc::new(transport))
    }

    pub fn from_transport(transport: Arc<dyn Transport>) -> Docker {
        Docker {
            inner: Arc::new(Inner {
                transport,
                version: Arc::default(),
                timeout: DEFAULT_TIMEOUT,
                max_frame: crate::decode::mux::DEFAULT_MAX_FRAME,
            }),
        }
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(self, timeout: Duration) -> Docker {
        Docker {
            inner: Arc::new(Inner {
                transport: self.inner.transport.clone(),
                version: self.inner.version.clone(),
                timeout,
                max_frame: self.inner.max_frame,
            }),
        }
    }

    /// The same client with another bound on the size of one output frame
    /// (logs, exec and attach output; default 16 MiB).
    pub fn with_max_frame(self, max_frame: usize) -> Docker {
        Docker {
            inner: Arc::new(Inner {
                transport: self.inner.transport.clone(),
                version: self.inner.version.clone(),
                timeout: self.inner.timeout,
                max_frame,
            }),
        }
    }

    /// A decoder for output framed as `framing`, with this client's frame bound.
    pub(crate) fn output_decoder(&self, framing: crate::decode::Framing) -> crate::decode::OutputDecoder {
        crate::decode::OutputDecoder::with_max_frame(framing, self.inner.max_frame)
    }

    /// The same client pinned to `version`, skipping negotiation.
    pub fn with_version(self, version: ApiVersion) -> Docker {
        Docker {
            inner: Arc::new(Inner {
                transport: self.inner.transport.clone(),
                version: Arc::new(OnceCell::new_with(Some(version))),
                timeout: self.inner.timeout,
                max_frame: self.inner.max_frame,
            }),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The API version in use, negotiated with the daemon on first use (once
    /// per client, however many calls race for it).
    pub async fn api_version(&self) -> Result<ApiVersion> {
        self.inner
            .version
            .get_or_try_init(|| async {
                let request = Request {
                    method: Method::GET,
                    target: "/version".into(),
                    headers: HeaderMap::new(),
                    body: RequestBody::Empty,
                };
                let res = self.exchange(request, self.inner.timeout).await?;
                let res = self.check(res, Accept::Success, &Method::GET, "/version").await?;
                let v: crate::models::SystemVersion = self.read_json(res, "GET /version").await?;
                let daemon = v.api_version.ok_or_else(|| {
                    Error::decode("GET /version", DecodeError::Header { name: "ApiVersion", reason: "missing".into() })
                })?;
                let negotiated = version::negotiate(&daemon, v.min_api_version.as_deref())?;
                tracing::debug!(%daemon, %negotiated, "negotiated the Engine API version");
                Ok(negotiated)
            })
            .await
            .copied()
    }

    /// Runs `work` within `limit`, naming the call in the timeout error.
    async fn bounded<T>(
        &self,
        limit: Duration,
        method: &Method,
        path: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match crate::deadline::within(limit, work).await {
            Ok(res) => res,
            Err(_) => Err(Error::Timeout { what: format!("{method} {path}"), after: limit }),
        }
    }

    async fn exchange(&self, request: Request, limit: Duration) -> Result<Response> {
        let (method, target) = (request.method.clone(), request.target.clone());
        self.bounded(limit, &method, &target, async { Ok(self.inner.transport.send(request).await?) }).await
    }

    fn limit(&self, call: &Call) -> Duration {
        self.inner.timeout + call.extra_time
    }

    /// Versions a call and sends it; the caller bounds the time.
    async fn send_unbounded(&self, call: Call) -> Result<Response> {
        let v = self.api_version().await?;
        let target = format!("/v{v}{}{}", call.path, call.query.encode());
        let request = Request { method: call.method.clone(), target, headers: call.headers, body: call.body };
        let res = self.inner.transport.send(request).await?;
        self.check(res, call.accept, &call.method, &call.path).await
    }

    /// Sends a call and returns the response once its status is acceptable.
    /// Only the wait for the response head is bounded: a streamed body is not.
    pub(crate) async fn send(&self, call: Call) -> Result<Response> {
        let (limit, method, path) = (self.limit(&call), call.method.clone(), call.path.clone());
        self.bounded(limit, &method, &path, self.send_unbounded(call)).await
    }

    /// Sends a call and decodes its JSON answer, all within the call's time.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let (limit, method, path) = (self.limit(&call), call.method.clone(), call.path.clone());
        self.bounded(limit, &method, &path, async {
            let res = self.send_unbounded(call).await?;
            let bytes = collect_capped(res.body, MAX_JSON_BODY, false).await?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::decode(format!("{method} {path}"), DecodeError::json(e, &bytes)))
        })
        .await
    }

    /// Sends a call whose answer carries nothing but its status, and drains it
    /// so the connection goes back to the pool.
    pub(crate) async fn empty(&self, call: Call) -> Result<StatusCode> {
        let (limit, method, path) = (self.limit(&call), call.method.clone(), call.path.clone());
        self.bounded(limit, &method, &path, async {
            let res = self.send_unbounded(call).await?;
            collect_capped(res.body, MAX_ERROR_BODY, false).await?;
            Ok(res.status)
        })
        .await
    }

    /// Sends a call as an upgrade request and returns the duplex stream.
    pub(crate) async fn upgrade(&self, call: Call) -> Result<(HeaderMap, Box<dyn Duplex>)> {
        let (limit, method, path) = (self.limit(&call), call.method.clone(), call.path.clone());
        let v = self.api_version().await?;
        let target = format!("/v{v}{}{}", call.path, call.query.encode());
        let request = Request { method: call.method, target, headers: call.headers, body: call.body };
        let upgrade =
            self.bounded(limit, &method, &path, async { Ok(self.inner.transport.upgrade(request).await?) }).await?;
        match upgrade {
            Upgrade::Upgraded { headers, io } => Ok((headers, io)),
            Upgrade::Refused(res) if res.status.is_success() => {
                Err(Error::NotUpgraded { what: format!("{method} {path}"), status: res.status.as_u16() })
            }
            Upgrade::Refused(res) => Err(self.error_from(res, &method, &path).await),
        }
    }

    /// Sorts an answer by status: acceptable ones pass, others become errors
    /// carrying the daemon's message.
    async fn check(&self, res: Response, accept: Accept, method: &Method, path: &str) -> Result<Response> {
        let ok = res.status.is_success()
            || (accept == Accept::SuccessOrNotModified && res.status == StatusCode::NOT_MODIFIED);
        if ok {
            return Ok(res);
        }
        Err(self.error_from(res, method, path).await)
    }

    async fn error_from(&self, res: Response, method: &Method, path: &str) -> Error {
        let status = res.status.as_u16();
        let is_json = res
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body =
            match crate::deadline::within(self.inner.timeout, collect_capped(res.body, MAX_ERROR_BODY, true)).await {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => return e,
                Err(_) => Bytes::new(),
            };
        Error::from_status(status, error_message(status, &body, is_json, &format!("{method} {path}")))
    }

    /// Reads a whole body (bounded in size and time) and parses it as JSON.
    pub(crate) async fn read_json<T: DeserializeOwned>(&self, res: Response, what: &str) -> Result<T> {
        let bytes = self.read_bytes(res.body, MAX_JSON_BODY, what).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::decode(what, DecodeError::json(e, &bytes)))
    }

    /// Reads a whole body, bounded by `limit` bytes and by the call timeout.
    pub(crate) async fn read_bytes(&self, body: Body, limit: usize, what: &str) -> Result<Bytes> {
        match crate::deadline::within(self.inner.timeout, collect_capped(body, limit, false)).await {
            Ok(res) => res,
            Err(_) => Err(Error::Timeout { what: format!("the body of {what}"), after: self.inner.timeout }),
        }
    }
}

/// One endpoint call, before the client versions and sends it.
pub(crate) struct Call {
    method: Method,
    path: String,
    query: Query,
    headers: HeaderMap,
    body: RequestBody,
    accept: Accept,
    extra_time: Duration,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            query: Query::new(),
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            accept: Accept::Success,
            extra_time: Duration::ZERO,
        }
    }

    pub fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Call {
        Call::new(Method::POST, path)
    }

    pub fn delete(path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, path)
    }

    pub fn query(mut self, query: Query) -> Call {
        self.query = query;
        self
    }

    /// A JSON body.
    pub fn json<B: Serialize>(self, body: &B) -> Result<Call> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::decode("a request body", DecodeError::json(e, b"")))?;
        Ok(self.body(RequestBody::Full(Bytes::from(bytes)), "application/json"))
    }

    pub fn body(mut self, body: RequestBody, content_type: &'static str) -> Call {
        self.body = body;
        self.headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self
    }

    pub fn accept_not_modified(mut self) -> Call {
        self.accept = Accept::SuccessOrNotModified;
        self
    }

    /// Time the daemon legitimately needs beyond the call timeout (a stop's grace period).
    pub fn extra_time(mut self, extra: Duration) -> Call {
        self.extra_time = extra;
        self
    }
}

/// Reads a small body that may take any time to come (a wait's exit).
pub(crate) async fn collect_small(body: Body) -> Result<Bytes> {
    collect_capped(body, MAX_ERROR_BODY, false).await
}

/// Reads a body up to `limit` bytes. With `truncate` the rest is dropped
/// (error bodies); without, a longer body is an error.
async fn collect_capped(mut body: Body, limit: usize, truncate: bool) -> Result<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if held + chunk.len() > limit {
            if truncate {
                let room = limit - held;
                buf.extend_from_slice(first.take().as_deref().unwrap_or_default());
                buf.extend_from_slice(&chunk[..room]);
                return Ok(buf.freeze());
            }
            return Err(Error::decode("a response body", DecodeError::TooLarge { limit }));
        }
        // One chunk is returned as is, without a copy.
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            prev => {
                buf.extend_from_slice(prev.as_deref().unwrap_or_default());
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// The daemon's message from an error body: `{"message": …}` when JSON,
/// the text otherwise, and a description of the status when empty.
fn error_message(status: u16, body: &[u8], is_json: bool, what: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if is_json || body.first() == Some(&b'{') {
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            return e.message;
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() {
        format!("{what} returned {status} with no message")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::transport::TransportError;

    #[test]
    fn error_messages_come_from_json_text_or_the_status() {
        assert_eq!(
            error_message(404, br#"{"message":"No such container: x"}"#, true, "GET /x"),
            "No such container: x"
        );
        assert_eq!(error_message(500, b"page not found\n", false, "GET /x"), "page not found");
        assert_eq!(error_message(503, b"", false, "GET /x"), "GET /x returned 503 with no message");
    }

    #[tokio::test]
    async fn collecting_a_body_respects_the_bound() {
        let chunks = || {
            Body::from_stream(futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"abcd")),
                Ok(Bytes::from_static(b"efgh")),
            ]))
        };
        assert_eq!(&collect_capped(chunks(), 100, false).await.unwrap()[..], b"abcdefgh");
        assert_eq!(&collect_capped(chunks(), 6, true).await.unwrap()[..], b"abcdef");
        assert!(collect_capped(chunks(), 6, false).await.is_err());
    }

    /// A daemon double: answers every request with `answer(target)` and
    /// counts the requests and the body bytes pulled from it.
    struct Double {
        requests: Arc<std::sync::atomic::AtomicUsize>,
        pulled: Arc<std::sync::atomic::AtomicUsize>,
        answer: fn(&str) -> (StatusCode, Vec<Bytes>),
    }

    impl Transport for Double {
        fn send(&self, request: Request) -> futures_util::future::BoxFuture<'_, Result<Response, TransportError>> {
            use std::sync::atomic::Ordering::Relaxed;
            self.requests.fetch_add(1, Relaxed);
            let (status, chunks) = (self.answer)(&request.target);
            let pulled = self.pulled.clone();
            let body = futures_util::stream::iter(chunks).map(move |c| {
                pulled.fetch_add(c.len(), Relaxed);
                Ok(c)
            });
            Box::pin(async move { Ok(Response { status, headers: HeaderMap::new(), body: Body::from_stream(body) }) })
        }

        fn upgrade(&self, _: Request) -> futures_util::future::BoxFuture<'_, Result<Upgrade, TransportError>> {
            Box::pin(async { Err(TransportError::Other("no upgrades here".into())) })
        }
    }

    fn double(answer: fn(&str) -> (StatusCode, Vec<Bytes>)) -> (Docker, Double) {
        let d = Double { requests: Arc::default(), pulled: Arc::default(), answer };
        let counters = Double { requests: d.requests.clone(), pulled: d.pulled.clone(), answer };
        (Docker::new(d), counters)
    }

    #[tokio::test]
    async fn clients_made_with_another_timeout_share_one_negotiation() {
        let (docker, counters) = double(|_| (StatusCode::OK, vec![Bytes::from_static(br#"{"ApiVersion":"1.43"}"#)]));
        let quick = docker.clone().with_timeout(Duration::from_secs(1));
        assert_eq!(quick.api_version().await.unwrap(), ApiVersion::new(1, 43));
        assert_eq!(docker.api_version().await.unwrap(), ApiVersion::new(1, 43));
        assert_eq!(counters.requests.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_huge_error_body_is_read_only_up_to_the_bound_and_still_gives_its_status_error() {
        let (docker, counters) = double(|target| {
            if target == "/version" {
                return (StatusCode::OK, vec![Bytes::from_static(br#"{"ApiVersion":"1.41"}"#)]);
            }
            // 8 MiB of a message that never ends, in 64 KiB chunks.
            (StatusCode::NOT_FOUND, vec![Bytes::from(vec![b'x'; 64 * 1024]); 128])
        });
        let err = docker.inspect_container("c").await.unwrap_err();
        let Error::NotFound { message } = err else { panic!("expected NotFound, got {err:?}") };
        assert!(message.len() <= MAX_ERROR_BODY, "{}", message.len());
        let pulled = counters.pulled.load(std::sync::atomic::Ordering::Relaxed) - r#"{"ApiVersion":"1.41"}"#.len();
        assert!(pulled <= MAX_ERROR_BODY + 64 * 1024, "read {pulled} bytes of an error body");
    }
}
