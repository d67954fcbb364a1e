//! The `oci` backend: sealed runs (code runs, tool runs with no network)
//! run straight on an OCI runtime binary, with no daemon in their path.
//!
//! A create takes the image's root from the [`ImageCache`] (unpacked once
//! per image id from the engine's image store), renders the bundle as the
//! dry run does ([`crate::render`]) with that root read-only (or, for a
//! writable root, an overlay whose upper layer is a bounded tmpfs), tini
//! as process 1 and a cgroup under berth's parent, and writes it under the
//! backend's folder. A start runs `runtime run --keep` in the foreground
//! with the container's stdio on pipes: its exit status is the
//! container's, OOM kills and usage come from the cgroup before the
//! container is deleted. The lifecycle is kept in memory with the dry
//! run's state machine ([`crate::state`]); what a berth that died left
//! (runtime containers, bundles, overlays, cgroups) is removed by
//! [`Engine::sweep_leftovers`], at start-up and in every reaper round.

pub mod binary;
pub mod cgroup;
pub mod images;
pub mod output;
pub mod probe;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};

use self::binary::Binary;
use self::cgroup::{Cgroup, Layout};
use self::images::Images;
use self::output::{Kept, Sink};
use crate::cache::ImageCache;
use crate::fresh_id;
use crate::render::{self, ImageConfig};
use crate::runtime_spec::Mount;
use crate::state::{Phase, State, KILLED};
use berth_core::engine::{
    Backends, ByteStream, Capabilities, Engine, EngineError, ExecRequest, ExecSession, ExitWatch, Handle, ImageCommand,
    Isolation, LogRequest, LogStream, Placement, ProcessId, Selector, StdioSession, Stream, TtySize, Usage,
    UsageStream, WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use berth_core::spec::{ContainerId, ContainerSpec};

/// The backend's name.
pub const NAME: &str = "oci";

/// Where tini is bound in every container: `/dev` is a tmpfs of the
/// container's own, so the mount point never touches the shared root.
pub const INIT_PATH: &str = "/dev/init";

/// How long a container's pipes may stay open after its runtime exited
/// (a process that escaped the container's end) before berth stops reading.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How long a removal waits for a killed container to end.
const END_WAIT: Duration = Duration::from_secs(10);

/// The least pids limit of a run under a runtime that does not keep its
/// container (runsc): gVisor's own threads count against it, and under 64
/// the sandbox fails to start or crashes as it runs.
pub const RUNSC_PIDS_FLOOR: i64 = 64;

/// How the `oci` backend is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub binary: Binary,
    /// Bundles and overlays, one folder per container (berth's alone).
    pub bundles: PathBuf,
    /// The init bound as process 1 (`tini-static`).
    pub init: PathBuf,
    /// Bytes of each stream kept (berth's output cap and one more, so a
    /// cut is seen).
    pub output_cap: usize,
    /// The cgroup parent of this instance's containers (`/berth-oci/<instance>`).
    pub cgroup_parent: String,
    /// The bound of a writable root's upper layer.
    pub overlay_bytes: u64,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ended {
    code: i64,
    oom: bool,
    /// What went wrong with the runtime itself, when something did: the
    /// exit code is then not the container's.
    fault: Option<Fault>,
}

/// The runtime's own failure on a run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// It ended by this signal (killed mid-run).
    Killed(i32),
    /// It could not run the container, and said why in its log.
    Failed(String),
}

/// A container's live parts beside its state.
struct Live {
    bundle: PathBuf,
    /// Held so the cache keeps the root while the container lives.
    _lease: crate::cache::Lease,
    overlay: bool,
    cgroup: Cgroup,
    kept: Arc<Mutex<Kept>>,
    /// Counts the pieces of output kept, so a follower wakes for each.
    grown: watch::Sender<u64>,
    ended: watch::Sender<Option<Ended>>,
    last: Option<Usage>,
}

struct Inner {
    state: State,
    live: BTreeMap<ContainerId, Live>,
    /// Containers whose bundle is being written: the leftover sweep
    /// leaves their folders and cgroups alone.
    creating: std::collections::BTreeSet<ContainerId>,
}

