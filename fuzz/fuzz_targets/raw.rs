//! The TTY passthrough: whatever the bytes and the chunking, what comes out
//! is what went in, in order, as `Console` output, with nothing held back.
//!
//! Input layout: see `engine_api_fuzz::Input` (the knob is unused).

#![no_main]

use bytes::Bytes;
use engine_api::decode::raw::RawDecoder;
use engine_api::decode::{Framing, OutputDecoder, StreamKind};
use engine_api_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);

    let mut d = RawDecoder::new();
    let mut out = Vec::with_capacity(input.body.len());
    let mut pushed = 0;
    for chunk in &input.chunks {
        d.push(Bytes::copy_from_slice(chunk));
        pushed += chunk.len();
        while let Some(piece) = d.next_output() {
            assert_eq!(piece.stream, StreamKind::Console);
            assert!(!piece.data.is_empty(), "an empty piece of output");
            out.extend_from_slice(&piece.data);
        }
        // Every chunk is handed on at once.
        assert_eq!(out.len(), pushed, "bytes held back");
    }
    assert_eq!(out, input.body);

    // The same through the framing-agnostic decoder the streams use.
    let mut d = OutputDecoder::new(Framing::Raw);
    let mut out2 = Vec::with_capacity(input.body.len());
    for chunk in &input.chunks {
        d.push(Bytes::copy_from_slice(chunk));
        while let Some(piece) = d.next_output().expect("raw output cannot fail") {
            out2.extend_from_slice(&piece.data);
        }
    }
    assert_eq!(d.finish(), Ok(()));
    assert_eq!(out2, input.body);
});
