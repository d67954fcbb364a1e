//! TTY passthrough: output of a container or exec with a terminal.
//!
//! With a TTY the daemon sends the terminal's bytes as they are: no frames, no
//! line structure, stdout and stderr merged. Every chunk is handed on at once,
//! whatever its content, so a progress bar drawn with `\r` or a prompt with no
//! newline arrives promptly and nothing accumulates.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Output, StreamKind};

#[derive(Debug, Default)]
pub struct RawDecoder {
    chunks: VecDeque<Bytes>,
}

impl RawDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    pub fn next_output(&mut self) -> Option<Output> {
        self.chunks.pop_front().map(|data| Output { stream: StreamKind::Console, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_look_like_a_frame_header_pass_through_untouched() {
        let mut d = RawDecoder::new();
        d.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 5, b'x']));
        d.push(Bytes::from_static(b"\rprogress 50%"));
        let a = d.next_output().unwrap();
        assert_eq!(a.stream, StreamKind::Console);
        assert_eq!(&a.data[..], &[1, 0, 0, 0, 0, 0, 0, 5, b'x']);
        assert_eq!(&d.next_output().unwrap().data[..], b"\rprogress 50%");
        assert_eq!(d.next_output(), None);
    }
}