/// The `oci` backend.
pub struct OciRuntime {
    config: RuntimeConfig,
    /// Where the roots come from.
    images: Images,
    cache: Arc<ImageCache>,
    layout: Layout,
    inner: Mutex<Inner>,
    events: broadcast::Sender<WorkloadEvent>,
    /// Itself, for the tasks a launch leaves behind.
    me: std::sync::Weak<OciRuntime>,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |e| EngineError::failed(format!("{what}: {e}")).with_source(e)
}

impl OciRuntime {
    /// The backend over `config`, its roots from `images` into `cache`.
    pub fn new(config: RuntimeConfig, images: impl Into<Images>, cache: Arc<ImageCache>) -> Arc<Self> {
        let images = images.into();
        Arc::new_cyclic(|me| OciRuntime {
            config,
            images,
            cache,
            layout: Layout::detect(),
            inner: Mutex::new(Inner { state: State::default(), live: BTreeMap::new(), creating: Default::default() }),
            events: broadcast::channel(256).0,
            me: me.clone(),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, id: &ContainerId, spec: &ContainerSpec, action: &str, exit: Option<i64>) {
        let mut attributes = spec.labels.clone();
        attributes.insert("name".into(), spec.name.clone());
        attributes.insert("image".into(), spec.image.clone());
        if let Some(code) = exit {
            attributes.insert("exitCode".into(), code.to_string());
        }
        let _ = self.events.send(WorkloadEvent {
            handle: Handle { id: id.clone(), placement: Placement::Local },
            action: action.into(),
            attributes,
        });
    }

    /// The cgroup berth reads of container `id` (and removes at the end).
    fn cgroup_path(&self, id: &str) -> String {
        format!("{}/{id}", self.config.cgroup_parent.trim_end_matches('/'))
    }

    /// The cgroup the bundle names: berth's own for a runtime that keeps
    /// its container, else a child of it (the runtime removes its own as
    /// the container ends; berth's, holding the memory limit, stays).
    fn runtime_cgroup_path(&self, id: &str) -> String {
        if self.config.binary.keep {
            self.cgroup_path(id)
        } else {
            format!("{}/sandbox", self.cgroup_path(id))
        }
    }

    /// The image's root, from the cache (unpacked from its source when it
    /// is not there), and its config.
    async fn root(&self, image: &str) -> Result<(crate::cache::Lease, ImageConfig), EngineError> {
        let found = self.images.find(image, &self.config.bundles).await?;
        let config = found.config.clone();
        let lease = found.root(&self.cache, image).await?;
        Ok((lease, config))
    }

    /// Writes container `id`'s bundle for `spec` over the image's root.
    fn write_bundle(
        &self,
        spec: &ContainerSpec,
        id: &str,
        image: &ImageConfig,
        root: &Path,
        dir: &Path,
    ) -> Result<bool, EngineError> {
        let mut bundle =
            render::render(spec, id, Some(image)).map_err(|e| EngineError::invalid(format!("{}: {e}", spec.name)))?;
        bundle.config.linux.cgroups_path = self.runtime_cgroup_path(id);
        if !self.config.binary.keep {
            // The limit is on berth's cgroup around the runtime's, so the
            // OOM kill is counted where it is still there to read.
            self.layout
                .make_limited(&self.cgroup_path(id), spec.limits.memory.bytes())
                .map_err(|e| EngineError::failed(format!("{}: the cgroup: {e}", spec.name)).with_source(e))?;
            bundle.config.linux.resources.memory.limit = -1;
            bundle.config.linux.resources.memory.swap = -1;
            // Under gVisor a pids limit this low stops the sandbox starting.
            bundle.config.linux.resources.pids.limit = bundle.config.linux.resources.pids.limit.max(RUNSC_PIDS_FLOOR);
        }
        // tini as process 1: it reaps what the command leaves and hands its
        // exit (128 + the signal when killed) on as the container's.
        bundle.config.mounts.push(Mount {
            destination: INIT_PATH.into(),
            kind: "bind".into(),
            source: self.config.init.display().to_string(),
            options: vec!["bind".into(), "ro".into(), "nosuid".into(), "nodev".into()],
        });
        let mut args = vec![INIT_PATH.to_owned(), "--".to_owned()];
        args.append(&mut bundle.config.process.args);
        bundle.config.process.args = args;
        crate::bundle::write(dir, &bundle).map_err(|e| EngineError::failed(e.to_string()).with_source(e))?;
        let rootfs = dir.join(&bundle.note.rootfs);
        let overlay = !spec.read_only_root;
        if overlay {
            mount_overlay(root, dir, &rootfs, self.config.overlay_bytes)?;
            bundle.config.root.path = rootfs.display().to_string();
        } else {
            bundle.config.root.path = root.display().to_string();
            bundle.config.root.readonly = true;
        }
        // Written again with the root it runs on.
        let text = serde_json::to_string_pretty(&bundle.config)
            .map_err(|e| EngineError::failed(e.to_string()).with_source(e))?;
        std::fs::write(dir.join("config.json"), text).map_err(io_err("config.json"))?;
        Ok(overlay)
    }

    /// Starts container `h` under the runtime; its stdin piped when `attach`.
    async fn launch(self: &Arc<Self>, h: &Handle, attach: bool) -> Result<Launched, EngineError> {
        let (bundle, kept, grown, ended_tx, cgroup) = {
            let mut inner = self.inner();
            inner.state.start(&h.id.0)?;
            let live = inner.live.get(&h.id).ok_or_else(|| EngineError::not_found(h.id.0.clone()))?;
            (live.bundle.clone(), live.kept.clone(), live.grown.clone(), live.ended.clone(), live.cgroup.clone())
        };
        let mut cmd = self.config.binary.run(&bundle, &h.id.0);
        cmd.stdin(if attach { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = self.inner().state.exit(&h.id.0, 127);
                let _ = ended_tx.send(Some(Ended { code: 127, oom: false, fault: None }));
                return Err(EngineError::unavailable(format!("{}: {e}", self.config.binary.name)).with_source(e));
            }
        };
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (live_tx, live_rx) = mpsc::channel(64);
        let sink = |_: Stream| Sink {
            kept: kept.clone(),
            cap: self.config.output_cap,
            grown: grown.clone(),
            live: attach.then(|| live_tx.clone()),
        };
        let readers = [
            stdout.map(|p| tokio::spawn(output::drain(p, Stream::Stdout, sink(Stream::Stdout)))),
            stderr.map(|p| tokio::spawn(output::drain(p, Stream::Stderr, sink(Stream::Stderr)))),
        ];
        drop(live_tx);
        let (cid, spec) = {
            let inner = self.inner();
            let c = inner.state.container(&h.id.0)?;
            (c.id.clone(), c.spec.clone())
        };
        self.emit(&cid, &spec, "start", None);
        let this = self.clone();
        let id = h.id.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            for reader in readers.into_iter().flatten() {
                let _ = tokio::time::timeout(PIPE_GRACE, reader).await;
            }
            use std::os::unix::process::ExitStatusExt;
            // runc hands on the container's end as its own exit code (128
            // + the signal when it was killed); runc itself ending by a
            // signal means it was killed, whatever became of the container.
            let (code, mut fault) = match status {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => (i64::from(code), None),
                    (None, Some(sig)) => (128 + i64::from(sig), Some(Fault::Killed(sig))),
                    (None, None) => (KILLED, None),
                },
                Err(_) => (KILLED, None),
            };
            if fault.is_none() && this.config.binary.json_log {
                fault = this.runtime_failure(&bundle, &kept).map(Fault::Failed);
            }
            let reading = cgroup.read();
            let ended = Ended { code, oom: reading.oom_kills > 0, fault };
            let usage = usage_of(reading, spec.limits.memory.bytes());
            {
                let mut inner = this.inner();
                let _ = inner.state.exit(&id.0, code);
                if let Some(live) = inner.live.get_mut(&id) {
                    live.last = Some(usage);
                }
            }
            if ended.oom {
                this.emit(&cid, &spec, "oom", None);
            }
            this.emit(&cid, &spec, "die", Some(code));
            let _ = ended_tx.send(Some(ended));
        });
        Ok(Launched { stdin, output: live_rx })
    }

    /// Why the runtime could not run the container of `bundle`, from its
    /// log; the same line, which it also writes to the container's stderr,
    /// taken off the kept output.
    fn runtime_failure(&self, bundle: &Path, kept: &Mutex<Kept>) -> Option<String> {
        use std::io::Read;
        let mut log = String::new();
        let file = std::fs::File::open(bundle.join(binary::RUN_LOG)).ok()?;
        file.take(binary::RUN_LOG_BOUND).read_to_string(&mut log).ok()?;
        let why = binary::runtime_error(&log)?;
        let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
        let said = format!("{why}\n");
        if kept.stderr.ends_with(said.as_bytes()) {
            let keep = kept.stderr.len() - said.len();
            kept.stderr.truncate(keep);
        }
        Some(why)
    }

    /// Waits until container `id` has ended (or `bound` passed).
    async fn ended(&self, id: &ContainerId, bound: Duration) -> Option<Ended> {
        let mut rx = self.inner().live.get(id)?.ended.subscribe();
        let ended = match tokio::time::timeout(bound, rx.wait_for(Option::is_some)).await {
            Ok(Ok(ended)) => ended.clone(),
            _ => None,
        };
        ended
    }

    fn watch_exit(&self, id: &ContainerId) -> Result<ExitWatch, EngineError> {
        let mut rx = self.inner().live.get(id).ok_or_else(|| EngineError::not_found(id.0.clone()))?.ended.subscribe();
        let id = id.0.clone();
        Ok(Box::pin(async move {
            let ended = rx.wait_for(Option::is_some).await.map(|e| e.clone());
            match ended {
                Ok(Some(Ended { fault: Some(Fault::Killed(sig)), .. })) => {
                    Err(EngineError::failed(format!("the runtime was killed by signal {sig} while container {id} ran")))
                }
                Ok(Some(Ended { fault: Some(Fault::Failed(why)), .. })) => {
                    Err(EngineError::failed(format!("the runtime could not run container {id}: {why}")))
                }
                Ok(ended) => Ok(ended.map_or(KILLED, |e| e.code)),
                Err(_) => Err(EngineError::not_found(format!("container {id} was removed while it ran"))),
            }
        }))
    }

    fn is_running(&self, id: &ContainerId) -> Result<bool, EngineError> {
        Ok(self.inner().state.container(&id.0)?.phase == Phase::Running)
    }

    /// Kills container `id`: SIGKILL through the runtime, and when the
    /// runtime does not answer, its forced delete.
    async fn kill_now(&self, id: &ContainerId) -> Result<(), EngineError> {
        if !self.is_running(id)? {
            return Ok(());
        }
        match self.config.binary.kill(&id.0, "KILL").await {
            Ok(()) => Ok(()),
            // Ended between the look and the kill.
            Err(e) if e.is_not_found() || e.kind() == berth_core::engine::EngineErrorKind::Conflict => Ok(()),
            Err(e) => {
                tracing::warn!(id = %id, %e, "the runtime's kill failed: deleting the container by force");
                self.config.binary.delete(&id.0).await.or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
            }
        }
    }

    fn sample(&self, id: &ContainerId) -> Result<Usage, EngineError> {
        let inner = self.inner();
        let c = inner.state.container(&id.0)?;
        let live = inner.live.get(&c.id).ok_or_else(|| EngineError::not_found(id.0.clone()))?;
        if let Some(last) = &live.last {
            return Ok(last.clone());
        }
        Ok(usage_of(live.cgroup.read(), c.spec.limits.memory.bytes()))
    }

    /// Removes the runtime container, the overlay and the bundle of a
    /// container berth no longer knows or has finished with.
    async fn tear_down(&self, id: &str, bundle: &Path, overlay: bool) -> Result<(), EngineError> {
        match self.config.binary.delete(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        if overlay {
            unmount_overlay(bundle);
        }
        // The runtime removes its own; one it left (a runtime killed
        // mid-way) is empty, and berth's around it goes last.
        self.layout.remove(&self.runtime_cgroup_path(id));
        self.layout.remove(&self.cgroup_path(id));
        crate::bundle::remove(bundle).map_err(|e| EngineError::failed(e.to_string()).with_source(e))
    }
}

