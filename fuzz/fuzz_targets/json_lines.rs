//! The newline-delimited JSON splitter on arbitrary bytes, cut into arbitrary chunks.
//!
//! Input layout: see `engine_api_fuzz::Input` (first byte: chunk-size count and
//! a knob choosing the line bound, then the sizes, then the body).
//!
//! Checked on every input:
//! - no panic;
//! - memory stays bounded: `buffered() <= max_line + largest chunk` after every
//!   push, and `<= max_line` once drained;
//! - every line is non-empty, holds no `\n` and is trimmed of whitespace and 0x1E;
//! - after an error, `next_line` and `finish` keep failing and nothing is held;
//! - the body pushed whole, the body pushed in the chosen chunks and a plain
//!   whole-buffer model (split on `\n`, a raw line longer than the bound is an
//!   error, trim, drop blank lines) give the same lines and the same outcome.

#![no_main]

use engine_api::decode::json_lines::{JsonLines, JsonLinesError};
use engine_api_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// Line bounds the knob picks from; 1 MiB is the splitter's default.
const MAX_LINE: [usize; 16] = [1024, 0, 1, 2, 3, 8, 16, 63, 64, 65, 128, 256, 1024, 4096, 1 << 20, usize::MAX];

type Decoded = (Vec<Vec<u8>>, Result<(), JsonLinesError>);

fn decode(chunks: &[&[u8]], max_line: usize) -> Decoded {
    let largest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut d = JsonLines::with_max_line(max_line);
    let mut lines = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        assert!(d.buffered() <= max_line.saturating_add(largest), "buffered {} beyond the bound", d.buffered());
        loop {
            match d.next_line() {
                Ok(Some(line)) => lines.push(check_line(&line)),
                Ok(None) => break,
                Err(err) => return (lines, Err(spent(&mut d, err))),
            }
        }
        assert!(d.buffered() <= max_line, "drained, yet {} bytes buffered over a bound of {max_line}", d.buffered());
    }
    match d.finish() {
        Ok(Some(line)) => lines.push(check_line(&line)),
        Ok(None) => {}
        Err(err) => return (lines, Err(spent(&mut d, err))),
    }
    assert_eq!(d.buffered(), 0, "bytes left after finish()");
    assert_eq!(d.finish(), Ok(None), "finish() twice");
    (lines, Ok(()))
}

fn check_line(line: &[u8]) -> Vec<u8> {
    let pad = |b: &u8| b.is_ascii_whitespace() || *b == 0x1e;
    assert!(!line.is_empty(), "an empty line");
    assert!(!line.contains(&b'\n'), "a line with a newline inside");
    assert!(!pad(&line[0]) && !pad(&line[line.len() - 1]), "an untrimmed line: {line:?}");
    line.to_vec()
}

fn spent(d: &mut JsonLines, err: JsonLinesError) -> JsonLinesError {
    assert_eq!(d.buffered(), 0, "bytes kept after an error");
    d.push(b"{}\n");
    assert_eq!(d.next_line().as_ref(), Err(&err), "the splitter recovered from an error");
    assert_eq!(d.finish().as_ref(), Err(&err), "finish() after an error");
    assert_eq!(d.buffered(), 0, "bytes kept after an error");
    err
}

/// What the documentation promises, on the whole body at once.
fn model(body: &[u8], max_line: usize) -> Decoded {
    let pad = |b: &u8| b.is_ascii_whitespace() || *b == 0x1e;
    let mut lines = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        if raw.len() > max_line {
            return (lines, Err(JsonLinesError::LineTooLong { max: max_line }));
        }
        let start = raw.iter().position(|b| !pad(b)).unwrap_or(raw.len());
        let end = raw.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
        if start < end {
            lines.push(raw[start..end].to_vec());
        }
    }
    (lines, Ok(()))
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let max_line = MAX_LINE[usize::from(input.knob)];
    let whole = decode(&[input.body], max_line);
    let chunked = decode(&input.chunks, max_line);
    assert_eq!(whole, chunked, "one chunk and {} chunks disagree", input.chunks.len());
    assert_eq!(whole, model(input.body, max_line), "the splitter and the model disagree");
    let line_bytes: usize = whole.0.iter().map(Vec::len).sum();
    assert!(line_bytes <= input.body.len());
});
