//! Terminals: a pseudo-terminal pair of a given size, and resizing one.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use berth_sandbox_wire::PtySize;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::error::Failure;

fn winsize(size: PtySize) -> libc::winsize {
    libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// A new terminal of `size`: its master (the helper's side) and its slave
/// (the child's), both closed on exec.
pub fn open(size: PtySize) -> Result<(File, OwnedFd), Failure> {
    let pair = nix::pty::openpty(&winsize(size), None).map_err(|e| Failure::io("openpty", e.into()))?;
    for fd in [&pair.master, &pair.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| Failure::io("fcntl", e.into()))?;
    }
    Ok((File::from(pair.master), pair.slave))
}

/// Sets the size of the terminal whose master is `master`; its foreground
/// process group gets SIGWINCH.
pub fn resize(master: &File, size: PtySize) -> Result<(), Failure> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(Failure::io("TIOCSWINSZ", std::io::Error::last_os_error()));
    }
    Ok(())
}