/// What a launch hands out for an attached start.
struct Launched {
    stdin: Option<tokio::process::ChildStdin>,
    output: mpsc::Receiver<berth_core::engine::LogChunk>,
}

fn usage_of(r: cgroup::Reading, limit: u64) -> Usage {
    Usage {
        cpu_percent: None,
        cpu_time_ns: r.cpu_ns,
        memory_used: r.memory,
        memory_peak: r.peak,
        memory_limit: Some(limit),
        net_rx: 0,
        net_tx: 0,
        block_read: 0,
        block_write: 0,
        pids: r.pids,
    }
}

/// Mounts a writable root at `rootfs`: an overlay of the shared `lower`
/// root under an upper layer in a tmpfs of `bytes` at `<dir>/upper`.
fn mount_overlay(lower: &Path, dir: &Path, rootfs: &Path, bytes: u64) -> Result<(), EngineError> {
    use nix::mount::{mount, MsFlags};
    let scratch = dir.join("upper");
    std::fs::create_dir_all(&scratch).map_err(io_err("overlay scratch"))?;
    let size = format!("size={bytes},mode=0700");
    mount(Some("tmpfs"), &scratch, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(size.as_str()))
        .map_err(|e| EngineError::failed(format!("the overlay's tmpfs: {e}")).with_source(e))?;
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    std::fs::create_dir_all(&upper).map_err(io_err("overlay upper"))?;
    std::fs::create_dir_all(&work).map_err(io_err("overlay work"))?;
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    if let Err(e) = mount(Some("overlay"), rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str())) {
        let _ = nix::mount::umount2(&scratch, nix::mount::MntFlags::MNT_DETACH);
        return Err(EngineError::failed(format!("the overlay root: {e}")).with_source(e));
    }
    Ok(())
}

