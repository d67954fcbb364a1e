//! A runtime container's cgroup as berth reads it: where its files are on
//! cgroup v1 (one tree per controller) and v2 (one unified tree), and what
//! their text says (CPU time, peak memory, OOM kills). Paths and parsing
//! are pure; [`Layout::detect`] and [`Cgroup::read`] are the only reads.

use std::path::{Path, PathBuf};

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller under `root` (`memory/`, `cpuacct/`, `pids/`).
    V1 { root: PathBuf },
    /// The unified hierarchy at `root`.
    V2 { root: PathBuf },
}

/// The controllers berth's runtime containers are limited by.
pub const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "freezer", "blkio"];

impl Layout {
    /// The layout at `/sys/fs/cgroup`: v2 when its root has
    /// `cgroup.controllers`, v1 otherwise.
    pub fn detect() -> Layout {
        Layout::at(Path::new("/sys/fs/cgroup"))
    }

    pub fn at(root: &Path) -> Layout {
        if root.join("cgroup.controllers").is_file() {
            Layout::V2 { root: root.to_owned() }
        } else {
            Layout::V1 { root: root.to_owned() }
        }
    }

    /// The cgroup at `path` (as a runtime spec's `cgroupsPath` names it, `/a/b`).
    pub fn cgroup(&self, path: &str) -> Cgroup {
        Cgroup { layout: self.clone(), rel: path.trim_start_matches('/').to_owned() }
    }

    /// The folders of cgroup `path` in each hierarchy this host mounts
    /// (on v1, the controllers whose tree is there).
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::V1 { root } => V1_CONTROLLERS
                .iter()
                .map(|c| root.join(c))
                .filter(|tree| tree.is_dir())
                .map(|tree| tree.join(rel))
                .collect(),
            Layout::V2 { root } => vec![root.join(rel)],
        }
    }

    /// Makes cgroup `path` in every hierarchy with a memory limit of
    /// `memory` bytes and no swap: the cgroup berth keeps around a runtime
    /// that removes its own as its container ends (runsc), so the OOM
    /// kills and the peak are still there to read. On v2 the parent's
    /// `cgroup.subtree_control` is asked for the memory, pids and cpu
    /// controllers first.
    pub fn make_limited(&self, path: &str, memory: u64) -> std::io::Result<()> {
        let limit = memory.to_string();
        match self {
            Layout::V1 { root } => {
                for dir in self.dirs(path) {
                    std::fs::create_dir_all(&dir)?;
                }
                let mem = root.join("memory").join(path.trim_start_matches('/'));
                std::fs::write(mem.join("memory.limit_in_bytes"), &limit)?;
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    std::fs::write(memsw, &limit)?;
                }
                Ok(())
            }
            Layout::V2 { root } => {
                let dir = root.join(path.trim_start_matches('/'));
                let mut at = root.clone();
                for part in path.trim_start_matches('/').split('/') {
                    let _ = std::fs::write(at.join("cgroup.subtree_control"), "+memory +pids +cpu");
                    at = at.join(part);
                    std::fs::create_dir_all(&at)?;
                }
                std::fs::write(dir.join("memory.max"), &limit)?;
                std::fs::write(dir.join("memory.swap.max"), "0")
            }
        }
    }

    /// Removes cgroup `path` from every hierarchy (an empty one; gone is fine).
    pub fn remove(&self, path: &str) {
        for dir in self.dirs(path) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Removes cgroup `path` and every cgroup below it that is empty, the
    /// deepest first, from every hierarchy: what a berth (or a test of
    /// it) leaves of its parents once its containers are gone. A cgroup
    /// that still holds a process stays, and so do those above it.
    pub fn remove_empty(&self, path: &str) {
        fn below(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        below(&entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        for dir in self.dirs(path) {
            below(&dir);
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Layout::V1 { .. } => 1,
            Layout::V2 { .. } => 2,
        }
    }
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    layout: Layout,
    rel: String,
}

/// Which file says what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// CPU time: nanoseconds (v1 `cpuacct.usage`) or `usage_usec` of `cpu.stat` (v2).
    pub cpu: PathBuf,
    /// Memory in use now.
    pub memory: PathBuf,
    /// The highest memory use (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    pub peak: PathBuf,
    /// OOM kills (`oom_kill N` in v1 `memory.oom_control`, v2 `memory.events`).
    pub oom: PathBuf,
    pub pids: PathBuf,
}

/// What a cgroup said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    pub cpu_ns: u64,
    pub memory: Option<u64>,
    pub peak: Option<u64>,
    pub oom_kills: u64,
    pub pids: Option<u64>,
}

