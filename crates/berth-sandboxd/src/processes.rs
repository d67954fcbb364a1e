//! The process table: what the helper started, their input, signals and
//! terminals, and the order of what berth hears about each (its output,
//! then its exit).
//!
//! The table's lock is held from before `fork` until the child is in the
//! table, and the reaper reaps only while holding it, so an exit always
//! finds its process and a pid in the table is never a reused one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use berth_sandbox_wire::{Event, Process, PtySize, Reply, Spawn, StreamName};

use crate::environment::{find_program, BaseEnvironment, BASE_PATH};
use crate::error::Failure;
use crate::launch::{self, ChildStdio, Program};
use crate::output::Outbox;
use crate::paths;
use crate::pty;

/// The most bytes one output event carries.
pub const OUTPUT_CHUNK: usize = 32 * 1024;
/// How long after a process's exit its output may still reach EOF (a
/// grandchild may hold the pipe open for ever).
const DRAIN: Duration = Duration::from_millis(200);

/// How a process ended: its exit code, or the signal that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Status {
    /// The status `waitpid` gave.
    pub fn from_wait(status: i32) -> Status {
        if libc::WIFSIGNALED(status) {
            Status { code: None, signal: Some(libc::WTERMSIG(status)) }
        } else {
            Status { code: Some(libc::WEXITSTATUS(status)), signal: None }
        }
    }
}

/// The processes, shared by the request loop, the reaper and the threads
/// of each process.
#[derive(Clone)]
pub struct Processes {
    table: Arc<Mutex<Table>>,
    /// Counts spawns, so that a reaper with no child knows when to look again.
    spawns: Arc<(Mutex<u64>, Condvar)>,
    base: Arc<BaseEnvironment>,
    home: PathBuf,
    outbox: Outbox,
}

/// The running processes by pid.
#[derive(Default)]
pub struct Table {
    running: HashMap<u32, Running>,
}

struct Running {
    process: Process,
    input: Input,
    /// The terminal's master, for a process with one.
    terminal: Option<Arc<File>>,
    exit: Arc<Exit>,
}

enum Input {
    /// stdin is /dev/null.
    None,
    /// stdin is a pipe, until `CloseStdin`.
    Pipe(Option<Arc<File>>),
    /// Input goes to the terminal.
    Terminal(Arc<File>),
}

/// Where a process's end is told: its status once reaped, its output
/// streams still open, and whether `Exited` has gone out.
#[derive(Default)]
struct Exit {
    state: Mutex<ExitState>,
    changed: Condvar,
    /// True once `Exited` is sent; output is sent while holding it, so no
    /// output follows the exit.
    sent: Mutex<bool>,
}

#[derive(Default)]
struct ExitState {
    status: Option<Status>,
    open_streams: usize,
}

impl Table {
    /// Tells the process `pid` that it was reaped with `status`; the pids
    /// of processes the helper did not start (orphans it inherited as
    /// PID 1) are ignored.
    pub fn reaped(&mut self, pid: u32, status: Status) {
        if let Some(running) = self.running.remove(&pid) {
            let mut state = lock(&running.exit.state);
            state.status = Some(status);
            running.exit.changed.notify_all();
        }
    }
}

impl Processes {
    pub fn new(base: BaseEnvironment, home: PathBuf, outbox: Outbox) -> Processes {
        Processes { table: Arc::default(), spawns: Arc::default(), base: Arc::new(base), home, outbox }
    }

    /// The table, locked: the reaper reaps while holding it.
    pub fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// How many spawns there have been.
    pub fn spawn_count(&self) -> u64 {
        *lock(&self.spawns.0)
    }

    /// Waits until there has been a spawn since `seen` (or a while passed).
    pub fn wait_for_spawn(&self, seen: u64) {
        let (count, changed) = &*self.spawns;
        let guard = lock(count);
        let _ = changed.wait_timeout_while(guard, Duration::from_secs(1), |c| *c == seen);
    }

    /// Starts `spawn`, replies `Spawned` (or the error) to `rid`, then lets
    /// its output and exit flow.
    pub fn spawn(&self, rid: u64, spawn: Spawn) {
        match self.start(spawn) {
            Ok(started) => {
                self.outbox.reply(rid, Reply::Spawned { pid: started.pid });
                started.run(&self.outbox);
            }
            Err(failure) => self.outbox.error(rid, &failure),
        }
    }

