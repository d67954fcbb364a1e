//! Demultiplexer for `application/vnd.docker.multiplexed-stream`.
//!
//! Each frame is an 8-byte header `[stream, 0, 0, 0, len as big-endian u32]`
//! followed by `len` payload bytes. Stream ids: 0 stdin, 1 stdout, 2 stderr,
//! 3 systemerr (the daemon reporting an error in-band).
//!
//! The decoder never allocates by a header's length: payload bytes are handed
//! out as slices of the chunks they arrived in (zero-copy `Bytes`), so a frame
//! that straddles chunks comes out as several [`Output`] pieces. Only a
//! systemerr payload is gathered, up to [`MAX_SYSTEMERR`] bytes, to become one
//! error message. A header is untrusted: a length above the configured bound,
//! an unknown stream id or non-zero padding is [`MuxError::BadHeader`] or
//! [`MuxError::FrameTooLarge`], and a body that ends inside a header or payload
//! is [`MuxError::Truncated`], never a clean end.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::{Output, StreamKind};

/// Default bound on one frame's payload. The daemon writes frames of at most a
/// few tens of KiB (a log line, a read of the process's pipe); a bigger length
/// means the bytes are not frames at all.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// At most this much of a systemerr payload is kept as the error message.
pub const MAX_SYSTEMERR: usize = 64 * 1024;

const HEADER_LEN: usize = 8;

/// Why a multiplexed body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("not a multiplexed frame header: {header:02x?}")]
    BadHeader { header: [u8; HEADER_LEN] },
    #[error("frame of {len} bytes exceeds the bound of {max} bytes")]
    FrameTooLarge { len: u32, max: usize },
    #[error("the daemon reported an error in the stream: {message}")]
    Systemerr { message: String },
    #[error("stream ended inside a frame ({missing} bytes missing)")]
    Truncated { missing: usize },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload { stream: StreamKind, remaining: usize },
    Systemerr { remaining: usize },
}

