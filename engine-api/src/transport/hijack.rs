//! The upgrade exchange that turns a daemon connection into a raw duplex
//! stream (attach, exec with stdin), sans IO: the request head as bytes, the
//! response head parsed from bytes, whether the answer hijacked the
//! connection, and the framing of an answer that did not.
//!
//! berth makes this exchange itself rather than through hyper's upgrade
//! support because daemons answer it two ways: `101` with `Upgrade: tcp`
//! (current dockerd, when asked to upgrade), or `200` with a raw-stream
//! content type and no length (older daemons and compatible APIs), the
//! connection hijacked all the same. hyper only hands over the connection
//! after a `101`. Bytes the daemon sent right behind its head (the first
//! output, often in the same segment) are returned with the head, never lost.
//!
//! It knows nothing of sockets or of what the stream then carries.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// A response head larger than this is refused (dockerd's are a few hundred bytes).
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers read from a response head at most.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HijackError {
    #[error("the response head is not HTTP: {0}")]
    Malformed(String),
    #[error("the response head exceeds {MAX_HEAD} bytes")]
    TooLarge,
    #[error("a chunked body is malformed")]
    BadChunk,
    #[error("{0:?} is not a request target (a path and query)")]
    BadTarget(String),
}

/// The request head of an upgrade request: `Connection: Upgrade`,
/// `Upgrade: tcp`, the caller's headers and the body's length; a target that
/// is not a path and query is refused.
pub fn request_head(
    method: &Method,
    target: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    body_len: usize,
) -> Result<Vec<u8>, HijackError> {
    // Written into the request line as is: it must be a path and query, no
    // more (no space, no line break that would start a header of its own).
    if !target.starts_with('/') || http::uri::PathAndQuery::try_from(target).is_err() {
        return Err(HijackError::BadTarget(target.to_owned()));
    }
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
    let mut line = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    line(b"Host", host.as_bytes());
    line(b"Connection", b"Upgrade");
    line(b"Upgrade", b"tcp");
    for (name, value) in headers {
        let skip = [
            http::header::HOST,
            http::header::CONNECTION,
            http::header::UPGRADE,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ];
        if !skip.contains(name) {
            line(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    line(b"Content-Length", body_len.to_string().as_bytes());
    head.extend_from_slice(b"\r\n");
    Ok(head)
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Parses a response head from the start of `buf`: `None` while it is
/// incomplete, else the head and how many bytes of `buf` it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HijackError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let taken = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HijackError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HijackError::Malformed(e.to_string())),
    };
    let code = res.code.ok_or_else(|| HijackError::Malformed("no status".into()))?;
    let status = StatusCode::from_u16(code).map_err(|e| HijackError::Malformed(e.to_string()))?;
    let mut headers = HeaderMap::new();
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| HijackError::Malformed(e.to_string()))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| HijackError::Malformed(e.to_string()))?;
        headers.append(name, value);
    }
    Ok(Some((ResponseHead { status, headers }, taken)))
}

/// How the body of an answer that did not hijack the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the daemon closes the connection.
    Close,
}

impl ResponseHead {
    /// Whether the connection is now the raw stream: `101`, or a success
    /// whose body has no length and no chunking (a hijacked `200`).
    pub fn hijacked(&self) -> bool {
        self.status == StatusCode::SWITCHING_PROTOCOLS
            || (self.status.is_success() && self.framing() == Ok(Framing::Close))
    }

    /// An interim answer (`100 Continue`, `103 Early Hints`): the real one follows.
    pub fn interim(&self) -> bool {
        self.status.is_informational() && self.status != StatusCode::SWITCHING_PROTOCOLS
    }

