//! The request loop's other half: each request routed to what owns it,
//! and its outcome turned into the reply berth hears.

use std::path::PathBuf;

use berth_sandbox_wire::{Entry, Reply, Request, ToSandbox, MAX_HEADER, PROTOCOL_VERSION};

use crate::error::Failure;
use crate::files;
use crate::output::Outbox;
use crate::paths;
use crate::processes::Processes;
use crate::tunnels::Tunnels;
use crate::watch::Watches;
use crate::writes::Writes;

/// How much of a header a part of a listing may fill, with room to spare.
const LISTING_PART: usize = MAX_HEADER / 2;

/// The helper's state, owned by the thread that reads requests.
pub struct Helper {
    uid: u32,
    home: PathBuf,
    processes: Processes,
    writes: Writes,
    watches: Watches,
    tunnels: Tunnels,
    outbox: Outbox,
}

impl Helper {
    pub fn new(uid: u32, home: PathBuf, processes: Processes, outbox: Outbox) -> Helper {
        let watches = Watches::new(outbox.clone());
        let tunnels = Tunnels::new(outbox.clone());
        Helper { uid, home, processes, writes: Writes::default(), watches, tunnels, outbox }
    }

    /// berth is gone (stdin ended): its tunnels end; processes run on.
    pub fn detach(&mut self) {
        self.tunnels.close_all();
    }

    /// Does `frame`'s request; `data` is the bytes the frame carried.
    pub fn handle(&mut self, frame: ToSandbox, data: Vec<u8>) {
        let rid = frame.rid;
        let done = |result: Result<(), Failure>| result.map(|()| Reply::Done);
        let outcome = match frame.request {
            Request::Hello => {
                Ok(Reply::Hello { version: PROTOCOL_VERSION, uid: self.uid, home: paths::display(&self.home) })
            }
            Request::Spawn(spawn) => {
                self.processes.spawn(rid, spawn);
                return;
            }
            Request::Input { pid } => done(self.processes.input(pid, &data)),
            Request::CloseStdin { pid } => done(self.processes.close_stdin(pid)),
            Request::Signal { pid, signal } => done(self.processes.signal(pid, signal)),
            Request::Resize { pid, size } => done(self.processes.resize(pid, size)),
            Request::Processes => Ok(Reply::Processes { processes: self.processes.list() }),
            Request::ReadFile { path } => {
                let path = self.path(&path);
                let outbox = &self.outbox;
                files::read(&path, |chunk| outbox.reply_with(rid, Reply::Chunk, chunk)).map(|()| Reply::Done)
            }
            Request::WriteFile { path } => match self.writes.begin(rid, self.path(&path)) {
                Ok(()) => return,
                Err(failure) => Err(failure),
            },
            Request::WriteChunk => match self.writes.chunk(rid, &data) {
                Ok(()) => return,
                Err(failure) => Err(failure),
            },
            Request::WriteEnd => match self.writes.end(rid) {
                Some(ended) => ended.map(|entry| Reply::Entry { entry }),
                None => return,
            },
            Request::WriteAbort => match self.writes.abort(rid) {
                Some(aborted) => done(aborted),
                None => return,
            },
            Request::Stat { path } => files::stat(&self.path(&path)).map(|entry| Reply::Entry { entry }),
            Request::ListDir { path, depth } => match files::list(&self.path(&path), depth) {
                Ok(entries) => {
                    self.send_listing(rid, entries);
                    return;
                }
                Err(failure) => Err(failure),
            },
            Request::MakeDir { path } => files::make_dir(&self.path(&path)).map(|entry| Reply::Entry { entry }),
            Request::Move { from, to } => {
                files::rename(&self.path(&from), &self.path(&to)).map(|entry| Reply::Entry { entry })
            }
            Request::Remove { path } => done(files::remove(&self.path(&path))),
            Request::Watch { path, recursive } => {
                self.watches.watch(&self.path(&path), recursive).map(|wid| Reply::Watching { wid })
            }
            Request::Unwatch { wid } => done(self.watches.unwatch(wid)),
            Request::Dial { port } => {
                self.tunnels.dial(rid, port);
                return;
            }
            Request::TunnelData => {
                self.tunnels.data(rid, data);
                return;
            }
            Request::TunnelClose => {
                self.tunnels.close(rid);
                return;
            }
        };
        match outcome {
            Ok(reply) => self.outbox.reply(rid, reply),
            Err(failure) => self.outbox.error(rid, &failure),
        }
    }

    fn path(&self, path: &str) -> PathBuf {
        paths::resolve(path, &self.home)
    }

    /// Sends `entries` in parts that each fit a frame's header.
    fn send_listing(&self, rid: u64, entries: Vec<Entry>) {
        let mut part = Vec::new();
        let mut size = 0;
        let mut rest = entries.into_iter().peekable();
        while let Some(entry) = rest.next() {
            // A bound on the entry's JSON: its strings, possibly escaped, and the fields.
            size +=
                256 + 2 * (entry.name.len() + entry.path.len() + entry.symlink_target.as_ref().map_or(0, String::len));
            part.push(entry);
            if size >= LISTING_PART && rest.peek().is_some() {
                self.outbox.reply(rid, Reply::Entries { entries: std::mem::take(&mut part), more: true });
                size = 0;
            }
        }
        self.outbox.reply(rid, Reply::Entries { entries: part, more: false });
    }
}
