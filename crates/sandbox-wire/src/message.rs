//! The messages: requests from berth, replies and events from the helper.
//!
//! Every request carries an id (`rid`) that its replies repeat. A request
//! has one reply, except a file read (its `Chunk`s, then `Done`) and a file
//! write (berth sends `WriteChunk`s and `WriteEnd` under the id of its
//! `WriteFile`, the helper answers once: at the end, or at the first
//! failure, after which it ignores the rest of that write, its `WriteEnd`
//! or `WriteAbort` included) and a long listing (`Entries` replies with
//! `more`, the last without) and a tunnel (see below). Events come
//! unasked: a process's output and exit, a watched directory's changes, a
//! tunnel's bytes and its end.
//!
//! # Tunnels
//!
//! A tunnel reaches a TCP port a sandbox's process listens on although
//! the sandbox has no network berth can reach: the helper connects to
//! `127.0.0.1:port` (or `::1`) inside the sandbox and the bytes travel
//! over this stream. The `rid` of the `Dial` names the tunnel from then
//! on:
//!
//! ```text
//! berth  Dial { port }             rid 7  →
//!        ←  Reply Done             rid 7     (or Reply Error: no tunnel)
//! berth  TunnelData + bytes        rid 7  →  written to the socket in order
//!        ←  Event TunnelData { rid: 7 } + bytes   (what the socket gave)
//! berth  TunnelClose               rid 7  →  the socket's write half shut
//!        ←  Event TunnelClosed { rid: 7, error }  (its read side ended)
//! ```
//!
//! The two directions end apart (TCP's half-close): `TunnelClosed` with no
//! error says the peer closed its side, and the helper still writes what
//! berth sends until `TunnelClose`; the helper forgets the tunnel once
//! both have happened, so berth sends `TunnelClose` when it is done
//! writing, also after `TunnelClosed`. `TunnelClosed` with an error says
//! the socket is gone in both directions and forgotten already. A
//! `TunnelData` or `TunnelClose` for a tunnel the helper does not know
//! (closed meanwhile) is dropped without a reply.

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
    /// Opens a tunnel to `port` on the sandbox's loopback (`127.0.0.1`,
    /// then `::1` if that is refused), connecting for at most 5 s: `Done`
    /// once connected, `NotFound` ("nothing listens on port N") when the
    /// connection is refused, `Invalid` beyond 64 open tunnels, `Io`
    /// otherwise. This request's `rid` names the tunnel from then on.
    Dial {
        port: u16,
    },
    /// Under a dial's `rid`: the frame's data goes to the tunnel's socket,
    /// after the data sent before it. No reply. A tunnel takes a bounded
    /// number of frames that its socket has not taken yet; beyond, the
    /// helper stops reading requests until the socket takes some (so a
    /// peer that does not read stalls the whole stream: send a tunnel no
    /// more than its peer reads).
    TunnelData,
    /// Under a dial's `rid`: shuts the socket's write half (the peer reads
    /// EOF) once the data before it is written; the read side goes on
    /// until the peer closes. No reply.
    TunnelClose,
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
    /// The frame's data (at most 32 KiB) is what the socket of the tunnel
    /// `rid` gave.
    TunnelData { rid: u64 },
    /// The socket of the tunnel `rid` will give no more: the peer closed
    /// its side (`error` none), or the socket failed (`error` says how, and
    /// the tunnel is gone both ways). No `TunnelData` for `rid` follows.
    TunnelClosed { rid: u64, error: Option<String> },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).expect("serializes")
    }

    #[test]
    fn tunnel_requests_read_as_documented() {
        let dial = ToSandbox { rid: 7, request: Request::Dial { port: 8000 } };
        assert_eq!(json(&dial), r#"{"rid":7,"request":{"dial":{"port":8000}}}"#);
        assert_eq!(json(&ToSandbox { rid: 7, request: Request::TunnelData }), r#"{"rid":7,"request":"tunnel_data"}"#);
        assert_eq!(json(&ToSandbox { rid: 7, request: Request::TunnelClose }), r#"{"rid":7,"request":"tunnel_close"}"#);
    }

    #[test]
    fn tunnel_events_read_as_documented_and_back() {
        let data = FromSandbox::Event(Event::TunnelData { rid: 7 });
        assert_eq!(json(&data), r#"{"event":{"tunnel_data":{"rid":7}}}"#);
        let closed = FromSandbox::Event(Event::TunnelClosed { rid: 7, error: Some("reset".into()) });
        assert_eq!(json(&closed), r#"{"event":{"tunnel_closed":{"rid":7,"error":"reset"}}}"#);
        let back: FromSandbox = serde_json::from_str(&json(&closed)).expect("deserializes");
        assert_eq!(back, closed);
    }
}