    pub fn framing(&self) -> Result<Framing, HijackError> {
        // 1xx, 204 and 304 carry no body whatever their headers say.
        if self.status.is_informational()
            || self.status == StatusCode::NO_CONTENT
            || self.status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Length(0));
        }
        let chunked = self
            .headers
            .get_all(http::header::TRANSFER_ENCODING)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("chunked")));
        if chunked {
            return Ok(Framing::Chunked);
        }
        match self.headers.get(http::header::CONTENT_LENGTH) {
            None => Ok(Framing::Close),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map(Framing::Length)
                .ok_or_else(|| HijackError::Malformed(format!("Content-Length {v:?}"))),
        }
    }
}

/// The body of an answer that did not hijack the connection, as the
/// payload it carries, whatever its framing.
#[derive(Debug)]
pub struct BodyDecoder {
    framing: Framing,
    buf: BytesMut,
    state: Chunk,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the current chunk left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let done = framing == Framing::Length(0);
        BodyDecoder { framing, buf: BytesMut::new(), state: Chunk::Size, done }
    }

    /// Whether the body has ended (more bytes would be the next response).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes in bytes as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.done {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next piece of payload the pushed bytes hold, if any.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, HijackError> {
        loop {
            if self.done || self.buf.is_empty() {
                return Ok(None);
            }
            match self.framing {
                Framing::Close => return Ok(Some(self.buf.split().freeze())),
                Framing::Length(left) => {
                    let n = (self.buf.len() as u64).min(left) as usize;
                    self.framing = Framing::Length(left - n as u64);
                    self.done = left == n as u64;
                    return Ok(Some(self.buf.split_to(n).freeze()));
                }
                Framing::Chunked => match self.state {
                    Chunk::Size => match httparse::parse_chunk_size(&self.buf) {
                        Ok(httparse::Status::Complete((taken, 0))) => {
                            self.buf.advance(taken);
                            self.state = Chunk::Trailers;
                        }
                        Ok(httparse::Status::Complete((taken, size))) => {
                            self.buf.advance(taken);
                            self.state = Chunk::Data(size);
                        }
                        Ok(httparse::Status::Partial) if self.buf.len() > 1024 => return Err(HijackError::BadChunk),
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(_) => return Err(HijackError::BadChunk),
                    },
                    Chunk::Data(left) => {
                        let n = (self.buf.len() as u64).min(left) as usize;
                        self.state = if n as u64 == left { Chunk::DataEnd } else { Chunk::Data(left - n as u64) };
                        return Ok(Some(self.buf.split_to(n).freeze()));
                    }
                    Chunk::DataEnd => {
                        if self.buf.len() < 2 {
                            return Ok(None);
                        }
                        if &self.buf[..2] != b"\r\n" {
                            return Err(HijackError::BadChunk);
                        }
                        self.buf.advance(2);
                        self.state = Chunk::Size;
                    }
                    Chunk::Trailers => {
                        let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                            return if self.buf.len() > MAX_HEAD { Err(HijackError::BadChunk) } else { Ok(None) };
                        };
                        self.buf.advance(end + 2);
                        // An empty line ends the trailers and the body.
                        self.done = end == 0;
                    }
                },
            }
        }
    }

    /// Checks the end of the connection: `Ok` when the body was whole.
    pub fn finish(&self) -> Result<(), HijackError> {
        match self.framing {
            Framing::Close => Ok(()),
            _ if self.done => Ok(()),
            Framing::Length(left) => Err(HijackError::Malformed(format!("the body ended {left} bytes short"))),
            Framing::Chunked => Err(HijackError::BadChunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn head(text: &str) -> ResponseHead {
        parse_head(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn the_request_head_asks_for_the_upgrade_and_states_its_length() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let head =
            request_head(&Method::POST, "/v1.41/exec/x/start", &HeaderValue::from_static("docker"), &headers, 27);
        assert_eq!(
            String::from_utf8(head.unwrap()).unwrap(),
            "POST /v1.41/exec/x/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
             content-type: application/json\r\nContent-Length: 27\r\n\r\n"
        );
    }

    #[test]
    fn a_target_that_would_break_the_request_line_is_refused() {
        let host = HeaderValue::from_static("docker");
        for bad in ["/x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /y", "/a b", "no-slash", ""] {
            let head = request_head(&Method::POST, bad, &host, &HeaderMap::new(), 0);
            assert!(matches!(head, Err(HijackError::BadTarget(_))), "{bad:?}");
        }
    }

    #[test]
    fn interim_answers_are_not_the_answer_and_bodiless_statuses_frame_nothing() {
        assert!(head("HTTP/1.1 100 Continue\r\n\r\n").interim());
        assert!(!head("HTTP/1.1 101 UPGRADED\r\n\r\n").interim());
        assert_eq!(head("HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n").framing(), Ok(Framing::Length(0)));
        assert_eq!(head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").framing(), Ok(Framing::Length(0)));
        let garbled = head("HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n");
        assert!(garbled.framing().is_err());
        assert!(!garbled.hijacked(), "a garbled length is not a hijack");
    }

    #[test]
    fn a_101_hijacks_with_or_without_upgrade_headers() {
        assert!(head("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n").hijacked());
        assert!(head("HTTP/1.1 101 UPGRADED\r\n\r\n").hijacked());
    }

    #[test]
    fn a_200_without_length_hijacks_but_one_with_a_length_or_chunks_does_not() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n").hijacked());
        assert!(!head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n").hijacked());
        assert!(!head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").hijacked());
        assert!(!head("HTTP/1.1 404 Not Found\r\n\r\n").hijacked());
    }

    #[test]
    fn bytes_behind_the_head_are_left_for_the_stream() {
        let wire = b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi";
        let (head, taken) = parse_head(wire).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(&wire[taken..], b"\x01\x00\x00\x00\x00\x00\x00\x02hi");
    }

    #[test]
    fn an_incomplete_head_waits_a_huge_one_is_refused_and_garbage_is_malformed() {
        assert_eq!(parse_head(b"HTTP/1.1 101 UPGR"), Ok(None));
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD + 1));
        assert_eq!(parse_head(huge.as_bytes()), Err(HijackError::TooLarge));
        assert!(matches!(parse_head(b"\x01\x00\x00\x00garbage\r\n\r\n"), Err(HijackError::Malformed(_))));
    }

    fn decode(framing: Framing, cuts: &[usize], wire: &[u8]) -> (Result<Vec<u8>, HijackError>, bool) {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&wire.len()]) {
            let cut = cut.clamp(at, wire.len());
            d.push(&wire[at..cut]);
            at = cut;
            loop {
                match d.next_payload() {
                    Ok(Some(p)) => out.extend_from_slice(&p),
                    Ok(None) => break,
                    Err(e) => return (Err(e), d.is_done()),
                }
            }
        }
        (d.finish().map(|()| out), d.is_done())
    }

    #[test]
    fn a_length_framed_body_ends_at_its_length_and_a_short_one_is_an_error() {
        assert_eq!(decode(Framing::Length(5), &[], b"hello and more"), (Ok(b"hello".to_vec()), true));
        assert!(decode(Framing::Length(5), &[], b"hel").0.is_err());
    }

    #[test]
    fn a_malformed_chunk_is_an_error() {
        assert_eq!(decode(Framing::Chunked, &[], b"zz\r\nhello\r\n0\r\n\r\n").0, Err(HijackError::BadChunk));
        assert_eq!(decode(Framing::Chunked, &[], b"2\r\nhello\r\n0\r\n\r\n").0, Err(HijackError::BadChunk));
    }

    proptest! {
        #[test]
        fn a_chunked_body_cut_anywhere_decodes_to_its_payload(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..8),
            cuts in prop::collection::vec(0usize..400, 0..12),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
            let mut cuts = cuts;
            cuts.sort_unstable();
            let (got, done) = decode(Framing::Chunked, &cuts, &wire);
            prop_assert_eq!(got, Ok(chunks.concat()));
            prop_assert!(done);
        }

        #[test]
        fn any_bytes_as_a_head_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_head(&bytes);
            let _ = decode(Framing::Chunked, &[7, 30], &bytes);
        }
    }
}
