//! Watched directories: an inotify instance and a thread per watch, its
//! changes sent in batches, names relative to the watched directory. A
//! recursive watch follows new subdirectories as they appear.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use berth_sandbox_wire::{Event, WatchEvent, WatchEventType, MAX_HEADER};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

use crate::error::Failure;
use crate::output::Outbox;
use crate::paths;

/// The most watches open at once.
pub const MAX_WATCHES: usize = 32;
/// How long changes gather before they are sent.
const BATCH: Duration = Duration::from_millis(50);
/// How often a quiet watch looks whether it was dropped.
const IDLE: Duration = Duration::from_millis(100);
/// How many bytes of names one batch may hold (it must fit a header).
const BATCH_BYTES: usize = MAX_HEADER / 4;

/// The watches, by id.
pub struct Watches {
    active: HashMap<u64, Arc<AtomicBool>>,
    next: u64,
    outbox: Outbox,
}

impl Watches {
    pub fn new(outbox: Outbox) -> Watches {
        Watches { active: HashMap::new(), next: 1, outbox }
    }

    /// Starts watching the directory `path`: the watch's id.
    pub fn watch(&mut self, path: &Path, recursive: bool) -> Result<u64, Failure> {
        // A watch whose directory went away ended by itself.
        self.active.retain(|_, stop| !stop.load(Ordering::Relaxed));
        if self.active.len() >= MAX_WATCHES {
            return Err(Failure::invalid(format!("{MAX_WATCHES} watches are open already")));
        }
        let metadata = std::fs::metadata(path).map_err(|e| Failure::at(path, e))?;
        if !metadata.is_dir() {
            return Err(Failure::invalid(format!("{} is not a directory", paths::display(path))));
        }
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| Failure::io("inotify_init", e.into()))?;
        let mut watcher = Watcher { inotify, root: path.to_path_buf(), dirs: HashMap::new(), recursive };
        let root = watcher
            .add(PathBuf::new(), watched() | AddWatchFlags::IN_ONLYDIR)
            .map_err(|e| Failure::at(path, e.into()))?;
        if recursive {
            let mut found = Vec::new();
            watcher.add_below(Path::new(""), &mut found);
        }
        let wid = self.next;
        self.next += 1;
        let stop = Arc::new(AtomicBool::new(false));
        self.active.insert(wid, stop.clone());
        let outbox = self.outbox.clone();
        let started =
            thread::Builder::new().name(format!("watch-{wid}")).spawn(move || watcher.run(wid, root, &stop, &outbox));
        if let Err(e) = started {
            self.active.remove(&wid);
            return Err(Failure::io("a watch's thread", e));
        }
        Ok(wid)
    }

    pub fn unwatch(&mut self, wid: u64) -> Result<(), Failure> {
        let stop = self.active.remove(&wid).ok_or_else(|| Failure::NotFound(format!("watch {wid}")))?;
        stop.store(true, Ordering::Relaxed);
        Ok(())
    }
}

fn watched() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
}

/// One watch's inotify instance and the directories it watches.
struct Watcher {
    inotify: Inotify,
    root: PathBuf,
    /// Each watched directory's path relative to the root.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    recursive: bool,
}

impl Watcher {
    fn add(&mut self, relative: PathBuf, flags: AddWatchFlags) -> nix::Result<WatchDescriptor> {
        // The root may be a symlink to the directory; below it none is followed.
        let flags = if relative.as_os_str().is_empty() { flags } else { flags | AddWatchFlags::IN_DONT_FOLLOW };
        let wd = self.inotify.add_watch(&self.root.join(&relative), flags)?;
        self.dirs.insert(wd, relative);
        Ok(wd)
    }

    /// Watches every directory below `relative` (symlinks not followed),
    /// putting what it finds there in `found`.
    fn add_below(&mut self, relative: &Path, found: &mut Vec<PathBuf>) {
        let Ok(children) = std::fs::read_dir(self.root.join(relative)) else { return };
        for child in children.flatten() {
            let child_relative = relative.join(child.file_name());
            found.push(child_relative.clone());
            if child.file_type().is_ok_and(|t| t.is_dir()) && self.add(child_relative.clone(), watched()).is_ok() {
                self.add_below(&child_relative, found);
            }
        }
    }