/// The sans-IO demultiplexer: `push` chunks, drain `next_output` until `Ok(None)`.
#[derive(Debug)]
pub struct Demuxer {
    chunks: VecDeque<Bytes>,
    header: [u8; HEADER_LEN],
    header_len: usize,
    state: State,
    max_frame: usize,
    systemerr: Vec<u8>,
    failed: Option<MuxError>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A demuxer that rejects frames longer than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Demuxer {
            chunks: VecDeque::new(),
            header: [0; HEADER_LEN],
            header_len: 0,
            state: State::Header,
            max_frame,
            systemerr: Vec::new(),
            failed: None,
        }
    }

    /// Hands the decoder the next chunk of the body.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() && self.failed.is_none() {
            self.chunks.push_back(chunk);
        }
    }

    /// Bytes pushed but not yet handed out (a bound for callers that meter memory).
    pub fn buffered(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.header_len + self.systemerr.len()
    }

    /// The next piece of output, `Ok(None)` when more bytes are needed. After
    /// an error the decoder is spent and returns the same error again.
    pub fn next_output(&mut self) -> Result<Option<Output>, MuxError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.chunks.clear();
        }
        result
    }

    fn step(&mut self) -> Result<Option<Output>, MuxError> {
        loop {
            match self.state {
                State::Header => {
                    if !self.fill_header() {
                        return Ok(None);
                    }
                    self.header_len = 0;
                    self.state = self.parse_header()?;
                }
                State::Payload { stream, remaining } => {
                    if remaining == 0 {
                        self.state = State::Header;
                        continue;
                    }
                    let Some(front) = self.chunks.front_mut() else {
                        return Ok(None);
                    };
                    let data = if front.len() <= remaining {
                        self.chunks.pop_front().expect("front exists")
                    } else {
                        front.split_to(remaining)
                    };
                    let remaining = remaining - data.len();
                    self.state = if remaining == 0 { State::Header } else { State::Payload { stream, remaining } };
                    return Ok(Some(Output { stream, data }));
                }
                State::Systemerr { remaining } => {
                    if remaining == 0 {
                        self.state = State::Header;
                        let message = String::from_utf8_lossy(&self.systemerr).trim_end().to_owned();
                        self.systemerr = Vec::new();
                        return Err(MuxError::Systemerr { message });
                    }
                    let Some(front) = self.chunks.front_mut() else {
                        return Ok(None);
                    };
                    let n = remaining.min(front.len());
                    let keep = n.min(MAX_SYSTEMERR.saturating_sub(self.systemerr.len()));
                    self.systemerr.extend_from_slice(&front[..keep]);
                    front.advance(n);
                    if front.is_empty() {
                        self.chunks.pop_front();
                    }
                    self.state = State::Systemerr { remaining: remaining - n };
                }
            }
        }
    }

    /// Copies header bytes out of the queue; true once all eight are here.
    fn fill_header(&mut self) -> bool {
        while self.header_len < HEADER_LEN {
            let Some(front) = self.chunks.front_mut() else {
                return false;
            };
            let n = (HEADER_LEN - self.header_len).min(front.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&front[..n]);
            self.header_len += n;
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        true
    }

    fn parse_header(&self) -> Result<State, MuxError> {
        let h = self.header;
        if h[1] != 0 || h[2] != 0 || h[3] != 0 {
            return Err(MuxError::BadHeader { header: h });
        }
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if len as usize > self.max_frame {
            return Err(MuxError::FrameTooLarge { len, max: self.max_frame });
        }
        let remaining = len as usize;
        let stream = match h[0] {
            0 => StreamKind::Stdin,
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            3 => return Ok(State::Systemerr { remaining }),
            _ => return Err(MuxError::BadHeader { header: h }),
        };
        Ok(State::Payload { stream, remaining })
    }

    /// Checks the end of the body: `Ok` only at a frame boundary.
    ///
    /// Bytes pushed but not yet drained are judged as draining them would
    /// judge them (their output is not handed out and the decoder is left as
    /// it is), so the verdict depends only on the bytes pushed, never on
    /// whether the caller drained first: a complete frame still queued is a
    /// clean end, a bad header or a systemerr frame in the queue is that
    /// error, and a cut is counted from the last header.
    pub fn finish(&self) -> Result<(), MuxError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.chunks.is_empty() {
            return self.verdict_when_drained();
        }
        // A copy to drain: its chunks are reference-counted views of the same
        // buffers, so only the (capped) systemerr message is copied.
        let mut probe =
            Demuxer { chunks: self.chunks.clone(), systemerr: self.systemerr.clone(), failed: None, ..*self };
        while probe.step()?.is_some() {}
        probe.verdict_when_drained()
    }

    /// The verdict once every queued byte has been consumed: the bytes the
    /// frame in progress still lacks, counted without any subtraction that
    /// could go below zero.
    fn verdict_when_drained(&self) -> Result<(), MuxError> {
        let missing = match self.state {
            State::Header if self.header_len == 0 => 0,
            State::Header => HEADER_LEN.saturating_sub(self.header_len),
            State::Payload { remaining, .. } | State::Systemerr { remaining } => remaining,
        };
        if missing == 0 {
            Ok(())
        } else {
            Err(MuxError::Truncated { missing })
        }
    }
}

