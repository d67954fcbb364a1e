//! Pulls from a registry over the Docker Registry HTTP API v2 into a
//! [`Pulled`] image: the manifest asked for (an index followed to this
//! machine's platform), then the config and each layer streamed into a
//! scratch folder the caller gives, each blob checked against its digest
//! and size while it is written.
//!
//! Only plain HTTP/1.1 is spoken, one connection per request, and only to
//! registries on loopback (`127.0.0.0/8`, `::1`, `localhost`) or listed as
//! insecure: this crate has no TLS stack, so any other registry is refused
//! as such, not tried. Blob redirects are followed, at most
//! [`MAX_REDIRECTS`], and only to plain HTTP on allowed hosts. No
//! authentication is spoken yet: a 401 is [`RegistryError::Unauthorized`].
//!
//! Every answer's headers are awaited at most [`Registry::timeout`] (a
//! manifest's body too); a blob's body may take as long as it needs while
//! bytes keep coming, but no more than [`Registry::stall`] between two
//! chunks. A pull's blobs are refused up front when their sizes pass the
//! pull's byte budget. [`Registry::resolve`] fetches only the manifests and
//! gives the image id (the config's digest), so a caller can look in its
//! cache before pulling layers: a tag that moved gives a new id.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::digest::{Digest, DigestError, Verifier};
use super::manifest::{self, Descriptor, Document, ManifestError, Next, MAX_INDEX_DEPTH, MAX_MANIFEST};
use super::reference::Reference;
use super::{Layer, Pulled};

/// How long an answer's headers (and a manifest's body) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a blob's body may go without a byte.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// The most redirects followed for one blob.
pub const MAX_REDIRECTS: usize = 3;

/// How much of an error's body is kept for its message.
const MAX_ERROR_BODY: usize = 512;

/// The header a registry names a manifest's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";

const AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} is not on loopback nor listed as insecure: only plain-HTTP registries are \
         supported, and TLS registries are not supported yet (no TLS stack here)"
    )]
    TlsNotSupported { registry: String },
    #[error("{reference}: the registry asks for credentials (401), and token or basic auth is not supported yet")]
    Unauthorized { reference: String },
    #[error("{reference}: the registry has no {what} (404)")]
    NotFound { reference: String, what: String },
    #[error("{url}: the registry answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
    #[error("{url}: redirected to {location:?}, {reason}")]
    BadRedirect { url: String, location: String, reason: &'static str },
    #[error("{url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("blob {digest}: no bytes came for {after:?}")]
    Stalled { digest: Digest, after: Duration },
    #[error("{reference}: the image's blobs are {needed} bytes, more than the pull's budget of {budget}")]
    OverBudget { reference: String, needed: u64, budget: u64 },
    #[error("{url}: the answer is more than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    #[error("connecting to {authority}: {source}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{url}: the request could not be made: {source}")]
    Request {
        url: String,
        #[source]
        source: http::Error,
    },
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error("{what} of {reference}: {source}")]
    Verify {
        reference: String,
        what: String,
        #[source]
        source: DigestError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether a registry at `authority` (`host[:port]`) may be spoken to
/// over plain HTTP: on loopback, or listed in `insecure` (by host, or host
/// and port).
pub fn allowed(authority: &str, insecure: &[String]) -> bool {
    let host = host_of(authority);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || insecure.iter().any(|listed| listed == authority || listed == host)
}

/// The host of `host[:port]`, brackets of an IPv6 address dropped.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`, also the `Host` header.
    pub authority: String,
    /// The path and query.
    pub path: String,
}

impl Endpoint {
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }

    /// The address to connect to: the authority, port 80 when it has none.
    fn address(&self) -> String {
        let has_port = match self.authority.rsplit_once(']') {
            Some((_, after)) => after.starts_with(':'),
            None => self.authority.contains(':'),
        };
        if has_port {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        }
    }
}

