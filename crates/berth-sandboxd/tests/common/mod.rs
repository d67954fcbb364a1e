//! The harness the integration tests share: the helper driven over its
//! stdio as berth drives it, the built binary as a child with piped stdin
//! and stdout, HOME a temporary directory. `BERTH_SANDBOXD_BIN` names
//! another build to drive instead.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use berth_sandbox_wire::{encode, Decoder, Event, FromSandbox, Reply, Request, Spawn, StreamName, ToSandbox};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Sandbox {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub frames: Receiver<(FromSandbox, Vec<u8>)>,
    /// Frames read while looking for another.
    pub held: VecDeque<(FromSandbox, Vec<u8>)>,
    pub next_rid: u64,
    pub home: tempfile::TempDir,
}

impl Sandbox {
    pub fn start() -> Sandbox {
        let home = tempfile::tempdir().expect("a temporary home");
        // BERTH_SANDBOXD_BIN runs these tests against another build (the static one).
        let binary =
            std::env::var("BERTH_SANDBOXD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_berth-sandboxd").into());
        let mut child = Command::new(binary)
            .env("HOME", home.path())
            .env("SANDBOX_COLOUR", "teal")
            .env("BERTH_SANDBOXD_SECRET", "not for children")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the helper starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, frames) = channel();
        std::thread::spawn(move || {
            let mut decoder = Decoder::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.feed(&buf[..n]);
                while let Some(frame) = decoder.next_frame::<FromSandbox>().expect("frames decode") {
                    if tx.send(frame).is_err() {
                        return;
                    }
                }
            }
        });
        Sandbox { child, stdin: Some(stdin), frames, held: VecDeque::new(), next_rid: 1, home }
    }

    pub fn send(&mut self, request: Request, data: &[u8]) -> u64 {
        let rid = self.next_rid;
        self.next_rid += 1;
        self.send_as(rid, request, data);
        rid
    }

    pub fn send_as(&mut self, rid: u64, request: Request, data: &[u8]) {
        let mut bytes = Vec::new();
        encode(&ToSandbox { rid, request }, data, &mut bytes);
        self.stdin.as_mut().expect("stdin is open").write_all(&bytes).expect("the helper reads");
    }

    /// The next frame that `pick` takes; the others are held for later.
    pub fn take(&mut self, mut pick: impl FnMut(&FromSandbox) -> bool) -> (FromSandbox, Vec<u8>) {
        if let Some(i) = self.held.iter().position(|(m, _)| pick(m)) {
            return self.held.remove(i).expect("held");
        }
        loop {
            let frame = self.frames.recv_timeout(WAIT).expect("a frame in time");
            if pick(&frame.0) {
                return frame;
            }
            self.held.push_back(frame);
        }
    }

    pub fn reply_to(&mut self, rid: u64) -> (Reply, Vec<u8>) {
        match self.take(|m| matches!(m, FromSandbox::Reply { rid: r, .. } if *r == rid)) {
            (FromSandbox::Reply { reply, .. }, data) => (reply, data),
            _ => unreachable!(),
        }
    }

    pub fn ask(&mut self, request: Request) -> Reply {
        let rid = self.send(request, &[]);
        self.reply_to(rid).0
    }

    pub fn spawn(&mut self, spawn: Spawn) -> u32 {
        match self.ask(Request::Spawn(spawn)) {
            Reply::Spawned { pid } => pid,
            other => panic!("not spawned: {other:?}"),
        }
    }

    /// Output of `pid` until `until` holds of what it wrote on `stream`.
    pub fn output_until(&mut self, pid: u32, stream: StreamName, until: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        while !until(&text) {
            let (_, data) = self.take(
                |m| matches!(m, FromSandbox::Event(Event::Output { pid: p, stream: s }) if *p == pid && *s == stream),
            );
            text.push_str(&String::from_utf8_lossy(&data));
        }
        text
    }

    /// Everything `pid` wrote on each stream, and how it exited.
    pub fn run_to_exit(&mut self, pid: u32) -> (BTreeMap<String, String>, Option<i32>, Option<i32>) {
        let mut output = BTreeMap::<String, String>::new();
        loop {
            let (m, data) = self.take(|m| match m {
                FromSandbox::Event(Event::Output { pid: p, .. }) | FromSandbox::Event(Event::Exited { pid: p, .. }) => {
                    *p == pid
                }
                _ => false,
            });
            match m {
                FromSandbox::Event(Event::Output { stream, .. }) => {
                    output.entry(format!("{stream:?}")).or_default().push_str(&String::from_utf8_lossy(&data));
                }
                FromSandbox::Event(Event::Exited { code, signal, .. }) => return (output, code, signal),
                _ => unreachable!(),
            }
        }
    }

    pub fn path(&self, rel: &str) -> String {
        self.home.path().join(rel).to_string_lossy().into_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command(argv: &[&str]) -> Spawn {
    Spawn {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        cwd: None,
        pty: None,
        stdin: false,
        tag: None,
    }
}
