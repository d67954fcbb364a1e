//! The image cache: each image's root filesystem unpacked once into a
//! folder berth owns, keyed by the image id (the config's digest: locally
//! built images have no repo digest), for the `oci` backend's runs to share
//! read-only.
//!
//! Layout under the cache's folder: `<hex>/` is an image's root, and
//! `<hex>.done` (its size in bytes) says it is whole; `<hex>.partial/` is an
//! unpack under way. At start-up ([`ImageCache::open`]) partial folders and
//! roots without their `.done` (a crash mid-unpack) are removed, and whole
//! ones are taken in. Several runs asking for one image at once cause one
//! unpack; the others wait for it. Over its size bound the cache removes
//! the least recently used images no run holds ([`Lease`]). Asking by id
//! is what notices a tag that moved: the caller resolves the tag each time
//! and a new id is a new image; a save whose image is not the id asked for
//! is refused ([`CacheError::Moved`]). Decisions are sans IO in [`state`].

pub mod state;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use self::state::{CacheState, Want};
use crate::saved::{self, SavedError};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("image id {0:?} is not sha256:<64 hex digits>")]
    BadId(String),
    #[error("the image was saved as {saved}, not the {asked} asked for (its tag moved?)")]
    Moved { asked: String, saved: String },
    #[error("saving the image failed: {0}")]
    Save(String),
    #[error(transparent)]
    Unpack(#[from] SavedError),
    #[error("the image cache at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.display().to_string(), source }
}

/// The hex of an image id, the name of its folder.
fn key(id: &str) -> Result<&str, CacheError> {
    let hex = id.strip_prefix("sha256:").ok_or_else(|| CacheError::BadId(id.to_owned()))?;
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(CacheError::BadId(id.to_owned()))
    }
}

/// What [`ImageCache::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    pub images: usize,
    pub bytes: u64,
    /// Half-unpacked trees removed.
    pub removed: Vec<String>,
}

pub struct ImageCache {
    dir: PathBuf,
    state: Mutex<CacheState>,
    /// Woken when an unpack ends, for the askers waiting on it.
    changed: tokio::sync::Notify,
    tick: AtomicU64,
}

/// An image's root, held: the cache does not remove it while a lease lives.
pub struct Lease {
    cache: Arc<ImageCache>,
    id: String,
    pub root: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let evicted = self.cache.lock().release(&self.id);
        self.cache.remove_all(&evicted);
    }
}

