//! The helper driven over its stdio as berth drives it (see `common`).

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth_sandbox_wire::{
    encode, Entry, EntryType, ErrorKind, Event, FromSandbox, PtySize, Reply, Request, Spawn, StreamName, WatchEvent,
    WatchEventType, MAX_DATA,
};
use common::{command, Sandbox};

#[test]
fn hello_says_the_version_the_uid_and_the_home() {
    let mut sandbox = Sandbox::start();
    let home = sandbox.path("");
    match sandbox.ask(Request::Hello) {
        Reply::Hello { version, uid, home: h } => {
            assert_eq!(version, berth_sandbox_wire::PROTOCOL_VERSION);
            assert_eq!(uid, std::fs::metadata(&home).expect("the home").uid());
            assert_eq!(h.trim_end_matches('/'), home.trim_end_matches('/'));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_process_output_comes_before_its_exit_code() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(command(&["sh", "-c", "echo out; echo err >&2; exit 3"]));
    let (output, code, signal) = sandbox.run_to_exit(pid);
    assert_eq!(output.get("Stdout").map(String::as_str), Some("out\n"));
    assert_eq!(output.get("Stderr").map(String::as_str), Some("err\n"));
    assert_eq!((code, signal), (Some(3), None));
}

#[test]
fn a_child_gets_the_sandbox_variables_and_the_request_ones_but_not_berths() {
    let mut sandbox = Sandbox::start();
    let mut spawn = command(&["sh", "-c", "echo $SANDBOX_COLOUR $EXTRA ${BERTH_SANDBOXD_SECRET:-none} $PWD"]);
    spawn.env.insert("EXTRA".into(), "given".into());
    spawn.cwd = Some("/tmp".into());
    let pid = sandbox.spawn(spawn);
    let (output, code, _) = sandbox.run_to_exit(pid);
    assert_eq!(output["Stdout"], "teal given none /tmp\n");
    assert_eq!(code, Some(0));
}

#[test]
fn input_reaches_stdin_and_closing_it_ends_cat() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(Spawn { stdin: true, ..command(&["cat"]) });
    let rid = sandbox.send(Request::Input { pid }, b"hi\n");
    assert_eq!(sandbox.reply_to(rid).0, Reply::Done);
    assert_eq!(sandbox.ask(Request::CloseStdin { pid }), Reply::Done);
    let (output, code, _) = sandbox.run_to_exit(pid);
    assert_eq!(output["Stdout"], "hi\n");
    assert_eq!(code, Some(0));
}

#[test]
fn input_to_a_process_started_without_stdin_is_invalid() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(command(&["sleep", "5"]));
    let rid = sandbox.send(Request::Input { pid }, b"x");
    assert!(matches!(sandbox.reply_to(rid).0, Reply::Error { kind: ErrorKind::Invalid, .. }));
    sandbox.ask(Request::Signal { pid, signal: 9 });
}

