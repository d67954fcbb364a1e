//! The file system as berth sees it: entries, listings, reads, making,
//! moving and removing. Paths here are already absolute (see `paths`).

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_sandbox_wire::{Entry, EntryType, MAX_DATA};

use crate::error::Failure;
use crate::paths;

/// The most bytes one chunk of a file read carries.
pub const READ_CHUNK: usize = MAX_DATA;

/// The entry for `path` itself (a symlink is not followed).
pub fn stat(path: &Path) -> Result<Entry, Failure> {
    let metadata = fs::symlink_metadata(path).map_err(|e| Failure::at(path, e))?;
    Ok(entry(path, &metadata))
}

fn entry(path: &Path, metadata: &Metadata) -> Entry {
    let file_type = metadata.file_type();
    let kind = if file_type.is_symlink() {
        EntryType::Symlink
    } else if file_type.is_dir() {
        EntryType::Dir
    } else if file_type.is_file() {
        EntryType::File
    } else {
        EntryType::Other
    };
    let symlink_target =
        if file_type.is_symlink() { fs::read_link(path).ok().map(|t| paths::display(&t)) } else { None };
    Entry {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".to_string()),
        path: paths::display(path),
        kind,
        size: metadata.len(),
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
        modified: metadata.mtime(),
        symlink_target,
    }
}

/// The entries below the directory `path`, `depth` levels down (1: its
/// own). Symlinks to directories are listed, not entered; a directory
/// below that cannot be read is listed without its contents.
pub fn list(path: &Path, depth: u32) -> Result<Vec<Entry>, Failure> {
    let metadata = fs::metadata(path).map_err(|e| Failure::at(path, e))?;
    if !metadata.is_dir() {
        return Err(Failure::invalid(format!("{} is not a directory", paths::display(path))));
    }
    let mut entries = Vec::new();
    let children = children(path).map_err(|e| Failure::at(path, e))?;
    walk(children, depth.max(1) - 1, &mut entries);
    Ok(entries)
}

fn children(dir: &Path) -> std::io::Result<Vec<(PathBuf, Metadata)>> {
    let mut children = Vec::new();
    for child in fs::read_dir(dir)? {
        let child = child?;
        let path = child.path();
        if let Ok(metadata) = fs::symlink_metadata(&path) {
            children.push((path, metadata));
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(children)
}

fn walk(children: Vec<(PathBuf, Metadata)>, levels_below: u32, entries: &mut Vec<Entry>) {
    for (path, metadata) in children {
        entries.push(entry(&path, &metadata));
        if levels_below > 0 && metadata.file_type().is_dir() {
            if let Ok(grandchildren) = self::children(&path) {
                walk(grandchildren, levels_below - 1, entries);
            }
        }
    }
}

/// Reads the file `path`, giving each chunk of at most [`READ_CHUNK`]
/// bytes to `chunk` as it is read.
pub fn read(path: &Path, mut chunk: impl FnMut(&[u8])) -> Result<(), Failure> {
    let mut file = File::open(path).map_err(|e| Failure::at(path, e))?;
    let metadata = file.metadata().map_err(|e| Failure::at(path, e))?;
    if metadata.is_dir() {
        return Err(Failure::invalid(format!("{} is a directory", paths::display(path))));
    }
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::at(path, e)),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        chunk(&buf[..filled]);
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// Makes the directory `path` and its missing parents; one that is
/// already there is `Exists`.
pub fn make_dir(path: &Path) -> Result<Entry, Failure> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Failure::Exists(paths::display(path)));
    }
    fs::create_dir_all(path).map_err(|e| Failure::at(path, e))?;
    stat(path)
}

/// Moves `from` to `to`, making `to`'s missing parents: the entry at `to`.
pub fn rename(from: &Path, to: &Path) -> Result<Entry, Failure> {
    fs::symlink_metadata(from).map_err(|e| Failure::at(from, e))?;
    make_parent(to)?;
    fs::rename(from, to).map_err(|e| Failure::io(format!("{} to {}", paths::display(from), paths::display(to)), e))?;
    stat(to)
}

/// Makes the missing parents of `path`.
pub fn make_parent(path: &Path) -> Result<(), Failure> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| Failure::at(parent, e)),
        None => Ok(()),
    }
}

/// Removes a file, a symlink (not what it points to), or a directory with
/// everything in it.
pub fn remove(path: &Path) -> Result<(), Failure> {
    let metadata = fs::symlink_metadata(path).map_err(|e| Failure::at(path, e))?;
    let removed = if metadata.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    removed.map_err(|e| Failure::at(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_in_chunks_of_the_bound_and_a_short_last_one() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..(READ_CHUNK * 2 + 10)).map(|i| i as u8).collect();
        fs::write(&path, &bytes).expect("written");
        let mut chunks = Vec::new();
        read(&path, |c| chunks.push(c.to_vec())).expect("read");
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![READ_CHUNK, READ_CHUNK, 10]);
        assert_eq!(chunks.concat(), bytes);
    }

    #[test]
    fn an_empty_file_reads_as_no_chunk() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("empty");
        fs::write(&path, b"").expect("written");
        let mut chunks = 0;
        read(&path, |_| chunks += 1).expect("read");
        assert_eq!(chunks, 0);
    }

    #[test]
    fn a_listing_does_not_enter_a_symlink_to_a_directory() {
        let dir = tempfile::tempdir().expect("a temp dir");
        fs::create_dir(dir.path().join("d")).expect("dir");
        fs::write(dir.path().join("d/inner"), b"x").expect("file");
        std::os::unix::fs::symlink(dir.path().join("d"), dir.path().join("link")).expect("link");
        let names: Vec<String> = list(dir.path(), 5).expect("listed").into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["d", "inner", "link"]);
    }
}
