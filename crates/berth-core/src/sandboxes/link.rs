//! The link to a sandbox's helper: one attached stdio stream carrying
//! requests, replies, process output and file bytes (the frames of
//! `berth-sandbox-wire`).
//!
//! A writer task owns the sandbox's stdin; a reader task decodes its
//! stdout, hands replies to the requests that wait for them (by request
//! id) and keeps each process's recent output and its exit for those who
//! follow it. Everything it keeps is bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use berth_sandbox_wire::{
    encode, Decoder, Event, FromSandbox, Reply, Request, StreamName, ToSandbox, WatchEvent, MAX_DATA,
};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};

use crate::engine::{StdioSession, Stream};

/// Output kept per process for followers that come late.
pub const BACKLOG_BYTES: usize = 256 * 1024;
/// Ended processes remembered per sandbox (their exit and last output).
pub const ENDED_KEPT: usize = 64;
/// Frames waiting for the sandbox's stdin.
const OUTBOX: usize = 256;

/// The link is gone (the sandbox ended, or berth detached).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the sandbox's helper is not reachable: {0}")]
pub struct LinkDown(pub String);

/// What a process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    Output { stream: StreamName, data: Bytes },
    Exited { code: Option<i32>, signal: Option<i32> },
}

/// A process's recent output, its exit, and its followers.
struct ProcessLog {
    backlog: VecDeque<ProcessEvent>,
    backlog_bytes: usize,
    exited: Option<ProcessEvent>,
    events: broadcast::Sender<ProcessEvent>,
}

impl ProcessLog {
    fn new() -> Self {
        ProcessLog { backlog: VecDeque::new(), backlog_bytes: 0, exited: None, events: broadcast::channel(1024).0 }
    }

    fn push(&mut self, event: ProcessEvent) {
        if let ProcessEvent::Output { data, .. } = &event {
            self.backlog_bytes += data.len();
            self.backlog.push_back(event.clone());
            while self.backlog_bytes > BACKLOG_BYTES {
                match self.backlog.pop_front() {
                    Some(ProcessEvent::Output { data, .. }) => self.backlog_bytes -= data.len(),
                    Some(_) | None => break,
                }
            }
        } else {
            self.exited = Some(event.clone());
        }
        let _ = self.events.send(event);
    }
}

/// A follower of one process: what it wrote before (within the backlog)
/// and what comes.
pub struct Following {
    pub earlier: Vec<ProcessEvent>,
    /// The exit, when it came before the follower.
    pub exited: Option<ProcessEvent>,
    pub later: broadcast::Receiver<ProcessEvent>,
}

/// Why a follower missed part of a process's events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowLost {
    /// It read too slowly: pieces of output went by (the follow goes on).
    #[error("{0} pieces of output were lost to a slow reader")]
    Lagged(u64),
    /// The sandbox's helper went away before the process's exit (the end).
    #[error("the sandbox's helper went away before the process ended")]
    LinkClosed,
}

impl Following {
    /// The process's events in order: what is still kept of its output,
    /// what comes, and last its exit. A slow reader is told what it missed
    /// and goes on; a link that closes ends the stream.
    pub fn into_stream(self) -> BoxStream<'static, Result<ProcessEvent, FollowLost>> {
        let earlier = futures_util::stream::iter(self.earlier.into_iter().map(Ok));
        if let Some(exit) = self.exited {
            return earlier.chain(futures_util::stream::once(async { Ok(exit) })).boxed();
        }
        let later = futures_util::stream::unfold(Some(self.later), |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(e @ ProcessEvent::Output { .. }) => Some((Ok(e), Some(rx))),
                Ok(e @ ProcessEvent::Exited { .. }) => Some((Ok(e), None)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(FollowLost::Lagged(n)), Some(rx))),
                Err(broadcast::error::RecvError::Closed) => Some((Err(FollowLost::LinkClosed), None)),
            }
        });
        earlier.chain(later).boxed()
    }
}

#[derive(Default)]
struct Processes {
    logs: HashMap<u32, ProcessLog>,
    ended: VecDeque<u32>,
}

/// Changes seen below a watched directory, until they are taken.
pub const CHANGES_KEPT: usize = 4096;

struct WatchLog {
    pending: VecDeque<WatchEvent>,
    events: broadcast::Sender<Vec<WatchEvent>>,
}

/// Pieces of a tunnel's answer waiting for its reader; a reader that falls
/// this far behind loses its tunnel rather than growing the queue.
pub const TUNNEL_BACKLOG: usize = 256;