#[test]
fn a_killed_process_exits_by_its_signal_and_is_then_ended() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(command(&["sleep", "30"]));
    match sandbox.ask(Request::Processes) {
        Reply::Processes { processes } => assert!(processes.iter().any(|p| p.pid == pid)),
        other => panic!("{other:?}"),
    }
    assert_eq!(sandbox.ask(Request::Signal { pid, signal: 9 }), Reply::Done);
    let (_, code, signal) = sandbox.run_to_exit(pid);
    assert_eq!((code, signal), (None, Some(9)));
    assert!(matches!(sandbox.ask(Request::Signal { pid, signal: 9 }), Reply::Error { kind: ErrorKind::Ended, .. }));
    match sandbox.ask(Request::Processes) {
        Reply::Processes { processes } => assert!(processes.iter().all(|p| p.pid != pid)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_program_or_directory_is_not_found_by_name() {
    let mut sandbox = Sandbox::start();
    match sandbox.ask(Request::Spawn(command(&["no-such-program"]))) {
        Reply::Error { kind: ErrorKind::NotFound, message } => {
            assert!(message.contains("no-such-program"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let spawn = Spawn { cwd: Some("/no/such/dir".into()), ..command(&["true"]) };
    match sandbox.ask(Request::Spawn(spawn)) {
        Reply::Error { kind: ErrorKind::NotFound, message } => assert!(message.contains("/no/such/dir"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_grandchild_holding_the_pipe_does_not_hold_back_the_exit() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(command(&["sh", "-c", "sleep 30 & echo started"]));
    let started = std::time::Instant::now();
    let (output, code, _) = sandbox.run_to_exit(pid);
    assert_eq!(output["Stdout"], "started\n");
    assert_eq!(code, Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_frame_that_does_not_decode_gets_an_error_and_the_next_one_is_answered() {
    let mut sandbox = Sandbox::start();
    let mut bytes = Vec::new();
    encode(&serde_json::json!({"rid": 77, "request": "no_such_request"}), b"", &mut bytes);
    sandbox.stdin.as_mut().expect("stdin is open").write_all(&bytes).expect("written");
    assert!(matches!(sandbox.reply_to(77).0, Reply::Error { kind: ErrorKind::Invalid, .. }));
    assert!(matches!(sandbox.ask(Request::Hello), Reply::Hello { .. }));
}

fn entry(reply: Reply) -> Entry {
    match reply {
        Reply::Entry { entry } => entry,
        other => panic!("not an entry: {other:?}"),
    }
}

impl Sandbox {
    /// Writes `bytes` to `path` in chunks of `chunk` bytes: the one reply.
    fn write_file(&mut self, path: &str, bytes: &[u8], chunk: usize) -> Reply {
        let rid = self.send(Request::WriteFile { path: path.to_string() }, &[]);
        for part in bytes.chunks(chunk) {
            self.send_as(rid, Request::WriteChunk, part);
        }
        self.send_as(rid, Request::WriteEnd, &[]);
        self.reply_to(rid).0
    }

    /// The bytes of `path`, or the error that ended the read.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, Reply> {
        let rid = self.send(Request::ReadFile { path: path.to_string() }, &[]);
        let mut bytes = Vec::new();
        loop {
            match self.reply_to(rid) {
                (Reply::Chunk, data) => {
                    assert!(data.len() <= MAX_DATA);
                    bytes.extend_from_slice(&data);
                }
                (Reply::Done, _) => return Ok(bytes),
                (other, _) => return Err(other),
            }
        }
    }

    fn list(&mut self, path: &str, depth: u32) -> Vec<Entry> {
        let rid = self.send(Request::ListDir { path: path.to_string(), depth }, &[]);
        let mut all = Vec::new();
        loop {
            match self.reply_to(rid).0 {
                Reply::Entries { entries, more } => {
                    all.extend(entries);
                    if !more {
                        return all;
                    }
                }
                other => panic!("not a listing: {other:?}"),
            }
        }
    }
}

#[test]
fn a_file_written_in_chunks_reads_back_identical() {
    let mut sandbox = Sandbox::start();
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i * 7 + i / 1000) as u8).collect();
    let written = entry(sandbox.write_file("big.bin", &bytes, 100 * 1024));
    assert_eq!(written.size, bytes.len() as u64);
    assert_eq!(written.path, sandbox.path("big.bin"));
    assert_eq!(sandbox.read_file("~/big.bin").expect("read"), bytes);
}

#[test]
fn a_write_whose_parent_is_missing_makes_it() {
    let mut sandbox = Sandbox::start();
    let written = entry(sandbox.write_file("~/new/deeper/f.txt", b"content", 4));
    assert_eq!(written.kind, EntryType::File);
    assert_eq!(std::fs::read(sandbox.path("new/deeper/f.txt")).expect("on disk"), b"content");
}

#[test]
fn an_aborted_write_is_done_and_leaves_no_file() {
    let mut sandbox = Sandbox::start();
    let rid = sandbox.send(Request::WriteFile { path: "gone.txt".into() }, &[]);
    sandbox.send_as(rid, Request::WriteChunk, b"partial");
    sandbox.send_as(rid, Request::WriteAbort, &[]);
    assert_eq!(sandbox.reply_to(rid).0, Reply::Done);
    assert_eq!(std::fs::read_dir(sandbox.path("")).expect("home").count(), 0);
}

#[test]
fn reading_a_missing_file_is_not_found_and_a_directory_is_invalid() {
    let mut sandbox = Sandbox::start();
    assert!(matches!(sandbox.read_file("nothing-here"), Err(Reply::Error { kind: ErrorKind::NotFound, .. })));
    assert!(matches!(sandbox.read_file("~"), Err(Reply::Error { kind: ErrorKind::Invalid, .. })));
}

#[test]
fn directories_are_made_listed_moved_and_removed() {
    let mut sandbox = Sandbox::start();
    let made = entry(sandbox.ask(Request::MakeDir { path: "proj/src".into() }));
    assert_eq!(made.kind, EntryType::Dir);
    assert!(matches!(
        sandbox.ask(Request::MakeDir { path: "proj/src".into() }),
        Reply::Error { kind: ErrorKind::Exists, .. }
    ));
    assert!(matches!(
        sandbox.ask(Request::MakeDir { path: "proj/src".into() }),
        Reply::Error { kind: ErrorKind::Exists, .. }
    ));
    entry(sandbox.write_file("proj/src/main.rs", b"fn main() {}\n", 1024));
    entry(sandbox.write_file("proj/README", b"hi", 1024));
    std::os::unix::fs::symlink("README", sandbox.path("proj/link")).expect("a link");

    let stat = entry(sandbox.ask(Request::Stat { path: "proj/link".into() }));
    assert_eq!(stat.kind, EntryType::Symlink);
    assert_eq!(stat.symlink_target.as_deref(), Some("README"));

    let names = |entries: Vec<Entry>| entries.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(names(sandbox.list("proj", 1)), vec!["README", "link", "src"]);
    assert_eq!(names(sandbox.list("proj", 2)), vec!["README", "link", "src", "main.rs"]);

    let moved = entry(sandbox.ask(Request::Move { from: "proj/src".into(), to: "elsewhere/src2".into() }));
    assert_eq!(moved.path, sandbox.path("elsewhere/src2"));
    assert_eq!(moved.kind, EntryType::Dir);
    assert!(std::path::Path::new(&sandbox.path("elsewhere/src2/main.rs")).exists());

    assert_eq!(sandbox.ask(Request::Remove { path: "elsewhere".into() }), Reply::Done);
    assert!(matches!(
        sandbox.ask(Request::Remove { path: "elsewhere".into() }),
        Reply::Error { kind: ErrorKind::NotFound, .. }
    ));
    assert!(matches!(
        sandbox.ask(Request::Stat { path: "elsewhere".into() }),
        Reply::Error { kind: ErrorKind::NotFound, .. }
    ));
}

#[test]
fn a_long_listing_comes_in_parts() {
    let mut sandbox = Sandbox::start();
    let dir = sandbox.path("many");
    std::fs::create_dir(&dir).expect("dir");
    for i in 0..600 {
        std::fs::write(format!("{dir}/file-with-a-longish-name-{i:04}"), b"").expect("file");
    }
    assert_eq!(sandbox.list("many", 1).len(), 600);
}

#[test]
fn a_terminal_has_the_size_asked_and_takes_input() {
    let mut sandbox = Sandbox::start();
    let spawn = Spawn {
        pty: Some(PtySize { rows: 30, cols: 100 }),
        ..command(&["sh", "-c", "stty size; read x; echo got $x; read y; stty size"])
    };
    let pid = sandbox.spawn(spawn);
    sandbox.output_until(pid, StreamName::Pty, |t| t.contains("30 100"));
    let rid = sandbox.send(Request::Input { pid }, b"z\n");
    assert_eq!(sandbox.reply_to(rid).0, Reply::Done);
    sandbox.output_until(pid, StreamName::Pty, |t| t.contains("got z"));
    assert_eq!(sandbox.ask(Request::Resize { pid, size: PtySize { rows: 12, cols: 40 } }), Reply::Done);
    let rid = sandbox.send(Request::Input { pid }, b"\n");
    assert_eq!(sandbox.reply_to(rid).0, Reply::Done);
    let (output, code, _) = sandbox.run_to_exit(pid);
    assert!(output["Pty"].contains("12 40"), "{output:?}");
    assert_eq!(code, Some(0));
}

#[test]
fn a_terminal_cannot_have_its_stdin_closed_and_pipes_cannot_be_resized() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(Spawn { pty: Some(PtySize { rows: 24, cols: 80 }), ..command(&["sleep", "30"]) });
    assert!(matches!(sandbox.ask(Request::CloseStdin { pid }), Reply::Error { kind: ErrorKind::Invalid, .. }));
    sandbox.ask(Request::Signal { pid, signal: 9 });
    let pid = sandbox.spawn(command(&["sleep", "30"]));
    let size = PtySize { rows: 1, cols: 1 };
    assert!(matches!(sandbox.ask(Request::Resize { pid, size }), Reply::Error { kind: ErrorKind::Invalid, .. }));
    sandbox.ask(Request::Signal { pid, signal: 9 });
}

impl Sandbox {
    /// Changes of watch `wid` until one is `kind` of `name`.
    fn changes_until(&mut self, wid: u64, name: &str, kind: WatchEventType) -> Vec<WatchEvent> {
        let mut all = Vec::new();
        while !all.iter().any(|e: &WatchEvent| e.name == name && e.kind == kind) {
            match self.take(|m| matches!(m, FromSandbox::Event(Event::Changed { wid: w, .. }) if *w == wid)) {
                (FromSandbox::Event(Event::Changed { events, .. }), _) => all.extend(events),
                _ => unreachable!(),
            }
        }
        all
    }

    fn watch(&mut self, path: &str, recursive: bool) -> u64 {
        match self.ask(Request::Watch { path: path.to_string(), recursive }) {
            Reply::Watching { wid } => wid,
            other => panic!("not watching: {other:?}"),
        }
    }
}

#[test]
fn a_file_made_in_a_watched_directory_is_a_create_change() {
    let mut sandbox = Sandbox::start();
    std::fs::create_dir(sandbox.path("w")).expect("dir");
    let wid = sandbox.watch("w", false);
    std::fs::write(sandbox.path("w/new.txt"), b"x").expect("file");
    let changes = sandbox.changes_until(wid, "new.txt", WatchEventType::Write);
    assert!(changes.iter().any(|e| e.name == "new.txt" && e.kind == WatchEventType::Create), "{changes:?}");
    std::fs::remove_file(sandbox.path("w/new.txt")).expect("removed");
    sandbox.changes_until(wid, "new.txt", WatchEventType::Remove);
    assert_eq!(sandbox.ask(Request::Unwatch { wid }), Reply::Done);
    assert!(matches!(sandbox.ask(Request::Unwatch { wid }), Reply::Error { kind: ErrorKind::NotFound, .. }));
}

#[test]
fn a_recursive_watch_follows_new_subdirectories() {
    let mut sandbox = Sandbox::start();
    std::fs::create_dir_all(sandbox.path("r/old")).expect("dir");
    let wid = sandbox.watch("~/r", true);
    std::fs::write(sandbox.path("r/old/a"), b"x").expect("file");
    sandbox.changes_until(wid, "old/a", WatchEventType::Create);
    std::fs::create_dir(sandbox.path("r/fresh")).expect("dir");
    sandbox.changes_until(wid, "fresh", WatchEventType::Create);
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(sandbox.path("r/fresh/b"), b"x").expect("file");
    sandbox.changes_until(wid, "fresh/b", WatchEventType::Create);
}

#[test]
fn watching_a_missing_directory_is_not_found() {
    let mut sandbox = Sandbox::start();
    assert!(matches!(
        sandbox.ask(Request::Watch { path: "nope".into(), recursive: false }),
        Reply::Error { kind: ErrorKind::NotFound, .. }
    ));
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for dir in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = dir.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The fields after the command's closing parenthesis: state, ppid, ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else { continue };
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

#[test]
fn an_orphan_is_reaped_by_the_helper() {
    let mut sandbox = Sandbox::start();
    let pid = sandbox.spawn(command(&["sh", "-c", "(sleep 0.2 >/dev/null 2>&1 &); exit 0"]));
    sandbox.run_to_exit(pid);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(children_of(sandbox.child.id()), Vec::<u32>::new());
}

#[test]
fn a_closed_stdin_leaves_the_processes_running() {
    let mut sandbox = Sandbox::start();
    let mark = sandbox.path("late");
    sandbox.spawn(command(&["sh", "-c", &format!("sleep 0.3; echo late > {mark}")]));
    sandbox.stdin.take();
    std::thread::sleep(Duration::from_millis(900));
    assert!(sandbox.child.try_wait().expect("the helper's state").is_none(), "the helper is still running");
    assert_eq!(std::fs::read_to_string(&mark).expect("the process ran on"), "late\n");
}
