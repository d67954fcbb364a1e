//! Starting a child: everything it needs made ready before `fork`, then in
//! the child only async-signal-safe calls up to `execve`.
//!
//! std's `Command` is not used: it waits for a child whose exec failed,
//! and the reaper, which waits for every child, would race it.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::error::Failure;

/// A program, its arguments, environment and directory, as C strings.
pub struct Program {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

impl Program {
    pub fn new<'a>(
        path: &Path,
        argv: &[String],
        env: impl IntoIterator<Item = (&'a String, &'a String)>,
        cwd: &Path,
    ) -> Result<Program, Failure> {
        let nul = |what: &str| Failure::invalid(format!("{what} holds a NUL byte"));
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| nul("the program's path"))?;
        let argv = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| nul("an argument")))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(Failure::invalid(format!("{k:?} is not a variable name")));
                }
                CString::new(format!("{k}={v}")).map_err(|_| nul("a variable"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| nul("the directory"))?;
        Ok(Program { path, argv, envp, cwd })
    }
}

/// What the child's fds 0, 1 and 2 become.
pub enum ChildStdio {
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A terminal's slave: the child leads a new session with it as its
    /// controlling terminal.
    Terminal {
        slave: OwnedFd,
    },
}

/// A pipe whose ends close on exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Failure::io("pipe", e.into()))
}

/// A forked child whose exec has not been confirmed yet.
pub struct Forked {
    pub pid: u32,
    report: File,
}

impl Forked {
    /// Whether the exec happened: the child's report pipe closes at exec,
    /// or carries the errno of what failed first.
    pub fn confirm(mut self) -> io::Result<()> {
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.report.read(&mut errno[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        match got {
            0 => Ok(()),
            4 => Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))),
            _ => Err(io::Error::other("the child's exec report was cut short")),
        }
    }
}

/// Forks and execs `program` with `stdio`. The caller holds the process
/// table's lock so that the reaper cannot reap the child before it is
/// in the table.
pub fn spawn(program: &Program, stdio: &ChildStdio) -> Result<Forked, Failure> {
    let (report_read, report_write) = pipe()?;
    let mut argv: Vec<*const libc::c_char> = program.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = program.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let fds: [RawFd; 3] = match stdio {
        ChildStdio::Pipes { stdin, stdout, stderr } => [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        ChildStdio::Terminal { slave } => [slave.as_raw_fd(); 3],
    };
    let terminal = matches!(stdio, ChildStdio::Terminal { .. });
    // SAFETY: the child calls only async-signal-safe functions on memory
    // prepared above, then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Failure::io("fork", io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe { child(program, &argv, &envp, fds, terminal, report_write.as_raw_fd()) }
    }
    drop(report_write);
    Ok(Forked { pid: pid as u32, report: File::from(report_read) })
}

/// The child's side of `spawn`: never returns.
unsafe fn child(
    program: &Program,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: [RawFd; 3],
    terminal: bool,
    report: RawFd,
) -> ! {
    let fail = |report: RawFd| -> ! {
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    };
    // The helper ignores SIGPIPE (Rust's runtime does); a child starts with
    // every signal at its default and none blocked.
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    if terminal {
        if libc::setsid() < 0 {
            fail(report);
        }
        if libc::ioctl(fds[0], libc::TIOCSCTTY as _, 0) < 0 {
            fail(report);
        }
    }
    for (target, fd) in fds.iter().enumerate() {
        if libc::dup2(*fd, target as RawFd) < 0 {
            fail(report);
        }
    }
    if libc::chdir(program.cwd.as_ptr()) < 0 {
        fail(report);
    }
    libc::execve(program.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(report)
}

/// `/dev/null` opened for reading, a child's stdin when it gets none.
pub fn dev_null() -> Result<OwnedFd, Failure> {
    File::open("/dev/null").map(OwnedFd::from).map_err(|e| Failure::io("/dev/null", e))
}
