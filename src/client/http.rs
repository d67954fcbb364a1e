//! The client's HTTP to a running `berth serve`: one request per
//! connection over plain HTTP/1.1 (berth's listeners are loopback or
//! behind a proxy that terminates TLS), JSON in and out, and answers read
//! as they come for a followed stream. Every failure is a [`ClientError`]
//! with the kind the exit code is chosen by.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// How long connecting to the server may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// The largest answer read whole (a followed stream is read piece by piece).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a request to the server did not get the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("berth is not reachable at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} is not an http:// address berth serves at")]
    BadUrl { url: String },
    /// The server answered with an error: its status, code and message.
    #[error("{message} ({status} {code})")]
    Refused { status: u16, code: String, message: String },
    #[error("the server's answer could not be read: {0}")]
    Garbled(String),
}

/// A running berth, and the token to show it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `host:port`.
    authority: String,
    url: String,
    token: Option<String>,
}

/// An answer's status and body, read whole.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Garbled(e.to_string()))
    }
}

/// An answer whose body is read as it comes.
pub struct Streaming {
    body: hyper::body::Incoming,
    pending: Vec<u8>,
}

impl Streaming {
    /// The next line of the body (without its newline); `None` at its end.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                    if self.pending.len() > MAX_ANSWER {
                        return Err(ClientError::Garbled(format!("a line of more than {MAX_ANSWER} bytes")));
                    }
                }
                Some(Err(e)) => return Err(ClientError::Garbled(e.to_string())),
                None if self.pending.is_empty() => return Ok(None),
                None => return Ok(Some(String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())),
            }
        }
    }
}

impl Server {
    /// The server at `url` (`http://host:port`, a path ignored).
    pub fn new(url: &str, token: Option<String>) -> Result<Server, ClientError> {
        let bad = || ClientError::BadUrl { url: url.to_owned() };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.split('/').next().filter(|a| !a.is_empty()).ok_or_else(bad)?.to_owned();
        Ok(Server { authority, url: url.trim_end_matches('/').to_owned(), token: token.filter(|t| !t.is_empty()) })
    }

    async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |why: String| ClientError::Unreachable { url: self.url.clone(), why };
        let stream = tokio::time::timeout(CONNECT_WITHIN, tokio::net::TcpStream::connect(&self.authority))
            .await
            .map_err(|_| unreachable(format!("no connection within {} s", CONNECT_WITHIN.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder().method(method).uri(path).header("host", &self.authority);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload)).map_err(|e| ClientError::BadUrl { url: e.to_string() })?;
        sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))
    }

    /// `method path` with `body`, its answer read whole; an error status is
    /// [`ClientError::Refused`] with the server's code and message.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let answer = self.send(method, path, body).await?;
        let status = answer.status().as_u16();
        let limited = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER);
        let body = limited.collect().await.map_err(|e| ClientError::Garbled(e.to_string()))?.to_bytes();
        let answer = Answer { status, body };
        if status >= 400 {
            return Err(refusal(&answer));
        }
        Ok(answer)
    }

    /// `GET path`, its body read line by line as it comes.
    pub async fn follow(&self, path: &str) -> Result<Streaming, ClientError> {
        self.stream(hyper::Method::GET, path, None).await
    }

    /// `method path` with `body`, its body read line by line as it comes.
    pub async fn stream(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Streaming, ClientError> {
        let answer = self.send(method, path, body).await?;
        let status = answer.status().as_u16();
        if status >= 400 {
            let body = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(refusal(&Answer { status, body }));
        }
        Ok(Streaming { body: answer.into_body(), pending: Vec::new() })
    }
}

/// An error answer as the error it is: berth's `{"error":{code,message}}`.
fn refusal(answer: &Answer) -> ClientError {
    let json = answer.json().unwrap_or_default();
    let error = &json["error"];
    ClientError::Refused {
        status: answer.status,
        code: error["code"].as_str().unwrap_or("error").to_owned(),
        message: error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_an_http_address_and_its_path_is_dropped() {
        let s = Server::new("http://127.0.0.1:8787/", Some(String::new())).unwrap();
        assert_eq!((s.authority.as_str(), s.url.as_str(), s.token), ("127.0.0.1:8787", "http://127.0.0.1:8787", None));
        assert!(matches!(Server::new("https://x", None), Err(ClientError::BadUrl { .. })));
        assert!(matches!(Server::new("http://", None), Err(ClientError::BadUrl { .. })));
    }

    #[test]
    fn an_error_answer_carries_the_servers_code_and_message() {
        let body = Bytes::from(r#"{"error":{"code":"not_found","message":"no such run: r1"}}"#);
        let e = refusal(&Answer { status: 404, body });
        assert_eq!(e.to_string(), "no such run: r1 (404 not_found)");
    }
}
