//! The messages: requests from berth, replies and events from the helper.
//!
//! Every request carries an id (`rid`) that its replies repeat. A request
//! has one reply, except a file read (its `Chunk`s, then `Done`) and a file
//! write (berth sends `WriteChunk`s and `WriteEnd` under the id of its
//! `WriteFile`, the helper answers once: at the end, or at the first
//! failure, after which it ignores the rest of that write, its `WriteEnd`
//! or `WriteAbort` included) and a long listing (`Entries` replies with
//! `more`, the last without). Events come unasked:
//! a process's output and exit, a watched directory's changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol's version, said in the helper's `Hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from berth to the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToSandbox {
    pub rid: u64,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Who the helper is: its protocol version, its user, the home.
    Hello,
    Spawn(Spawn),
    /// The frame's data goes to the process's stdin (or its terminal).
    Input {
        pid: u32,
    },
    CloseStdin {
        pid: u32,
    },
    Signal {
        pid: u32,
        signal: i32,
    },
    Resize {
        pid: u32,
        size: PtySize,
    },
    /// The processes still running.
    Processes,
    ReadFile {
        path: String,
    },
    /// Opens a write of `path`: the bytes follow as `WriteChunk`s under the
    /// same id; `WriteEnd` puts the file in place, `WriteAbort` drops it. A
    /// file is never seen half-written: the bytes go to a file beside it,
    /// renamed over it at the end.
    WriteFile {
        path: String,
    },
    WriteChunk,
    WriteEnd,
    WriteAbort,
    Stat {
        path: String,
    },
    /// The entries below `path`, down to `depth` levels (1: its own).
    ListDir {
        path: String,
        depth: u32,
    },
    /// Makes `path` and its missing parents.
    MakeDir {
        path: String,
    },
    Move {
        from: String,
        to: String,
    },
    /// Removes a file, or a directory with what it holds.
    Remove {
        path: String,
    },
    Watch {
        path: String,
        recursive: bool,
    },
    Unwatch {
        wid: u64,
    },
}

/// A process to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawn {
    pub argv: Vec<String>,
    /// Added to the sandbox's environment (last wins).
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// A terminal of this size, when asked.
    pub pty: Option<PtySize>,
    /// Keep stdin open for `Input` (otherwise it reads as empty).
    pub stdin: bool,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySize {
    pub cols: u16,
    pub rows: u16,
}

/// A frame from the helper to berth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromSandbox {
    Reply { rid: u64, reply: Reply },
    Event(Event),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Hello {
        version: u32,
        uid: u32,
        home: String,
    },
    Spawned {
        pid: u32,
    },
    /// Done, with nothing to say (also the end of a file read).
    Done,
    Processes {
        processes: Vec<Process>,
    },
    /// The frame's data is the next part of a file read.
    Chunk,
    Entry {
        entry: Entry,
    },
    /// Part of a listing: when `more`, further `Entries` replies follow
    /// under the same id (a long listing does not fit one header).
    Entries {
        entries: Vec<Entry>,
        #[serde(default)]
        more: bool,
    },
    Watching {
        wid: u64,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The frame's data is what the process wrote.
    Output { pid: u32, stream: StreamName },
    /// The process ended: its exit code, or the signal that ended it.
    Exited { pid: u32, code: Option<i32>, signal: Option<i32> },
    /// What changed below a watched directory.
    Changed { wid: u64, events: Vec<WatchEvent> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Stdout,
    Stderr,
    /// A terminal's output (stdout and stderr together).
    Pty,
}

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub tag: Option<String>,
    pub pty: bool,
}

/// A file system entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// Its absolute path in the sandbox.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    pub size: u64,
    /// Permission bits (`0o644`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Last modified, in seconds since the epoch.
    pub modified: i64,
    pub symlink_target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The path relative to the watched directory.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: WatchEventType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventType {
    Create,
    Write,
    Remove,
    Rename,
    Chmod,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Exists,
    /// The sandbox's writable space is full.
    NoSpace,
    Invalid,
    Denied,
    /// The process has ended.
    Ended,
    Io,
}