impl Cgroup {
    pub fn files(&self) -> Files {
        match &self.layout {
            Layout::V1 { root } => Files {
                cpu: root.join("cpuacct").join(&self.rel).join("cpuacct.usage"),
                memory: root.join("memory").join(&self.rel).join("memory.usage_in_bytes"),
                peak: root.join("memory").join(&self.rel).join("memory.max_usage_in_bytes"),
                oom: root.join("memory").join(&self.rel).join("memory.oom_control"),
                pids: root.join("pids").join(&self.rel).join("pids.current"),
            },
            Layout::V2 { root } => {
                let dir = root.join(&self.rel);
                Files {
                    cpu: dir.join("cpu.stat"),
                    memory: dir.join("memory.current"),
                    peak: dir.join("memory.peak"),
                    oom: dir.join("memory.events"),
                    pids: dir.join("pids.current"),
                }
            }
        }
    }

    /// Reads what the cgroup's files say; a missing file reads as nothing.
    pub fn read(&self) -> Reading {
        let files = self.files();
        let text = |p: &Path| std::fs::read_to_string(p).ok();
        let cpu = text(&files.cpu);
        let cpu_ns = match self.layout {
            Layout::V1 { .. } => cpu.as_deref().and_then(number).unwrap_or(0),
            Layout::V2 { .. } => cpu.as_deref().and_then(|t| keyed(t, "usage_usec")).unwrap_or(0).saturating_mul(1000),
        };
        let memory = text(&files.memory).as_deref().and_then(number);
        // Kernels before 5.19 have no memory.peak: the current use is the best there is.
        let peak = text(&files.peak).as_deref().and_then(number).or(memory);
        Reading {
            cpu_ns,
            memory,
            peak,
            oom_kills: text(&files.oom).as_deref().and_then(|t| keyed(t, "oom_kill")).unwrap_or(0),
            pids: text(&files.pids).as_deref().and_then(number),
        }
    }
}