/// What a tunnel's socket gave: bytes, or its end (with the error, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelItem {
    Data(Bytes),
    Closed(Option<String>),
}

/// A reply and the bytes it carried.
pub type Answer = (Reply, Vec<u8>);

pub struct Link {
    outbox: mpsc::Sender<Vec<u8>>,
    next_rid: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<Answer>>>,
    processes: Mutex<Processes>,
    watches: Mutex<HashMap<u64, WatchLog>>,
    tunnels: Mutex<HashMap<u64, mpsc::Sender<TunnelItem>>>,
    down: AtomicBool,
}

impl Link {
    /// Drives `session` (the helper's attached stdio) until it ends.
    pub fn start(session: StdioSession) -> Arc<Link> {
        let (outbox, mut frames) = mpsc::channel::<Vec<u8>>(OUTBOX);
        let link = Arc::new(Link {
            outbox,
            next_rid: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            processes: Mutex::new(Processes::default()),
            watches: Mutex::new(HashMap::new()),
            tunnels: Mutex::new(HashMap::new()),
            down: AtomicBool::new(false),
        });
        let StdioSession { mut output, mut stdin, .. } = session;
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if stdin.write_all(&frame).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let reader = link.clone();
        tokio::spawn(async move {
            let mut decoder = Decoder::new();
            let why = loop {
                match output.next().await {
                    Some(Ok(chunk)) if chunk.stream == Stream::Stderr => {
                        tracing::debug!(helper = %String::from_utf8_lossy(&chunk.data), "sandbox helper");
                    }
                    Some(Ok(chunk)) => {
                        decoder.feed(&chunk.data);
                        match reader.drain(&mut decoder) {
                            Ok(()) => {}
                            Err(e) => break e,
                        }
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "the helper's output ended".to_owned(),
                }
            };
            reader.close(&why);
        });
        link
    }

    fn drain(&self, decoder: &mut Decoder) -> Result<(), String> {
        while let Some((message, data)) = decoder.next_frame::<FromSandbox>().map_err(|e| e.to_string())? {
            match message {
                FromSandbox::Reply { rid, reply } => {
                    let last = !matches!(reply, Reply::Chunk | Reply::Entries { more: true, .. });
                    let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                    let gone = match waiting.get(&rid) {
                        Some(tx) => tx.send((reply, data)).is_err(),
                        None => false,
                    };
                    if last || gone {
                        waiting.remove(&rid);
                    }
                }
                FromSandbox::Event(Event::Output { pid, stream }) => {
                    self.process_event(pid, ProcessEvent::Output { stream, data: Bytes::from(data) });
                }
                FromSandbox::Event(Event::Exited { pid, code, signal }) => {
                    self.process_event(pid, ProcessEvent::Exited { code, signal });
                }
                FromSandbox::Event(Event::TunnelData { rid }) => {
                    let mut tunnels = self.tunnels.lock().unwrap_or_else(|p| p.into_inner());
                    let full = match tunnels.get(&rid) {
                        Some(tx) => tx.try_send(TunnelItem::Data(Bytes::from(data))).is_err(),
                        None => false,
                    };
                    if full {
                        // A reader that stopped reading (or went) loses its tunnel.
                        tunnels.remove(&rid);
                        let mut frame = Vec::new();
                        encode(&ToSandbox { rid, request: Request::TunnelClose }, &[], &mut frame);
                        let _ = self.outbox.try_send(frame);
                    }
                }
                FromSandbox::Event(Event::TunnelClosed { rid, error }) => {
                    let tx = self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).remove(&rid);
                    if let Some(tx) = tx {
                        let _ = tx.try_send(TunnelItem::Closed(error));
                    }
                }
                FromSandbox::Event(Event::Changed { wid, events }) => {
                    let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(w) = watches.get_mut(&wid) {
                        w.pending.extend(events.iter().cloned());
                        while w.pending.len() > CHANGES_KEPT {
                            w.pending.pop_front();
                        }
                        let _ = w.events.send(events);
                    }
                }
            }
        }
        Ok(())
    }

    fn process_event(&self, pid: u32, event: ProcessEvent) {
        let mut p = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        let exit = matches!(event, ProcessEvent::Exited { .. });
        p.logs.entry(pid).or_insert_with(ProcessLog::new).push(event);
        if exit {
            p.ended.push_back(pid);
            while p.ended.len() > ENDED_KEPT {
                if let Some(old) = p.ended.pop_front() {
                    p.logs.remove(&old);
                }
            }
        }
    }