/// Where a redirect from `from` to `location` goes, or why it is not
/// followed.
pub fn redirect(from: &Endpoint, location: &str, insecure: &[String]) -> Result<Endpoint, &'static str> {
    let uri: http::Uri = location.parse().map_err(|_| "which is not a URL")?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    match (uri.scheme_str(), uri.authority()) {
        (None, None) if path.starts_with('/') => Ok(Endpoint { authority: from.authority.clone(), path }),
        (None, _) => Err("a relative location, which is not followed"),
        (Some("https"), _) => Err("an https URL, and TLS is not supported yet"),
        (Some("http"), Some(authority)) => {
            let authority = authority.as_str();
            if authority.contains('@') {
                Err("a URL with credentials in it")
            } else if !allowed(authority, insecure) {
                Err("a host that is not loopback nor listed as insecure")
            } else {
                Ok(Endpoint { authority: authority.to_owned(), path })
            }
        }
        _ => Err("a URL that is not plain http"),
    }
}

/// A registry client: which hosts it may speak plain HTTP to, and its
/// timeouts.
#[derive(Debug, Clone)]
pub struct Registry {
    insecure: Vec<String>,
    timeout: Duration,
    stall: Duration,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// A client of loopback registries, with the default timeouts.
    pub fn new() -> Registry {
        Registry { insecure: Vec::new(), timeout: DEFAULT_TIMEOUT, stall: DEFAULT_STALL }
    }

    /// Also speaks plain HTTP to these registries (`host` or `host:port`).
    pub fn insecure(mut self, registries: impl IntoIterator<Item = impl Into<String>>) -> Registry {
        self.insecure.extend(registries.into_iter().map(Into::into));
        self
    }

    /// How long an answer's headers, and a manifest's body, may take.
    pub fn timeout(mut self, timeout: Duration) -> Registry {
        self.timeout = timeout;
        self
    }

    /// How long a blob's body may go without a byte.
    pub fn stall(mut self, stall: Duration) -> Registry {
        self.stall = stall;
        self
    }

    /// The image id (the config's digest) `reference` names now, from its
    /// manifests alone.
    pub async fn resolve(&self, reference: &Reference) -> Result<Digest, RegistryError> {
        Ok(self.manifest(reference).await?.config.digest)
    }

    /// The manifest `reference` names for this machine's platform.
    pub async fn manifest(&self, reference: &Reference) -> Result<manifest::Manifest, RegistryError> {
        if !allowed(reference.registry(), &self.insecure) {
            return Err(RegistryError::TlsNotSupported { registry: reference.registry().to_owned() });
        }
        let mut document = self.fetch_manifest(reference, reference.target(), reference.digest(), None).await?;
        for _ in 0..=MAX_INDEX_DEPTH {
            let next = manifest::next(document, manifest::this_arch())
                .map_err(|source| RegistryError::Manifest { reference: reference.to_string(), source })?;
            match next {
                Next::Manifest(m) => return Ok(m),
                Next::Fetch(d) => {
                    document = self.fetch_manifest(reference, d.digest.as_str(), Some(&d.digest), Some(d.size)).await?
                }
            }
        }
        Err(RegistryError::Manifest { reference: reference.to_string(), source: ManifestError::TooDeep })
    }

    /// The config blob of manifest `m` of `reference` (bounded by the
    /// manifest, which bounds it), checked; written through a file of its
    /// own in `scratch` and read back.
    pub async fn config(
        &self,
        reference: &Reference,
        m: &manifest::Manifest,
        scratch: &Path,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = scratch.join(format!("{}.config-{}", m.config.digest.hex(), uuid::Uuid::new_v4().simple()));
        self.fetch_blob(reference, &m.config, &path).await?;
        let read = tokio::fs::read(&path)
            .await
            .map_err(|source| RegistryError::Io { path: path.display().to_string(), source });
        let _ = tokio::fs::remove_file(&path).await;
        read
    }