    fn run(mut self, wid: u64, root: WatchDescriptor, stop: &AtomicBool, outbox: &Outbox) {
        let mut batch = Batch::default();
        let mut ended = false;
        while !stop.load(Ordering::Relaxed) && !ended {
            let timeout = match batch.since {
                Some(since) => BATCH.saturating_sub(since.elapsed()),
                None => IDLE,
            };
            if wait_readable(&self.inotify, timeout) {
                match self.inotify.read_events() {
                    Ok(events) => {
                        for event in events {
                            ended |= self.take(event, root, &mut batch);
                        }
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => {
                        eprintln!("berth-sandboxd: watch {wid}: {e}");
                        ended = true;
                    }
                }
            }
            if batch.due() || (ended && !batch.events.is_empty()) {
                outbox.event(Event::Changed { wid, events: batch.take() }, &[]);
            }
        }
        // Ended by itself: its slot is free for another watch.
        stop.store(true, Ordering::Relaxed);
    }

    /// Adds what `event` says to `batch`; true when the watched directory
    /// itself is gone.
    fn take(&mut self, event: InotifyEvent, root: WatchDescriptor, batch: &mut Batch) -> bool {
        let mask = event.mask;
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            eprintln!("berth-sandboxd: a watch's queue overflowed; some changes are lost");
            return false;
        }
        let Some(dir) = self.dirs.get(&event.wd).cloned() else { return false };
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            self.dirs.remove(&event.wd);
            return event.wd == root;
        }
        let relative = match &event.name {
            Some(name) => dir.join(name),
            None => dir.clone(),
        };
        let is_dir = mask.contains(AddWatchFlags::IN_ISDIR);
        let kind = if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
            WatchEventType::Create
        } else if mask.contains(AddWatchFlags::IN_MODIFY) {
            WatchEventType::Write
        } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_DELETE_SELF) {
            WatchEventType::Remove
        } else if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
            WatchEventType::Rename
        } else if mask.contains(AddWatchFlags::IN_ATTRIB) {
            WatchEventType::Chmod
        } else {
            return false;
        };
        if mask.contains(AddWatchFlags::IN_DELETE_SELF) && event.wd != root {
            // A subdirectory's own removal is told by its parent's IN_DELETE.
            return false;
        }
        batch.push(&relative, kind);
        if self.recursive && is_dir {
            match kind {
                WatchEventType::Create if self.add(relative.clone(), watched()).is_ok() => {
                    // What was made inside before the watch was added.
                    let mut found = Vec::new();
                    self.add_below(&relative, &mut found);
                    for path in found {
                        batch.push(&path, WatchEventType::Create);
                    }
                }
                WatchEventType::Rename => self.forget_below(&relative),
                _ => {}
            }
        }
        false
    }

    /// Stops watching the directories at and below `relative` (moved away).
    fn forget_below(&mut self, relative: &Path) {
        let gone: Vec<WatchDescriptor> =
            self.dirs.iter().filter(|(_, dir)| dir.starts_with(relative)).map(|(wd, _)| *wd).collect();
        for wd in gone {
            let _ = self.inotify.rm_watch(wd);
            self.dirs.remove(&wd);
        }
    }
}

/// Whether `inotify` has events within `timeout`.
fn wait_readable(inotify: &Inotify, timeout: Duration) -> bool {
    let mut fd = libc::pollfd { fd: inotify.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let millis = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll reads and writes one pollfd.
    unsafe { libc::poll(&mut fd, 1, millis) > 0 }
}

/// Changes gathered since the first of them.
#[derive(Default)]
struct Batch {
    events: Vec<WatchEvent>,
    bytes: usize,
    since: Option<Instant>,
}

impl Batch {
    fn push(&mut self, relative: &Path, kind: WatchEventType) {
        let name = paths::display(relative);
        if self.events.last().is_some_and(|last| last.kind == kind && last.name == name) {
            return;
        }
        self.bytes += 2 * name.len() + 32;
        self.events.push(WatchEvent { name, kind });
        self.since.get_or_insert_with(Instant::now);
    }

    fn due(&self) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= BATCH) || self.bytes >= BATCH_BYTES
    }

    fn take(&mut self) -> Vec<WatchEvent> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_folds_a_repeated_change_into_one() {
        let mut batch = Batch::default();
        batch.push(Path::new("a"), WatchEventType::Write);
        batch.push(Path::new("a"), WatchEventType::Write);
        batch.push(Path::new("b"), WatchEventType::Write);
        assert_eq!(batch.take().len(), 2);
        assert!(!batch.due());
    }

    #[test]
    fn a_batch_is_due_when_its_names_fill_it() {
        let mut batch = Batch::default();
        let long = "x".repeat(1000);
        for i in 0..BATCH_BYTES / 1000 {
            batch.push(&Path::new(&long).join(i.to_string()), WatchEventType::Create);
        }
        assert!(batch.due());
    }
}
