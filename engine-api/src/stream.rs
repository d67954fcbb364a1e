//! The thin IO layer that feeds response bodies to the sans-IO decoders.
//!
//! [`OutputStream`] yields container output (logs, exec, attach) and
//! [`JsonStream`] yields typed JSON lines (events, stats, pull progress).
//! Both pull one chunk at a time from their source, push it into the
//! decoder and hand out whatever the decoder yields, so memory stays at one
//! chunk plus the decoder's bounded buffer. At the end of the source the
//! decoder is asked whether the body ended cleanly: a cut frame or a cut
//! JSON value is an error item, not a quiet end.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use serde::de::DeserializeOwned;

use crate::decode::json_lines::JsonLines;
use crate::decode::{Output, OutputDecoder};
use crate::error::{DecodeError, Error};
use crate::transport::{Body, TransportError};

/// Container output decoded from a body or an upgraded connection.
pub struct OutputStream<S = Body> {
    source: S,
    decoder: OutputDecoder,
    done: bool,
}

impl<S> OutputStream<S> {
    pub fn new(source: S, decoder: OutputDecoder) -> Self {
        OutputStream { source, decoder, done: false }
    }
}

impl<S> Stream for OutputStream<S>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    type Item = Result<Output, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.decoder.next_output() {
                Ok(Some(out)) => return Poll::Ready(Some(Ok(out))),
                Ok(None) => {}
                Err(err) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            match ready!(Pin::new(&mut this.source).poll_next(cx)) {
                Some(Ok(chunk)) => this.decoder.push(chunk),
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err.into())));
                }
                None => {
                    this.done = true;
                    return Poll::Ready(this.decoder.finish().err().map(|e| Err(e.into())));
                }
            }
        }
    }
}

/// Typed values from a newline-delimited JSON body. A line may hold more
/// than one value back to back; each is yielded in turn.
pub struct JsonStream<T, S = Body> {
    source: S,
    lines: JsonLines,
    pending: std::collections::VecDeque<Result<T, Error>>,
    what: &'static str,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T, S> JsonStream<T, S> {
    /// `what` names the stream in decode errors ("events", "pull progress").
    pub fn new(source: S, what: &'static str) -> Self {
        Self::with_lines(source, JsonLines::new(), what)
    }

    pub fn with_lines(source: S, lines: JsonLines, what: &'static str) -> Self {
        JsonStream { source, lines, pending: Default::default(), what, done: false, _item: PhantomData }
    }
}

impl<T: DeserializeOwned, S> JsonStream<T, S> {
    fn parse_line(&mut self, line: &[u8]) {
        let mut values = serde_json::Deserializer::from_slice(line).into_iter::<T>();
        loop {
            match values.next() {
                Some(Ok(v)) => self.pending.push_back(Ok(v)),
                Some(Err(e)) => {
                    self.pending.push_back(Err(Error::decode(self.what, DecodeError::json(e, line))));
                    self.done = true;
                    return;
                }
                None => return,
            }
        }
    }
}

// No field is ever pinned: the values are only moved in and out of the queue.
impl<T, S: Unpin> Unpin for JsonStream<T, S> {}

impl<T, S> Stream for JsonStream<T, S>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.lines.next_line() {
                Ok(Some(line)) => {
                    this.parse_line(&line);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::decode(this.what, e))));
                }
            }
            match ready!(Pin::new(&mut this.source).poll_next(cx)) {
                Some(Ok(chunk)) => this.lines.push(&chunk),
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err.into())));
                }
                None => {
                    match this.lines.finish() {
                        Ok(Some(line)) => this.parse_line(&line),
                        Ok(None) => {}
                        Err(e) => this.pending.push_back(Err(Error::decode(this.what, e))),
                    }
                    this.done = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::mux::encode_frame;
    use crate::decode::{Framing, StreamKind};
    use futures_util::StreamExt;

    fn body(chunks: Vec<&'static [u8]>) -> Body {
        Body::from_stream(futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))))
    }

    #[tokio::test]
    async fn output_stream_reports_a_cut_frame_as_an_error_after_the_data() {
        let mut frame = Vec::new();
        encode_frame(1, b"hello world", &mut frame);
        let cut: &'static [u8] = Box::leak(frame[..12].to_vec().into_boxed_slice());
        let items: Vec<_> =
            OutputStream::new(body(vec![cut]), OutputDecoder::new(Framing::Multiplexed)).collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().stream, StreamKind::Stdout);
        assert!(matches!(items[1], Err(Error::Decode { .. })));
    }

    #[tokio::test]
    async fn json_stream_yields_values_split_across_chunks_and_back_to_back() {
        let chunks: Vec<&'static [u8]> = vec![b"{\"a\":1}{\"a\"", b":2}\r\n{\"a\":3}"];
        let items: Vec<serde_json::Value> = JsonStream::new(body(chunks), "test").map(|r| r.unwrap()).collect().await;
        assert_eq!(items, vec![serde_json::json!({"a":1}), serde_json::json!({"a":2}), serde_json::json!({"a":3})]);
    }

    #[tokio::test]
    async fn a_json_value_cut_at_the_end_is_an_error() {
        let items: Vec<Result<serde_json::Value, Error>> =
            JsonStream::new(body(vec![b"{\"a\":1}\n{\"a\":"]), "test").collect().await;
        assert!(items[0].is_ok());
        assert!(matches!(items[1], Err(Error::Decode { .. })));
    }
}
