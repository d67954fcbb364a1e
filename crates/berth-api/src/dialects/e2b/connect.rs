//! The Connect protocol as the e2b SDK speaks it to envd: JSON codec,
//! unary calls as plain JSON bodies, streams as enveloped messages.
//!
//! Sans IO: [`envelope`] frames a message, [`Envelopes`] takes request
//! bytes as they come and yields whole messages, [`ConnectError`] is an
//! error with its Connect code and the HTTP status a unary answer carries.

use axum::http::StatusCode;
use serde::Serialize;

/// The content type of a streamed Connect call with the JSON codec
/// (exactly this: the SDK refuses parameters after it).
pub const STREAM_JSON: &str = "application/connect+json";

/// The largest enveloped message accepted from a client.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// An envelope's flags: a message, or the end of the stream.
const DATA: u8 = 0x00;
const END: u8 = 0x02;

/// A message framed for a stream.
pub fn envelope(message: &impl Serialize) -> Vec<u8> {
    frame(DATA, &serde_json::to_vec(message).expect("wire messages serialize"))
}

/// The last envelope of a stream: `{}` or the error.
pub fn end_of_stream(error: Option<&ConnectError>) -> Vec<u8> {
    let body = match error {
        None => serde_json::json!({}),
        Some(e) => serde_json::json!({ "error": { "code": e.code, "message": e.message } }),
    };
    frame(END, &serde_json::to_vec(&body).expect("json serializes"))
}

fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a client's stream holds, envelope by envelope.
#[derive(Debug, Default)]
pub struct Envelopes {
    buf: Vec<u8>,
}

/// One envelope read from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    Message(Vec<u8>),
    End(Vec<u8>),
}

impl Envelopes {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole envelope, if one has arrived.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, ConnectError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let flags = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(ConnectError::new("resource_exhausted", format!("a message of {len} bytes is over the bound")));
        }
        if flags & 0x01 != 0 {
            return Err(ConnectError::new("unimplemented", "compressed messages are not accepted"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some(if flags & END != 0 { Envelope::End(payload) } else { Envelope::Message(payload) }))
    }

    /// Bytes left that make no whole envelope.
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

/// An error as Connect says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub code: &'static str,
    pub message: String,
}

impl ConnectError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ConnectError { code, message: message.into() }
    }

    /// The HTTP status of a unary answer with this error.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message })
    }
}

impl From<berth_core::Error> for ConnectError {
    fn from(e: berth_core::Error) -> Self {
        use berth_core::ErrorKind as K;
        let code = match (e.kind(), e.code()) {
            (_, "not_running") => "failed_precondition",
            (_, "process_ended") => "not_found",
            (K::NotFound, _) => "not_found",
            (K::Conflict, "exists") => "already_exists",
            (K::Conflict, _) => "failed_precondition",
            (K::Invalid, _) => "invalid_argument",
            (K::Policy, _) => "permission_denied",
            (K::Unavailable, _) => "unavailable",
            (K::NoSpace, _) => "resource_exhausted",
            (K::Unauthorized, _) => "unauthenticated",
            (K::Internal, _) => "internal",
        };
        ConnectError::new(code, e.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_cut_anywhere_is_read_whole_and_the_end_is_told_apart() {
        let mut bytes = envelope(&serde_json::json!({"a": 1}));
        bytes.extend(end_of_stream(None));
        for cut in 0..bytes.len() {
            let mut e = Envelopes::default();
            e.feed(&bytes[..cut]);
            let mut got = Vec::new();
            while let Some(x) = e.next_envelope().unwrap() {
                got.push(x);
            }
            e.feed(&bytes[cut..]);
            while let Some(x) = e.next_envelope().unwrap() {
                got.push(x);
            }
            assert_eq!(got, vec![Envelope::Message(b"{\"a\":1}".to_vec()), Envelope::End(b"{}".to_vec())]);
            assert_eq!(e.leftover(), 0);
        }
    }

    #[test]
    fn an_envelope_over_the_bound_is_refused_before_it_is_buffered() {
        let mut e = Envelopes::default();
        e.feed(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(e.next_envelope().unwrap_err().code, "resource_exhausted");
    }

    #[test]
    fn an_error_ends_a_stream_with_its_code_and_message() {
        let end = end_of_stream(Some(&ConnectError::new("not_found", "no process 7")));
        assert_eq!(end[0], 0x02);
        let body: serde_json::Value = serde_json::from_slice(&end[5..]).unwrap();
        assert_eq!(body, serde_json::json!({"error": {"code": "not_found", "message": "no process 7"}}));
    }
}
