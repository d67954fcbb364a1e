//! The upgrade exchange's response side: whatever a daemon answers, parsing
//! its head and decoding a refused answer's body never panics; the body
//! decodes to the same payload however it is chunked, never longer than
//! what came, and nothing is read past the end of a framed body.
//!
//! Input layout: see `engine_api_fuzz::Input` (the knob is unused).

#![no_main]

use engine_api::transport::hijack::{parse_head, BodyDecoder, Framing};
use engine_api_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// Decodes `chunks` as a body of `framing`: the payload, and whether it was whole.
fn decode(framing: Framing, chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut d = BodyDecoder::new(framing);
    let mut out = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        loop {
            match d.next_payload() {
                Ok(Some(p)) => out.extend_from_slice(&p),
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
    }
    (out, d.finish().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let Ok(Some((head, taken))) = parse_head(input.body) else { return };
    assert!(taken <= input.body.len());
    if head.hijacked() {
        return;
    }
    let rest = &input.body[taken..];
    let Ok(framing) = head.framing() else { return };
    // The same bytes cut as the fuzzer says, and in one piece.
    let mut chunks = Vec::new();
    let mut at = taken;
    for chunk in &input.chunks {
        let end = at.max(input.body.len().min(at + chunk.len()));
        if end > taken {
            chunks.push(&input.body[at.max(taken)..end]);
        }
        at = end;
    }
    let (cut, cut_whole) = decode(framing, &chunks);
    let (whole, whole_whole) = decode(framing, &[rest]);
    assert!(whole.len() <= rest.len(), "more payload than bytes");
    if cut_whole && whole_whole {
        assert_eq!(cut, whole, "the chunking changed the payload");
    }
    if let Framing::Length(n) = framing {
        assert!(whole.len() as u64 <= n, "read past the body's length");
    }
});
