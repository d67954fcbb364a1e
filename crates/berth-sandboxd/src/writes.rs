//! File writes in progress, keyed by the id of their `WriteFile`: the
//! bytes go to a file beside the target, renamed over it at the end, so
//! the target is never seen half-written.
//!
//! Each write gets exactly one reply: its entry at `WriteEnd`, `Done` at
//! `WriteAbort`, or its first failure, after which the rest of the write
//! (chunks, end, abort) is ignored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use berth_sandbox_wire::Entry;

use crate::error::Failure;
use crate::files;
use crate::paths;

/// The most writes open at once.
pub const MAX_OPEN: usize = 64;
/// How many failed writes are remembered (so that their rest is ignored).
const MAX_FAILED: usize = 1024;

#[derive(Default)]
pub struct Writes {
    open: HashMap<u64, Open>,
    failed: HashSet<u64>,
    failed_order: VecDeque<u64>,
    /// Makes each temporary file's name new.
    count: u64,
}

struct Open {
    target: PathBuf,
    temp: PathBuf,
    file: File,
}

impl Writes {
    /// Opens a write of `target` under `rid`. An error is the write's one
    /// reply.
    pub fn begin(&mut self, rid: u64, target: PathBuf) -> Result<(), Failure> {
        let opened = self.open_temp(rid, &target);
        match opened {
            Ok(open) => {
                self.open.insert(rid, open);
                Ok(())
            }
            Err(failure) => {
                self.remember_failed(rid);
                Err(failure)
            }
        }
    }

    fn open_temp(&mut self, rid: u64, target: &Path) -> Result<Open, Failure> {
        if self.open.contains_key(&rid) {
            return Err(Failure::invalid(format!("a write under id {rid} is already open")));
        }
        if self.open.len() >= MAX_OPEN {
            return Err(Failure::invalid(format!("{MAX_OPEN} writes are open already")));
        }
        let existing = fs::metadata(target).ok();
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(Failure::invalid(format!("{} is a directory", paths::display(target))));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Failure::invalid(format!("{} names no file", paths::display(target))))?
            .to_string_lossy()
            .into_owned();
        files::make_parent(target)?;
        loop {
            self.count += 1;
            let temp = target.with_file_name(format!(".{name}.{}.{}.berth-write", std::process::id(), self.count));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    if let Some(existing) = existing {
                        // The new file keeps the old one's permissions.
                        let _ = file.set_permissions(existing.permissions());
                    }
                    return Ok(Open { target: target.to_path_buf(), temp, file });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Failure::at(&temp, e)),
            }
        }
    }

    /// Appends `data` to the write under `rid`. An error is the write's
    /// one reply; a write that failed before, or none, takes no chunk.
    pub fn chunk(&mut self, rid: u64, data: &[u8]) -> Result<(), Failure> {
        let Some(open) = self.open.get_mut(&rid) else {
            if !self.failed.contains(&rid) {
                eprintln!("berth-sandboxd: a chunk for no open write ({rid}) was dropped");
            }
            return Ok(());
        };
        if let Err(e) = open.file.write_all(data) {
            let failure = Failure::at(&open.target, e);
            self.drop_open(rid);
            self.remember_failed(rid);
            return Err(failure);
        }
        Ok(())
    }

    /// Puts the write under `rid` in place: its entry. `None` when the
    /// write failed before (its reply has been sent).
    pub fn end(&mut self, rid: u64) -> Option<Result<Entry, Failure>> {
        if self.failed.remove(&rid) {
            return None;
        }
        let Some(open) = self.open.remove(&rid) else {
            return Some(Err(Failure::invalid(format!("no write is open under id {rid}"))));
        };
        // Flushed and renamed, not synced: the sandbox's disk is scratch
        // space, and a sync per write would cost more than it keeps.
        let mut file = open.file;
        let finished = file.flush().map_err(|e| Failure::at(&open.target, e)).and_then(|()| {
            drop(file);
            fs::rename(&open.temp, &open.target).map_err(|e| Failure::at(&open.target, e))
        });
        if finished.is_err() {
            let _ = fs::remove_file(&open.temp);
        }
        Some(finished.and_then(|()| files::stat(&open.target)))
    }

    /// Drops the write under `rid`. `None` when it failed before.
    pub fn abort(&mut self, rid: u64) -> Option<Result<(), Failure>> {
        if self.failed.remove(&rid) {
            return None;
        }
        if !self.open.contains_key(&rid) {
            return Some(Err(Failure::invalid(format!("no write is open under id {rid}"))));
        }
        self.drop_open(rid);
        Some(Ok(()))
    }

    fn drop_open(&mut self, rid: u64) {
        if let Some(open) = self.open.remove(&rid) {
            drop(open.file);
            let _ = fs::remove_file(&open.temp);
        }
    }

    fn remember_failed(&mut self, rid: u64) {
        if self.failed.insert(rid) {
            self.failed_order.push_back(rid);
        }
        while self.failed_order.len() > MAX_FAILED {
            if let Some(oldest) = self.failed_order.pop_front() {
                self.failed.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_invisible_until_its_end_then_in_place() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("a/b/file");
        let mut writes = Writes::default();
        writes.begin(1, target.clone()).expect("opened");
        writes.chunk(1, b"hello ").expect("written");
        writes.chunk(1, b"world").expect("written");
        assert!(!target.exists());
        let entry = writes.end(1).expect("a reply").expect("in place");
        assert_eq!(entry.size, 11);
        assert_eq!(fs::read(&target).expect("read"), b"hello world");
        assert_eq!(fs::read_dir(target.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn an_aborted_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut writes = Writes::default();
        writes.begin(1, dir.path().join("f")).expect("opened");
        writes.chunk(1, b"x").expect("written");
        assert!(matches!(writes.abort(1), Some(Ok(()))));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_write_past_the_bound_fails_once_and_its_end_is_silent() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut writes = Writes::default();
        for rid in 0..MAX_OPEN as u64 {
            writes.begin(rid, dir.path().join(format!("f{rid}"))).expect("opened");
        }
        let over = MAX_OPEN as u64;
        assert!(writes.begin(over, dir.path().join("over")).is_err());
        assert!(writes.chunk(over, b"x").is_ok());
        assert!(writes.end(over).is_none());
        assert!(matches!(writes.end(over), Some(Err(_))), "a second end is of no write");
    }
}
