//! Image layers applied onto a root filesystem: the changesets of the OCI
//! image spec (Docker's layers are the same), whiteouts included, for the
//! image cache that the `oci` backend unpacks images into.
//!
//! A layer is a tar archive applied in order over the layers below it.
//! An entry `D/.wh.NAME` removes `D/NAME` from below; an entry
//! `D/.wh..wh..opq` makes `D` opaque: what was below in `D` is hidden, and
//! only this layer's entries in it stay (whatever their order in the
//! archive). Every other entry is put in place, replacing what was there.
//!
//! What an entry names is read inside the root, as if the root were `/`:
//! an absolute symlink met on the way is resolved against the root, and no
//! `..` climbs out of it ([`resolve`]), so no layer can write outside the
//! tree it is applied to. Ownership and modes are kept (the cache runs as
//! root); device nodes and FIFOs are skipped and counted (a sandbox's
//! `/dev` is the runtime's), as are extended attributes.
//!
//! [`classify`] is the decision on one entry's name, sans IO; [`apply`]
//! carries the entries out on disk.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// A whiteout's prefix; `.wh..wh..opq` is the opaque marker.
pub const WHITEOUT: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";

/// The most symlinks followed while resolving one name.
const MAX_LINKS: usize = 40;

/// What one entry of a layer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Removes `.0` (and all below it) from the layers below.
    Remove(PathBuf),
    /// Hides what the layers below hold in directory `.0`.
    Opaque(PathBuf),
    /// Puts the entry at `.0`.
    Put(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("layer entry {path}: its link target {target:?} is not inside the image")]
    BadLink { path: String, target: String },
    #[error("resolving {0:?} met more than 40 symlinks")]
    Loop(String),
    #[error("the layers hold more than the bound of {0} bytes")]
    TooLarge(u64),
    #[error("layer entry {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the layer is not a readable tar archive: {0}")]
    Tar(#[source] std::io::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |source| LayerError::Io { path: path.display().to_string(), source }
}

/// The name of an entry as a clean relative path: `./` and trailing
/// slashes dropped, a leading `/` taken as the root; empty for the root.
pub fn clean(name: &str) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err(LayerError::BadName(name.to_owned(), "it climbs with ..")),
            Component::Prefix(_) => return Err(LayerError::BadName(name.to_owned(), "it has a prefix")),
        }
    }
    Ok(out)
}

/// What the entry named `name` does, decided from its name alone.
pub fn classify(name: &str) -> Result<Change, LayerError> {
    let path = clean(name)?;
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        return Ok(Change::Put(path));
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if file == OPAQUE {
        return Ok(Change::Opaque(dir));
    }
    if let Some(hidden) = file.strip_prefix(WHITEOUT) {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(LayerError::BadName(name.to_owned(), "a whiteout of nothing"));
        }
        return Ok(Change::Remove(dir.join(hidden)));
    }
    Ok(Change::Put(path))
}

/// Where `rel` lives on disk under `root`, its parents' symlinks resolved
/// as the image would see them (absolute targets from the root, `..`
/// stopping at the root); the last component is not followed.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, LayerError> {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| if let Component::Normal(p) = c { Some(p.to_owned()) } else { None })
        .collect();
    let mut at = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            at.pop();
            continue;
        }
        if part == "." {
            continue;
        }
        let candidate = at.join(&part);
        if pending.is_empty() {
            return Ok(root.join(candidate));
        }
        let on_disk = root.join(&candidate);
        match std::fs::symlink_metadata(&on_disk) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(LayerError::Loop(rel.display().to_string()));
                }
                let target = std::fs::read_link(&on_disk).map_err(io(&on_disk))?;
                if target.is_absolute() {
                    at = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(p) => pending.push(p.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => at = candidate,
        }
    }
    Ok(root.join(at))
}

/// What applying a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub entries: u64,
    pub bytes: u64,
    pub removed: u64,
    /// Device nodes and FIFOs, which a cached root does not hold.
    pub skipped: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Applied) {
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.removed += other.removed;
        self.skipped += other.skipped;
    }
}

/// A tar archive of one file `name` holding `body` (root's, mode 0644):
/// the smallest layer, for tests.
#[cfg(test)]
pub(crate) fn one_file_tar(name: &str, body: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(body.len() as u64);
    b.append_data(&mut h, name, body.as_bytes()).expect("a tar in memory");
    b.into_inner().expect("a tar in memory")
}

