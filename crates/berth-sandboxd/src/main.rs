//! berth-sandboxd: the helper berth places in each workspace sandbox as
//! its first process. It reads requests framed by `berth-sandbox-wire`
//! from stdin, answers and reports events on stdout, and reaps every
//! child. stderr is for its own diagnostics.
//!
//! Threads, no async runtime: this one reads and does requests, one
//! writes stdout ([`output`]), one reaps ([`reaper`]), and each process
//! has one per output stream and one that reports its exit, each tunnel
//! one that writes its socket and one that reads it ([`tunnels`]).

mod dispatch;
mod environment;
mod error;
mod files;
mod launch;
mod output;
mod paths;
mod processes;
mod pty;
mod reaper;
mod tunnels;
mod watch;
mod writes;

use std::io::Read;

use berth_sandbox_wire::{ErrorKind, Reply, ToSandbox, WireError};

use crate::dispatch::Helper;
use crate::environment::BaseEnvironment;
use crate::output::Outbox;
use crate::processes::Processes;

/// The exit code when the request stream can no longer be read in frames.
const DESYNCHRONISED: i32 = 2;

fn main() {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let home = paths::home();
    let user = paths::user_name(uid);
    let base = BaseEnvironment::new(
        &home,
        &user,
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    let outbox = Outbox::start();
    let processes = Processes::new(base, home.clone(), outbox.clone());
    reaper::start(processes.clone());
    let mut helper = Helper::new(uid, home, processes, outbox.clone());
    read_requests(&mut helper, &outbox);
    // berth detached: the processes keep running and the reaper keeps
    // reaping until the sandbox stops; the tunnels were berth's, and end.
    helper.detach();
    eprintln!("berth-sandboxd: stdin closed; processes keep running, tunnels are closed");
    loop {
        std::thread::park();
    }
}

/// Reads frames from stdin until it ends, doing each request.
fn read_requests(helper: &mut Helper, outbox: &Outbox) {
    let mut stdin = std::io::stdin().lock();
    let mut decoder = berth_sandbox_wire::Decoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("berth-sandboxd: stdin: {e}");
                return;
            }
        };
        decoder.feed(&buf[..n]);
        loop {
            match decoder.next_frame::<serde_json::Value>() {
                Ok(Some((header, data))) => match serde_json::from_value::<ToSandbox>(header.clone()) {
                    Ok(frame) => helper.handle(frame, data),
                    Err(e) => refuse(&header, &e, outbox),
                },
                Ok(None) => break,
                Err(WireError::Header(e)) => eprintln!("berth-sandboxd: a frame's header is not JSON: {e}"),
                Err(e) => {
                    eprintln!("berth-sandboxd: {e}; the request stream is lost");
                    std::process::exit(DESYNCHRONISED);
                }
            }
        }
    }
}

/// Answers a frame whose request is not one the helper knows.
fn refuse(header: &serde_json::Value, error: &serde_json::Error, outbox: &Outbox) {
    eprintln!("berth-sandboxd: an unknown request: {error}");
    if let Some(rid) = header.get("rid").and_then(serde_json::Value::as_u64) {
        let message = format!("the request does not decode: {error}");
        outbox.reply(rid, Reply::Error { kind: ErrorKind::Invalid, message });
    }
}