/// Unmounts what [`mount_overlay`] mounted under `dir` (gone is fine).
fn unmount_overlay(dir: &Path) {
    use nix::mount::{umount2, MntFlags};
    for path in [dir.join(crate::render::ROOTFS), dir.join("upper")] {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
    }
}

/// Whether anything is mounted at or below `dir` (from `/proc/self/mountinfo`).
fn mounted_below(dir: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.display().to_string();
    text.lines().filter_map(|l| l.split(' ').nth(4)).any(|point| point.starts_with(&dir))
}

#[async_trait]
impl Engine for OciRuntime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn runtime(&self) -> &str {
        self.config.binary.name
    }

    /// Attach before start (warm pools) and followed logs, nothing else:
    /// no exec, no networks, no ports, no pause.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            attach_before_start: true,
            attach_replays: false,
            follow_logs: true,
            interactive_exec: false,
            tty: false,
            pause: false,
            host_ports: false,
            plans: false,
            isolation: false,
        }
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.config.binary.version().await.map(drop)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        match &self.images.engine {
            Some(engine) if !self.images.beyond_engine() => engine.ensure_image(image).await,
            _ => self.root(image).await.map(drop),
        }
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        let found = self.images.find(image, &self.config.bundles).await?;
        Ok(ImageCommand { entrypoint: found.config.entrypoint, cmd: found.config.cmd })
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        if !Backends::is_sealed(spec) {
            return Err(EngineError::invalid(format!(
                "{}: the oci backend runs only code and tool runs with no network and no ports",
                spec.name
            )));
        }
        if spec.tty || !spec.binds.is_empty() && spec.binds.iter().any(|b| !Path::new(&b.host).is_absolute()) {
            return Err(EngineError::invalid(format!(
                "{}: a terminal or a relative bind is not for the oci backend",
                spec.name
            )));
        }
        let (lease, image) = self.root(&spec.image).await?;
        let id = ContainerId(fresh_id());
        let dir = self.config.bundles.join(&id.0);
        // The name and id are taken first (a name in use is refused before
        // anything is written), and the sweep is told to keep off.
        {
            let mut inner = self.inner();
            inner.state.create(id.clone(), spec.clone())?;
            inner.creating.insert(id.clone());
        }
        let written = self.write_bundle(spec, &id.0, &image, &lease.root, &dir);
        let overlay = match written {
            Ok(overlay) => overlay,
            Err(e) => {
                unmount_overlay(&dir);
                let _ = crate::bundle::remove(&dir);
                self.layout.remove(&self.runtime_cgroup_path(&id.0));
                self.layout.remove(&self.cgroup_path(&id.0));
                let mut inner = self.inner();
                inner.creating.remove(&id);
                let _ = inner.state.remove(&id.0, true);
                return Err(e);
            }
        };
        {
            let mut inner = self.inner();
            inner.creating.remove(&id);
            inner.live.insert(
                id.clone(),
                Live {
                    bundle: dir,
                    _lease: lease,
                    overlay,
                    cgroup: self.layout.cgroup(&self.cgroup_path(&id.0)),
                    kept: Arc::default(),
                    grown: watch::channel(0).0,
                    ended: watch::channel(None).0,
                    last: None,
                },
            );
        }
        self.emit(&id, spec, "create", None);
        Ok(Handle { id, placement: Placement::Local })
    }

    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        self.arc()?.launch(h, false).await.map(drop)
    }

    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        let exit = self.watch_exit(&h.id)?;
        self.arc()?.launch(h, false).await?;
        Ok(exit)
    }

    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let exit = self.watch_exit(&h.id)?;
        let launched = self.arc()?.launch(h, true).await?;
        let output = futures_util::stream::unfold(launched.output, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok(chunk), rx))
        })
        .boxed();
        let stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = Box::pin(output::Stdin(launched.stdin));
        Ok(StdioSession { output, stdin, exit })
    }

    async fn stop(&self, h: &Handle, grace: Duration) -> Result<(), EngineError> {
        if !self.is_running(&h.id)? {
            return Ok(());
        }
        match self.config.binary.kill(&h.id.0, "TERM").await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => tracing::warn!(id = %h.id, %e, "SIGTERM through the runtime failed"),
        }
        if self.ended(&h.id, grace).await.is_none() {
            self.kill_now(&h.id).await?;
        }
        Ok(())
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        self.kill_now(&h.id).await
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend does not pause")))
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend does not pause")))
    }

    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        let running = self.is_running(&h.id)?;
        if running && !force {
            return Err(EngineError::conflict(format!("container {} is running: stop it or force the removal", h.id)));
        }
        if running {
            self.kill_now(&h.id).await?;
            if self.ended(&h.id, END_WAIT).await.is_none() {
                tracing::warn!(id = %h.id, "a killed container did not end: deleting it by force");
            }
        }
        let (bundle, overlay) = {
            let inner = self.inner();
            let live = inner.live.get(&h.id).ok_or_else(|| EngineError::not_found(h.id.0.clone()))?;
            (live.bundle.clone(), live.overlay)
        };
        self.tear_down(&h.id.0, &bundle, overlay).await?;
        let removed = {
            let mut inner = self.inner();
            inner.live.remove(&h.id);
            inner.state.remove(&h.id.0, true)?
        };
        self.emit(&removed.id, &removed.spec, "destroy", None);
        Ok(())
    }

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        let inner = self.inner();
        let c = inner.state.container(&h.id.0)?;
        let ended = inner.live.get(&c.id).and_then(|l| l.ended.borrow().clone());
        Ok(WorkloadState {
            phase: c.phase.engine_phase(),
            health: None,
            // The runtime's own failure leaves no exit code of the container's.
            exit_code: match c.phase {
                _ if ended.as_ref().is_some_and(|e| e.fault.is_some()) => None,
                Phase::Exited { code } => Some(code),
                Phase::Created | Phase::Running => Some(0),
            },
            oom_killed: ended.is_some_and(|e| e.oom),
            health_log: vec![],
            labels: c.spec.labels.clone(),
            annotations: c.spec.annotations.clone(),
            name: c.spec.name.clone(),
            placement: None,
        })
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        Ok(self.inner().state.list(selector))
    }

    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        Ok(berth_core::engine::events::matching(self.events.subscribe(), selector.clone()))
    }

    fn io(&self, _h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        None
    }

    /// Runtime containers in berth's state root, bundles under its folder
    /// and cgroups under its parent that no container of this backend owns:
    /// killed, unmounted and removed.
    async fn sweep_leftovers(&self) -> Result<usize, EngineError> {
        let known: std::collections::BTreeSet<String> = {
            let inner = self.inner();
            inner.live.keys().chain(&inner.creating).map(|id| id.0.clone()).collect()
        };
        let mut gone = std::collections::BTreeSet::new();
        for id in self.config.binary.list().await? {
            if !known.contains(&id) {
                self.config.binary.delete(&id).await.or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })?;
                gone.insert(id);
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.config.bundles) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if !known.contains(&id) {
                    let dir = entry.path();
                    if mounted_below(&dir) {
                        unmount_overlay(&dir);
                    }
                    crate::bundle::remove(&dir).map_err(|e| EngineError::failed(e.to_string()).with_source(e))?;
                    gone.insert(id);
                }
            }
        }
        for parent in self.layout.dirs(&self.config.cgroup_parent) {
            let Ok(entries) = std::fs::read_dir(&parent) else { continue };
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && !known.contains(&id) {
                    let _ = std::fs::remove_dir(entry.path().join("sandbox"));
                    if std::fs::remove_dir(entry.path()).is_ok() {
                        gone.insert(id);
                    }
                }
            }
        }
        Ok(gone.len())
    }
}

