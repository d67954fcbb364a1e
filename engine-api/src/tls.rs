//! TLS to a daemon's TCP endpoint, with a client certificate: what
//! `dockerd --tlsverify` asks for. The daemon's certificate is checked
//! against the CA given and against the name berth expects of it (the
//! node's configured name, or the host of `DOCKER_HOST`), never against
//! whatever address the connection happens to go to. Files are read the
//! docker CLI's way: `ca.pem`, `cert.pem` and `key.pem` in
//! `DOCKER_CERT_PATH` (default `~/.docker`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0}: holds no certificate")]
    NoCertificate(String),
    #[error("the CA certificate in {path}: {source}")]
    BadCa {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("the client certificate and key: {0}")]
    BadClientCert(#[source] rustls::Error),
    #[error("{0:?} is not a name a certificate can be checked against")]
    BadName(String),
}

/// A client's TLS: the CA that signs the daemons' certificates, the
/// client's certificate and key, and the name the daemon must prove.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The files of a client's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`, as the docker CLI names them.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read { path: path.display().to_string(), source };
    let certs = CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<Vec<_>, _>>().map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

impl TlsClient {
    /// TLS with `files`, the daemon to prove it is `name` (a DNS name or
    /// an IP address in its certificate's subject alternative names).
    pub fn new(files: &TlsFiles, name: &str) -> Result<TlsClient, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots.add(ca).map_err(|source| TlsError::BadCa { path: files.ca.display().to_string(), source })?;
        }
        let chain = certificates(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|source| TlsError::Read { path: files.key.display().to_string(), source })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::BadClientCert)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::BadClientCert)?;
        let name = ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadName(name.to_owned()))?;
        Ok(TlsClient { config: Arc::new(config), name })
    }

    /// The name the daemon must prove.
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }

    /// The TLS session over `stream`, the daemon's certificate checked.
    pub async fn connect(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config.clone()).connect(self.name.clone(), stream).await
    }
}

/// The host part of a `host:port` authority (`[::1]:2376` → `::1`).
pub fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_authority_drops_its_port_and_brackets() {
        assert_eq!(host_of("node-a:2376"), "node-a");
        assert_eq!(host_of("192.168.177.2:2376"), "192.168.177.2");
        assert_eq!(host_of("[::1]:2376"), "::1");
    }

    #[test]
    fn missing_or_empty_material_is_a_typed_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("engine-api-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = TlsFiles::in_dir(&dir);
        assert!(
            matches!(TlsClient::new(&files, "node-a"), Err(TlsError::Read { path, .. }) if path.ends_with("ca.pem"))
        );
        std::fs::write(&files.ca, "not a certificate\n").unwrap();
        assert!(matches!(TlsClient::new(&files, "node-a"), Err(TlsError::NoCertificate(p)) if p.ends_with("ca.pem")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