    fn close(&self, why: &str) {
        self.down.store(true, Ordering::SeqCst);
        // Dropping the senders ends every waiting request and tunnel.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).clear();
        tracing::debug!(why, "sandbox link closed");
    }

    /// Opens a tunnel to `port` on the sandbox's loopback: its id and what
    /// its socket gives.
    pub async fn dial(&self, port: u16) -> Result<(u64, mpsc::Receiver<TunnelItem>), Answer> {
        let (tx, rx) = mpsc::channel(TUNNEL_BACKLOG);
        let (rid, mut replies) = self.send(Request::Dial { port }, &[]).await.map_err(|e| {
            (Reply::Error { kind: berth_sandbox_wire::ErrorKind::Io, message: e.to_string() }, Vec::new())
        })?;
        self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).insert(rid, tx);
        match replies.recv().await {
            Some((Reply::Done, _)) => Ok((rid, rx)),
            Some(other) => {
                self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).remove(&rid);
                Err(other)
            }
            None => {
                self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).remove(&rid);
                let message = "the link closed during a dial".to_owned();
                Err((Reply::Error { kind: berth_sandbox_wire::ErrorKind::Io, message }, Vec::new()))
            }
        }
    }

    /// Closes a tunnel's write half in the sandbox; its answer still comes
    /// until the port closes.
    pub async fn hang_up(&self, rid: u64) {
        let _ = self.send_as(rid, Request::TunnelClose, &[]).await;
    }

    /// Starts keeping the changes of watch `wid`.
    pub fn watching(&self, wid: u64) {
        let log = WatchLog { pending: VecDeque::new(), events: broadcast::channel(256).0 };
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).insert(wid, log);
    }

    /// The changes kept since the last take, `None` for an unknown watch.
    pub fn take_changes(&self, wid: u64) -> Option<Vec<WatchEvent>> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.get_mut(&wid).map(|w| w.pending.drain(..).collect())
    }

    pub fn follow_changes(&self, wid: u64) -> Option<broadcast::Receiver<Vec<WatchEvent>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).get(&wid).map(|w| w.events.subscribe())
    }

    /// The watches kept now.
    pub fn watch_count(&self) -> usize {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The processes tracked here that have not exited.
    pub fn running_count(&self) -> usize {
        self.processes.lock().unwrap_or_else(|p| p.into_inner()).logs.values().filter(|l| l.exited.is_none()).count()
    }

    pub fn forget_watch(&self, wid: u64) {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).remove(&wid);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Starts keeping the output of process `pid` (one it started, or a
    /// running one found after attaching again).
    pub fn track(&self, pid: u32) {
        self.processes.lock().unwrap_or_else(|p| p.into_inner()).logs.entry(pid).or_insert_with(ProcessLog::new);
    }

    /// Follows process `pid` from what is still kept of its output;
    /// `None` when the link knows no such process.
    pub fn follow(&self, pid: u32) -> Option<Following> {
        let p = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        let log = p.logs.get(&pid)?;
        Some(Following {
            earlier: log.backlog.iter().cloned().collect(),
            exited: log.exited.clone(),
            later: log.events.subscribe(),
        })
    }

    /// Sends a request (with `data`) and returns the receiver of its replies.
    pub async fn send(
        &self,
        request: Request,
        data: &[u8],
    ) -> Result<(u64, mpsc::UnboundedReceiver<Answer>), LinkDown> {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(rid, tx);
        self.send_as(rid, request, data).await?;
        Ok((rid, rx))
    }

    /// Sends a frame under an id already in use (a file write's chunks).
    pub async fn send_as(&self, rid: u64, request: Request, data: &[u8]) -> Result<(), LinkDown> {
        if self.is_down() {
            return Err(LinkDown("the link is closed".into()));
        }
        let pieces: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(MAX_DATA).collect() };
        for piece in pieces {
            let mut frame = Vec::with_capacity(piece.len() + 64);
            encode(&ToSandbox { rid, request: request.clone() }, piece, &mut frame);
            self.outbox.send(frame).await.map_err(|_| LinkDown("the link is closed".into()))?;
        }
        Ok(())
    }

    /// A request with exactly one reply.
    pub async fn call(&self, request: Request, data: &[u8]) -> Result<Answer, LinkDown> {
        let (_, mut replies) = self.send(request, data).await?;
        replies.recv().await.ok_or_else(|| LinkDown("the link closed before the reply".into()))
    }
}
