//! The image cache's decisions, sans IO: which image is ready, which is
//! being unpacked (so a second asker waits for the first instead of
//! unpacking again), which images in use hold their place, and which
//! unused ones go when the cache is over its size bound (least recently
//! used first). Time comes in as a tick the caller counts.

use std::collections::BTreeMap;

/// What an asker for an image is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// It is unpacked: use it (it is now held until [`CacheState::release`]).
    Ready,
    /// Nobody has it: unpack it, then say [`CacheState::unpacked`] or
    /// [`CacheState::failed`].
    Unpack,
    /// Another asker is unpacking it: wait, then ask again.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Unpacking,
    Ready { bytes: u64, users: usize, used: u64 },
}

/// The cache's images by id.
#[derive(Debug, Default)]
pub struct CacheState {
    max_bytes: u64,
    entries: BTreeMap<String, Entry>,
}

impl CacheState {
    pub fn new(max_bytes: u64) -> CacheState {
        CacheState { max_bytes, entries: BTreeMap::new() }
    }

    /// An image found unpacked at start-up.
    pub fn found(&mut self, id: &str, bytes: u64, tick: u64) {
        self.entries.insert(id.to_owned(), Entry::Ready { bytes, users: 0, used: tick });
    }

    /// Image `id` is asked for at `tick`.
    pub fn want(&mut self, id: &str, tick: u64) -> Want {
        match self.entries.get_mut(id) {
            Some(Entry::Ready { users, used, .. }) => {
                *users += 1;
                *used = tick;
                Want::Ready
            }
            Some(Entry::Unpacking) => Want::Wait,
            None => {
                self.entries.insert(id.to_owned(), Entry::Unpacking);
                Want::Unpack
            }
        }
    }

    /// The bytes an unpack may still write: the bound less what the ready
    /// images hold (unused ones may go to make room: see [`CacheState::unpacked`]).
    pub fn room(&self) -> u64 {
        let held: u64 = self
            .entries
            .values()
            .map(|e| match e {
                Entry::Ready { bytes, users, .. } if *users > 0 => *bytes,
                _ => 0,
            })
            .sum();
        self.max_bytes.saturating_sub(held)
    }

    /// Image `id` was unpacked (`bytes`) for the asker that unpacks it, who
    /// now holds it; returns the unused images to remove, least recently
    /// used first, to bring the cache within its bound.
    pub fn unpacked(&mut self, id: &str, bytes: u64, tick: u64) -> Vec<String> {
        self.entries.insert(id.to_owned(), Entry::Ready { bytes, users: 1, used: tick });
        self.evict()
    }

    /// Unpacking image `id` failed: the next asker tries again.
    pub fn failed(&mut self, id: &str) {
        if self.entries.get(id) == Some(&Entry::Unpacking) {
            self.entries.remove(id);
        }
    }

    /// One holder of image `id` is done with it; returns the images to
    /// remove now that it may go.
    pub fn release(&mut self, id: &str) -> Vec<String> {
        if let Some(Entry::Ready { users, .. }) = self.entries.get_mut(id) {
            *users = users.saturating_sub(1);
        }
        self.evict()
    }

    /// The bytes the ready images hold.
    pub fn bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::Ready { bytes, .. } => *bytes,
                Entry::Unpacking => 0,
            })
            .sum()
    }

    fn evict(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.bytes() > self.max_bytes {
            let oldest = self
                .entries
                .iter()
                .filter_map(|(id, e)| match e {
                    Entry::Ready { users: 0, used, .. } => Some((*used, id.clone())),
                    _ => None,
                })
                .min();
            let Some((_, id)) = oldest else { break };
            self.entries.remove(&id);
            out.push(id);
        }
        out
    }

    /// Whether image `id` is ready.
    pub fn is_ready(&self, id: &str) -> bool {
        matches!(self.entries.get(id), Some(Entry::Ready { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_asker_unpacks_the_next_waits_and_then_finds_it_ready() {
        let mut s = CacheState::new(100);
        assert_eq!(s.want("a", 1), Want::Unpack);
        assert_eq!(s.want("a", 2), Want::Wait);
        assert!(s.unpacked("a", 10, 3).is_empty());
        assert_eq!(s.want("a", 4), Want::Ready);
        assert_eq!(s.bytes(), 10);
    }

    #[test]
    fn a_failed_unpack_lets_the_next_asker_try_again() {
        let mut s = CacheState::new(100);
        assert_eq!(s.want("a", 1), Want::Unpack);
        s.failed("a");
        assert_eq!(s.want("a", 2), Want::Unpack);
    }

    #[test]
    fn over_the_bound_the_least_recently_used_unused_images_go_and_held_ones_stay() {
        let mut s = CacheState::new(25);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(s.want(id, i as u64), Want::Unpack);
            s.unpacked(id, 10, i as u64);
        }
        // All three are held: nothing can go, though the cache is over its bound.
        assert_eq!(s.bytes(), 30);
        // Released, b is the only unused one, and goes.
        assert_eq!(s.release("b"), vec!["b".to_owned()]);
        assert!(!s.is_ready("b"));
        assert_eq!(s.release("a"), Vec::<String>::new(), "within the bound again");
        assert!(s.is_ready("a") && s.is_ready("c"));
    }

    #[test]
    fn the_room_for_an_unpack_counts_only_images_in_use() {
        let mut s = CacheState::new(100);
        s.want("a", 1);
        s.unpacked("a", 30, 1);
        s.found("old", 50, 0);
        assert_eq!(s.room(), 70, "the unused image may be evicted to make room");
        s.release("a");
        assert_eq!(s.room(), 100);
    }

    #[test]
    fn an_image_found_at_start_up_is_ready_and_evictable() {
        let mut s = CacheState::new(10);
        s.found("a", 8, 0);
        assert_eq!(s.want("a", 1), Want::Ready);
        s.release("a");
        s.want("b", 2);
        assert_eq!(s.unpacked("b", 5, 2), vec!["a".to_owned()]);
    }
}
