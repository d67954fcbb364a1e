//! Workspace sandboxes: long-lived containers from a template, with
//! files, processes and terminals reached through berth's helper inside
//! each (see [`link`]), a lifetime that refreshes and pauses, and an end
//! that says why.
//!
//! The helper (`berth-sandboxd`, a static binary) arrives by the engine:
//! it is copied into the made container as a tar archive before the
//! container starts, and it is the container's first process. berth
//! attaches to its stdio before starting it, so nothing it says is lost
//! and no network or engine exec is needed afterwards. An engine that
//! starts a workload as it places it (the swarm) cannot wait for that:
//! there the container's first process is a shell that waits for the
//! helper's archive to be complete and then becomes the helper, and berth
//! attaches before it copies the archive in, so again nothing is lost
//! (such a sandbox's image needs `sh`).

pub mod link;
pub mod spares;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_sandbox_wire::{ErrorKind as HelperErrorKind, Reply, Request};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use self::link::{Link, LinkDown, ProcessEvent};
pub use self::template::Template;
use crate::context::Context;
use crate::engine::{Engine, EngineError, GoneIsDone, Phase, Selector};
use crate::model::ids::{Clock, IdSource};
use crate::model::sandbox::{EndReason, SandboxRecord, SandboxState, StartPath};
use crate::model::units::ByteSize;
use crate::policy::{check_expiry, ContainerRequest, NetworkRequest, Policy, PolicyViolation};
use crate::spec::{annotations, engine_name, labels, Kind};
use crate::store::{Inserted, Store, StoreError};
/// The helper's words, as the front ends need them.
pub use berth_sandbox_wire::{Entry, EntryType, Process, PtySize, Spawn, StreamName, WatchEvent, WatchEventType};

/// The store's kind for sandbox records.
pub const RECORD_KIND: &str = "sandbox";
/// Where the helper lives in every sandbox.
pub const HELPER_PATH: &str = "/.berth/sandboxd";
/// The file the helper's archive ends with: once it is there, the helper
/// before it is complete.
pub const HELPER_COPIED: &str = "/.berth/copied";
/// The first process of a sandbox on an engine that starts it as placed:
/// it waits for the helper's archive (bounded by the hello's wait, after
/// which the sandbox is removed) and becomes the helper.
const AWAIT_HELPER: &str = "until [ -e /.berth/copied ]; do sleep 0.05; done; exec /.berth/sandboxd";
/// How long a new sandbox's helper has to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(15);