/// Encodes one frame; the inverse of the decoder, for tests, fuzzing and benches.
pub fn encode_frame(stream: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Output per stream run, in order.
    type Runs = Vec<(StreamKind, Vec<u8>)>;

    fn decode_all(chunks: &[&[u8]]) -> (Runs, Result<(), MuxError>) {
        let mut d = Demuxer::new();
        let mut out: Runs = Vec::new();
        for chunk in chunks {
            d.push(Bytes::copy_from_slice(chunk));
            loop {
                match d.next_output() {
                    Ok(Some(o)) => match out.last_mut() {
                        Some((s, buf)) if *s == o.stream => buf.extend_from_slice(&o.data),
                        _ => out.push((o.stream, o.data.to_vec())),
                    },
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
        }
        let end = d.finish();
        (out, end)
    }

    #[test]
    fn stdout_and_stderr_frames_are_kept_apart() {
        let mut body = Vec::new();
        encode_frame(1, b"out\n", &mut body);
        encode_frame(2, b"err\n", &mut body);
        let (out, end) = decode_all(&[&body]);
        assert_eq!(out, vec![(StreamKind::Stdout, b"out\n".to_vec()), (StreamKind::Stderr, b"err\n".to_vec())]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn a_payload_in_one_chunk_is_not_copied() {
        let mut body = Vec::new();
        encode_frame(1, b"hello", &mut body);
        let chunk = Bytes::from(body);
        let mut d = Demuxer::new();
        d.push(chunk.clone());
        let o = d.next_output().unwrap().unwrap();
        assert_eq!(&o.data[..], b"hello");
        assert_eq!(o.data.as_ptr(), chunk[8..].as_ptr(), "payload must be a slice of the chunk");
    }

    #[test]
    fn systemerr_is_an_error_carrying_the_daemons_message() {
        let mut body = Vec::new();
        encode_frame(1, b"partial", &mut body);
        encode_frame(3, b"exec failed: no such file\n", &mut body);
        let (out, end) = decode_all(&[&body[..10], &body[10..20], &body[20..]]);
        assert_eq!(out, vec![(StreamKind::Stdout, b"partial".to_vec())]);
        assert_eq!(end, Err(MuxError::Systemerr { message: "exec failed: no such file".into() }));
    }

    #[test]
    fn a_body_cut_mid_frame_is_truncated_not_a_clean_end() {
        let mut body = Vec::new();
        encode_frame(1, b"0123456789", &mut body);
        let (_, end) = decode_all(&[&body[..12]]);
        assert_eq!(end, Err(MuxError::Truncated { missing: 6 }));
        let (_, end) = decode_all(&[&body[..5]]);
        assert_eq!(end, Err(MuxError::Truncated { missing: 3 }));
    }

    #[test]
    fn finishing_without_draining_judges_the_queued_bytes_instead_of_panicking() {
        let mut body = Vec::new();
        encode_frame(0, &[0; 15], &mut body);
        // A whole header queued, none of its payload: 15 bytes short.
        let mut d = Demuxer::new();
        d.push(Bytes::copy_from_slice(&body[..8]));
        assert_eq!(d.finish(), Err(MuxError::Truncated { missing: 15 }));
        // Part of a header already taken in, the rest queued with the payload.
        let mut d = Demuxer::new();
        d.push(Bytes::copy_from_slice(&body[..3]));
        assert_eq!(d.next_output(), Ok(None));
        d.push(Bytes::copy_from_slice(&body[3..]));
        assert_eq!(d.finish(), Ok(()));
        // A systemerr frame still queued is the daemon's error, not a clean end.
        encode_frame(3, b"boom", &mut body);
        let mut d = Demuxer::new();
        d.push(Bytes::from(body));
        assert_eq!(d.finish(), Err(MuxError::Systemerr { message: "boom".into() }));
        assert_eq!(d.buffered(), 8 + 15 + 8 + 4, "finish leaves the queue as it was");
    }

    #[test]
    fn tty_bytes_are_rejected_as_garbage_rather_than_read_as_a_length() {
        // "hello world" read as a header: stream 'h' is no stream.
        let (_, end) = decode_all(&[b"hello world, this is a terminal"]);
        assert!(matches!(end, Err(MuxError::BadHeader { .. })));
        // A header with valid stream and padding but a huge length.
        let (_, end) = decode_all(&[&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, b'x']]);
        assert_eq!(end, Err(MuxError::FrameTooLarge { len: u32::MAX, max: DEFAULT_MAX_FRAME }));
    }

    #[test]
    fn empty_frames_yield_nothing_and_end_cleanly() {
        let mut body = Vec::new();
        encode_frame(1, b"", &mut body);
        encode_frame(2, b"", &mut body);
        let (out, end) = decode_all(&[&body]);
        assert!(out.is_empty());
        assert_eq!(end, Ok(()));
    }

    fn frames() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        prop::collection::vec((0u8..3, prop::collection::vec(any::<u8>(), 0..300)), 0..20)
    }

    fn cut(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain(std::iter::once(body.len())) {
            chunks.push(body[last..p].to_vec());
            last = p;
        }
        chunks
    }

    /// The frame bound of the property tests: small, so frames at and above it are common.
    const BOUND: usize = 48;

    /// Output byte by byte, with its stream, and the verdict of finishing,
    /// from a fresh decoder given `body` in one chunk and drained.
    fn drain_at_once(body: &[u8]) -> (Vec<(StreamKind, u8)>, Result<(), MuxError>) {
        let mut d = Demuxer::with_max_frame(BOUND);
        d.push(Bytes::copy_from_slice(body));
        let mut out = Vec::new();
        loop {
            match d.next_output() {
                Ok(Some(o)) => out.extend(o.data.iter().map(|&b| (o.stream, b))),
                Ok(None) => return (out, d.finish()),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    /// A piece of a body: mostly frames (some above the bound, some systemerr), some garbage.
    fn body_part() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => (0u8..4, prop::collection::vec(any::<u8>(), 0..BOUND + 8)).prop_map(|(s, p)| {
                let mut out = Vec::new();
                encode_frame(s, &p, &mut out);
                out
            }),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Push the next this-many bytes of the body (fewer at its end).
        Push(usize),
        Next,
        Finish,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => (0usize..24).prop_map(Op::Push), 2 => Just(Op::Next), 2 => Just(Op::Finish)]
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_to_the_same_frames(frames in frames(), cuts in prop::collection::vec(any::<usize>(), 0..40)) {
            let mut body = Vec::new();
            let mut expected: Runs = Vec::new();
            for (s, p) in &frames {
                encode_frame(*s, p, &mut body);
                if p.is_empty() { continue; }
                let kind = [StreamKind::Stdin, StreamKind::Stdout, StreamKind::Stderr][*s as usize];
                match expected.last_mut() {
                    Some((k, buf)) if *k == kind => buf.extend_from_slice(p),
                    _ => expected.push((kind, p.clone())),
                }
            }
            let chunks = cut(&body, &cuts);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let (out, end) = decode_all(&refs);
            prop_assert_eq!(out, expected);
            prop_assert_eq!(end, Ok(()));
        }

        #[test]
        fn garbage_never_panics_and_a_drained_decoder_holds_less_than_a_frame(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..30),
        ) {
            let mut d = Demuxer::with_max_frame(1024);
            for chunk in &chunks {
                d.push(Bytes::copy_from_slice(chunk));
                while let Ok(Some(_)) = d.next_output() {}
                prop_assert!(d.chunks.is_empty(), "a drained decoder keeps no chunk");
                prop_assert!(d.buffered() < HEADER_LEN + 1024, "holds {} bytes", d.buffered());
            }
            let _ = d.finish();
        }

        #[test]
        fn a_drained_decoder_holds_only_what_it_owes_and_never_more_than_one_frame(
            frames in prop::collection::vec((0u8..3, 0usize..=BOUND), 0..12),
            systemerr_len in prop::option::of(0usize..=BOUND),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            // Where each header starts, to count the header bytes a prefix of
            // the body holds in full.
            let mut body = Vec::new();
            let mut header_starts = Vec::new();
            let all = frames.iter().copied().chain(systemerr_len.map(|len| (3, len)));
            for (i, (stream, len)) in all.enumerate() {
                header_starts.push(body.len());
                let payload: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                encode_frame(stream, &payload, &mut body);
            }
            let mut d = Demuxer::with_max_frame(BOUND);
            let mut given = 0usize;
            let mut payload_out = 0usize;
            // The caller's own handles on what it pushed: once drained, the
            // decoder must share none of them.
            let mut pushed: Vec<Bytes> = Vec::new();
            let mut spent = false;
            for chunk in cut(&body, &cuts) {
                let chunk = Bytes::from(chunk);
                given += chunk.len();
                if !chunk.is_empty() {
                    pushed.push(chunk.clone());
                }
                d.push(chunk);
                loop {
                    match d.next_output() {
                        Ok(Some(o)) => payload_out += o.data.len(),
                        Ok(None) => break,
                        Err(_) => { spent = true; break; }
                    }
                }
                let headers_out = HEADER_LEN * header_starts.iter().filter(|&&h| h + HEADER_LEN <= given).count();
                let handed_out = payload_out + headers_out;
                prop_assert!(handed_out <= given, "handed out {handed_out} of {given} bytes");
                let owed = given - handed_out;
                prop_assert!(d.buffered() <= owed, "holds {} bytes, owes {owed}", d.buffered());
                prop_assert!(d.buffered() <= HEADER_LEN + BOUND, "holds {} bytes, more than a frame", d.buffered());
                prop_assert!(pushed.iter_mut().all(|b| b.is_unique()), "a drained decoder still pins a chunk it was given");
                if spent {
                    prop_assert_eq!(d.buffered(), 0, "a spent decoder holds nothing");
                }
            }
        }

        #[test]
        fn push_next_and_finish_in_any_order_never_panic_and_finish_judges_only_the_bytes_pushed(
            parts in prop::collection::vec(body_part(), 0..12),
            ops in prop::collection::vec(op(), 0..60),
        ) {
            let body: Vec<u8> = parts.concat();
            let mut d = Demuxer::with_max_frame(BOUND);
            let mut at = 0usize;
            let mut out: Vec<(StreamKind, u8)> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let end = (at + n).min(body.len());
                        d.push(Bytes::copy_from_slice(&body[at..end]));
                        at = end;
                    }
                    Op::Next => {
                        if let Ok(Some(o)) = d.next_output() {
                            out.extend(o.data.iter().map(|&b| (o.stream, b)));
                        }
                    }
                    Op::Finish => {
                        let verdict = d.finish();
                        let (reference_out, reference_end) = drain_at_once(&body[..at]);
                        prop_assert_eq!(&verdict, &reference_end);
                        prop_assert_eq!(d.finish(), verdict, "finish changes nothing");
                        prop_assert!(reference_out.starts_with(&out), "handed out bytes that draining at once does not");
                    }
                }
            }
            // Draining now changes neither the verdict nor the output.
            let before = d.finish();
            while let Ok(Some(o)) = d.next_output() {
                out.extend(o.data.iter().map(|&b| (o.stream, b)));
            }
            prop_assert_eq!(d.finish(), before);
            let (reference_out, reference_end) = drain_at_once(&body[..at]);
            prop_assert_eq!(out, reference_out);
            prop_assert_eq!(d.finish(), reference_end);
        }

        #[test]
        fn a_huge_systemerr_frame_keeps_only_the_capped_message(
            len in MAX_SYSTEMERR..4 * MAX_SYSTEMERR,
            chunk_len in 1000usize..70_000,
        ) {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut body = Vec::new();
            encode_frame(3, &payload, &mut body);
            let mut d = Demuxer::new();
            let mut end = Ok(None);
            for chunk in body.chunks(chunk_len) {
                d.push(Bytes::copy_from_slice(chunk));
                end = d.next_output();
                if end.is_err() { break; }
                prop_assert_eq!(&end, &Ok(None));
                prop_assert!(d.systemerr.len() <= MAX_SYSTEMERR);
                prop_assert!(d.buffered() <= MAX_SYSTEMERR, "holds {} bytes", d.buffered());
            }
            let message = String::from_utf8(payload[..MAX_SYSTEMERR].to_vec()).expect("ascii");
            prop_assert_eq!(end, Err(MuxError::Systemerr { message }));
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn a_frame_above_the_bound_is_refused(len in 1025u32..u32::MAX) {
            let mut d = Demuxer::with_max_frame(1024);
            let mut header = vec![1, 0, 0, 0];
            header.extend_from_slice(&len.to_be_bytes());
            d.push(Bytes::from(header));
            prop_assert_eq!(d.next_output(), Err(MuxError::FrameTooLarge { len, max: 1024 }));
        }
    }
}
