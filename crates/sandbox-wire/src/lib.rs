//! berth-sandbox-wire: what berth and `berth-sandboxd` (the helper berth
//! places in each sandbox) say to each other over the sandbox's stdio.
//!
//! The helper is the sandbox's first process; berth attaches to its stdin
//! and stdout through the engine, so the one attached stream carries every
//! request, every process's output and every file's bytes, with no network
//! in the sandbox and no exec round trip per command. This crate is
//! sans-IO: [`frame`] turns messages into bytes and bytes into messages,
//! [`message`] says what the messages are. It knows nothing of engines,
//! HTTP or berth's core.

pub mod frame;
pub mod message;

pub use frame::{encode, Decoder, WireError, MAX_DATA, MAX_HEADER};
pub use message::{
    Entry, EntryType, ErrorKind, Event, FromSandbox, Process, PtySize, Reply, Request, Spawn, StreamName, ToSandbox,
    WatchEvent, WatchEventType, PROTOCOL_VERSION,
};
