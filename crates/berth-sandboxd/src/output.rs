//! The way out: every frame the helper sends goes through one bounded
//! channel to one thread that writes fd 1, so frames never interleave.
//!
//! Senders block when the channel is full (nobody reading the stdout
//! pipe); the reaper never sends, so reaping goes on meanwhile.

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use berth_sandbox_wire::{encode, ErrorKind, Event, FromSandbox, Reply, MAX_HEADER};

use crate::error::Failure;

/// How many encoded frames may wait for the writer.
const QUEUE: usize = 1024;
/// The longest error message sent; longer ones are cut.
const MAX_MESSAGE: usize = 4096;

/// A handle to send frames; cheap to clone, one per thread that sends.
#[derive(Clone)]
pub struct Outbox {
    frames: SyncSender<Vec<u8>>,
}

impl Outbox {
    /// Starts the writer thread on fd 1 and returns the handle to it.
    pub fn start() -> Outbox {
        let (frames, queue) = sync_channel(QUEUE);
        // fd 1 stays open for the helper's life; nothing else writes it.
        let stdout = unsafe { File::from_raw_fd(1) };
        thread::Builder::new()
            .name("writer".into())
            .spawn(move || write_frames(stdout, queue))
            .map(drop)
            .unwrap_or_else(|e| {
                eprintln!("berth-sandboxd: cannot start the writer: {e}");
                std::process::exit(1);
            });
        Outbox { frames }
    }

    pub fn reply(&self, rid: u64, reply: Reply) {
        self.reply_with(rid, reply, &[]);
    }

    /// A reply whose frame carries `data` (at most `MAX_DATA` bytes).
    pub fn reply_with(&self, rid: u64, reply: Reply, data: &[u8]) {
        let mut frame = Vec::new();
        encode(&FromSandbox::Reply { rid, reply }, data, &mut frame);
        if header_len(&frame) > MAX_HEADER {
            eprintln!("berth-sandboxd: a reply to {rid} is over the header bound");
            let failure = Failure::invalid("the answer is too large for one frame");
            frame.clear();
            encode(&FromSandbox::Reply { rid, reply: error_reply(&failure) }, &[], &mut frame);
        }
        self.push(frame);
    }

    pub fn error(&self, rid: u64, failure: &Failure) {
        self.reply(rid, error_reply(failure));
    }

    /// An event whose frame carries `data` (at most `MAX_DATA` bytes).
    pub fn event(&self, event: Event, data: &[u8]) {
        let mut frame = Vec::new();
        encode(&FromSandbox::Event(event), data, &mut frame);
        if header_len(&frame) > MAX_HEADER {
            eprintln!("berth-sandboxd: an event over the header bound was dropped");
            return;
        }
        self.push(frame);
    }

    fn push(&self, frame: Vec<u8>) {
        // The writer only stops when fd 1 is gone; then frames have nowhere to go.
        let _ = self.frames.send(frame);
    }
}

/// The error reply for `failure`, its message cut to a bounded length.
pub fn error_reply(failure: &Failure) -> Reply {
    let mut message = failure.to_string();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    let kind: ErrorKind = failure.kind();
    Reply::Error { kind, message }
}

fn header_len(frame: &[u8]) -> usize {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize
}

fn write_frames(mut stdout: File, queue: Receiver<Vec<u8>>) {
    while let Ok(frame) = queue.recv() {
        if let Err(e) = stdout.write_all(&frame) {
            // Nobody will read again (the pipe is gone): keep draining so that
            // senders never block, and keep the processes running.
            eprintln!("berth-sandboxd: stdout: {e}; frames are dropped from now on");
            while queue.recv().is_ok() {}
            return;
        }
    }
}
