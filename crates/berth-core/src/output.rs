//! Output kept with a cap: the first bytes up to the cap, a count of what was
//! dropped, and a visible marker when anything was.

/// Keeps at most `cap` bytes of a stream of output.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    kept: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        CappedOutput { kept: Vec::new(), cap, dropped: 0 }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }

    pub fn truncated(&self) -> bool {
        self.dropped > 0
    }

    /// The kept bytes as text (invalid UTF-8 replaced), with a marker line
    /// saying how much was dropped, if anything was.
    pub fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped > 0 {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("[berth: output truncated, {} more bytes dropped]\n", self.dropped));
        }
        text
    }
}

/// A workload's stdout and stderr, each kept to a cap: the one way output
/// read from the engine is collected (a run's, an exec's, a log read).
#[derive(Debug, Clone)]
pub struct CappedStreams {
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
}

impl CappedStreams {
    pub fn new(cap: usize) -> Self {
        CappedStreams { stdout: CappedOutput::new(cap), stderr: CappedOutput::new(cap) }
    }

    /// Takes a piece of output: stderr apart, everything else stdout.
    pub fn push(&mut self, chunk: &crate::engine::LogChunk) {
        match chunk.stream {
            crate::engine::Stream::Stderr => self.stderr.push(&chunk.data),
            crate::engine::Stream::Stdout | crate::engine::Stream::Console => self.stdout.push(&chunk.data),
        }
    }

    /// Reads a finite stream of output to its end, or to its first error.
    pub async fn collect(mut self, mut stream: crate::engine::LogStream) -> Result<Self, crate::engine::EngineError> {
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            self.push(&chunk?);
        }
        Ok(self)
    }
}

/// Keeps the first and the last lines of a stream of output, each line cut
/// at a byte bound, with one elision marker between them when lines were
/// left out. What a failed service wrote first (its start-up) and last (why
/// it stopped) both matter; the lines between are usually its own noise.
#[derive(Debug, Clone)]
pub struct HeadTailLines {
    head: Vec<String>,
    tail: std::collections::VecDeque<String>,
    lines: usize,
    max_line: usize,
    /// Complete lines left out between the head and the tail.
    left_out: usize,
    /// The unfinished last line, at most `max_line` bytes of it.
    partial: Vec<u8>,
    /// Whether the unfinished line has been cut.
    cut: bool,
}

impl HeadTailLines {
    /// Keeps `lines` lines at each end, each at most `max_line` bytes.
    pub fn new(lines: usize, max_line: usize) -> Self {
        HeadTailLines {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            lines,
            max_line,
            left_out: 0,
            partial: Vec::new(),
            cut: false,
        }
    }

    /// Takes the next bytes of the stream; lines may be split anywhere.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(end) => {
                    self.extend_partial(&bytes[..end]);
                    self.end_line();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.extend_partial(bytes);
                    bytes = &[];
                }
            }
        }
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        let room = self.max_line.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.cut |= bytes.len() > room;
    }

    fn end_line(&mut self) {
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        if self.cut {
            line.push_str(" [berth: line cut]");
        }
        self.partial.clear();
        self.cut = false;
        if self.head.len() < self.lines {
            self.head.push(line);
        } else {
            if self.tail.len() == self.lines && self.tail.pop_front().is_some() {
                self.left_out += 1;
            }
            self.tail.push_back(line);
        }
    }

    /// The kept lines as text, an unfinished last line included.
    pub fn into_text(mut self) -> String {
        if !self.partial.is_empty() || self.cut {
            self.end_line();
        }
        let mut text = String::new();
        for line in &self.head {
            text.push_str(line);
            text.push('\n');
        }
        if self.left_out > 0 {
            text.push_str(&format!("[berth: {} lines left out]\n", self.left_out));
        }
        for line in &self.tail {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_cap_is_dropped_with_a_visible_marker() {
        let mut out = CappedOutput::new(5);
        out.push(b"abc");
        out.push(b"defgh");
        assert!(out.truncated());
        assert_eq!(out.into_text(), "abcde\n[berth: output truncated, 3 more bytes dropped]\n");
    }

    #[test]
    fn output_within_the_cap_is_kept_as_is() {
        let mut out = CappedOutput::new(100);
        out.push(b"hello\n");
        assert!(!out.truncated());
        assert_eq!(out.into_text(), "hello\n");
    }

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn head_and_tail_keep_the_first_and_last_lines_with_a_marker_between() {
        let mut lines = HeadTailLines::new(2, 100);
        lines.push(numbered(7).as_bytes());
        assert_eq!(lines.into_text(), "line 1\nline 2\n[berth: 3 lines left out]\nline 6\nline 7\n");
    }

    #[test]
    fn head_and_tail_keep_everything_when_the_output_is_short() {
        let mut lines = HeadTailLines::new(20, 100);
        lines.push(numbered(30).as_bytes());
        assert_eq!(HeadTailLines::new(20, 100).into_text(), "");
        assert_eq!(lines.into_text(), numbered(30));
        let mut few = HeadTailLines::new(20, 100);
        few.push(b"only\nthis");
        assert_eq!(few.into_text(), "only\nthis\n");
    }

    #[test]
    fn head_and_tail_cut_a_long_line_at_its_bound() {
        let mut lines = HeadTailLines::new(2, 4);
        lines.push(b"abcdefgh");
        lines.push(b"ij\nxy\n");
        assert_eq!(lines.into_text(), "abcd [berth: line cut]\nxy\n");
    }

    proptest::proptest! {
        #[test]
        fn head_and_tail_do_not_depend_on_how_the_bytes_are_split(
            n in 0usize..60, cuts in proptest::collection::vec(0usize..400, 0..8)
        ) {
            let text = numbered(n);
            let mut whole = HeadTailLines::new(5, 6);
            whole.push(text.as_bytes());
            let mut pieces = HeadTailLines::new(5, 6);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort();
            let mut at = 0;
            for cut in cuts {
                pieces.push(&text.as_bytes()[at..cut]);
                at = cut;
            }
            pieces.push(&text.as_bytes()[at..]);
            proptest::prop_assert_eq!(whole.into_text(), pieces.into_text());
        }
    }
}