/// What serving sandboxes needs beyond the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Template name → what a sandbox of it is.
    pub templates: BTreeMap<String, Template>,
    /// The helper binary placed in each sandbox; without it no sandbox is made.
    pub helper: Option<Arc<Vec<u8>>>,
    /// The timeout of a sandbox that asks for none.
    pub default_timeout: Duration,
    /// The longest timeout a sandbox may ask for (or refresh to).
    pub max_timeout: Duration,
    /// A paused sandbox is removed after this long.
    pub max_paused: Duration,
    /// Sandboxes not ended, per tenant.
    pub max_per_tenant: usize,
    /// Processes running at once over all of a tenant's sandboxes (those
    /// berth started or followed since it started; each sandbox's pids
    /// limit bounds the rest).
    pub max_processes_per_tenant: usize,
    /// Directory watches at once over all of a tenant's sandboxes.
    pub max_watchers_per_tenant: usize,
    /// The largest file read or written in one piece.
    pub max_file_bytes: ByteSize,
    /// Output kept of a command run to its end, per stream.
    pub output_cap: usize,
    /// Template name → spares kept ready (see [`spares`]); none by default.
    pub spares: BTreeMap<String, usize>,
    /// How long a spare waits for a sandbox before it is replaced.
    pub spare_idle: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            templates: BTreeMap::from([("base".to_owned(), Template::base())]),
            helper: None,
            default_timeout: Duration::from_secs(300),
            max_timeout: Duration::from_secs(24 * 3600),
            max_paused: Duration::from_secs(7 * 24 * 3600),
            max_per_tenant: 20,
            max_processes_per_tenant: 256,
            max_watchers_per_tenant: 64,
            max_file_bytes: ByteSize::mib(100),
            output_cap: 1024 * 1024,
            spares: BTreeMap::new(),
            spare_idle: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no such sandbox: {0}")]
    NotFound(String),
    #[error("nothing listens on port {0} in the sandbox")]
    PortClosed(u16),
    #[error("no process {0} in the sandbox")]
    NoProcess(u32),
    #[error("the access token does not open this sandbox")]
    BadToken,
    #[error("unknown template {0:?} (known: {1})")]
    UnknownTemplate(String, String),
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error("{0}")]
    Invalid(String),
    #[error("sandbox {id} is {state}")]
    NotRunning { id: String, state: &'static str },
    #[error("the {0} backend cannot pause a sandbox")]
    NoPause(&'static str),
    #[error("a tenant may have at most {0} sandboxes")]
    TooMany(usize),
    #[error("a tenant may have at most {0} processes running in its sandboxes")]
    TooManyProcesses(usize),
    #[error("a tenant may have at most {0} directory watches in its sandboxes")]
    TooManyWatchers(usize),
    #[error("sandboxes need berth's helper binary (the setting sandbox_helper, BERTH_SANDBOX_HELPER)")]
    NoHelper,
    #[error("the {0} backend cannot run sandboxes (it cannot attach to a workload before its helper speaks)")]
    Unsupported(&'static str),
    #[error("{message}")]
    Helper { kind: HelperErrorKind, message: String },
    #[error(transparent)]
    Link(#[from] LinkDown),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The links to sandboxes' helpers, by sandbox id, with their tenants.
#[derive(Default)]
struct Links(HashMap<String, (String, Arc<Link>)>);

/// What a tenant's sandboxes hold now, as their links know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Load {
    processes: usize,
    watchers: usize,
}

impl Links {
    fn insert(&mut self, id: &str, tenant: &str, link: Arc<Link>) {
        self.0.insert(id.to_owned(), (tenant.to_owned(), link));
    }

    fn get(&self, id: &str) -> Option<Arc<Link>> {
        self.0.get(id).map(|(_, link)| link.clone())
    }

    fn remove(&mut self, id: &str) {
        self.0.remove(id);
    }

    fn load(&self, tenant: &str) -> Load {
        let mine = self.0.values().filter(|(t, link)| t == tenant && !link.is_down());
        mine.fold(Load { processes: 0, watchers: 0 }, |acc, (_, link)| Load {
            processes: acc.processes + link.running_count(),
            watchers: acc.watchers + link.watch_count(),
        })
    }
}

/// What a client asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxRequest {
    pub tenant: String,
    pub template: String,
    pub timeout: Option<Duration>,
    pub metadata: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// None by default; a named network (a session's) or the bridge.
    pub network: NetworkRequest,
}

/// A command's outcome once it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct Sandboxes {
    backend: Arc<dyn Engine>,
    policy: Policy,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
    config: SandboxConfig,
    links: Mutex<Links>,
    spares: Mutex<spares::SparePool>,
    /// Wakes the task that tends the spares (one was taken).
    spare_wake: tokio::sync::Notify,
}

impl Sandboxes {
    pub fn new(ctx: &Context, config: SandboxConfig) -> Self {
        let mut sizes = config.spares.clone();
        sizes.retain(|name, _| {
            let known = config.templates.contains_key(name);
            if !known {
                tracing::error!(template = %name, "spares of an unknown template are not kept");
            }
            known
        });
        Sandboxes {
            spares: Mutex::new(spares::SparePool::new(&sizes)),
            spare_wake: tokio::sync::Notify::new(),
            backend: ctx.engine(Kind::Sandbox),
            policy: ctx.policy.clone(),
            store: ctx.store.clone(),
            ids: ctx.ids.clone(),
            clock: ctx.clock.clone(),
            config,
            links: Mutex::new(Links::default()),
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    fn save(&self, r: &SandboxRecord) -> Result<(), SandboxError> {
        Ok(self.store.put_object(&r.id, RECORD_KIND, &r.tenant, None, r)?)
    }

    fn after(&self, d: Duration) -> DateTime<Utc> {
        crate::lifetime::reaper::expiry_after(self.clock.now(), d)
    }

    /// Makes a sandbox, starts its helper and waits for its hello; or,
    /// when its template has a spare ready and the sandbox needs no
    /// network, hands it that spare.
    pub async fn create(&self, req: SandboxRequest) -> Result<SandboxRecord, SandboxError> {
        let template = self.template(&req.template)?;
        if !self.backend.capabilities().sandboxes() {
            return Err(SandboxError::Unsupported(self.backend.name()));
        }
        let helper = self.config.helper.clone().ok_or(SandboxError::NoHelper)?;
        let timeout = self.timeout(req.timeout)?;
        for (k, v) in &req.metadata {
            if k.len() > 256 || v.len() > 4096 {
                return Err(SandboxError::Invalid(format!("metadata {k:?}: keys up to 256, values up to 4096 bytes")));
            }
        }
        self.check_cap(&req.tenant).await?;
        let expires_at = self.after(timeout);
        if matches!(req.network, NetworkRequest::Default | NetworkRequest::None) {
            if let Some(spare) = self.take_spare(&req.template) {
                return self.adopt(spare, req, expires_at);
            }
        }
        let hex = self.ids.next_hex();
        let id = format!("sbx{hex}");
        let name = engine_name(Kind::Sandbox.as_str(), &hex);
        let mut spec = self.spec(&template, name.clone(), &req.env, req.network.clone())?;
        spec.labels.insert(labels::TENANT.into(), req.tenant.clone());
        spec.labels.insert(labels::OBJECT.into(), id.clone());
        spec.annotations.insert(annotations::EXPIRES_AT.into(), expires_at.to_rfc3339());

        let mut record = self.blank(id.clone(), &req.template, &template, &spec, expires_at);
        record.tenant = req.tenant.clone();
        record.metadata = req.metadata.clone();
        record.env = req.env.clone();
        if self.store.insert_object(&id, RECORD_KIND, &req.tenant, None, &record, None)? != Inserted::Done {
            return Err(SandboxError::Invalid(format!("sandbox id {id} is taken")));
        }
        self.store.renew(&req.tenant, &id, &expires_at.to_rfc3339())?;
        match self
            .launch(&spec, &helper, |h| {
                record.container_id = Some(h.id.0.clone());
                record.placement = h.placement.clone();
                self.save(&record)
            })
            .await
        {
            Ok(link) => {
                record.state = SandboxState::Running;
                self.save(&record)?;
                self.links().insert(&id, &req.tenant, link);
                self.audit(&req.tenant, "sandbox.create", &id, "running");
                Ok(record)
            }
            Err(e) => {
                if let Some(h) = record.handle() {
                    let _ = self.backend.remove(&h, true).await.or_gone();
                }
                record.state = SandboxState::Ended;
                record.ended = Some(EndReason::Failed);
                record.ended_at = Some(self.clock.now());
                record.error = Some(e.to_string());
                self.save(&record)?;
                self.audit(&req.tenant, "sandbox.create", &id, "failed");
                Err(e)
            }
        }
    }

    fn template(&self, name: &str) -> Result<Template, SandboxError> {
        self.config.templates.get(name).cloned().ok_or_else(|| {
            let known: Vec<_> = self.config.templates.keys().cloned().collect();
            SandboxError::UnknownTemplate(name.to_owned(), known.join(", "))
        })
    }

    /// Refuses a tenant at its cap of sandboxes not ended. Records count
    /// first (no engine call while below the cap); at the cap the engine
    /// says which of them still live, since a sandbox the reaper removed is
    /// still `running` in a store nobody has read since.
    async fn check_cap(&self, tenant: &str) -> Result<(), SandboxError> {
        let open: Vec<SandboxRecord> =
            self.list(tenant)?.into_iter().filter(|r| r.state != SandboxState::Ended).collect();
        if open.len() < self.config.max_per_tenant {
            return Ok(());
        }
        let live: std::collections::HashSet<String> = self
            .backend
            .list(&Selector::all().kind(Kind::Sandbox))
            .await?
            .into_iter()
            .filter(|c| c.phase.is_live() || c.phase == Phase::Created)
            .filter_map(|c| c.labels.get(labels::OBJECT).cloned())
            .collect();
        if open.iter().filter(|r| live.contains(&r.id)).count() >= self.config.max_per_tenant {
            return Err(SandboxError::TooMany(self.config.max_per_tenant));
        }
        Ok(())
    }

    /// The admitted spec of a sandbox of `template` (no tenant, object or
    /// expiry yet: a spare has none of them).
    fn spec(
        &self,
        template: &Template,
        name: String,
        env: &BTreeMap<String, String>,
        network: NetworkRequest,
    ) -> Result<crate::spec::ContainerSpec, SandboxError> {
        let mut creq = ContainerRequest::new(Kind::Sandbox, name, template.image.clone());
        creq.cmd = Some(if self.backend.capabilities().attach_before_start {
            vec![HELPER_PATH.to_owned()]
        } else {
            vec!["/bin/sh".to_owned(), "-c".to_owned(), AWAIT_HELPER.to_owned()]
        });
        creq.env = template.env.clone();
        creq.env.extend(env.clone());
        creq.env.insert("HOME".into(), template.home.clone());
        creq.working_dir = Some(template.home.clone());
        creq.user = Some(template.user.clone());
        creq.memory = Some(template.memory);
        creq.cpu = Some(template.cpu);
        creq.open_stdin = true;
        creq.network = network;
        creq.tmpfs = BTreeMap::from([(template.home.clone(), template.disk), ("/tmp".to_owned(), template.tmp)]);
        Ok(self.policy.admit(creq)?)
    }

    /// A record of a sandbox about to be made from `spec`, not yet anyone's.
    fn blank(
        &self,
        id: String,
        template_name: &str,
        template: &Template,
        spec: &crate::spec::ContainerSpec,
        expires_at: DateTime<Utc>,
    ) -> SandboxRecord {
        SandboxRecord {
            id,
            tenant: String::new(),
            template: template_name.to_owned(),
            image: template.image.clone(),
            metadata: BTreeMap::new(),
            env: BTreeMap::new(),
            state: SandboxState::Starting,
            ended: None,
            path: StartPath::Cold,
            container_id: None,
            placement: Default::default(),
            container_name: spec.name.clone(),
            access_token: format!("{}{}", self.ids.next_hex(), self.ids.next_hex()),
            memory_bytes: spec.limits.memory.bytes(),
            cpu_nanos: spec.limits.cpu.nanos(),
            disk_bytes: template.disk.bytes(),
            created_at: self.clock.now(),
            expires_at,
            paused_at: None,
            remaining_ms: None,
            ended_at: None,
            error: None,
        }
    }

    /// Makes `spec`'s container (`made` learns its handle before anything
    /// else happens), copies the helper in, starts it attached and waits
    /// for its hello; on an engine that started the container as it made
    /// it, attaches to it first and then copies the helper in, which its
    /// first process waits for.
    async fn launch(
        &self,
        spec: &crate::spec::ContainerSpec,
        helper: &[u8],
        made: impl FnOnce(&crate::engine::Handle) -> Result<(), SandboxError>,
    ) -> Result<Arc<Link>, SandboxError> {
        self.backend.ensure_image(&spec.image).await?;
        let h = self.backend.create(spec).await?;
        made(&h)?;
        let tar = helper_archive(helper).map_err(|e| SandboxError::Invalid(format!("the helper archive: {e}")))?;
        let io = self.backend.io(&h)?;
        let archive = futures_util::stream::once(async move { Ok(bytes::Bytes::from(tar)) }).boxed();
        let session = if self.backend.capabilities().attach_before_start {
            io.put_files(&h, "/", archive).await?;
            self.backend.start_attached(&h).await?
        } else {
            let session = io.attach(&h).await?;
            io.put_files(&h, "/", archive).await?;
            session
        };
        let link = Link::start(session);
        hello(&link).await?;
        Ok(link)
    }

    fn timeout(&self, asked: Option<Duration>) -> Result<Duration, SandboxError> {
        let t = asked.unwrap_or(self.config.default_timeout);
        if t.is_zero() || t > self.config.max_timeout {
            return Err(SandboxError::Invalid(format!(
                "timeout: {} s is not between 1 s and the maximum of {} s",
                t.as_secs(),
                self.config.max_timeout.as_secs()
            )));
        }
        Ok(t)
    }

    /// The tenant's sandboxes, as stored (see [`Sandboxes::get`] for the
    /// state seen against the engine).
    pub fn list(&self, tenant: &str) -> Result<Vec<SandboxRecord>, SandboxError> {
        Ok(self.store.list_objects(RECORD_KIND, tenant, None)?)
    }

    /// A sandbox, its state checked against the engine: one whose
    /// container is gone has ended, expired or lost by the engine.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<SandboxRecord, SandboxError> {
        let mut r = self.stored(tenant, id)?;
        if r.state == SandboxState::Ended {
            return Ok(r);
        }
        if let Some(h) = r.handle() {
            match self.backend.inspect(&h).await {
                Ok(s) if s.phase.is_live() => {}
                Ok(_) => {
                    let why = self.reason_gone(&r);
                    self.end(&mut r, why)?
                }
                Err(e) if e.kind() == crate::engine::EngineErrorKind::NotFound => {
                    let why = self.reason_gone(&r);
                    self.end(&mut r, why)?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(r)
    }

    /// A sandbox as the store has it, unchecked against the engine.
    fn stored(&self, tenant: &str, id: &str) -> Result<SandboxRecord, SandboxError> {
        self.store.get_object(RECORD_KIND, tenant, id)?.ok_or_else(|| SandboxError::NotFound(id.into()))
    }

    fn reason_gone(&self, r: &SandboxRecord) -> EndReason {
        let now = self.clock.now();
        let renewed = self.store.renewal(&r.tenant, &r.id).ok().flatten();
        let expiry = renewed.and_then(|e| DateTime::parse_from_rfc3339(&e).ok()).map(|e| e.with_timezone(&Utc));
        if expiry.unwrap_or(r.expires_at) <= now {
            EndReason::Expired
        } else {
            EndReason::EngineLost
        }
    }

    fn end(&self, r: &mut SandboxRecord, why: EndReason) -> Result<(), SandboxError> {
        r.state = SandboxState::Ended;
        r.ended = Some(why);
        r.ended_at = Some(self.clock.now());
        self.links().remove(&r.id);
        self.save(r)?;
        self.audit(&r.tenant, "sandbox.end", &r.id, why.as_str());
        Ok(())
    }

    /// The link to a running sandbox's helper. A live link and a stored
    /// `running` state are enough (the link goes down when the container
    /// ends); without one the engine is asked and the helper attached again
    /// (after a restart of berth).
    async fn running(&self, tenant: &str, id: &str) -> Result<Arc<Link>, SandboxError> {
        Ok(self.attached(tenant, id).await?.0)
    }

    /// [`Sandboxes::running`], with the sandbox's record.
    async fn attached(&self, tenant: &str, id: &str) -> Result<(Arc<Link>, SandboxRecord), SandboxError> {
        let stored = self.stored(tenant, id)?;
        if stored.state == SandboxState::Running {
            let existing = self.links().get(id);
            if let Some(link) = existing.filter(|l| !l.is_down()) {
                return Ok((link, stored));
            }
        }
        let r = self.get(tenant, id).await?;
        if r.state != SandboxState::Running {
            return Err(SandboxError::NotRunning { id: id.into(), state: r.state.as_str() });
        }
        let h = r.handle().ok_or_else(|| SandboxError::NotRunning { id: id.into(), state: "starting" })?;
        let link = Link::start(self.backend.io(&h)?.attach(&h).await?);
        hello(&link).await?;
        self.links().insert(id, tenant, link.clone());
        Ok((link, r))
    }

    /// The link a process starts through, and the process with the
    /// sandbox's own environment under its own (a sandbox from a spare was
    /// made without the former).
    async fn for_spawn(&self, tenant: &str, id: &str, mut spawn: Spawn) -> Result<(Arc<Link>, Spawn), SandboxError> {
        if spawn.argv.is_empty() {
            return Err(SandboxError::Invalid("a process needs a command".into()));
        }
        let (link, record) = self.attached(tenant, id).await?;
        let max = self.config.max_processes_per_tenant;
        if self.links().load(tenant).processes >= max {
            return Err(SandboxError::TooManyProcesses(max));
        }
        let mut env = record.env;
        env.append(&mut spawn.env);
        spawn.env = env;
        Ok((link, spawn))
    }

    /// Removes a sandbox; its record stays, ended as killed.
    pub async fn kill(&self, tenant: &str, id: &str) -> Result<SandboxRecord, SandboxError> {
        let mut r = self.get(tenant, id).await?;
        if r.state == SandboxState::Ended {
            return Err(SandboxError::NotRunning { id: id.into(), state: "ended" });
        }
        if let Some(h) = r.handle() {
            self.backend.remove(&h, true).await.or_gone()?;
        }
        self.end(&mut r, EndReason::Killed)?;
        Ok(r)
    }

    /// Sets a running sandbox's timeout, counted from now (for a paused
    /// one: the running time it will have once resumed).
    pub async fn set_timeout(&self, tenant: &str, id: &str, timeout: Duration) -> Result<SandboxRecord, SandboxError> {
        let timeout = self.timeout(Some(timeout))?;
        let mut r = self.get(tenant, id).await?;
        match r.state {
            SandboxState::Ended | SandboxState::Starting => {
                return Err(SandboxError::NotRunning { id: id.into(), state: r.state.as_str() })
            }
            SandboxState::Paused => r.remaining_ms = Some(timeout.as_millis() as u64),
            SandboxState::Running => {
                r.expires_at = self.after(timeout);
                check_expiry(self.clock.now(), r.expires_at, self.config.max_timeout + Duration::from_secs(1))
                    .map_err(|e| SandboxError::Invalid(e.to_string()))?;
                self.store.renew(tenant, id, &r.expires_at.to_rfc3339())?;
            }
        }
        self.save(&r)?;
        self.audit(tenant, "sandbox.timeout", id, &format!("{} s", timeout.as_secs()));
        Ok(r)
    }

    /// Freezes a running sandbox: its processes and files stay as they
    /// are and its timeout stops; it is removed after `max_paused`.
    pub async fn pause(&self, tenant: &str, id: &str) -> Result<SandboxRecord, SandboxError> {
        if !self.backend.capabilities().pause {
            return Err(SandboxError::NoPause(self.backend.name()));
        }
        let mut r = self.get(tenant, id).await?;
        if r.state != SandboxState::Running {
            return Err(SandboxError::NotRunning { id: id.into(), state: r.state.as_str() });
        }
        let h = r.handle().ok_or_else(|| SandboxError::NotRunning { id: id.into(), state: "starting" })?;
        self.backend.pause(&h).await?;
        let now = self.clock.now();
        r.remaining_ms = Some((r.expires_at - now).num_milliseconds().max(1000) as u64);
        r.paused_at = Some(now);
        r.state = SandboxState::Paused;
        self.store.renew(tenant, id, &self.after(self.config.max_paused).to_rfc3339())?;
        self.save(&r)?;
        self.audit(tenant, "sandbox.pause", id, "paused");
        Ok(r)
    }

    /// Thaws a paused sandbox, its timeout going on from where it stopped.
    pub async fn resume(&self, tenant: &str, id: &str) -> Result<SandboxRecord, SandboxError> {
        let mut r = self.get(tenant, id).await?;
        if r.state != SandboxState::Paused {
            return Err(SandboxError::NotRunning { id: id.into(), state: r.state.as_str() });
        }
        let h = r.handle().ok_or_else(|| SandboxError::NotRunning { id: id.into(), state: "starting" })?;
        self.backend.unpause(&h).await?;
        r.expires_at = self.after(Duration::from_millis(r.remaining_ms.take().unwrap_or(1000)));
        r.paused_at = None;
        r.state = SandboxState::Running;
        self.store.renew(tenant, id, &r.expires_at.to_rfc3339())?;
        self.save(&r)?;
        self.audit(tenant, "sandbox.resume", id, "running");
        Ok(r)
    }

    /// Starts a process; its output and exit are followed by pid.
    pub async fn spawn(&self, tenant: &str, id: &str, spawn: Spawn) -> Result<u32, SandboxError> {
        let (link, spawn) = self.for_spawn(tenant, id, spawn).await?;
        start_on(&link, spawn).await
    }

    /// A process's output as it comes (from what is still kept of it) and its exit.
    pub async fn follow(&self, tenant: &str, id: &str, pid: u32) -> Result<link::Following, SandboxError> {
        follow_on(&*self.running(tenant, id).await?, pid).await
    }

    /// Runs a command to its end, within `timeout` (then it is killed).
    pub async fn run(
        &self,
        tenant: &str,
        id: &str,
        spawn: Spawn,
        timeout: Duration,
    ) -> Result<CommandOutput, SandboxError> {
        let (link, spawn) = self.for_spawn(tenant, id, spawn).await?;
        let pid = start_on(&link, spawn).await?;
        let mut events = follow_on(&link, pid).await?.into_stream();
        let mut kept = crate::output::CappedStreams::new(self.config.output_cap);
        let mut end = (None, None);
        let waited = tokio::time::timeout(timeout, async {
            while let Some(event) = events.next().await {
                match event {
                    Ok(ProcessEvent::Output { stream: StreamName::Stderr, data }) => kept.stderr.push(&data),
                    Ok(ProcessEvent::Output { data, .. }) => kept.stdout.push(&data),
                    Ok(ProcessEvent::Exited { code, signal }) => end = (code, signal),
                    // Output missed by a slow read is gone; the exit still comes.
                    Err(link::FollowLost::Lagged(_)) => {}
                    Err(link::FollowLost::LinkClosed) => break,
                }
            }
        })
        .await;
        if waited.is_err() {
            let _ = link.call(Request::Signal { pid, signal: 9 }, &[]).await;
            return Err(SandboxError::Invalid(format!("the command ran past its timeout of {} s", timeout.as_secs())));
        }
        Ok(CommandOutput {
            pid,
            exit_code: end.0,
            signal: end.1,
            stdout: kept.stdout.into_text(),
            stderr: kept.stderr.into_text(),
        })
    }

    /// Sends bytes to a process's stdin (or terminal).
    pub async fn input(&self, tenant: &str, id: &str, pid: u32, data: &[u8]) -> Result<(), SandboxError> {
        self.simple(tenant, id, Request::Input { pid }, data).await
    }

    pub async fn close_stdin(&self, tenant: &str, id: &str, pid: u32) -> Result<(), SandboxError> {
        self.simple(tenant, id, Request::CloseStdin { pid }, &[]).await
    }

    pub async fn signal(&self, tenant: &str, id: &str, pid: u32, signal: i32) -> Result<(), SandboxError> {
        self.simple(tenant, id, Request::Signal { pid, signal }, &[]).await
    }

    pub async fn resize(
        &self,
        tenant: &str,
        id: &str,
        pid: u32,
        size: berth_sandbox_wire::PtySize,
    ) -> Result<(), SandboxError> {
        self.simple(tenant, id, Request::Resize { pid, size }, &[]).await
    }

    /// The processes still running in a sandbox.
    pub async fn processes(&self, tenant: &str, id: &str) -> Result<Vec<berth_sandbox_wire::Process>, SandboxError> {
        let link = self.running(tenant, id).await?;
        match link.call(Request::Processes, &[]).await? {
            (Reply::Processes { processes }, _) => Ok(processes),
            (reply, _) => Err(refused(reply)),
        }
    }

    async fn simple(&self, tenant: &str, id: &str, request: Request, data: &[u8]) -> Result<(), SandboxError> {
        let link = self.running(tenant, id).await?;
        match link.call(request, data).await? {
            (Reply::Done, _) => Ok(()),
            (reply, _) => Err(refused(reply)),
        }
    }

    async fn entry(&self, tenant: &str, id: &str, request: Request) -> Result<Entry, SandboxError> {
        let link = self.running(tenant, id).await?;
        match link.call(request, &[]).await? {
            (Reply::Entry { entry }, _) => Ok(entry),
            (reply, _) => Err(refused(reply)),
        }
    }

    /// A whole file, at most `max_file_bytes`.
    pub async fn read_file(&self, tenant: &str, id: &str, path: &str) -> Result<Vec<u8>, SandboxError> {
        let mut pieces = self.read_stream(tenant, id, path).await?;
        let mut out = Vec::new();
        while let Some(piece) = pieces.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    /// Writes a whole file (its parents made); nothing is in place unless
    /// all of it was written.
    pub async fn write_file(&self, tenant: &str, id: &str, path: &str, data: &[u8]) -> Result<Entry, SandboxError> {
        let whole = bytes::Bytes::copy_from_slice(data);
        let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(whole) });
        self.write_stream(tenant, id, path, body.boxed()).await
    }

    pub async fn stat(&self, tenant: &str, id: &str, path: &str) -> Result<Entry, SandboxError> {
        self.entry(tenant, id, Request::Stat { path: path.into() }).await
    }

    pub async fn list_dir(&self, tenant: &str, id: &str, path: &str, depth: u32) -> Result<Vec<Entry>, SandboxError> {
        if depth == 0 || depth > 16 {
            return Err(SandboxError::Invalid("depth: 1 to 16".into()));
        }
        let link = self.running(tenant, id).await?;
        let (_, mut replies) = link.send(Request::ListDir { path: path.into(), depth }, &[]).await?;
        let mut all = Vec::new();
        loop {
            match replies.recv().await {
                Some((Reply::Entries { entries, more }, _)) => {
                    all.extend(entries);
                    if !more {
                        return Ok(all);
                    }
                }
                Some((reply, _)) => return Err(refused(reply)),
                None => return Err(LinkDown("the link closed during a listing".into()).into()),
            }
        }
    }

    pub async fn make_dir(&self, tenant: &str, id: &str, path: &str) -> Result<Entry, SandboxError> {
        self.entry(tenant, id, Request::MakeDir { path: path.into() }).await
    }

    pub async fn rename(&self, tenant: &str, id: &str, from: &str, to: &str) -> Result<Entry, SandboxError> {
        self.entry(tenant, id, Request::Move { from: from.into(), to: to.into() }).await
    }

    pub async fn remove(&self, tenant: &str, id: &str, path: &str) -> Result<(), SandboxError> {
        self.simple(tenant, id, Request::Remove { path: path.into() }, &[]).await
    }

    /// The tenant of sandbox `id`, when `token` is its access token (the
    /// in-sandbox API knows sandboxes by id and token, not by tenant).
    pub fn tenant_of(&self, id: &str, token: &str) -> Result<String, SandboxError> {
        self.tenant_if(id, |known| same_secret(known, token))
    }

    /// The tenant of sandbox `id`, when `proves` accepts its access token
    /// (a front end checking a signature made with it, say).
    pub fn tenant_if(&self, id: &str, proves: impl FnOnce(&str) -> bool) -> Result<String, SandboxError> {
        let (tenant, r): (String, SandboxRecord) =
            self.store.find_object(RECORD_KIND, id)?.ok_or_else(|| SandboxError::NotFound(id.into()))?;
        if !proves(&r.access_token) {
            return Err(SandboxError::BadToken);
        }
        Ok(tenant)
    }

    /// One sample of a running sandbox's resource use.
    pub async fn usage(&self, tenant: &str, id: &str) -> Result<crate::engine::Usage, SandboxError> {
        let r = self.get(tenant, id).await?;
        let h = r.handle().ok_or_else(|| SandboxError::NotRunning { id: id.into(), state: r.state.as_str() })?;
        if r.state == SandboxState::Ended {
            return Err(SandboxError::NotRunning { id: id.into(), state: "ended" });
        }
        Ok(self.backend.io(&h)?.usage(&h).await?)
    }

    /// Watches a directory; its changes are kept for [`Sandboxes::watch_events`]
    /// and sent to followers of [`Sandboxes::follow_watch`].
    pub async fn watch(&self, tenant: &str, id: &str, path: &str, recursive: bool) -> Result<u64, SandboxError> {
        let link = self.running(tenant, id).await?;
        let max = self.config.max_watchers_per_tenant;
        if self.links().load(tenant).watchers >= max {
            return Err(SandboxError::TooManyWatchers(max));
        }
        match link.call(Request::Watch { path: path.into(), recursive }, &[]).await? {
            (Reply::Watching { wid }, _) => {
                link.watching(wid);
                Ok(wid)
            }
            (reply, _) => Err(refused(reply)),
        }
    }

    /// The changes seen since the last call.
    pub async fn watch_events(&self, tenant: &str, id: &str, wid: u64) -> Result<Vec<WatchEvent>, SandboxError> {
        let link = self.running(tenant, id).await?;
        link.take_changes(wid).ok_or_else(|| SandboxError::Invalid(format!("no watcher {wid}")))
    }

    /// The changes as they come.
    pub async fn follow_watch(
        &self,
        tenant: &str,
        id: &str,
        wid: u64,
    ) -> Result<tokio::sync::broadcast::Receiver<Vec<WatchEvent>>, SandboxError> {
        let link = self.running(tenant, id).await?;
        link.follow_changes(wid).ok_or_else(|| SandboxError::Invalid(format!("no watcher {wid}")))
    }

    pub async fn unwatch(&self, tenant: &str, id: &str, wid: u64) -> Result<(), SandboxError> {
        let link = self.running(tenant, id).await?;
        link.forget_watch(wid);
        match link.call(Request::Unwatch { wid }, &[]).await? {
            (Reply::Done, _) => Ok(()),
            (reply, _) => Err(refused(reply)),
        }
    }

    /// A file's bytes as they come from the sandbox, at most `max_file_bytes`.
    pub async fn read_stream(
        &self,
        tenant: &str,
        id: &str,
        path: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes, SandboxError>>, SandboxError> {
        let link = self.running(tenant, id).await?;
        let (_, mut replies) = link.send(Request::ReadFile { path: path.into() }, &[]).await?;
        // The first reply says whether the file opened.
        let first = replies.recv().await;
        let max = self.config.max_file_bytes;
        let first = match first {
            Some((Reply::Chunk, data)) => Some(data),
            Some((Reply::Done, _)) => None,
            Some((reply, _)) => return Err(refused(reply)),
            None => return Err(LinkDown("the link closed during a read".into()).into()),
        };
        let done = first.is_none();
        // Every piece counts toward the bound, the first included.
        let seen = first.as_ref().map_or(0, |d| d.len() as u64);
        if seen > max.bytes() {
            return Err(SandboxError::Invalid(format!("{path} is larger than the bound of {max}")));
        }
        let start = futures_util::stream::iter(first.map(|d| Ok(bytes::Bytes::from(d))));
        let state = (replies, done, seen, path.to_owned());
        let rest = futures_util::stream::unfold(state, move |(mut replies, done, seen, path)| async move {
            if done {
                return None;
            }
            match replies.recv().await {
                Some((Reply::Chunk, data)) => {
                    let seen = seen + data.len() as u64;
                    if seen > max.bytes() {
                        let e = SandboxError::Invalid(format!("{path} is larger than the bound of {max}"));
                        return Some((Err(e), (replies, true, seen, path)));
                    }
                    Some((Ok(bytes::Bytes::from(data)), (replies, false, seen, path)))
                }
                Some((Reply::Done, _)) => None,
                Some((reply, _)) => Some((Err(refused(reply)), (replies, true, seen, path))),
                None => {
                    let e = LinkDown("the link closed during a read".into()).into();
                    Some((Err(e), (replies, true, seen, path)))
                }
            }
        });
        Ok(start.chain(rest).boxed())
    }

    /// Writes a file from bytes as they come; nothing is in place unless
    /// all of it arrived and was written (a broken body aborts the write).
    pub async fn write_stream<E: std::fmt::Display>(
        &self,
        tenant: &str,
        id: &str,
        path: &str,
        mut body: futures_util::stream::BoxStream<'_, Result<bytes::Bytes, E>>,
    ) -> Result<Entry, SandboxError> {
        let link = self.running(tenant, id).await?;
        let (rid, mut replies) = link.send(Request::WriteFile { path: path.into() }, &[]).await?;
        let max = self.config.max_file_bytes.bytes();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let failed = match chunk {
                Ok(data) => {
                    written += data.len() as u64;
                    if written > max {
                        Some(format!("the file is larger than the bound of {}", self.config.max_file_bytes))
                    } else {
                        link.send_as(rid, Request::WriteChunk, &data).await?;
                        None
                    }
                }
                Err(e) => Some(format!("the upload broke off: {e}")),
            };
            if let Some(why) = failed {
                link.send_as(rid, Request::WriteAbort, &[]).await?;
                let _ = replies.recv().await;
                return Err(SandboxError::Invalid(why));
            }
        }
        link.send_as(rid, Request::WriteEnd, &[]).await?;
        match replies.recv().await {
            Some((Reply::Entry { entry }, _)) => Ok(entry),
            Some((reply, _)) => Err(refused(reply)),
            None => Err(LinkDown("the link closed during a write".into()).into()),
        }
    }

    /// Opens a tunnel to a port the sandbox's processes listen on (its
    /// loopback): bytes written go to it, what it answers comes back.
    pub async fn tunnel(&self, tenant: &str, id: &str, port: u16) -> Result<Tunnel, SandboxError> {
        if port == 0 {
            return Err(SandboxError::Invalid("port: 1 to 65535".into()));
        }
        let link = self.running(tenant, id).await?;
        match link.dial(port).await {
            Ok((rid, answers)) => Ok(Tunnel { writer: TunnelWriter { link, rid }, answers }),
            Err((Reply::Error { kind: HelperErrorKind::NotFound, .. }, _)) => Err(SandboxError::PortClosed(port)),
            Err((reply, _)) => Err(refused(reply)),
        }
    }
}

/// An open tunnel to a port in a sandbox.
pub struct Tunnel {
    writer: TunnelWriter,
    /// What the port's socket gives, to its end.
    pub answers: tokio::sync::mpsc::Receiver<link::TunnelItem>,
}

impl Tunnel {
    /// Splits the tunnel into its writing half and what it answers.
    pub fn split(self) -> (TunnelWriter, tokio::sync::mpsc::Receiver<link::TunnelItem>) {
        (self.writer, self.answers)
    }
}

/// The writing half of a tunnel. Once its reader is dropped, the next
/// bytes the port sends end the tunnel in the sandbox.
pub struct TunnelWriter {
    link: Arc<Link>,
    rid: u64,
}

impl TunnelWriter {
    /// Sends bytes to the port, in pieces small enough to keep the
    /// sandbox's stream moving.
    pub async fn send(&self, data: &[u8]) -> Result<(), SandboxError> {
        for piece in data.chunks(32 * 1024) {
            self.link.send_as(self.rid, Request::TunnelData, piece).await?;
        }
        Ok(())
    }

    /// Closes the write half (the port sees end-of-file); the answer still comes.
    pub async fn close(self) {
        self.link.hang_up(self.rid).await;
    }
}

/// Starts a process through a link; its output is kept from the start.
async fn start_on(link: &Link, spawn: Spawn) -> Result<u32, SandboxError> {
    match link.call(Request::Spawn(spawn), &[]).await? {
        (Reply::Spawned { pid }, _) => {
            link.track(pid);
            Ok(pid)
        }
        (reply, _) => Err(refused(reply)),
    }
}

/// Follows a process through a link; one from before berth attached
/// again is followed from now.
async fn follow_on(link: &Link, pid: u32) -> Result<link::Following, SandboxError> {
    if let Some(following) = link.follow(pid) {
        return Ok(following);
    }
    let running = match link.call(Request::Processes, &[]).await? {
        (Reply::Processes { processes }, _) => processes.iter().any(|p| p.pid == pid),
        (reply, _) => return Err(refused(reply)),
    };
    if !running {
        return Err(SandboxError::NoProcess(pid));
    }
    link.track(pid);
    link.follow(pid).ok_or(SandboxError::NoProcess(pid))
}

async fn hello(link: &Link) -> Result<(), SandboxError> {
    match tokio::time::timeout(HELLO_WITHIN, link.call(Request::Hello, &[])).await {
        Ok(Ok((Reply::Hello { version, .. }, _))) if version == berth_sandbox_wire::PROTOCOL_VERSION => Ok(()),
        Ok(Ok((Reply::Hello { version, .. }, _))) => {
            Err(SandboxError::Invalid(format!("the sandbox's helper speaks protocol {version}, not ours")))
        }
        Ok(Ok((reply, _))) => Err(refused(reply)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(LinkDown(format!("the helper did not answer within {} s", HELLO_WITHIN.as_secs())).into()),
    }
}

fn refused(reply: Reply) -> SandboxError {
    match reply {
        Reply::Error { kind, message } => SandboxError::Helper { kind, message },
        other => SandboxError::Invalid(format!("the helper answered out of turn: {other:?}")),
    }
}

/// Whether two secrets are the same, in time that does not depend on
/// where they first differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A tar archive holding the helper at [`HELPER_PATH`], executable by all.
fn helper_archive(helper: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    tar.append_data(&mut dir, ".berth/", std::io::empty())?;
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(helper.len() as u64);
    file.set_mtime(0);
    tar.append_data(&mut file, ".berth/sandboxd", helper)?;
    let mut copied = tar::Header::new_gnu();
    copied.set_mode(0o644);
    copied.set_size(0);
    copied.set_mtime(0);
    tar.append_data(&mut copied, HELPER_COPIED.trim_start_matches('/'), std::io::empty())?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_archive_ends_with_the_file_its_waiting_first_process_looks_for() {
        let archive = helper_archive(b"\x7fELF helper").unwrap();
        let mut tar = tar::Archive::new(&archive[..]);
        let paths: Vec<String> =
            tar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(paths, [".berth/", ".berth/sandboxd", ".berth/copied"]);
        assert!(AWAIT_HELPER.contains(&format!("-e {HELPER_COPIED} ")), "{AWAIT_HELPER}");
        assert!(AWAIT_HELPER.ends_with(&format!("exec {HELPER_PATH}")), "{AWAIT_HELPER}");
    }
}