/// Applies the layer read from `tar` onto `root`; `budget` is what the
/// layers may still write, in bytes, and goes down by what this one wrote.
pub fn apply(root: &Path, tar: impl Read, budget: &mut u64) -> Result<Applied, LayerError> {
    let mut archive = tar::Archive::new(tar);
    let mut done = Applied::default();
    // This layer's own paths: an opaque directory keeps them.
    let mut mine: HashSet<PathBuf> = HashSet::new();
    let mut opaque: Vec<PathBuf> = Vec::new();
    for entry in archive.entries().map_err(LayerError::Tar)? {
        let mut entry = entry.map_err(LayerError::Tar)?;
        let name = entry.path().map_err(LayerError::Tar)?.to_string_lossy().into_owned();
        done.entries += 1;
        match classify(&name)? {
            Change::Remove(rel) => {
                let at = resolve(root, &rel)?;
                if std::fs::symlink_metadata(&at).is_ok() {
                    remove(&at)?;
                    done.removed += 1;
                }
            }
            Change::Opaque(rel) => opaque.push(rel),
            Change::Put(rel) => {
                put(root, &rel, &mut entry, budget, &mut done)?;
                let mut p = rel.as_path();
                mine.insert(p.to_path_buf());
                while let Some(parent) = p.parent() {
                    mine.insert(parent.to_path_buf());
                    p = parent;
                }
            }
        }
    }
    for dir in opaque {
        let at = resolve(root, &dir)?;
        done.removed += hide_below(&at, &dir, &mine)?;
    }
    Ok(done)
}

/// Removes from `at` (the directory `rel` of the image) all that this
/// layer did not write; returns how many entries went.
fn hide_below(at: &Path, rel: &Path, mine: &HashSet<PathBuf>) -> Result<u64, LayerError> {
    let mut removed = 0;
    let Ok(children) = std::fs::read_dir(at) else { return Ok(0) };
    for child in children {
        let child = child.map_err(io(at))?;
        let child_rel = rel.join(child.file_name());
        let path = child.path();
        if !mine.contains(&child_rel) {
            remove(&path)?;
            removed += 1;
        } else if child.file_type().map_err(io(&path))?.is_dir() {
            removed += hide_below(&path, &child_rel, mine)?;
        }
    }
    Ok(removed)
}

fn remove(at: &Path) -> Result<(), LayerError> {
    let meta = std::fs::symlink_metadata(at).map_err(io(at))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(at).map_err(io(at))
    } else {
        std::fs::remove_file(at).map_err(io(at))
    }
}

fn put<R: Read>(
    root: &Path,
    rel: &Path,
    entry: &mut tar::Entry<'_, R>,
    budget: &mut u64,
    done: &mut Applied,
) -> Result<(), LayerError> {
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(LayerError::Tar)? & 0o7777;
    let (uid, gid) = (header.uid().map_err(LayerError::Tar)?, header.gid().map_err(LayerError::Tar)?);
    if rel.as_os_str().is_empty() {
        // The root itself: only its mode and owner.
        if kind.is_dir() {
            own(root, uid, gid, Some(mode))?;
        }
        return Ok(());
    }
    let at = resolve(root, rel)?;
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let existing = std::fs::symlink_metadata(&at).ok();
    if let Some(m) = &existing {
        // A directory stays a directory (its contents merge); anything else is replaced.
        if !(m.is_dir() && kind.is_dir()) {
            remove(&at)?;
        }
    }
    match kind {
        tar::EntryType::Directory => {
            if !at.is_dir() {
                std::fs::create_dir(&at).map_err(io(&at))?;
            }
            own(&at, uid, gid, Some(mode))?;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = header.size().map_err(LayerError::Tar)?;
            if size > *budget {
                return Err(LayerError::TooLarge(done.bytes + *budget));
            }
            let mut file = std::fs::File::create(&at).map_err(io(&at))?;
            let copied = std::io::copy(&mut entry.take(size), &mut file).map_err(io(&at))?;
            *budget -= copied;
            done.bytes += copied;
            own(&at, uid, gid, Some(mode))?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(LayerError::Tar)?
                .ok_or_else(|| LayerError::BadLink { path: rel.display().to_string(), target: String::new() })?;
            std::os::unix::fs::symlink(&target, &at).map_err(io(&at))?;
            own(&at, uid, gid, None)?;
        }
        tar::EntryType::Link => {
            let target = entry.link_name().map_err(LayerError::Tar)?.unwrap_or_default().to_string_lossy().into_owned();
            let source = resolve(root, &clean(&target)?)?;
            if std::fs::symlink_metadata(&source).is_err() {
                return Err(LayerError::BadLink { path: rel.display().to_string(), target });
            }
            std::fs::hard_link(&source, &at).map_err(io(&at))?;
        }
        _ => done.skipped += 1,
    }
    Ok(())
}

