//! Splitter for newline-delimited JSON bodies (pull progress, events,
//! streamed stats, load and import progress).
//!
//! Lines end in `\n`, often `\r\n` (and the pair may be split across chunks);
//! `application/json-seq` bodies also put a record separator (0x1E) before
//! each value. The splitter yields each non-blank line with that framing
//! trimmed, and the final line even when it has no newline. A line longer
//! than the bound is an error, so a body that never sends a newline cannot
//! grow the buffer without limit. Parsing the JSON is the caller's business
//! ([`crate::stream`]), so the splitter stays type-free and fuzzable.

use bytes::{Bytes, BytesMut};

/// Default bound on one line. A stats sample or a pull progress line is a
/// few KiB; events are smaller.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLinesError {
    #[error("a line grew past the bound of {max} bytes without a newline")]
    LineTooLong { max: usize },
}

#[derive(Debug)]
pub struct JsonLines {
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    max_line: usize,
    failed: bool,
}

impl Default for JsonLines {
    fn default() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }
}

impl JsonLines {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_max_line(max_line: usize) -> Self {
        JsonLines { buf: BytesMut::new(), scanned: 0, max_line, failed: false }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes held, waiting for the end of their line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete, non-blank line without its line ending.
    pub fn next_line(&mut self) -> Result<Option<Bytes>, JsonLinesError> {
        if self.failed {
            return Err(JsonLinesError::LineTooLong { max: self.max_line });
        }
        loop {
            match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                Some(i) => {
                    let end = self.scanned + i;
                    let line = self.buf.split_to(end + 1).freeze();
                    self.scanned = 0;
                    if end > self.max_line {
                        return self.fail();
                    }
                    let line = trim(line.slice(..end));
                    if !line.is_empty() {
                        return Ok(Some(line));
                    }
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.buf.len() > self.max_line {
                        return self.fail();
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// At the end of the body: the last line if it had no newline.
    pub fn finish(&mut self) -> Result<Option<Bytes>, JsonLinesError> {
        if let Some(line) = self.next_line()? {
            return Ok(Some(line));
        }
        let rest = trim(self.buf.split().freeze());
        self.scanned = 0;
        Ok((!rest.is_empty()).then_some(rest))
    }

    fn fail(&mut self) -> Result<Option<Bytes>, JsonLinesError> {
        self.failed = true;
        self.buf = BytesMut::new();
        Err(JsonLinesError::LineTooLong { max: self.max_line })
    }
}

/// Strips surrounding whitespace (including `\r`) and json-seq record separators.
fn trim(line: Bytes) -> Bytes {
    let is_pad = |b: &u8| b.is_ascii_whitespace() || *b == 0x1e;
    let start = line.iter().position(|b| !is_pad(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_pad(b)).map_or(start, |i| i + 1);
    line.slice(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines_of(chunks: &[&[u8]]) -> Result<Vec<String>, JsonLinesError> {
        let mut d = JsonLines::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(l) = d.next_line()? {
                out.push(String::from_utf8(l.to_vec()).unwrap());
            }
        }
        if let Some(l) = d.finish()? {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        Ok(out)
    }

    #[test]
    fn crlf_split_across_chunks_leaves_no_stray_carriage_return() {
        let out = lines_of(&[b"{\"status\":\"a\"}\r", b"\n{\"status\":\"b\"}\r\n"]).unwrap();
        assert_eq!(out, vec![r#"{"status":"a"}"#, r#"{"status":"b"}"#]);
    }

    #[test]
    fn a_last_line_without_newline_is_kept() {
        assert_eq!(lines_of(&[b"{\"a\":1}\n{\"b\"", b":2}"]).unwrap(), vec![r#"{"a":1}"#, r#"{"b":2}"#]);
    }

    #[test]
    fn blank_lines_and_record_separators_are_skipped() {
        let out = lines_of(&[b"\n\n\x1e{\"a\":1}\n\r\n\x1e{\"b\":2}\n"]).unwrap();
        assert_eq!(out, vec![r#"{"a":1}"#, r#"{"b":2}"#]);
    }

    #[test]
    fn a_line_without_end_beyond_the_bound_is_an_error() {
        let mut d = JsonLines::with_max_line(16);
        d.push(&[b'x'; 10]);
        assert_eq!(d.next_line(), Ok(None));
        d.push(&[b'x'; 10]);
        assert_eq!(d.next_line(), Err(JsonLinesError::LineTooLong { max: 16 }));
        assert_eq!(d.buffered(), 0, "the buffer is released on error");
    }

    /// The `v` of each line, each line read as a JSON object.
    fn values_of(chunks: &[&[u8]]) -> Result<Vec<String>, TestCaseError> {
        let mut values = Vec::new();
        for line in lines_of(chunks)? {
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
            match value.get("v").and_then(serde_json::Value::as_str) {
                Some(v) => values.push(v.to_owned()),
                None => return Err(TestCaseError::fail(format!("no string v in {line}"))),
            }
        }
        Ok(values)
    }

    /// One `{"v": text}` line per text as serde_json writes it (non-ASCII
    /// stays raw UTF-8), each ended by `\r\n` or `\n` as `crlf` says.
    fn body_of(texts: &[String], crlf: &[bool]) -> Vec<u8> {
        let mut body = Vec::new();
        for (text, crlf) in texts.iter().zip(crlf.iter().chain(std::iter::repeat(&false))) {
            body.extend_from_slice(serde_json::json!({ "v": text }).to_string().as_bytes());
            body.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        body
    }

    #[test]
    fn a_cut_inside_a_character_or_between_cr_and_lf_is_invisible() {
        let texts = vec!["é🦀 ü".to_owned(), "日本".to_owned()];
        let body = body_of(&texts, &[true, true]);
        let crab = body.windows(4).position(|w| w == "🦀".as_bytes()).expect("the crab is in the body");
        let cr = body.iter().position(|&b| b == b'\r').expect("a CRLF is in the body");
        for at in [crab + 1, crab + 2, crab + 3, cr + 1] {
            assert_eq!(values_of(&[&body[..at], &body[at..]]).expect("decodes"), texts, "cut at {at}");
        }
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_lines(
            values in prop::collection::vec("[a-z0-9 ]{1,40}", 0..20),
            crlf in any::<bool>(),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            let sep = if crlf { "\r\n" } else { "\n" };
            let body: String = values.iter().map(|v| format!("{{\"v\":\"{v}\"}}{sep}")).collect();
            let bytes = body.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&bytes[last..p]); last = p; }
            chunks.push(&bytes[last..]);
            let expected: Vec<String> = values.iter().map(|v| format!("{{\"v\":\"{v}\"}}")).collect();
            prop_assert_eq!(lines_of(&chunks).unwrap(), expected);
        }

        #[test]
        fn unicode_text_survives_every_cut_even_inside_a_character_or_a_crlf(
            texts in prop::collection::vec("\\PC*", 0..6),
            crlf in prop::collection::vec(any::<bool>(), 6),
            cuts in prop::collection::vec(any::<usize>(), 0..30),
        ) {
            let body = body_of(&texts, &crlf);
            // One cut at each position in turn.
            for at in 0..=body.len() {
                prop_assert_eq!(&values_of(&[&body[..at], &body[at..]])?, &texts, "cut at {}", at);
            }
            // A cut at every position at once.
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            prop_assert_eq!(&values_of(&bytes)?, &texts);
            // Many cuts anywhere.
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&body[last..p]); last = p; }
            chunks.push(&body[last..]);
            prop_assert_eq!(&values_of(&chunks)?, &texts);
        }

        #[test]
        fn memory_stays_within_the_bound(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..50)) {
            let mut d = JsonLines::with_max_line(256);
            for c in &chunks {
                d.push(c);
                loop {
                    match d.next_line() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break,
                    }
                }
                prop_assert!(d.buffered() <= 256 + 100);
            }
        }
    }
}