impl ImageCache {
    /// Opens (or makes) the cache at `dir` with a bound of `max_bytes`,
    /// removing what a crash left half-unpacked.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Arc<ImageCache>, Opened), CacheError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut state = CacheState::new(max_bytes);
        let mut opened = Opened::default();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".done") {
                continue;
            }
            let done = dir.join(format!("{name}.done"));
            let whole = std::fs::read_to_string(&done).ok().and_then(|t| t.trim().parse::<u64>().ok());
            match whole {
                Some(bytes) if key(&format!("sha256:{name}")).is_ok() && path.is_dir() => {
                    state.found(&format!("sha256:{name}"), bytes, 0);
                    opened.images += 1;
                    opened.bytes += bytes;
                }
                _ => {
                    remove_tree(&path).map_err(io(&path))?;
                    opened.removed.push(name);
                }
            }
        }
        // A `.done` whose folder is gone says nothing.
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "done") && !path.with_extension("").is_dir() {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let cache =
            ImageCache { dir: dir.to_owned(), state: Mutex::new(state), changed: Default::default(), tick: 1.into() };
        Ok((Arc::new(cache), opened))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove_all(&self, ids: &[String]) {
        for id in ids {
            let Ok(hex) = key(id) else { continue };
            let _ = std::fs::remove_file(self.dir.join(format!("{hex}.done")));
            if let Err(e) = remove_tree(&self.dir.join(hex)) {
                tracing::warn!(%id, %e, "an evicted image's root was not removed");
            }
        }
    }

    /// The bytes the cache holds now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes()
    }

    /// Image `id`'s root, unpacked first if need be from what `save` writes
    /// to the path it is given (the engine's saved archive of the image).
    pub async fn get<F, Fut>(self: &Arc<Self>, id: &str, save: F) -> Result<Lease, CacheError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let asked = id.to_owned();
        self.get_with(id, move |partial, root, room| async move {
            let archive = partial.join("saved.tar");
            let scratch = partial.join("layers");
            std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
            save(archive.clone()).await.map_err(CacheError::Save)?;
            tokio::task::spawn_blocking(move || -> Result<u64, CacheError> {
                let file = std::fs::File::open(&archive).map_err(io(&archive))?;
                let (manifest, layers) = saved::split(std::io::BufReader::new(file), &scratch)?;
                let saved_id = manifest.image_id().unwrap_or_default();
                if saved_id != asked {
                    return Err(CacheError::Moved { asked, saved: saved_id });
                }
                let _ = std::fs::remove_file(&archive);
                Ok(saved::unpack(&layers, &root, room)?.bytes)
            })
            .await
            .map_err(|e| CacheError::Save(format!("the unpack's task failed: {e}")))?
        })
        .await
    }

    /// Image `id`'s root, unpacked first if need be by `pull`, which is
    /// given a scratch folder for its blobs and the bytes there is room for
    /// and returns the image with its blobs at hand (an OCI layout's, or a
    /// registry's pulled into the scratch folder).
    pub async fn get_pulled<F, Fut>(self: &Arc<Self>, id: &str, pull: F) -> Result<Lease, CacheError>
    where
        F: FnOnce(PathBuf, u64) -> Fut,
        Fut: Future<Output = Result<crate::image::Pulled, String>>,
    {
        let asked = id.to_owned();
        self.get_with(id, move |partial, root, room| async move {
            let scratch = partial.join("blobs");
            std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
            let pulled = pull(scratch, room).await.map_err(CacheError::Save)?;
            if pulled.id.as_str() != asked {
                return Err(CacheError::Moved { asked, saved: pulled.id.to_string() });
            }
            tokio::task::spawn_blocking(move || crate::image::apply(&pulled, &root, room).map(|a| a.bytes))
                .await
                .map_err(|e| CacheError::Save(format!("the unpack's task failed: {e}")))?
                .map_err(|e| CacheError::Save(e.to_string()))
        })
        .await
    }

    /// Image `id`'s root, unpacked first if need be by `fill`, which is
    /// given a partial folder of its own, the root to fill in it and the
    /// bytes there is room for, and returns the bytes it wrote.
    async fn get_with<F, Fut>(self: &Arc<Self>, id: &str, fill: F) -> Result<Lease, CacheError>
    where
        F: FnOnce(PathBuf, PathBuf, u64) -> Fut,
        Fut: Future<Output = Result<u64, CacheError>>,
    {
        let hex = key(id)?.to_owned();
        let mut fill = Some(fill);
        loop {
            let woken = self.changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let tick = self.tick.fetch_add(1, Ordering::Relaxed);
            let want = self.lock().want(id, tick);
            match want {
                Want::Ready => return Ok(self.lease(id, &hex)),
                Want::Wait => {
                    woken.await;
                    continue;
                }
                Want::Unpack => {}
            }
            let Some(fill) = fill.take() else {
                // Unreachable: a second unpack comes only after a failed
                // one, whose error this call has already returned.
                return Err(CacheError::Save("the image was unpacked twice by one asker".into()));
            };
            let made = self.unpack(&hex, fill).await;
            let evicted = match &made {
                Ok(bytes) => self.lock().unpacked(id, *bytes, tick),
                Err(_) => {
                    self.lock().failed(id);
                    Vec::new()
                }
            };
            self.remove_all(&evicted);
            self.changed.notify_waiters();
            made?;
            return Ok(self.lease(id, &hex));
        }
    }

    fn lease(self: &Arc<Self>, id: &str, hex: &str) -> Lease {
        Lease { cache: self.clone(), id: id.to_owned(), root: self.dir.join(hex) }
    }

    async fn unpack<F, Fut>(&self, hex: &str, fill: F) -> Result<u64, CacheError>
    where
        F: FnOnce(PathBuf, PathBuf, u64) -> Fut,
        Fut: Future<Output = Result<u64, CacheError>>,
    {
        let partial = self.dir.join(format!("{hex}.partial"));
        let _ = remove_tree(&partial);
        let root = partial.join("root");
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let unpacked = async {
            let room = self.lock().room();
            let applied = fill(partial.clone(), root.clone(), room).await?;
            let whole = self.dir.join(hex);
            let _ = remove_tree(&whole);
            std::fs::rename(&root, &whole).map_err(io(&whole))?;
            let done = self.dir.join(format!("{hex}.done"));
            std::fs::write(&done, applied.to_string()).map_err(io(&done))?;
            Ok(applied)
        }
        .await;
        let _ = remove_tree(&partial);
        unpacked
    }
}

fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const ID: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A saved archive of one image `id` whose one layer holds `etc/motd`.
    fn saved_archive(id: &str, motd: &str) -> Vec<u8> {
        let header = |size: usize| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(size as u64);
            h
        };
        let mut layer = tar::Builder::new(Vec::new());
        layer.append_data(&mut header(motd.len()), "etc/motd", motd.as_bytes()).unwrap();
        let layer = layer.into_inner().unwrap();
        let hex = id.trim_start_matches("sha256:");
        let manifest = format!(r#"[{{"Config":"{hex}.json","Layers":["l/layer.tar"]}}]"#);
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(layer.len()), "l/layer.tar", &layer[..]).unwrap();
        b.append_data(&mut header(manifest.len()), "manifest.json", manifest.as_bytes()).unwrap();
        b.into_inner().unwrap()
    }

    fn saving(
        bytes: Vec<u8>,
        count: Arc<AtomicUsize>,
    ) -> impl FnOnce(PathBuf) -> std::future::Ready<Result<(), String>> {
        move |to| {
            count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(std::fs::write(to, bytes).map_err(|e| e.to_string()))
        }
    }

    #[tokio::test]
    async fn an_image_is_unpacked_once_for_askers_at_the_same_time_and_kept_across_an_open() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = ImageCache::open(dir.path(), 1 << 20).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let (a, b) = tokio::join!(
            cache.get(ID, saving(saved_archive(ID, "hi"), count.clone())),
            cache.get(ID, saving(saved_archive(ID, "hi"), count.clone()))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(count.load(Ordering::SeqCst), 1, "one save, one unpack");
        assert_eq!(a.root, b.root);
        assert_eq!(std::fs::read_to_string(a.root.join("etc/motd")).unwrap(), "hi");
        drop((a, b));
        let (again, opened) = ImageCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((opened.images, opened.bytes), (1, 2));
        let lease = again.get(ID, saving(Vec::new(), count.clone())).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1, "found whole at the open: not saved again");
        assert!(lease.root.join("etc/motd").is_file());
    }

    #[tokio::test]
    async fn what_a_crash_left_half_unpacked_is_removed_at_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let hex = ID.trim_start_matches("sha256:");
        std::fs::create_dir_all(dir.path().join(format!("{hex}.partial/root/etc"))).unwrap();
        std::fs::create_dir_all(dir.path().join(hex)).unwrap(); // no .done: not whole
        let (_, opened) = ImageCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(opened.images, 0);
        assert_eq!(opened.removed.len(), 2, "{opened:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_save_of_another_image_than_asked_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = ImageCache::open(dir.path(), 1 << 20).unwrap();
        let other = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        let count = Arc::new(AtomicUsize::new(0));
        let refused = cache.get(ID, saving(saved_archive(other, "x"), count.clone())).await;
        assert!(matches!(refused, Err(CacheError::Moved { .. })), "{:?}", refused.err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(matches!(cache.get("latest", saving(Vec::new(), count)).await, Err(CacheError::BadId(_))));
    }

    #[tokio::test]
    async fn over_its_bound_the_cache_removes_an_unused_image_but_never_a_held_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = ImageCache::open(dir.path(), 10).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let other = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
        let first = cache.get(ID, saving(saved_archive(ID, "123456"), count.clone())).await.unwrap();
        let first_root = first.root.clone();
        drop(first);
        let second = cache.get(other, saving(saved_archive(other, "abcdef"), count.clone())).await.unwrap();
        assert!(!first_root.exists(), "the unused first image made room for the second");
        assert!(second.root.join("etc/motd").is_file());
        // The held second one stays, though a third does not fit beside it.
        let third = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
        let refused = cache.get(third, saving(saved_archive(third, "0123456789"), count)).await;
        assert!(refused.is_err(), "no room while the second is held");
        assert!(second.root.join("etc/motd").is_file());
    }
}