impl OciRuntime {
    /// The `Arc` this backend lives in (the launch's waiter keeps one).
    fn arc(&self) -> Result<Arc<Self>, EngineError> {
        self.me.upgrade().ok_or_else(|| EngineError::unavailable("the oci backend is shutting down"))
    }
}

#[async_trait]
impl WorkloadIo for OciRuntime {
    /// What the container wrote, kept to the output bound: what was kept
    /// so far (`tail=0`: nothing); followed, then each piece as it is kept
    /// until the container has ended and its pipes are read, or it is
    /// removed. Output past the bound is neither kept nor followed.
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
        let (kept, grown, ended) = {
            let inner = self.inner();
            let c = inner.state.container(&h.id.0)?;
            let live = inner.live.get(&c.id).ok_or_else(|| EngineError::not_found(h.id.0.clone()))?;
            (live.kept.clone(), live.grown.subscribe(), live.ended.subscribe())
        };
        let since = |kept: &Mutex<Kept>, from| kept.lock().unwrap_or_else(|p| p.into_inner()).since(from);
        let from = if request.tail == Some(0) { kept.lock().unwrap_or_else(|p| p.into_inner()).ends() } else { [0, 0] };
        if !request.follow {
            return Ok(futures_util::stream::iter(since(&kept, from).0.into_iter().map(Ok)).boxed());
        }
        let followed = futures_util::stream::unfold(
            (kept, grown, ended, from, false),
            move |(kept, mut grown, mut ended, from, done)| async move {
                if done {
                    return None;
                }
                // A sender gone means the container was removed: what was kept is all there is.
                let mut removed = false;
                loop {
                    // Whether it had ended is asked before the read: its pipes are read by then.
                    let over = removed || ended.borrow_and_update().is_some();
                    let (chunks, to) = since(&kept, from);
                    if !chunks.is_empty() || over {
                        return Some((chunks, (kept, grown, ended, to, over)));
                    }
                    removed = !tokio::select! {
                        changed = grown.changed() => changed.is_ok(),
                        changed = ended.changed() => changed.is_ok(),
                    };
                }
            },
        );
        Ok(followed.flat_map(|chunks| futures_util::stream::iter(chunks.into_iter().map(Ok))).boxed())
    }

    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        self.sample(&h.id)
    }

    /// A sample now, one a second while it runs, and the last one (read
    /// from its cgroup as it ended) at its end.
    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        let first = self.sample(&h.id)?;
        let rx = {
            let inner = self.inner();
            inner.live.get(&h.id).ok_or_else(|| EngineError::not_found(h.id.0.clone()))?.ended.subscribe()
        };
        let this = self.arc()?;
        let id = h.id.clone();
        let rest = futures_util::stream::unfold((rx, false), move |(mut rx, done)| {
            let this = this.clone();
            let id = id.clone();
            async move {
                if done {
                    return None;
                }
                let over = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(Option::is_some)).await.is_ok();
                this.sample(&id).ok().map(|u| (u, (rx, over)))
            }
        });
        Ok(futures_util::stream::iter([first]).chain(rest).boxed())
    }

    async fn exec(&self, h: &Handle, _request: &ExecRequest) -> Result<ExecSession, EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend runs no processes beside a run's own")))
    }

    async fn resize(&self, h: &Handle, _process: &ProcessId, _size: TtySize) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend has no terminals")))
    }

    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend attaches only before the start")))
    }

    async fn put_files(&self, h: &Handle, _dir: &str, _tar: ByteStream) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend copies no files in")))
    }

    async fn get_files(&self, h: &Handle, _path: &str) -> Result<ByteStream, EngineError> {
        Err(EngineError::invalid(format!("{h}: the oci backend copies no files out")))
    }
}
