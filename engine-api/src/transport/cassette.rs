//! The fixture file format: one scenario's exchanges with a daemon.
//!
//! A cassette is plain, pretty-printed JSON with a fixed key order, so a
//! re-recording shows up in `git diff` as what changed: each exchange holds
//! the request as it went out (method, versioned target, the headers that
//! matter, the body), the response head, and the response body as the chunks
//! that arrived, boundaries kept. Upgraded connections (exec with stdin,
//! attach) hold the transcript of both directions. Bytes that are UTF-8 are
//! stored as text, anything else as base64.
//!
//! Cassettes are written only by [`super::RecordingTransport`]; nothing here
//! is meant to be edited by hand.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// One recorded scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    pub scenario: String,
    pub exchanges: Vec<Exchange>,
}

/// One request and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub request: RecordedRequest,
    pub response: RecordedResponse,
    /// Present when the daemon answered `101` and the connection was taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded: Option<Transcript>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, version prefix included.
    pub target: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Data>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body as it arrived, chunk by chunk.
    #[serde(default)]
    pub chunks: Vec<Data>,
    /// False when the client stopped reading before the daemon ended the body
    /// (a followed stream): on replay the body then stays open after its chunks.
    #[serde(default = "yes")]
    pub ended: bool,
}

fn yes() -> bool {
    true
}

/// Both directions of an upgraded connection, in the order they happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub events: Vec<IoEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoEvent {
    /// Bytes that came from the daemon.
    Read(Data),
    /// Bytes the client wrote.
    Write(Data),
    /// The client half-closed its side (end of stdin).
    Shutdown,
    /// The daemon closed its side.
    Eof,
}

/// Bytes, stored as text when they are UTF-8 and as base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    Text(String),
    Base64(String),
}

impl Data {
    pub fn from_bytes(bytes: &[u8]) -> Data {
        match std::str::from_utf8(bytes) {
            Ok(text) => Data::Text(text.to_owned()),
            Err(_) => Data::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    /// The bytes; a base64 value that does not decode is a broken fixture.
    pub fn to_bytes(&self) -> Result<Bytes, CassetteError> {
        match self {
            Data::Text(text) => Ok(Bytes::copy_from_slice(text.as_bytes())),
            Data::Base64(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Bytes::from)
                .map_err(|e| CassetteError::Corrupt(format!("bad base64 in a fixture: {e}"))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CassetteError {
    #[error("cannot read fixture {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write fixture {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("fixture {path} is not a cassette: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("{0}")]
    Corrupt(String),
}

/// Request headers kept in a recording, for its reader. A replay matches
/// requests by method, target (path and query) and body only: the headers
/// follow from those.
pub const REQUEST_HEADERS: &[&str] = &["content-type"];
/// Response headers the client reads; the rest (dates, server) would only add noise.
pub const RESPONSE_HEADERS: &[&str] = &["api-version", "content-type", "x-docker-container-path-stat"];

/// The headers of `map` named in `keep`, lower-cased and sorted.
pub fn kept_headers(map: &HeaderMap, keep: &[&str]) -> BTreeMap<String, String> {
    keep.iter()
        .filter_map(|name| {
            let value = map.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect()
}

impl Cassette {
    pub fn load(path: &Path) -> Result<Cassette, CassetteError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CassetteError::Read { path: path.display().to_string(), source })?;
        serde_json::from_str(&text).map_err(|source| CassetteError::Parse { path: path.display().to_string(), source })
    }

    pub fn save(&self, path: &Path) -> Result<(), CassetteError> {
        let write_err = |source| CassetteError::Write { path: path.display().to_string(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CassetteError::Corrupt(e.to_string()))?;
        text.push('\n');
        std::fs::write(path, text).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_binary_becomes_base64() {
        assert_eq!(Data::from_bytes(b"hi\n"), Data::Text("hi\n".into()));
        assert_eq!(Data::from_bytes(&[0xff, 0x00]), Data::Base64("/wA=".into()));
        assert_eq!(&Data::Base64("/wA=".into()).to_bytes().unwrap()[..], &[0xff, 0x00]);
        assert!(Data::Base64("***".into()).to_bytes().is_err());
    }

    #[test]
    fn a_cassette_serializes_with_a_stable_readable_shape() {
        let c = Cassette {
            scenario: "s".into(),
            exchanges: vec![Exchange {
                request: RecordedRequest {
                    method: "GET".into(),
                    target: "/_ping".into(),
                    headers: BTreeMap::new(),
                    body: None,
                },
                response: RecordedResponse {
                    status: 200,
                    headers: BTreeMap::from([("content-type".into(), "text/plain".into())]),
                    chunks: vec![Data::Text("OK".into())],
                    ended: true,
                },
                upgraded: None,
            }],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"scenario":"s","exchanges":[{"request":{"method":"GET","target":"/_ping"},"response":{"status":200,"headers":{"content-type":"text/plain"},"chunks":[{"text":"OK"}],"ended":true}}]}"#
        );
        assert_eq!(serde_json::from_str::<Cassette>(&json).unwrap(), c);
    }
}
