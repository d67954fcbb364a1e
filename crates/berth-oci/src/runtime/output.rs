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
    /// Adds what `stream` said, within `cap`.
    pub fn push(&mut self, stream: Stream, data: &[u8], cap: usize) {
        let (buf, dropped) = match stream {
            Stream::Stderr => (&mut self.stderr, &mut self.dropped[1]),
            _ => (&mut self.stdout, &mut self.dropped[0]),
        };
        let room = cap.saturating_sub(buf.len()).min(data.len());
        buf.extend_from_slice(&data[..room]);
        *dropped += (data.len() - room) as u64;
    }

    /// The kept output as log chunks, stdout first.
    pub fn chunks(&self) -> Vec<LogChunk> {
        [(Stream::Stdout, &self.stdout), (Stream::Stderr, &self.stderr)]
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(stream, b)| LogChunk { stream, data: Bytes::copy_from_slice(b) })
            .collect()
    }
}

/// Where a pipe's bytes go.
pub enum Sink {
    Keep(std::sync::Arc<std::sync::Mutex<Kept>>, usize),
    /// Live to an attached reader; once it has gone, the rest is dropped.
    Live(mpsc::Sender<LogChunk>),
}

/// Reads `pipe` to its end into `sink`.
pub async fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin, stream: Stream, sink: Sink) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut live = match &sink {
        Sink::Live(tx) => Some(tx.clone()),
        Sink::Keep(..) => None,
    };
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match &sink {
            Sink::Keep(kept, cap) => kept.lock().unwrap_or_else(|p| p.into_inner()).push(stream, &buf[..n], *cap),
            Sink::Live(_) => {
                if let Some(tx) = &live {
                    let chunk = LogChunk { stream, data: Bytes::copy_from_slice(&buf[..n]) };
                    if tx.send(chunk).await.is_err() {
                        live = None;
                    }
                }
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
        drain(&data[..], Stream::Stdout, Sink::Keep(kept.clone(), 1000)).await;
        let k = kept.lock().unwrap();
        assert_eq!((k.stdout.len(), k.dropped[0]), (1000, 299_000));
    }
}
