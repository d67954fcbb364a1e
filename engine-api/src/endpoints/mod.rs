//! The endpoint methods of [`crate::Docker`], one module per resource.
//!
//! Each method builds a [`crate::client::Call`], lets the client send it,
//! and turns the answer into a model or a stream. Nothing here touches a
//! socket or parses bytes by hand.

pub mod containers;
pub mod exec;
pub mod images;
pub mod networks;
pub mod swarm;
pub mod system;
pub mod volumes;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{ReadHalf, WriteHalf};

use crate::decode::OutputDecoder;
use crate::stream::OutputStream;
use crate::transport::{Duplex, TransportError};

/// The media type a response names, if it names one readably.
pub(crate) fn content_type(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// The read side of an upgraded connection as a stream of chunks.
pub struct UpgradedReader {
    io: ReadHalf<Box<dyn Duplex>>,
    buf: BytesMut,
}

/// Read size for upgraded connections.
const READ_CHUNK: usize = 64 * 1024;

impl Stream for UpgradedReader {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.buf.capacity() < READ_CHUNK {
            this.buf.reserve(READ_CHUNK);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => Poll::Ready(None),
            Poll::Ready(Ok(_)) => Poll::Ready(Some(Ok(this.buf.split().freeze()))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(TransportError::Body(Box::new(e))))),
        }
    }
}

/// An interactive session over an upgraded connection (exec with stdin, attach).
///
/// Write to `stdin`; end it with [`tokio::io::AsyncWriteExt::shutdown`],
/// which half-closes the connection so the process sees end of input while
/// its output keeps arriving on `output`.
pub struct Attached {
    pub output: OutputStream<UpgradedReader>,
    pub stdin: WriteHalf<Box<dyn Duplex>>,
}

impl Attached {
    pub(crate) fn new(io: Box<dyn Duplex>, decoder: OutputDecoder) -> Attached {
        let (read, write) = tokio::io::split(io);
        let reader = UpgradedReader { io: read, buf: BytesMut::new() };
        Attached { output: OutputStream::new(reader, decoder), stdin: write }
    }
}
