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
}
