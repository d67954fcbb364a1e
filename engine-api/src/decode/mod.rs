//! Sans-IO decoders for the byte streams the daemon sends.
//!
//! Each decoder takes byte chunks exactly as they arrive (`push`) and yields
//! items (`next`); `Ok(None)` means "need more bytes". None of them knows about
//! sockets, hyper or tokio, so they are tested by re-chunking inputs at every
//! offset and fuzzed directly. The IO layer that feeds them lives in
//! [`crate::stream`].
//!
//! - [`mux`]: the multiplexed stdout/stderr framing of non-TTY logs, attach and exec;
//! - [`raw`]: the TTY passthrough, where bytes are the terminal's and carry no frames;
//! - [`json_lines`]: newline-delimited JSON (pull progress, events, streamed stats).
//!
//! Which of `mux` and `raw` applies is decided by [`Framing::choose`], never by
//! looking at the bytes.

pub mod json_lines;
pub mod mux;
pub mod raw;

use bytes::Bytes;

/// Which stream a piece of container output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Stream 0 of a multiplexed body. The daemon is not supposed to send it;
    /// it is kept distinct rather than silently folded into stdout.
    Stdin,
    Stdout,
    Stderr,
    /// Output of a container or exec with a TTY: stdout and stderr merged by
    /// the terminal, with no framing.
    Console,
}

/// One piece of container output. A multiplexed frame may arrive as several
/// pieces when it straddles chunks: pieces are handed out as soon as their
/// bytes are here, without waiting for (or copying into) a whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stream: StreamKind,
    pub data: Bytes,
}

/// How an output body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// 8-byte headers with a stream id and length before each payload.
    Multiplexed,
    /// Raw terminal bytes.
    Raw,
}

/// Content-Type the daemon (API >= 1.42) sets on a multiplexed body.
pub const MULTIPLEXED_CONTENT_TYPE: &str = "application/vnd.docker.multiplexed-stream";
/// Content-Type of raw bodies, and of every output body before API 1.42 and
/// from Podman, multiplexed or not.
pub const RAW_CONTENT_TYPE: &str = "application/vnd.docker.raw-stream";

impl Framing {
    /// Decides the framing of an output body from its Content-Type and, when
    /// known, the TTY flag of the container or exec that produced it.
    ///
    /// A multiplexed Content-Type is trusted. A raw-stream (or missing)
    /// Content-Type is not, because older daemons and Podman label multiplexed
    /// bodies that way too: then the TTY flag decides, and `None` means the
    /// caller must find the flag (by inspecting) before decoding.
    pub fn choose(content_type: Option<&str>, tty: Option<bool>) -> Option<Framing> {
        if is_multiplexed(content_type) {
            return Some(Framing::Multiplexed);
        }
        tty.map(|tty| Framing::with_tty(content_type, tty))
    }

    /// [`Framing::choose`] for a body whose TTY flag is known.
    pub fn with_tty(content_type: Option<&str>, tty: bool) -> Framing {
        if tty && !is_multiplexed(content_type) {
            Framing::Raw
        } else {
            Framing::Multiplexed
        }
    }
}

fn is_multiplexed(content_type: Option<&str>) -> bool {
    let media = content_type.map(|ct| ct.split(';').next().unwrap_or("").trim()).unwrap_or("");
    media.eq_ignore_ascii_case(MULTIPLEXED_CONTENT_TYPE)
}

/// Error of an output decoder.
pub type OutputError = mux::MuxError;

/// An output decoder of either framing, with one interface.
#[derive(Debug)]
pub enum OutputDecoder {
    Multiplexed(mux::Demuxer),
    Raw(raw::RawDecoder),
}

impl OutputDecoder {
    /// A decoder for `framing` with the default frame-size bound.
    pub fn new(framing: Framing) -> Self {
        Self::with_max_frame(framing, mux::DEFAULT_MAX_FRAME)
    }

    /// A decoder for `framing`; multiplexed frames above `max_frame` bytes are an error.
    pub fn with_max_frame(framing: Framing, max_frame: usize) -> Self {
        match framing {
            Framing::Multiplexed => OutputDecoder::Multiplexed(mux::Demuxer::with_max_frame(max_frame)),
            Framing::Raw => OutputDecoder::Raw(raw::RawDecoder::new()),
        }
    }

    pub fn push(&mut self, chunk: Bytes) {
        match self {
            OutputDecoder::Multiplexed(d) => d.push(chunk),
            OutputDecoder::Raw(d) => d.push(chunk),
        }
    }

    pub fn next_output(&mut self) -> Result<Option<Output>, OutputError> {
        match self {
            OutputDecoder::Multiplexed(d) => d.next_output(),
            OutputDecoder::Raw(d) => Ok(d.next_output()),
        }
    }

    /// Call at the end of the body: a body cut inside a frame is an error.
    pub fn finish(&self) -> Result<(), OutputError> {
        match self {
            OutputDecoder::Multiplexed(d) => d.finish(),
            OutputDecoder::Raw(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplexed_content_type_is_trusted_whatever_the_tty_flag() {
        assert_eq!(Framing::choose(Some(MULTIPLEXED_CONTENT_TYPE), Some(true)), Some(Framing::Multiplexed));
        assert_eq!(
            Framing::choose(Some("Application/Vnd.Docker.Multiplexed-Stream; x=1"), None),
            Some(Framing::Multiplexed)
        );
    }

    #[test]
    fn raw_stream_content_type_defers_to_the_tty_flag() {
        assert_eq!(Framing::choose(Some(RAW_CONTENT_TYPE), Some(true)), Some(Framing::Raw));
        assert_eq!(Framing::choose(Some(RAW_CONTENT_TYPE), Some(false)), Some(Framing::Multiplexed));
        assert_eq!(Framing::choose(Some(RAW_CONTENT_TYPE), None), None);
        assert_eq!(Framing::choose(None, None), None);
    }
}
