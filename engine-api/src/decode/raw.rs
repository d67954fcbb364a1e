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
    use crate::decode::{Framing, OutputDecoder};
    use proptest::prelude::*;

    /// `body` cut at the given points (taken modulo its length, in order).
    fn cut<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain(std::iter::once(body.len())) {
            chunks.push(&body[last..p]);
            last = p;
        }
        chunks
    }

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

    #[test]
    fn a_prompt_without_a_newline_arrives_at_once() {
        let mut d = RawDecoder::new();
        d.push(Bytes::from_static(b"Password: "));
        assert_eq!(d.next_output().map(|o| o.data), Some(Bytes::from_static(b"Password: ")));
        assert_eq!(d.next_output(), None);
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_come_out_whole_in_order_at_once_and_end_cleanly(
            body in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..512),
                // Terminal output without a single newline: prompts, progress bars.
                prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..512),
            ],
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut d = OutputDecoder::new(Framing::Raw);
            let mut out = Vec::new();
            for piece in cut(&body, &cuts) {
                let chunk = Bytes::copy_from_slice(piece);
                d.push(chunk.clone());
                let mut this_push = Vec::new();
                while let Some(o) = d.next_output()? {
                    prop_assert_eq!(o.stream, StreamKind::Console);
                    prop_assert_eq!(o.data.as_ptr(), chunk.as_ptr(), "passed on, not copied");
                    this_push.extend_from_slice(&o.data);
                }
                prop_assert_eq!(&this_push[..], piece, "a chunk comes out whole as soon as it is pushed");
                match &d {
                    OutputDecoder::Raw(raw) => prop_assert!(raw.chunks.is_empty(), "nothing is held once drained"),
                    OutputDecoder::Multiplexed(_) => prop_assert!(false, "raw framing chose the demuxer"),
                }
                out.extend_from_slice(&this_push);
            }
            prop_assert_eq!(out, body);
            prop_assert_eq!(d.finish(), Ok(()));
        }
    }
}