    fn start(&self, spawn: Spawn) -> Result<Started, Failure> {
        let program_name = spawn.argv.first().ok_or_else(|| Failure::invalid("argv is empty"))?;
        let cwd = paths::resolve(spawn.cwd.as_deref().unwrap_or("~"), &self.home);
        match std::fs::metadata(&cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Failure::invalid(format!("directory {} is not a directory", paths::display(&cwd)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::NotFound(format!("directory {}", paths::display(&cwd))))
            }
            Err(e) => return Err(Failure::io(format!("directory {}", paths::display(&cwd)), e)),
        }
        let env = self.base.with(&spawn.env);
        let search = env.get("PATH").map(String::as_str).unwrap_or(BASE_PATH);
        let path = find_program(program_name, search, &cwd)
            .ok_or_else(|| Failure::NotFound(format!("program {program_name}")))?;
        let program = Program::new(&path, &spawn.argv, &env, &cwd)?;

        let (stdio, input, terminal, streams) = match spawn.pty {
            Some(size) => {
                let (master, slave) = pty::open(size)?;
                let reader = master.try_clone().map_err(|e| Failure::io("the terminal", e))?;
                let master = Arc::new(master);
                (
                    ChildStdio::Terminal { slave },
                    Input::Terminal(master.clone()),
                    Some(master),
                    vec![(StreamName::Pty, reader)],
                )
            }
            None => {
                let (stdin, input) = if spawn.stdin {
                    let (read, write) = launch::pipe()?;
                    (read, Input::Pipe(Some(Arc::new(File::from(write)))))
                } else {
                    (launch::dev_null()?, Input::None)
                };
                let (out_read, out_write) = launch::pipe()?;
                let (err_read, err_write) = launch::pipe()?;
                (
                    ChildStdio::Pipes { stdin, stdout: out_write, stderr: err_write },
                    input,
                    None,
                    vec![(StreamName::Stdout, File::from(out_read)), (StreamName::Stderr, File::from(err_read))],
                )
            }
        };
        let exit = Arc::new(Exit::default());
        lock(&exit.state).open_streams = streams.len();
        let process = Process {
            pid: 0,
            argv: spawn.argv.clone(),
            env: spawn.env.clone(),
            cwd: Some(paths::display(&cwd)),
            tag: spawn.tag.clone(),
            pty: spawn.pty.is_some(),
        };

        let forked = {
            let mut table = self.lock();
            let forked = launch::spawn(&program, &stdio)?;
            let process = Process { pid: forked.pid, ..process };
            table.running.insert(forked.pid, Running { process, input, terminal, exit: exit.clone() });
            forked
        };
        {
            let (count, changed) = &*self.spawns;
            *lock(count) += 1;
            changed.notify_all();
        }
        drop(stdio);
        let pid = forked.pid;
        if let Err(e) = forked.confirm() {
            self.lock().running.remove(&pid);
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => Failure::NotFound(format!("program {program_name}")),
                _ => Failure::io(format!("exec {program_name}"), e),
            });
        }
        Ok(Started { pid, exit, streams })
    }

    /// Writes `data` to the process's stdin or terminal.
    pub fn input(&self, pid: u32, data: &[u8]) -> Result<(), Failure> {
        let sink = match &self.running(pid)?.input {
            Input::None => return Err(Failure::invalid(format!("process {pid} was started without stdin"))),
            Input::Pipe(None) => return Err(Failure::invalid(format!("process {pid}'s stdin is closed"))),
            Input::Pipe(Some(pipe)) => pipe.clone(),
            Input::Terminal(master) => master.clone(),
        };
        // Written outside the lock: a child that does not read must not
        // stop the reaper.
        (&*sink).write_all(data).map_err(|e| match e.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::EIO) => Failure::Ended(pid),
            _ => Failure::io(format!("process {pid}'s input"), e),
        })
    }

    pub fn close_stdin(&self, pid: u32) -> Result<(), Failure> {
        let mut table = self.lock();
        let running = table.running.get_mut(&pid).ok_or(Failure::Ended(pid))?;
        match &mut running.input {
            Input::Pipe(pipe) => {
                pipe.take();
                Ok(())
            }
            Input::None => Ok(()),
            Input::Terminal(_) => {
                Err(Failure::invalid(format!("process {pid} has a terminal: send its EOF character")))
            }
        }
    }

    pub fn signal(&self, pid: u32, signal: i32) -> Result<(), Failure> {
        let table = self.lock();
        if !table.running.contains_key(&pid) {
            return Err(Failure::Ended(pid));
        }
        // The pid is not reused while the table holds it: reaping needs the lock.
        // SAFETY: kill(2) takes plain integers.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EINVAL) => Failure::invalid(format!("{signal} is not a signal")),
                Some(libc::ESRCH) => Failure::Ended(pid),
                _ => Failure::io(format!("kill {pid}"), e),
            });
        }
        Ok(())
    }

    pub fn resize(&self, pid: u32, size: PtySize) -> Result<(), Failure> {
        let master = self
            .running(pid)?
            .terminal
            .clone()
            .ok_or_else(|| Failure::invalid(format!("process {pid} has no terminal")))?;
        pty::resize(&master, size)
    }

    /// The processes still running.
    pub fn list(&self) -> Vec<Process> {
        let table = self.lock();
        let mut processes: Vec<Process> = table.running.values().map(|r| r.process.clone()).collect();
        processes.sort_by_key(|p| p.pid);
        processes
    }

    fn running(&self, pid: u32) -> Result<RunningView, Failure> {
        let table = self.lock();
        let running = table.running.get(&pid).ok_or(Failure::Ended(pid))?;
        Ok(RunningView {
            input: match &running.input {
                Input::None => Input::None,
                Input::Pipe(p) => Input::Pipe(p.clone()),
                Input::Terminal(t) => Input::Terminal(t.clone()),
            },
            terminal: running.terminal.clone(),
        })
    }
}

