//! Where the daemon is: `DOCKER_HOST`, read the way the docker CLI reads it.
//!
//! `unix:///path/to/socket` and `tcp://host:port` are supported (`tcp://`
//! without a port means 2375, the daemon's plain-HTTP port); an empty or
//! unset value means the default socket `/var/run/docker.sock`. `ssh://`
//! and `npipe://` are refused with a typed error instead of being silently
//! misread. TLS (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) is read by
//! [`crate::Docker::from_env`], over a `tcp://` endpoint ([`crate::tls`]).

use std::fmt;
use std::path::PathBuf;

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// An address the transport can connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("DOCKER_HOST={0:?}: unsupported scheme (use unix:// or tcp://)")]
    UnsupportedScheme(String),
    #[error("DOCKER_HOST={0:?}: malformed address")]
    Malformed(String),
    #[error("DOCKER_TLS_VERIFY is set, but DOCKER_HOST={0:?} is not a tcp:// endpoint")]
    TlsOverUnix(String),
    #[error("TLS to the daemon: {0}")]
    Tls(String),
}

impl Endpoint {
    /// Reads `DOCKER_HOST`.
    pub fn from_env() -> Result<Endpoint, HostError> {
        Endpoint::parse(&std::env::var("DOCKER_HOST").unwrap_or_default())
    }

    /// Parses a `DOCKER_HOST` value.
    pub fn parse(value: &str) -> Result<Endpoint, HostError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Endpoint::default());
        }
        let malformed = || HostError::Malformed(value.to_owned());
        let (scheme, rest) = value.split_once("://").ok_or_else(malformed)?;
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Ok(Endpoint::default());
                }
                if !rest.starts_with('/') {
                    return Err(malformed());
                }
                Ok(Endpoint::Unix(PathBuf::from(rest)))
            }
            "tcp" | "http" => {
                let authority = rest.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') || authority.contains('@') {
                    return Err(malformed());
                }
                let has_port = match authority.rsplit_once(':') {
                    // `[::1]` alone has a colon but no port.
                    Some((host, port)) => !port.is_empty() && !host.is_empty() && !port.contains(']'),
                    None => false,
                };
                if has_port {
                    let port = authority.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
                    port.parse::<u16>().map_err(|_| malformed())?;
                    Ok(Endpoint::Tcp(authority.to_owned()))
                } else {
                    Ok(Endpoint::Tcp(format!("{authority}:2375")))
                }
            }
            _ => Err(HostError::UnsupportedScheme(value.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_means_the_default_socket() {
        assert_eq!(Endpoint::parse("").unwrap(), Endpoint::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(Endpoint::parse("unix://").unwrap(), Endpoint::Unix(DEFAULT_SOCKET.into()));
    }

    #[test]
    fn unix_and_tcp_addresses_are_read_like_the_cli_reads_them() {
        assert_eq!(Endpoint::parse("unix:///run/d.sock").unwrap(), Endpoint::Unix("/run/d.sock".into()));
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:2376").unwrap(), Endpoint::Tcp("127.0.0.1:2376".into()));
        assert_eq!(Endpoint::parse("tcp://localhost").unwrap(), Endpoint::Tcp("localhost:2375".into()));
        assert_eq!(Endpoint::parse("tcp://[::1]:80/").unwrap(), Endpoint::Tcp("[::1]:80".into()));
        assert_eq!(Endpoint::parse("tcp://[::1]").unwrap(), Endpoint::Tcp("[::1]:2375".into()));
    }

    #[test]
    fn other_schemes_and_garbage_are_typed_errors() {
        assert!(matches!(Endpoint::parse("ssh://me@host"), Err(HostError::UnsupportedScheme(_))));
        assert!(matches!(Endpoint::parse("npipe:////./pipe/docker"), Err(HostError::UnsupportedScheme(_))));
        assert!(matches!(Endpoint::parse("/var/run/docker.sock"), Err(HostError::Malformed(_))));
        assert!(matches!(Endpoint::parse("tcp://host:notaport"), Err(HostError::Malformed(_))));
        assert!(matches!(Endpoint::parse("unix://relative.sock"), Err(HostError::Malformed(_))));
    }
}