/// Sets an owner (never following a symlink) and, for what is not a
/// symlink, a mode.
fn own(at: &Path, uid: u64, gid: u64, mode: Option<u32>) -> Result<(), LayerError> {
    let id = |n: u64| u32::try_from(n).ok();
    std::os::unix::fs::lchown(at, id(uid), id(gid)).map_err(io(at))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode)).map_err(io(at))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer of (name, kind, content or link target).
    fn layer(entries: &[(&str, char, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(if *kind == 'd' { 0o755 } else { 0o644 });
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                'd' => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, name, std::io::empty()).unwrap();
                }
                'f' => {
                    h.set_size(body.len() as u64);
                    b.append_data(&mut h, name, body.as_bytes()).unwrap();
                }
                'l' | 'h' => {
                    h.set_entry_type(if *kind == 'l' { tar::EntryType::Symlink } else { tar::EntryType::Link });
                    h.set_size(0);
                    b.append_link(&mut h, name, body).unwrap();
                }
                'c' => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_size(0);
                    b.append_data(&mut h, name, std::io::empty()).unwrap();
                }
                _ => unreachable!("a kind the test knows"),
            }
        }
        b.into_inner().unwrap()
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
            let mut children: Vec<_> = std::fs::read_dir(at).unwrap().map(|e| e.unwrap().path()).collect();
            children.sort();
            for p in children {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.file_type().is_symlink() {
                    out.push(format!("{rel} -> {}", std::fs::read_link(&p).unwrap().display()));
                } else if m.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &p, out);
                } else {
                    out.push(format!("{rel} = {}", std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out
    }

    fn apply_all(root: &Path, layers: &[Vec<u8>]) -> Vec<Applied> {
        let mut budget = u64::MAX;
        layers.iter().map(|l| apply(root, &l[..], &mut budget).unwrap()).collect()
    }

    #[test]
    fn names_are_classified_as_whiteouts_opaque_markers_or_entries() {
        assert_eq!(classify("./etc/.wh.passwd").unwrap(), Change::Remove("etc/passwd".into()));
        assert_eq!(classify("var/cache/.wh..wh..opq").unwrap(), Change::Opaque("var/cache".into()));
        assert_eq!(classify("/usr/bin/env").unwrap(), Change::Put("usr/bin/env".into()));
        assert_eq!(classify("./").unwrap(), Change::Put(PathBuf::new()));
        assert!(matches!(classify("../etc/passwd"), Err(LayerError::BadName(..))));
        assert!(matches!(classify("a/.wh."), Err(LayerError::BadName(..))));
    }

    #[test]
    fn an_upper_layer_replaces_removes_and_adds_over_the_lower_one() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[("etc/", 'd', ""), ("etc/a", 'f', "1"), ("etc/b", 'f', "2"), ("bin/", 'd', "")]);
        let upper =
            layer(&[("etc/.wh.a", 'f', ""), ("etc/b", 'f', "two"), ("etc/c", 'f', "3"), ("bin", 'l', "usr/bin")]);
        let applied = apply_all(root.path(), &[lower, upper]);
        assert_eq!(tree(root.path()), ["bin -> usr/bin", "etc/", "etc/b = two", "etc/c = 3"]);
        assert_eq!(applied[1].removed, 1);
    }

    #[test]
    fn an_opaque_directory_keeps_only_this_layers_entries_whatever_their_order() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[("d/", 'd', ""), ("d/old", 'f', "old"), ("d/sub/", 'd', ""), ("d/sub/deep", 'f', "x")]);
        // The new entry comes before the marker in the archive, and is kept.
        let upper = layer(&[("d/new", 'f', "new"), ("d/sub/kept", 'f', "k"), ("d/.wh..wh..opq", 'f', "")]);
        apply_all(root.path(), &[lower, upper]);
        assert_eq!(tree(root.path()), ["d/", "d/new = new", "d/sub/", "d/sub/kept = k"]);
    }

    #[test]
    fn a_name_through_an_absolute_symlink_lands_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let lower =
            layer(&[("usr/", 'd', ""), ("usr/lib/", 'd', ""), ("lib", 'l', "/usr/lib"), ("up", 'l', "../../..")]);
        let upper = layer(&[("lib/libx.so", 'f', "x"), ("up/escaped", 'f', "no")]);
        apply_all(root.path(), &[lower, upper]);
        assert_eq!(std::fs::read_to_string(root.path().join("usr/lib/libx.so")).unwrap(), "x");
        assert_eq!(std::fs::read_to_string(root.path().join("escaped")).unwrap(), "no", "`..` stops at the root");
        assert!(!root.path().parent().unwrap().join("escaped").exists());
    }

    #[test]
    fn a_hard_link_needs_its_target_inside_and_devices_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let good = layer(&[("a", 'f', "same"), ("b", 'h', "a"), ("null", 'c', "")]);
        let applied = apply_all(root.path(), &[good]);
        assert_eq!(std::fs::read_to_string(root.path().join("b")).unwrap(), "same");
        assert_eq!(applied[0].skipped, 1);
        let bad = layer(&[("c", 'h', "missing")]);
        let mut budget = u64::MAX;
        assert!(matches!(apply(root.path(), &bad[..], &mut budget), Err(LayerError::BadLink { .. })));
    }

    #[test]
    fn layers_past_the_byte_budget_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut budget = 5;
        let big = layer(&[("a", 'f', "123"), ("b", 'f', "456")]);
        assert!(matches!(apply(root.path(), &big[..], &mut budget), Err(LayerError::TooLarge(5))));
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[("a", 'l', "b"), ("b", 'l', "a")]);
        let upper = layer(&[("a/x", 'f', "")]);
        let mut budget = u64::MAX;
        apply(root.path(), &lower[..], &mut budget).unwrap();
        assert!(matches!(apply(root.path(), &upper[..], &mut budget), Err(LayerError::Loop(_))));
    }
}
