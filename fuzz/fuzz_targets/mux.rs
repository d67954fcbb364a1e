//! The multiplexed-stream demuxer on arbitrary bytes, cut into arbitrary chunks.
//!
//! Input layout: see `engine_api_fuzz::Input` (first byte: chunk-size count and
//! a knob choosing the frame bound, then the sizes, then the body).
//!
//! Checked on every input:
//! - no panic;
//! - `buffered()` never exceeds the bytes pushed and not yet handed out;
//! - the payload handed out never exceeds the input; no piece is empty or `Console`;
//! - after an error the decoder keeps returning that error (from `next_output`
//!   and `finish`, also after more pushes) and holds no bytes;
//! - a clean `finish()` leaves nothing buffered;
//! - the body pushed whole and the body pushed in the chosen chunks give the same
//!   output (runs of one stream concatenated) and the same outcome, error included.

#![no_main]

use bytes::Bytes;
use engine_api::decode::mux::{Demuxer, MuxError};
use engine_api::decode::StreamKind;
use engine_api_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// Frame bounds the knob picks from: mostly small, so that frames both within
/// and beyond the bound fit in an input; 16 MiB is the decoder's default.
const MAX_FRAME: [usize; 16] =
    [4096, 0, 1, 7, 8, 64, 255, 256, 1024, 4095, 4096, 4096, 4096, 65536, 16 << 20, usize::MAX];

#[derive(Debug, PartialEq)]
struct Decoded {
    /// Consecutive pieces of one stream merged, so that chunking does not show.
    runs: Vec<(StreamKind, Vec<u8>)>,
    end: Result<(), MuxError>,
}

fn decode(chunks: &[&[u8]], max_frame: usize, input_len: usize) -> Decoded {
    let mut d = Demuxer::with_max_frame(max_frame);
    let mut runs: Vec<(StreamKind, Vec<u8>)> = Vec::new();
    let mut pushed = 0usize;
    let mut handed_out = 0usize;
    let mut failed: Option<MuxError> = None;
    for chunk in chunks {
        d.push(Bytes::copy_from_slice(chunk));
        pushed += chunk.len();
        if let Some(err) = &failed {
            assert_spent(&mut d, err);
            continue;
        }
        loop {
            check_buffered(&d, pushed, handed_out);
            match d.next_output() {
                Ok(Some(out)) => {
                    assert!(!out.data.is_empty(), "an empty piece of output");
                    assert_ne!(out.stream, StreamKind::Console, "the demuxer handed out console output");
                    handed_out += out.data.len();
                    assert!(handed_out <= pushed && handed_out <= input_len, "more payload than input");
                    match runs.last_mut() {
                        Some((stream, buf)) if *stream == out.stream => buf.extend_from_slice(&out.data),
                        _ => runs.push((out.stream, out.data.to_vec())),
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    failed = Some(err.clone());
                    assert_spent(&mut d, &err);
                    break;
                }
            }
        }
        check_buffered(&d, pushed, handed_out);
    }
    let end = d.finish();
    match &failed {
        Some(err) => {
            assert_eq!(end.as_ref(), Err(err), "finish() after an error");
            d.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 1, b'x']));
            assert_spent(&mut d, err);
        }
        None => match &end {
            Ok(()) => assert_eq!(d.buffered(), 0, "a clean end with bytes left over"),
            Err(MuxError::Truncated { missing }) => assert!(*missing > 0),
            Err(other) => panic!("finish() found a new error after next_output() was drained: {other:?}"),
        },
    }
    Decoded { runs, end }
}

/// Nothing is held beyond what was pushed and not yet handed out.
fn check_buffered(d: &Demuxer, pushed: usize, handed_out: usize) {
    let held = d.buffered();
    assert!(held <= pushed - handed_out, "buffered {held} > pushed {pushed} - handed out {handed_out}");
}

/// After an error: the same error, again and again, and nothing held.
fn assert_spent(d: &mut Demuxer, err: &MuxError) {
    for _ in 0..2 {
        assert_eq!(d.next_output().as_ref(), Err(err), "the decoder recovered from an error");
    }
    assert_eq!(d.finish().as_ref(), Err(err));
    assert_eq!(d.buffered(), 0, "bytes kept after an error");
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let max_frame = MAX_FRAME[usize::from(input.knob)];
    let whole = decode(&[input.body], max_frame, input.body.len());
    let chunked = decode(&input.chunks, max_frame, input.body.len());
    assert_eq!(whole, chunked, "one chunk and {} chunks disagree", input.chunks.len());
});
