//! What a runtime container writes to its stdout and stderr pipes: kept up
//! to a bound per stream (the rest read and counted, so the container never
//! blocks on a full pipe), or handed on live to an attached reader.

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use berth_core::engine::{LogChunk, Stream};

/// Both streams of one container, each kept to `cap` bytes.
#[derive(Debug, Default)]
pub struct Kept {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes read past the bound, per stream.
    pub dropped: [u64; 2],
}

impl Kept {
    /// Adds what `stream` said, within `cap`; whether any of it was kept.
    pub fn push(&mut self, stream: Stream, data: &[u8], cap: usize) -> bool {
        let (buf, dropped) = match stream {
            Stream::Stderr => (&mut self.stderr, &mut self.dropped[1]),
            _ => (&mut self.stdout, &mut self.dropped[0]),
        };
        let room = cap.saturating_sub(buf.len()).min(data.len());
        buf.extend_from_slice(&data[..room]);
        *dropped += (data.len() - room) as u64;
        room > 0
    }

    /// The kept output as log chunks, stdout first.
    pub fn chunks(&self) -> Vec<LogChunk> {
        self.since([0, 0]).0
    }

    /// What was kept past `from` (bytes of stdout, of stderr) as chunks,
    /// stdout first, and where the kept output now ends: a follower's
    /// next piece.
    pub fn since(&self, from: [usize; 2]) -> (Vec<LogChunk>, [usize; 2]) {
        let chunks = [(Stream::Stdout, &self.stdout, from[0]), (Stream::Stderr, &self.stderr, from[1])]
            .into_iter()
            .filter(|(_, b, at)| b.len() > *at)
            .map(|(stream, b, at)| LogChunk { stream, data: Bytes::copy_from_slice(&b[at..]) })
            .collect();
        (chunks, self.ends())
    }

    /// Where the kept output ends (bytes of stdout, of stderr).
    pub fn ends(&self) -> [usize; 2] {
        [self.stdout.len(), self.stderr.len()]
    }
}

/// Where a pipe's bytes go: kept within the bound (what `logs` reads and
/// follows, as the engine keeps a container's log), and when a reader is
/// attached, handed on to it live as well.
pub struct Sink {
    pub kept: std::sync::Arc<std::sync::Mutex<Kept>>,
    pub cap: usize,
    /// Counts the pieces kept, so a follower wakes for each.
    pub grown: tokio::sync::watch::Sender<u64>,
    /// The attached reader; once it has gone, the rest is only kept.
    pub live: Option<mpsc::Sender<LogChunk>>,
}

/// Reads `pipe` to its end into `sink`.
pub async fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin, stream: Stream, mut sink: Sink) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if sink.kept.lock().unwrap_or_else(|p| p.into_inner()).push(stream, &buf[..n], sink.cap) {
            sink.grown.send_modify(|pieces| *pieces += 1);
        }
        if let Some(tx) = &sink.live {
            let chunk = LogChunk { stream, data: Bytes::copy_from_slice(&buf[..n]) };
            if tx.send(chunk).await.is_err() {
                sink.live = None;
            }
        }
    }
}

/// A container's stdin pipe whose shutdown closes it: the end of what
/// berth writes reaches the container as end of file (tokio's own pipe
/// keeps the descriptor open until it is dropped).
pub struct Stdin(pub Option<tokio::process::ChildStdin>);

impl tokio::io::AsyncWrite for Stdin {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(pipe) => std::pin::Pin::new(pipe).poll_write(cx, buf),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(pipe) => std::pin::Pin::new(pipe).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(pipe) = self.0.as_mut() {
            if std::pin::Pin::new(pipe).poll_flush(cx).is_pending() {
                return std::task::Poll::Pending;
            }
        }
        self.0 = None;
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_bound_is_counted_not_kept() {
        let mut kept = Kept::default();
        kept.push(Stream::Stdout, b"hello ", 8);
        kept.push(Stream::Stdout, b"world", 8);
        kept.push(Stream::Stderr, b"oops", 8);
        assert_eq!(kept.stdout, b"hello wo");
        assert_eq!(kept.dropped, [3, 0]);
        let chunks = kept.chunks();
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[1].stream, &chunks[1].data[..]), (Stream::Stderr, &b"oops"[..]));
    }

    #[tokio::test]
    async fn a_pipe_is_drained_to_its_end_even_past_the_bound() {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Kept::default()));
        let data = vec![b'x'; 300_000];
        let (grown, seen) = tokio::sync::watch::channel(0);
        drain(&data[..], Stream::Stdout, Sink { kept: kept.clone(), cap: 1000, grown, live: None }).await;
        let k = kept.lock().unwrap();
        assert_eq!((k.stdout.len(), k.dropped[0]), (1000, 299_000));
        assert!(*seen.borrow() >= 1, "a follower heard of it");
    }

    #[test]
    fn a_follower_gets_what_was_kept_since_its_last_piece() {
        let mut kept = Kept::default();
        kept.push(Stream::Stdout, b"one\n", 100);
        let (first, at) = kept.since([0, 0]);
        assert_eq!((first.len(), at), (1, [4, 0]));
        kept.push(Stream::Stderr, b"oops\n", 100);
        kept.push(Stream::Stdout, b"two\n", 100);
        let (next, at) = kept.since(at);
        let pieces: Vec<(Stream, &[u8])> = next.iter().map(|c| (c.stream, &c.data[..])).collect();
        assert_eq!(pieces, [(Stream::Stdout, &b"two\n"[..]), (Stream::Stderr, &b"oops\n"[..])]);
        assert_eq!(kept.since(at), (vec![], [8, 5]), "nothing new");
    }
}
