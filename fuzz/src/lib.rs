//! Shared input layout of the decoder fuzz targets.
//!
//! ```text
//! byte 0        low nibble: n, the number of chunk-size bytes that follow (0..=15)
//!               high nibble: a knob each target uses to pick its size bound
//! bytes 1..=n   chunk sizes, used in turn and cyclically; 0 pushes an empty chunk
//! the rest      the body
//! ```
//!
//! With n = 0 (or only zero sizes) the body is pushed as one chunk. The first
//! byte `0x00` therefore means "one chunk, default bound", which keeps seed
//! files readable: everything after it is the body as the daemon sends it.

/// An input split into the fuzzer-chosen chunks of its body.
pub struct Input<'a> {
    /// High nibble of the first byte.
    pub knob: u8,
    /// The body, whole.
    pub body: &'a [u8],
    /// The body cut where the size bytes say; concatenated, they are `body`.
    pub chunks: Vec<&'a [u8]>,
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let Some((&first, rest)) = data.split_first() else {
            return Input { knob: 0, body: &[], chunks: Vec::new() };
        };
        let n = usize::from(first & 0x0f).min(rest.len());
        let (sizes, body) = rest.split_at(n);
        Input { knob: first >> 4, body, chunks: cut(body, sizes) }
    }
}

fn cut<'a>(body: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.iter().all(|&s| s == 0) {
        return vec![body];
    }
    let mut chunks = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(usize::from(size).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// Builds an input in the layout above (the inverse of [`Input::parse`]), for seeds.
pub fn encode_input(knob: u8, sizes: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(knob < 16 && sizes.len() < 16);
    let mut out = vec![(knob << 4) | sizes.len() as u8];
    out.extend_from_slice(sizes);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_body() {
        let data = encode_input(3, &[0, 2, 5], b"abcdefghijklmnop");
        let input = Input::parse(&data);
        assert_eq!(input.knob, 3);
        assert_eq!(input.body, b"abcdefghijklmnop");
        assert_eq!(input.chunks, vec![&b""[..], b"ab", b"cdefg", b"", b"hi", b"jklmn", b"", b"op"]);
        assert_eq!(input.chunks.concat(), input.body);
    }
}