/// What of a running process may be used outside the table's lock.
struct RunningView {
    input: Input,
    terminal: Option<Arc<File>>,
}

/// A process whose exec succeeded, its output not yet read.
struct Started {
    pid: u32,
    exit: Arc<Exit>,
    streams: Vec<(StreamName, File)>,
}

impl Started {
    /// Starts a thread per output stream and one that sends `Exited`.
    fn run(self, outbox: &Outbox) {
        let pid = self.pid;
        for (stream, file) in self.streams {
            let exit = self.exit.clone();
            let outbox = outbox.clone();
            spawn_thread(format!("out-{pid}"), move || pump(pid, stream, file, &exit, &outbox));
        }
        let outbox = outbox.clone();
        let exit = self.exit;
        spawn_thread(format!("exit-{pid}"), move || announce_exit(pid, &exit, &outbox));
    }
}

fn spawn_thread(name: String, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().name(name.clone()).spawn(f) {
        eprintln!("berth-sandboxd: cannot start thread {name}: {e}");
    }
}

/// Sends what the process writes on `stream` until EOF.
fn pump(pid: u32, stream: StreamName, mut file: File, exit: &Exit, outbox: &Outbox) {
    let mut buf = vec![0u8; OUTPUT_CHUNK.min(berth_sandbox_wire::MAX_DATA)];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let sent = lock(&exit.sent);
                if !*sent {
                    outbox.event(Event::Output { pid, stream }, &buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A terminal's master reads EIO once every slave is closed.
            Err(_) => break,
        }
    }
    let mut state = lock(&exit.state);
    state.open_streams -= 1;
    exit.changed.notify_all();
}

/// Waits for the exit, then for the output's EOF (a bounded while), then
/// sends `Exited`.
fn announce_exit(pid: u32, exit: &Exit, outbox: &Outbox) {
    let state = lock(&exit.state);
    let state = exit.changed.wait_while(state, |s| s.status.is_none()).unwrap_or_else(|p| p.into_inner());
    let deadline = Instant::now() + DRAIN;
    let mut state = state;
    while state.open_streams > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        state = exit.changed.wait_timeout(state, left).map(|(s, _)| s).unwrap_or_else(|p| p.into_inner().0);
    }
    let status = state.status.unwrap_or(Status { code: None, signal: None });
    drop(state);
    let mut sent = lock(&exit.sent);
    *sent = true;
    outbox.event(Event::Exited { pid, code: status.code, signal: status.signal }, &[]);
}

/// Locks `mutex`, going on past a thread that panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
