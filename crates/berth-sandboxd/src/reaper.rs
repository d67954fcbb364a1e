//! The reaper: as PID 1 the helper waits for every child, its own and
//! the orphans the kernel hands it, and tells the process table of each.

use std::thread;

use crate::processes::{Processes, Status};

/// Starts the reaper thread.
pub fn start(processes: Processes) {
    // Outside a container (tests, a shell) orphans come here too.
    // SAFETY: prctl with plain integers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let started = thread::Builder::new().name("reaper".into()).spawn(move || reap(&processes));
    if let Err(e) = started {
        eprintln!("berth-sandboxd: cannot start the reaper: {e}");
        std::process::exit(1);
    }
}

fn reap(processes: &Processes) {
    loop {
        let seen = processes.spawn_count();
        match next_exited() {
            Ok(pid) => {
                // Reaped only under the table's lock: a spawn in between
                // cannot get this pid, and a child just forked is already
                // in the table.
                let mut table = processes.lock();
                let mut status = 0;
                // SAFETY: waitpid writes one int.
                let got = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
                if got == pid as libc::pid_t {
                    table.reaped(pid, Status::from_wait(status));
                }
            }
            Err(libc::ECHILD) => processes.wait_for_spawn(seen),
            Err(libc::EINTR) => {}
            Err(errno) => {
                eprintln!("berth-sandboxd: waitid: errno {errno}");
                thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Waits for some child to have ended, without reaping it: its pid.
fn next_exited() -> Result<u32, i32> {
    // SAFETY: waitid fills the siginfo it is given.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        if libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) < 0 {
            return Err(*libc::__errno_location());
        }
        Ok(info.si_pid() as u32)
    }
}