    /// Pulls the image `reference` names: its blobs written into `scratch`
    /// (as `<hex>` of their digests), verified, all of them within
    /// `budget` bytes.
    pub async fn pull(&self, reference: &Reference, scratch: &Path, budget: u64) -> Result<Pulled, RegistryError> {
        let m = self.manifest(reference).await?;
        let mut unique = HashSet::new();
        let blobs: Vec<&Descriptor> = std::iter::once(&m.config)
            .chain(m.layers.iter().map(|l| &l.descriptor))
            .filter(|d| unique.insert(d.digest.clone()))
            .collect();
        let needed = blobs.iter().fold(0u64, |sum, d| sum.saturating_add(d.size));
        if needed > budget {
            return Err(RegistryError::OverBudget { reference: reference.to_string(), needed, budget });
        }
        tracing::debug!(%reference, blobs = blobs.len(), bytes = needed, "pulling an image");
        for blob in &blobs {
            self.fetch_blob(reference, blob, &scratch.join(blob.digest.hex())).await?;
        }
        let config_path = scratch.join(m.config.digest.hex());
        // The config's size was bounded by the manifest and checked as it was written.
        let config = tokio::fs::read(&config_path)
            .await
            .map_err(|source| RegistryError::Io { path: config_path.display().to_string(), source })?;
        let layers = m
            .layers
            .iter()
            .map(|l| Layer { path: scratch.join(l.descriptor.digest.hex()), compression: l.compression })
            .collect();
        Ok(Pulled { id: m.config.digest, config, layers })
    }

    /// One manifest or index; checked against `digest` (and `size`) when
    /// it was asked by one, else against the digest the registry says.
    async fn fetch_manifest(
        &self,
        reference: &Reference,
        target: &str,
        digest: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Document, RegistryError> {
        let endpoint = Endpoint {
            authority: reference.registry().to_owned(),
            path: format!("/v2/{}/manifests/{target}", reference.repository()),
        };
        let fetched = async {
            let response = self.send(&endpoint, Some(manifest::ACCEPT)).await?;
            if response.status() != StatusCode::OK {
                return Err(refusal(response, reference, &endpoint, format!("manifest {target}")).await);
            }
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let (content_type, said) = (header(CONTENT_TYPE.as_str()), header(CONTENT_DIGEST));
            let body = read_limited(response.into_body(), MAX_MANIFEST, &endpoint).await?;
            Ok((content_type, said, body))
        };
        let (content_type, said, body) = tokio::time::timeout(self.timeout, fetched)
            .await
            .map_err(|_| RegistryError::Timeout { url: endpoint.url(), after: self.timeout })??;
        let verify = |expected: &Digest, size: u64| {
            let mut verifier = Verifier::new(expected, size);
            verifier.update(&body).and_then(|()| verifier.finish()).map_err(|source| RegistryError::Verify {
                reference: reference.to_string(),
                what: format!("manifest {target}"),
                source,
            })
        };
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        match (digest, said.as_deref().map(Digest::parse)) {
            (Some(expected), _) => verify(expected, size.unwrap_or(len))?,
            // A registry that names another algorithm is not checked against.
            (None, Some(Ok(said))) => verify(&said, len)?,
            (None, _) => {}
        }
        manifest::parse(&body, content_type.as_deref())
            .map_err(|source| RegistryError::Manifest { reference: reference.to_string(), source })
    }

    /// One blob, written to `to` and checked as it is; nothing is left at
    /// `to` when it fails.
    async fn fetch_blob(&self, reference: &Reference, blob: &Descriptor, to: &Path) -> Result<(), RegistryError> {
        let written = self.write_blob(reference, blob, to).await;
        if written.is_err() {
            // The error that matters is the fetch's.
            let _ = tokio::fs::remove_file(to).await;
        }
        written
    }

    async fn write_blob(&self, reference: &Reference, blob: &Descriptor, to: &Path) -> Result<(), RegistryError> {
        let mut endpoint = Endpoint {
            authority: reference.registry().to_owned(),
            path: format!("/v2/{}/blobs/{}", reference.repository(), blob.digest),
        };
        let mut redirects = 0;
        let response = loop {
            let response = tokio::time::timeout(self.timeout, self.send(&endpoint, None))
                .await
                .map_err(|_| RegistryError::Timeout { url: endpoint.url(), after: self.timeout })??;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::TooManyRedirects { url: endpoint.url() });
                }
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                endpoint = redirect(&endpoint, location, &self.insecure).map_err(|reason| {
                    RegistryError::BadRedirect { url: endpoint.url(), location: location.to_owned(), reason }
                })?;
                continue;
            }
            if status != StatusCode::OK {
                let refused = refusal(response, reference, &endpoint, format!("blob {}", blob.digest));
                return Err(tokio::time::timeout(self.timeout, refused)
                    .await
                    .unwrap_or_else(|_| RegistryError::Timeout { url: endpoint.url(), after: self.timeout }));
            }
            break response;
        };
        let file_error = |source| RegistryError::Io { path: to.display().to_string(), source };
        let mut file = tokio::fs::File::create(to).await.map_err(file_error)?;
        let mut verifier = Verifier::new(&blob.digest, blob.size);
        let wrong = |source| RegistryError::Verify {
            reference: reference.to_string(),
            what: format!("blob {}", blob.digest),
            source,
        };
        let mut body = response.into_body();
        loop {
            let frame = match tokio::time::timeout(self.stall, body.frame()).await {
                Err(_) => return Err(RegistryError::Stalled { digest: blob.digest.clone(), after: self.stall }),
                Ok(None) => break,
                Ok(Some(frame)) => frame.map_err(|source| RegistryError::Http { url: endpoint.url(), source })?,
            };
            // Trailers carry nothing of the blob.
            let Ok(data) = frame.into_data() else { continue };
            verifier.update(&data).map_err(wrong)?;
            file.write_all(&data).await.map_err(file_error)?;
        }
        verifier.finish().map_err(wrong)?;
        file.flush().await.map_err(file_error)
    }

    /// Sends one `GET` on a connection of its own.
    async fn send(&self, endpoint: &Endpoint, accept: Option<&str>) -> Result<Response<Incoming>, RegistryError> {
        let stream = tokio::net::TcpStream::connect(endpoint.address())
            .await
            .map_err(|source| RegistryError::Connect { authority: endpoint.authority.clone(), source })?;
        let http_error = |source| RegistryError::Http { url: endpoint.url(), source };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.map_err(http_error)?;
        let url = endpoint.url();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%url, %e, "a registry connection ended in an error");
            }
        });
        let mut request =
            Request::get(endpoint.path.as_str()).header(HOST, endpoint.authority.as_str()).header(USER_AGENT, AGENT);
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let request =
            request.body(Empty::new()).map_err(|source| RegistryError::Request { url: endpoint.url(), source })?;
        sender.send_request(request).await.map_err(http_error)
    }
}

