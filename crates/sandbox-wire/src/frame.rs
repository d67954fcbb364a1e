//! Frames: a JSON header and the raw bytes it carries.
//!
//! ```text
//! u32 big-endian: length of the rest (header length field + header + data)
//! u32 big-endian: header length
//! header: one JSON message
//! data:   the bytes the message carries (output, a file's chunk), maybe none
//! ```
//!
//! Bytes travel raw beside the header, not inside it, so a 50 MiB file
//! costs no base64. Both sizes are bounded: a peer cannot make the
//! decoder hold more than one frame of at most [`MAX_HEADER`] +
//! [`MAX_DATA`] bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest header a frame may have.
pub const MAX_HEADER: usize = 64 * 1024;
/// The most bytes one frame carries; longer data goes in several frames.
pub const MAX_DATA: usize = 256 * 1024;

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a frame of {0} bytes is over the bound")]
    TooLarge(usize),
    #[error("a frame's header length {header} is past its end {frame}")]
    BadHeaderLength { header: usize, frame: usize },
    #[error("a frame's header does not decode: {0}")]
    Header(#[from] serde_json::Error),
}

/// Appends the frame of `message` carrying `data` to `out`.
///
/// # Panics
/// When `data` is longer than [`MAX_DATA`]: callers cut data to that size.
pub fn encode(message: &impl Serialize, data: &[u8], out: &mut Vec<u8>) {
    assert!(data.len() <= MAX_DATA, "frame data over MAX_DATA: cut it before encoding");
    let header = serde_json::to_vec(message).expect("berth's messages always serialize");
    let rest = 4 + header.len() + data.len();
    out.reserve(4 + rest);
    out.extend_from_slice(&(rest as u32).to_be_bytes());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
}

/// Takes bytes as they come and yields whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    at: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Adds bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed and not yet part of a returned frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame<M: DeserializeOwned>(&mut self) -> Result<Option<(M, Vec<u8>)>, WireError> {
        let unread = &self.buf[self.at..];
        if unread.len() < 4 {
            return Ok(None);
        }
        let rest = u32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]) as usize;
        if rest > 4 + MAX_HEADER + MAX_DATA {
            return Err(WireError::TooLarge(rest));
        }
        if rest < 4 {
            return Err(WireError::BadHeaderLength { header: 0, frame: rest });
        }
        if unread.len() < 4 + rest {
            return Ok(None);
        }
        let frame = &unread[4..4 + rest];
        let header = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        if header > MAX_HEADER || 4 + header > rest {
            return Err(WireError::BadHeaderLength { header, frame: rest });
        }
        let message = serde_json::from_slice(&frame[4..4 + header]);
        let data = frame[4 + header..].to_vec();
        // A header that does not decode still leaves the stream in step:
        // the frame is skipped and the next one can be read.
        self.at += 4 + rest;
        // Compacts once most of the buffer has been read.
        if self.at > 1 << 20 && self.at * 2 > self.buf.len() {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Ok(Some((message?, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Event, FromSandbox, StreamName};
    use proptest::prelude::*;

    fn output(pid: u32) -> FromSandbox {
        FromSandbox::Event(Event::Output { pid, stream: StreamName::Stdout })
    }

    #[test]
    fn a_frame_read_back_gives_its_message_and_its_bytes() {
        let mut out = Vec::new();
        encode(&output(7), b"hello\n", &mut out);
        let mut d = Decoder::new();
        d.feed(&out);
        let (m, data): (FromSandbox, _) = d.next_frame().unwrap().unwrap();
        assert_eq!(m, output(7));
        assert_eq!(data, b"hello\n");
        assert!(d.next_frame::<FromSandbox>().unwrap().is_none());
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_frame_longer_than_the_bound_is_refused_before_it_is_buffered() {
        let mut d = Decoder::new();
        d.feed(&(u32::MAX).to_be_bytes());
        assert!(matches!(d.next_frame::<FromSandbox>(), Err(WireError::TooLarge(_))));
    }

    #[test]
    fn a_header_length_past_the_frame_is_refused() {
        let mut d = Decoder::new();
        d.feed(&8u32.to_be_bytes());
        d.feed(&100u32.to_be_bytes());
        d.feed(b"{}{}");
        assert!(matches!(d.next_frame::<FromSandbox>(), Err(WireError::BadHeaderLength { .. })));
    }

    #[test]
    fn a_frame_whose_header_does_not_decode_is_skipped_and_the_next_is_read() {
        let mut bytes = Vec::new();
        encode(&"not a message", b"", &mut bytes);
        encode(&output(3), b"after", &mut bytes);
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert!(matches!(d.next_frame::<FromSandbox>(), Err(WireError::Header(_))));
        let (m, data): (FromSandbox, _) = d.next_frame().unwrap().unwrap();
        assert_eq!(m, output(3));
        assert_eq!(data, b"after");
    }

    proptest! {
        #[test]
        fn frames_cut_anywhere_come_out_whole_and_in_order(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            cuts in proptest::collection::vec(1usize..50, 1..40),
        ) {
            let mut bytes = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                encode(&output(i as u32), p, &mut bytes);
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < bytes.len() {
                let end = (at + cut.next().unwrap()).min(bytes.len());
                d.feed(&bytes[at..end]);
                at = end;
                while let Some((m, data)) = d.next_frame::<FromSandbox>().unwrap() {
                    got.push((m, data));
                }
            }
            prop_assert_eq!(got.len(), payloads.len());
            for (i, (m, data)) in got.into_iter().enumerate() {
                prop_assert_eq!(m, output(i as u32));
                prop_assert_eq!(&data, &payloads[i]);
            }
        }
    }
}