/// A file holding one number.
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` per line).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_cgroup_reads_each_controller_from_its_own_tree() {
        let cg = Layout::V1 { root: "/sys/fs/cgroup".into() }.cgroup("/berth-oci/i1/c1");
        let f = cg.files();
        assert_eq!(f.cpu, PathBuf::from("/sys/fs/cgroup/cpuacct/berth-oci/i1/c1/cpuacct.usage"));
        assert_eq!(f.peak, PathBuf::from("/sys/fs/cgroup/memory/berth-oci/i1/c1/memory.max_usage_in_bytes"));
        assert_eq!(f.oom, PathBuf::from("/sys/fs/cgroup/memory/berth-oci/i1/c1/memory.oom_control"));
        assert_eq!(f.pids, PathBuf::from("/sys/fs/cgroup/pids/berth-oci/i1/c1/pids.current"));
    }

    #[test]
    fn a_v2_cgroup_reads_everything_from_one_folder() {
        let cg = Layout::V2 { root: "/sys/fs/cgroup".into() }.cgroup("berth-oci/i1/c1");
        let f = cg.files();
        assert_eq!(f.cpu, PathBuf::from("/sys/fs/cgroup/berth-oci/i1/c1/cpu.stat"));
        assert_eq!(f.peak, PathBuf::from("/sys/fs/cgroup/berth-oci/i1/c1/memory.peak"));
        assert_eq!(f.oom, PathBuf::from("/sys/fs/cgroup/berth-oci/i1/c1/memory.events"));
        assert_eq!(Layout::V2 { root: "/x".into() }.dirs("/a/b"), vec![PathBuf::from("/x/a/b")]);
    }

    #[test]
    fn oom_kills_are_read_from_v1_oom_control_and_v2_memory_events() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\noom_group_kill 0\n";
        assert_eq!((keyed(v1, "oom_kill"), keyed(v2, "oom_kill")), (Some(1), Some(2)));
        assert_eq!(keyed("usage_usec 1500\nuser_usec 1000\n", "usage_usec"), Some(1500));
        assert_eq!(keyed("oom_kill_disable 0\n", "oom_kill"), None);
    }

    #[test]
    fn a_v2_cgroup_in_a_folder_is_read_with_cpu_in_nanoseconds_and_peak_falling_back_to_current() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let cg_dir = dir.path().join("p/c");
        std::fs::create_dir_all(&cg_dir).unwrap();
        std::fs::write(cg_dir.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        std::fs::write(cg_dir.join("memory.current"), "4096\n").unwrap();
        std::fs::write(cg_dir.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        std::fs::write(cg_dir.join("pids.current"), "3\n").unwrap();
        let layout = Layout::at(dir.path());
        assert_eq!(layout.version(), 2);
        let r = layout.cgroup("/p/c").read();
        assert_eq!(r, Reading { cpu_ns: 2_500_000, memory: Some(4096), peak: Some(4096), oom_kills: 1, pids: Some(3) });
    }

    #[test]
    fn a_held_cgroup_on_v1_gets_its_memory_limit_and_no_swap_in_the_memory_tree() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpuacct"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        let layout = Layout::V1 { root: root.path().to_owned() };
        // The memory tree's files are there once the kernel made the folder.
        let mem = root.path().join("memory/p/c");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("memory.memsw.limit_in_bytes"), "").unwrap();
        layout.make_limited("/p/c", 64 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(), "67108864");
        assert_eq!(std::fs::read_to_string(mem.join("memory.memsw.limit_in_bytes")).unwrap(), "67108864");
        assert!(root.path().join("pids/p/c").is_dir() && root.path().join("cpuacct/p/c").is_dir());
        assert!(!root.path().join("blkio").exists(), "only the trees the host mounts");
    }

    #[test]
    fn a_held_cgroup_on_v2_asks_its_parents_for_the_controllers_and_sets_max_and_no_swap() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let layout = Layout::at(root.path());
        layout.make_limited("/p/c", 1 << 20).unwrap();
        let dir = root.path().join("p/c");
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap(), "1048576");
        assert_eq!(std::fs::read_to_string(dir.join("memory.swap.max")).unwrap(), "0");
        for parent in [root.path().to_owned(), root.path().join("p")] {
            let asked = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap();
            assert_eq!(asked, "+memory +pids +cpu");
        }
    }

    #[test]
    fn removing_what_is_left_takes_the_empty_cgroups_below_and_keeps_a_busy_one_with_its_parents() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let layout = Layout::at(root.path());
        std::fs::create_dir_all(root.path().join("p/i/runc/gone")).unwrap();
        std::fs::create_dir_all(root.path().join("p/i/runsc/busy")).unwrap();
        // A plain folder with a file will not go, as a cgroup with a process will not.
        std::fs::write(root.path().join("p/i/runsc/busy/cgroup.procs"), "42\n").unwrap();
        layout.remove_empty("/p/i");
        assert!(!root.path().join("p/i/runc").exists(), "the empty ones are gone");
        assert!(root.path().join("p/i/runsc/busy").is_dir(), "the busy one and its parents stay");
        std::fs::remove_file(root.path().join("p/i/runsc/busy/cgroup.procs")).unwrap();
        layout.remove_empty("/p/i");
        assert!(!root.path().join("p/i").exists() && root.path().join("p").is_dir(), "only from the path down");
    }
}
