//! The request loop's other half: each request routed to what owns it,
//! and its outcome turned into the reply berth hears.

use std::path::PathBuf;

use berth_sandbox_wire::{Reply, Request, ToSandbox, PROTOCOL_VERSION};

use crate::error::Failure;
use crate::output::Outbox;
use crate::paths;
use crate::processes::Processes;

/// The helper's state, owned by the thread that reads requests.
pub struct Helper {
    uid: u32,
    home: PathBuf,
    processes: Processes,
    outbox: Outbox,
}

impl Helper {
    pub fn new(uid: u32, home: PathBuf, processes: Processes, outbox: Outbox) -> Helper {
        Helper { uid, home, processes, outbox }
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
            _ => Err(Failure::invalid("not supported yet")),
        };
        match outcome {
            Ok(reply) => self.outbox.reply(rid, reply),
            Err(failure) => self.outbox.error(rid, &failure),
        }
    }
}