/// The error an answer other than 200 OK is.
async fn refusal(response: Response<Incoming>, reference: &Reference, at: &Endpoint, what: String) -> RegistryError {
    let status = response.status();
    match status {
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized { reference: reference.to_string() },
        StatusCode::NOT_FOUND => RegistryError::NotFound { reference: reference.to_string(), what },
        _ => {
            let mut body = response.into_body();
            let mut kept = Vec::new();
            while kept.len() < MAX_ERROR_BODY {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            kept.extend_from_slice(&data[..data.len().min(MAX_ERROR_BODY - kept.len())]);
                        }
                    }
                    _ => break,
                }
            }
            RegistryError::Status {
                url: at.url(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&kept).trim().to_owned(),
            }
        }
    }
}

/// A body of at most `limit` bytes.
async fn read_limited(mut body: Incoming, limit: u64, at: &Endpoint) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| RegistryError::Http { url: at.url(), source })?;
        if let Ok(data) = frame.into_data() {
            if u64::try_from(bytes.len() + data.len()).unwrap_or(u64::MAX) > limit {
                return Err(RegistryError::TooLarge { url: at.url(), limit });
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::image::manifest::{OCI_INDEX, OCI_MANIFEST};

    /// One canned answer of the fake registry.
    #[derive(Clone)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// Sends this many bytes of the body, then nothing more.
        stall_after: Option<usize>,
    }

    fn ok(content_type: &str, body: Vec<u8>) -> Answer {
        Answer { status: 200, headers: vec![("Content-Type".into(), content_type.into())], body, stall_after: None }
    }

    fn status(status: u16, body: &[u8]) -> Answer {
        Answer { status, headers: vec![], body: body.to_vec(), stall_after: None }
    }

    fn moved(location: &str) -> Answer {
        Answer { status: 307, headers: vec![("Location".into(), location.into())], body: vec![], stall_after: None }
    }

    /// A registry on loopback answering each path from a table, and the
    /// request heads it saw.
    struct Fake {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        async fn serve(answers: impl FnOnce(SocketAddr) -> HashMap<String, Answer>) -> Fake {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let answers = Arc::new(answers(addr));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (answers, log) = (answers.clone(), log.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = stream.read(&mut buf).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            head.extend_from_slice(&buf[..n]);
                        }
                        let head = String::from_utf8(head).unwrap();
                        let path = head.split(' ').nth(1).unwrap().to_owned();
                        log.lock().unwrap().push(head);
                        let answer = answers.get(&path).cloned().unwrap_or_else(|| status(404, b"{}"));
                        let mut out =
                            format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", answer.status, answer.body.len());
                        for (name, value) in &answer.headers {
                            out.push_str(&format!("{name}: {value}\r\n"));
                        }
                        out.push_str("Connection: close\r\n\r\n");
                        let mut out = out.into_bytes();
                        let sent = answer.stall_after.unwrap_or(answer.body.len());
                        out.extend_from_slice(&answer.body[..sent]);
                        stream.write_all(&out).await.unwrap();
                        if answer.stall_after.is_some() {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    });
                }
            });
            Fake { addr, seen }
        }

        fn reference(&self, rest: &str) -> Reference {
            Reference::parse(&format!("{}/{rest}", self.addr)).unwrap()
        }

        fn paths(&self) -> Vec<String> {
            self.seen.lock().unwrap().iter().map(|h| h.split(' ').nth(1).unwrap().to_owned()).collect()
        }
    }

    fn layer_tar(name: &str, body: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&crate::layers::one_file_tar(name, body)).unwrap();
        e.finish().unwrap()
    }

    fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
        serde_json::json!({ "mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len() })
    }

    /// An image of two gzip layers: its config, layers and manifest.
    struct Image {
        config: Vec<u8>,
        layers: [Vec<u8>; 2],
        manifest: Vec<u8>,
    }

    fn image() -> Image {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let layers = [layer_tar("a", "lower"), layer_tar("a", "upper")];
        let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor(gzip, &layers[0]), descriptor(gzip, &layers[1])],
        });
        Image { config, layers, manifest: serde_json::to_vec(&manifest).unwrap() }
    }

    fn blob_path(repo: &str, bytes: &[u8]) -> String {
        format!("/v2/{repo}/blobs/{}", Digest::of(bytes))
    }

    /// The answers that serve `image` under `repo:tag`, its manifest by tag.
    fn serving(repo: &str, image: &Image) -> HashMap<String, Answer> {
        let mut answers = HashMap::new();
        answers.insert(format!("/v2/{repo}/manifests/1"), ok(OCI_MANIFEST, image.manifest.clone()));
        for blob in [&image.config, &image.layers[0], &image.layers[1]] {
            answers.insert(blob_path(repo, blob), ok("application/octet-stream", blob.clone()));
        }
        answers
    }

    #[tokio::test]
    async fn an_index_is_followed_to_this_platform_and_redirected_blobs_are_verified_into_scratch() {
        let image = image();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "mediaType": OCI_MANIFEST, "digest": Digest::of(b"other").to_string(), "size": 5,
                  "platform": { "os": "linux", "architecture": "not-this-arch" } },
                { "mediaType": OCI_MANIFEST, "digest": Digest::of(&image.manifest).to_string(),
                  "size": image.manifest.len(), "platform": { "os": "linux", "architecture": manifest::this_arch() } },
            ],
        });
        let index = serde_json::to_vec(&index).unwrap();
        let fake = Fake::serve(|addr| {
            let mut answers = serving("x/y", &image);
            answers.insert("/v2/x/y/manifests/multi".into(), ok(OCI_INDEX, index.clone()));
            answers.insert(
                format!("/v2/x/y/manifests/{}", Digest::of(&image.manifest)),
                ok(OCI_MANIFEST, image.manifest.clone()),
            );
            // The upper layer is redirected twice: by path, then to an absolute URL.
            let upper = blob_path("x/y", &image.layers[1]);
            let answer = answers.remove(&upper).unwrap();
            answers.insert(upper, moved("/storage/upper?sig=1"));
            answers.insert("/storage/upper?sig=1".into(), moved(&format!("http://{addr}/final/upper")));
            answers.insert("/final/upper".into(), answer);
            answers
        })
        .await;
        let reference = fake.reference("x/y:multi");
        let registry = Registry::new();
        let scratch = tempfile::tempdir().unwrap();
        let pulled = registry.pull(&reference, scratch.path(), 1 << 20).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pulled.id, Digest::of(&image.config));
        assert_eq!(pulled.config, image.config);
        assert_eq!(pulled.layers.len(), 2);
        assert!(pulled.layers.iter().all(|l| l.path.starts_with(scratch.path())));
        assert_eq!(registry.resolve(&reference).await.unwrap(), pulled.id);

        let root = tempfile::tempdir().unwrap();
        crate::image::apply(&pulled, root.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("a")).unwrap(), "upper");
        let heads = fake.seen.lock().unwrap().clone();
        let manifest_asks: Vec<_> = heads.iter().filter(|h| h.contains("/manifests/")).collect();
        assert!(!manifest_asks.is_empty());
        for ask in manifest_asks {
            let accept = ask.lines().find(|l| l.to_ascii_lowercase().starts_with("accept:")).unwrap();
            for kind in [OCI_INDEX, OCI_MANIFEST, manifest::DOCKER_MANIFEST, manifest::DOCKER_MANIFEST_LIST] {
                assert!(accept.contains(kind), "{accept} lacks {kind}");
            }
        }
        assert!(fake.paths().contains(&"/final/upper".to_owned()));
    }

    #[tokio::test]
    async fn a_blob_whose_bytes_are_not_its_digest_is_refused_and_not_left_behind() {
        let image = image();
        let fake = Fake::serve(|_| {
            let mut answers = serving("x/y", &image);
            let mut tampered = image.layers[1].clone();
            let last = tampered.len() - 1;
            tampered[last] ^= 0xff;
            answers.insert(blob_path("x/y", &image.layers[1]), ok("application/octet-stream", tampered));
            answers
        })
        .await;
        let scratch = tempfile::tempdir().unwrap();
        let err = Registry::new().pull(&fake.reference("x/y:1"), scratch.path(), 1 << 20).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Verify { source: DigestError::Mismatch { .. }, .. }), "{err}");
        assert!(!scratch.path().join(Digest::of(&image.layers[1]).hex()).exists());
    }

    #[tokio::test]
    async fn a_manifest_fetched_by_digest_must_be_the_one_named() {
        let image = image();
        let wrong = Digest::of(b"another manifest");
        let fake = Fake::serve(|_| {
            let mut answers = HashMap::new();
            answers.insert(format!("/v2/x/y/manifests/{wrong}"), ok(OCI_MANIFEST, image.manifest.clone()));
            answers
        })
        .await;
        let err = Registry::new().resolve(&fake.reference(&format!("x/y@{wrong}"))).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Verify { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_401_is_unauthorized_a_404_names_the_reference_and_others_keep_512_bytes_of_body() {
        let fake = Fake::serve(|_| {
            let mut answers = HashMap::new();
            answers.insert("/v2/locked/manifests/1".into(), status(401, b"{}"));
            answers.insert("/v2/broken/manifests/1".into(), status(500, &[b'e'; 2000]));
            answers
        })
        .await;
        let registry = Registry::new();
        let err = registry.resolve(&fake.reference("locked:1")).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("not supported yet"), "{err}");
        let err = registry.resolve(&fake.reference("absent:1")).await.unwrap_err();
        assert!(matches!(&err, RegistryError::NotFound { reference, .. } if reference.ends_with("/absent:1")), "{err}");
        let err = registry.resolve(&fake.reference("broken:1")).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Status { status: 500, body, .. } if body.len() == 512), "{err}");
    }

    #[tokio::test]
    async fn a_pull_over_its_budget_is_refused_before_any_blob_is_fetched() {
        let image = image();
        let fake = Fake::serve(|_| serving("x/y", &image)).await;
        let scratch = tempfile::tempdir().unwrap();
        let err = Registry::new().pull(&fake.reference("x/y:1"), scratch.path(), 10).await.unwrap_err();
        assert!(matches!(&err, RegistryError::OverBudget { budget: 10, .. }), "{err}");
        assert!(fake.paths().iter().all(|p| !p.contains("/blobs/")), "{:?}", fake.paths());
    }

    #[tokio::test]
    async fn a_blob_that_stops_coming_is_stalled_and_more_than_three_redirects_are_refused() {
        let image = image();
        let fake = Fake::serve(|_| {
            let mut answers = serving("x/y", &image);
            let mut stalled = answers[&blob_path("x/y", &image.layers[0])].clone();
            stalled.stall_after = Some(10);
            answers.insert(blob_path("x/y", &image.layers[0]), stalled);
            answers.insert(blob_path("loop", &image.config), moved(&blob_path("loop", &image.config)));
            answers.insert("/v2/loop/manifests/1".into(), ok(OCI_MANIFEST, image.manifest.clone()));
            answers
        })
        .await;
        let scratch = tempfile::tempdir().unwrap();
        let registry = Registry::new().stall(Duration::from_millis(200));
        let err = registry.pull(&fake.reference("x/y:1"), scratch.path(), 1 << 20).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Stalled { .. }), "{err}");
        let err = registry.pull(&fake.reference("loop:1"), scratch.path(), 1 << 20).await.unwrap_err();
        assert!(matches!(&err, RegistryError::TooManyRedirects { .. }), "{err}");
        let asked = fake.paths().iter().filter(|p| p.starts_with("/v2/loop/blobs/")).count();
        assert_eq!(asked, 1 + MAX_REDIRECTS);
    }

    #[tokio::test]
    async fn a_registry_off_loopback_is_refused_as_tls_not_supported_without_a_connection() {
        let err = Registry::new().resolve(&Reference::parse("busybox").unwrap()).await.unwrap_err();
        assert!(matches!(&err, RegistryError::TlsNotSupported { registry } if registry == "docker.io"), "{err}");
        assert!(err.to_string().contains("TLS registries are not supported yet"), "{err}");
    }

    #[test]
    fn loopback_and_listed_registries_are_allowed_and_no_others() {
        let none: &[String] = &[];
        for ok in ["127.0.0.1:5000", "127.1.2.3", "localhost", "LOCALHOST:80", "[::1]:5000", "[::1]"] {
            assert!(allowed(ok, none), "{ok}");
        }
        for refused in ["docker.io", "10.0.0.1:5000", "[::2]:5000", "localhost.example.com", "0.0.0.0:5000"] {
            assert!(!allowed(refused, none), "{refused}");
        }
        let listed = ["registry.lan:5000".to_owned(), "10.0.0.1".to_owned()];
        assert!(allowed("registry.lan:5000", &listed) && !allowed("registry.lan:6000", &listed));
        assert!(allowed("10.0.0.1:5000", &listed));
    }

    #[test]
    fn redirects_go_only_to_plain_http_on_allowed_hosts() {
        let from = Endpoint { authority: "127.0.0.1:5000".into(), path: "/v2/x/blobs/d".into() };
        let none: &[String] = &[];
        assert_eq!(
            redirect(&from, "/s/1?a=b", none).unwrap(),
            Endpoint { authority: "127.0.0.1:5000".into(), path: "/s/1?a=b".into() }
        );
        assert_eq!(
            redirect(&from, "http://localhost:9000/b", none).unwrap(),
            Endpoint { authority: "localhost:9000".into(), path: "/b".into() }
        );
        assert!(redirect(&from, "https://127.0.0.1/b", none).unwrap_err().contains("TLS"));
        assert!(redirect(&from, "http://s3.example.com/b", none).is_err());
        assert!(redirect(&from, "http://user@127.0.0.1/b", none).is_err());
        assert!(redirect(&from, "ftp://127.0.0.1/b", none).is_err());
        assert!(redirect(&from, "relative/b", none).is_err());
        assert_eq!(redirect(&from, "http://s3.lan/b", &["s3.lan".to_owned()]).unwrap().authority, "s3.lan");
    }

    #[test]
    fn an_authority_without_a_port_is_reached_on_port_80() {
        let at = |authority: &str| Endpoint { authority: authority.into(), path: "/".into() }.address();
        assert_eq!(at("localhost"), "localhost:80");
        assert_eq!(at("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(at("[::1]"), "[::1]:80");
        assert_eq!(at("[::1]:5000"), "[::1]:5000");
    }
}
