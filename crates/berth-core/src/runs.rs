//! Runs: one execution to completion of a tool image or a code snippet.
//!
//! A run is admitted by policy (nothing is created when it is refused),
//! recorded, created, started with its exit awaited from before the start,
//! and raced against its deadline and its cancellation. Its outcome (exit
//! code, capped stdout and stderr, the JSON result when the output is JSON,
//! resource use, and a [`RunStatus`]) is stored and outlives the container,
//! which is removed when the request asks for cleanup.
//!
//! Two paths, one record: *cold* (a container of the run's own) and
//! *pooled* (a code run that fits a warm pool execs in a ready member of
//! [`crate::pool`], which is then removed). Both are raced against the same
//! deadline and cancellation and end in the same [`conclude`]; `path` in
//! the record says which one ran.
//!
//! Parameters reach the workload two ways: each as an environment variable
//! `PARAM_<NAME>` (the name upper-cased, anything but letters, digits and
//! `_` turned into `_`; strings as they are, other values as JSON), and all
//! together as one JSON document in `BERTH_PARAMETERS`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError, GoneIsDone, Handle, LogRequest, Placement, StdioSession, Stream, Usage};
use crate::ids::{Clock, IdSource};
use crate::output::{CappedOutput, CappedStreams};
use crate::policy::{ContainerRequest, Policy, PolicyViolation};
use crate::pool::launch::{self, EndScanner};
use crate::pool::{Member, PoolKey, Pools};
use crate::spec::{annotations, labels, ContainerSpec, Kind};
use crate::store::{Store, StoreError};
use crate::units::{ByteSize, CpuLimit};

/// How long past its deadline a run's container is left to the run before
/// its expiry label lets the reaper take it (the kill, the exit, the logs).
const EXPIRY_SLACK: Duration = Duration::from_secs(60);

/// A run in progress: how to cancel it, and whose it is.
struct Active {
    token: CancellationToken,
    tenant: String,
    session: Option<String>,
    /// The end marker of a run handed to a member, for a live view of its output.
    marker: Option<String>,
}

/// berth's id of a run: `run_` and 12 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

/// Where a run stands. All but the first two are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Killed at its deadline.
    TimedOut,
    /// Killed by the kernel for going over its memory limit.
    OomKilled,
    /// Stopped on request.
    Cancelled,
    /// Nothing ran: the backend renders plans (the OCI dry run); the record carries the plan.
    DryRun,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::OomKilled => "oom_killed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::DryRun => "dry_run",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A tool image, with its own command or the image's.
    Tool { image: String, command: Option<Vec<String>> },
    /// A snippet in a language of the configured table.
    Code { language: String, code: String },
}

/// A request for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub tenant: String,
    pub session: Option<String>,
    /// A name for people (Cortex's `tool_name`).
    pub name: Option<String>,
    pub workload: Workload,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    pub memory: Option<ByteSize>,
    pub cpu: Option<CpuLimit>,
    pub timeout: Option<Duration>,
    /// Remove the container when the run is over (the record stays).
    pub cleanup: bool,
}

impl RunRequest {
    pub fn new(tenant: &str, workload: Workload) -> Self {
        RunRequest {
            tenant: tenant.into(),
            session: None,
            name: None,
            workload,
            parameters: Default::default(),
            env: Default::default(),
            memory: None,
            cpu: None,
            timeout: None,
            cleanup: true,
        }
    }
}

/// Resource use of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// From start to exit (pooled: from the hand-off of its script to its exit).
    pub wall_ms: u64,
    /// CPU time, from the last stats sample before the exit (sampled about once
    /// a second, so a very short run may have none). `None` for pooled runs:
    /// the member's counters include its idle process and the time before
    /// the run, and sampling them would cost the round trips pools save.
    pub cpu_ms: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
}

/// A run's record, kept in the store after its container is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub tenant: String,
    pub session: Option<String>,
    pub name: Option<String>,
    pub image: String,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The output parsed, when it is JSON.
    pub result: Option<serde_json::Value>,
    pub usage: RunUsage,
    pub container_id: Option<String>,
    /// Where its container runs (records made before placements read as local).
    #[serde(default)]
    pub placement: Placement,
    pub container_name: String,
    /// The container is gone. For a pooled run: its removal was ordered, in
    /// the background so the answer is not delayed (the reaper removes it at
    /// its expiry should that fail).
    pub container_removed: bool,
    /// Why a run failed without an exit code, or what went wrong around it.
    pub error: Option<String>,
    /// `cold` (its own container) or `pooled` (a warm sandbox).
    pub path: String,
    /// What would have run, when nothing ran (status `dry_run`): the backend's
    /// rendered plan (for the OCI dry run, the bundle with its `config.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// Its container, once it has one.
    pub fn handle(&self) -> Option<Handle> {
        self.container_id.as_ref().map(|id| Handle::at(id.clone(), self.placement.clone()))
    }
}

/// A language of the code table: the image and the command the code is appended to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Language {
    pub image: String,
    pub command: Vec<String>,
}

/// The default languages: `python` (python:3.11-slim, `python3 -c`) and `sh`
/// (busybox:1.35, `sh -c`).
pub fn default_languages() -> BTreeMap<String, Language> {
    BTreeMap::from([
        (
            "python".to_owned(),
            Language { image: "python:3.11-slim".into(), command: vec!["python3".into(), "-c".into()] },
        ),
        ("sh".to_owned(), Language { image: "busybox:1.35".into(), command: vec!["sh".into(), "-c".into()] }),
    ])
}

/// The largest snippet accepted (it travels as one argument).
pub const MAX_CODE_BYTES: usize = 100 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error("unknown language {0:?} (known: {1})")]
    UnknownLanguage(String, String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no such run: {0}")]
    NotFound(String),
    #[error("berth is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Executes runs.
pub struct Runs {
    backend: Arc<dyn Engine>,
    policy: Policy,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
    languages: BTreeMap<String, Language>,
    active: Mutex<HashMap<RunId, Active>>,
    /// Runs in flight at once, over all tenants.
    slots: Semaphore,
    /// Runs in flight at once per tenant.
    per_tenant: usize,
    tenant_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Warm sandboxes for code runs, when configured.
    pools: Option<Arc<Pools>>,
}

/// How a run ended, before it is written down.
enum Ending {
    Exited(i64),
    TimedOut,
    Cancelled,
    Broken(String),
}

/// What a run left, however it ran: what [`conclude`] writes down.
struct Outcome {
    ending: Ending,
    exit_code: Option<i64>,
    oom_killed: bool,
    stdout: String,
    stdout_truncated: bool,
    stderr: String,
    stderr_truncated: bool,
    usage: RunUsage,
}

/// The one place a run's status, output, result and usage are decided, for
/// the cold and the pooled path alike.
fn conclude(record: &mut RunRecord, o: Outcome) {
    record.exit_code = o.exit_code;
    record.status = match o.ending {
        Ending::Cancelled => RunStatus::Cancelled,
        Ending::TimedOut => RunStatus::TimedOut,
        _ if o.oom_killed => RunStatus::OomKilled,
        Ending::Exited(0) => RunStatus::Succeeded,
        Ending::Exited(_) => RunStatus::Failed,
        Ending::Broken(why) => {
            record.error = Some(why);
            RunStatus::Failed
        }
    };
    record.stdout_truncated = o.stdout_truncated;
    record.stderr_truncated = o.stderr_truncated;
    record.stdout = o.stdout;
    record.stderr = o.stderr;
    record.result = if record.stdout_truncated { None } else { parse_result(&record.stdout) };
    record.usage = o.usage;
}

impl Runs {
    pub fn new(
        backend: Arc<dyn Engine>,
        policy: Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
        max_concurrent: usize,
    ) -> Self {
        Runs {
            backend,
            policy,
            store,
            ids,
            clock,
            languages: default_languages(),
            active: Mutex::new(HashMap::new()),
            slots: Semaphore::new(max_concurrent.max(1)),
            per_tenant: max_concurrent.max(1),
            tenant_slots: Mutex::new(HashMap::new()),
            pools: None,
        }
    }

    /// Serves code runs that fit a pool from its warm members.
    pub fn with_pools(mut self, pools: Arc<Pools>) -> Self {
        self.pools = Some(pools);
        self
    }

    pub fn pools(&self) -> Option<&Arc<Pools>> {
        self.pools.as_ref()
    }

    /// Bounds the runs one tenant may have in flight (default: the global bound).
    pub fn with_per_tenant_limit(mut self, limit: usize) -> Self {
        self.per_tenant = limit.max(1);
        self
    }

    fn tenant_slots(&self, tenant: &str) -> Arc<Semaphore> {
        let mut slots = self.tenant_slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(tenant.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
    }

    pub fn with_languages(mut self, languages: BTreeMap<String, Language>) -> Self {
        self.languages = languages;
        self
    }

    /// The languages of the code table, by name.
    pub fn languages(&self) -> Vec<String> {
        self.languages.keys().cloned().collect()
    }

    /// The id of this berth instance (kept in its store), labelled on every run container.
    pub fn instance(&self) -> Result<String, RunError> {
        Ok(self.store.instance_id(|| self.ids.next_hex())?)
    }

    pub fn get(&self, tenant: &str, id: &RunId) -> Result<RunRecord, RunError> {
        self.store.get_run(tenant, id)?.ok_or_else(|| RunError::NotFound(id.0.clone()))
    }

    /// Runs of `tenant`, newest first.
    pub fn list(&self, tenant: &str, limit: usize) -> Result<Vec<RunRecord>, RunError> {
        Ok(self.store.list_runs(tenant, limit)?)
    }

    /// Cancels a run in progress; false when it is not running (any more).
    pub fn cancel(&self, tenant: &str, id: &RunId) -> Result<bool, RunError> {
        let run = self.get(tenant, id)?;
        if run.status.is_terminal() {
            return Ok(false);
        }
        let token = self.active.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|a| a.token.clone());
        Ok(token.map(|t| t.cancel()).is_some())
    }

    /// The end marker of a pooled run in progress: what a live view of its
    /// member's output leaves out ([`launch::MemberOutput`]).
    pub fn live_marker(&self, id: &RunId) -> Option<String> {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).get(id).and_then(|a| a.marker.clone())
    }

    /// Runs of `tenant` in `session` in progress (queued or running).
    pub fn active_in_session(&self, tenant: &str, session: &str) -> Vec<RunId> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active
            .iter()
            .filter(|(_, a)| a.tenant == tenant && a.session.as_deref() == Some(session))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Cancels every run of `tenant` in `session` in progress; how many. A
    /// pooled run's member carries no session label, so ending a session
    /// reaches its runs through here.
    pub fn cancel_session(&self, tenant: &str, session: &str) -> usize {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let mine = active.values().filter(|a| a.tenant == tenant && a.session.as_deref() == Some(session));
        mine.map(|a| a.token.cancel()).count()
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    /// Admits a request and turns it into a container request, without creating anything.
    fn prepare(&self, req: &RunRequest, name: &str) -> Result<(ContainerRequest, Duration), RunError> {
        let (kind, image, cmd) = match &req.workload {
            Workload::Tool { image, command } => (Kind::Tool, image.clone(), command.clone()),
            Workload::Code { language, code } => {
                let lang = self.languages.get(language).ok_or_else(|| {
                    RunError::UnknownLanguage(
                        language.clone(),
                        self.languages.keys().cloned().collect::<Vec<_>>().join(", "),
                    )
                })?;
                if code.len() > MAX_CODE_BYTES {
                    return Err(RunError::BadRequest(format!("code: {} bytes exceed {MAX_CODE_BYTES}", code.len())));
                }
                if code.contains('\0') {
                    return Err(RunError::BadRequest("code: contains a NUL byte".into()));
                }
                let mut cmd = lang.command.clone();
                cmd.push(code.clone());
                (Kind::Code, lang.image.clone(), Some(cmd))
            }
        };
        let timeout = self.policy.timeout(kind, req.timeout)?;
        let mut env = req.env.clone();
        for (key, value) in &req.parameters {
            let var =
                param_var(key).ok_or_else(|| RunError::BadRequest(format!("parameters: {key:?} is not a name")))?;
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.insert(var, value);
        }
        env.insert("BERTH_PARAMETERS".into(), serde_json::Value::Object(req.parameters.clone()).to_string());
        let mut creq = ContainerRequest::new(kind, name, image);
        creq.cmd = cmd;
        creq.env = env;
        creq.memory = req.memory;
        creq.cpu = req.cpu;
        Ok((creq, timeout))
    }

    /// The container spec a request runs as, under a fresh run id and name:
    /// admitted by policy and labelled, nothing created.
    fn admit(&self, req: &RunRequest) -> Result<(RunId, String, ContainerSpec, Duration), RunError> {
        let instance = self.instance()?;
        let hex = self.ids.next_hex();
        let id = RunId(format!("run_{hex}"));
        let name = format!("berth-run-{hex}");
        let (creq, timeout) = self.prepare(req, &name)?;
        let mut spec = self.policy.admit(creq)?;
        spec.labels.insert(labels::OBJECT.into(), id.0.clone());
        spec.labels.insert(labels::TENANT.into(), req.tenant.clone());
        spec.labels.insert(labels::INSTANCE.into(), instance);
        if let Some(session) = &req.session {
            spec.labels.insert(labels::SESSION.into(), session.clone());
        }
        Ok((id, name, spec, timeout))
    }

    /// The container spec a request would run as (a fresh run id), or the
    /// refusal; nothing is created or recorded. What `berth plan` renders.
    pub fn container_spec(&self, req: &RunRequest) -> Result<ContainerSpec, RunError> {
        Ok(self.admit(req)?.2)
    }

    /// Runs a request to completion and returns its stored record.
    pub async fn execute(&self, req: RunRequest) -> Result<RunRecord, RunError> {
        self.execute_reporting(req, None).await
    }

    /// [`Runs::execute`], sending the record to `recorded` as soon as it is
    /// first stored (admitted, its image there, not yet started): what an
    /// answer that does not wait for the end needs. A request refused before
    /// that drops the sender unused.
    pub async fn execute_reporting(
        &self,
        req: RunRequest,
        recorded: Option<tokio::sync::oneshot::Sender<RunRecord>>,
    ) -> Result<RunRecord, RunError> {
        let (id, container_name, spec, timeout) = self.admit(&req)?;
        // The pool that may serve the run: only code runs that fit it, whose
        // container would go anyway (a kept container is the run's own).
        // Code runs have their language's pool; tool runs their image's, once
        // its runs come often enough.
        // A run whose command or environment no script carries (a NUL) is not pooled.
        let scriptable = launch::carries(spec.cmd.as_deref().unwrap_or_default(), &spec.env);
        let pool = match (&self.pools, &req.workload, PoolKey::of(&spec)) {
            (Some(pools), Workload::Code { language, .. }, Some(key)) if req.cleanup && scriptable => {
                Some((pools, language.clone(), key))
            }
            (Some(pools), Workload::Tool { image, .. }, Some(key)) if req.cleanup && scriptable => {
                Some((pools, crate::pool::tool_pool(image), key))
            }
            _ => None,
        };
        // A ready member's image is there: the check is the cold path's.
        let mut image_checked = false;
        if !pool.as_ref().is_some_and(|(pools, name, key)| pools.has_ready(name, key)) {
            self.backend.ensure_image(&spec.image).await?;
            image_checked = true;
        }
        // Only runs of an image that is there count towards its demand pool.
        if let Some((pools, _, key)) = &pool {
            pools.note_tool_run(key);
        }

        let mut record = RunRecord {
            id: id.clone(),
            tenant: req.tenant.clone(),
            session: req.session.clone(),
            name: req.name.clone(),
            image: spec.image.clone(),
            status: RunStatus::Pending,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            result: None,
            usage: RunUsage::default(),
            container_id: None,
            placement: Placement::Local,
            container_name: container_name.clone(),
            container_removed: false,
            error: None,
            path: "cold".into(),
            plan: None,
            created_at: self.clock.now(),
            finished_at: None,
        };
        self.store.put_run(&record)?;
        if let Some(recorded) = recorded {
            let _ = recorded.send(record.clone());
        }
        let token = CancellationToken::new();
        let active =
            Active { token: token.clone(), tenant: req.tenant.clone(), session: req.session.clone(), marker: None };
        self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), active);
        // A tenant's own bound first, so one tenant's queue never holds global slots.
        let tenant_slots = self.tenant_slots(&req.tenant);
        let closed = |_| RunError::ShuttingDown;
        let _tenant_slot = tenant_slots.acquire().await.map_err(closed)?;
        let _slot = self.slots.acquire().await.map_err(closed)?;

        // The pooled path, while a member is there and the run fits its pool.
        let mut pooled: Option<(Member, Result<(), EngineError>)> = None;
        if let Some((pools, name, key)) = &pool {
            let marker = launch::marker(&format!("{}{}", self.ids.next_hex(), self.ids.next_hex()));
            if let Some(a) = self.active.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                a.marker = Some(marker.clone());
            }
            while let Some(mut member) = pools.take(name, key) {
                // A member becomes the run's process through a script; a run
                // that no script carries faithfully (a NUL in a variable) goes cold.
                let argv = member.argv(spec.cmd.as_deref());
                let Some(script) = launch::script(&argv, &spec.env, &marker) else {
                    pools.release(member, false);
                    break;
                };
                match self.drive_pooled(&mut member, &script, &marker, timeout, &token, &mut record).await {
                    Ok(false) => {
                        // Gone before the run started (reaped, engine restarted): the next one.
                        pools.lost(member);
                        record.container_id = None;
                        record.container_name = container_name.clone();
                        record.status = RunStatus::Pending;
                    }
                    Ok(true) => {
                        pooled = Some((member, Ok(())));
                        break;
                    }
                    Err(e) => {
                        pooled = Some((member, Err(e)));
                        break;
                    }
                }
            }
        }
        let outcome = match pooled {
            Some((member, outcome)) => {
                // Never reused: removed in the background.
                if let Some(pools) = &self.pools {
                    pools.release(member, true);
                }
                record.container_removed = true;
                outcome
            }
            None if image_checked => self.drive(&spec, timeout, req.cleanup, &token, &mut record).await,
            None => match self.backend.ensure_image(&spec.image).await {
                Ok(()) => self.drive(&spec, timeout, req.cleanup, &token, &mut record).await,
                Err(e) => Err(e),
            },
        };
        self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Err(e) = outcome {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
        }
        if req.cleanup && !record.container_removed {
            if let Some(h) = record.handle() {
                match self.backend.remove(&h, true).await.or_gone() {
                    Ok(()) => record.container_removed = true,
                    Err(e) => {
                        record.error.get_or_insert(format!("the container was not removed: {e}"));
                    }
                }
            }
        }
        record.finished_at = Some(self.clock.now());
        self.store.put_run(&record)?;
        self.audit(&record.tenant, "run", &record.id.0, record.status.as_str());
        Ok(record)
    }

    /// Creates, starts and watches the container; fills in the record.
    /// A container that is to be removed after the run carries an expiry
    /// label a minute past the run's deadline: should it outlive the run
    /// unseen (its creation went unanswered and it appeared later), the
    /// reaper takes it. One kept for inspection is the caller's.
    async fn drive(
        &self,
        spec: &ContainerSpec,
        timeout: Duration,
        cleanup: bool,
        token: &CancellationToken,
        record: &mut RunRecord,
    ) -> Result<(), EngineError> {
        let spec = if cleanup {
            let mut with_expiry = spec.clone();
            let expiry = crate::reaper::expiry_after(self.clock.now(), timeout + EXPIRY_SLACK);
            with_expiry.annotations.insert(annotations::EXPIRES_AT.into(), expiry.to_rfc3339());
            std::borrow::Cow::Owned(with_expiry)
        } else {
            std::borrow::Cow::Borrowed(spec)
        };
        let spec = spec.as_ref();
        let cid = self.backend.create(spec).await?;
        record.container_id = Some(cid.id.0.clone());
        record.placement = cid.placement.clone();
        // The container is recorded before it starts, so recovery finds it;
        // the run is `running` only once it is: a follow that came between
        // would read a log that has not begun as one that has ended.
        if let Err(e) = self.store.put_run(record) {
            tracing::warn!(%e, "run record not updated");
        }
        let started = Instant::now();
        let exit = self.backend.start_watched(&cid).await?;
        record.status = RunStatus::Running;
        if let Err(e) = self.store.put_run(record) {
            tracing::warn!(%e, "run record not updated");
        }
        // The sample stream is opened (its head awaited) before the race, so
        // the same requests go out however quickly the run ends.
        let last_usage: Arc<Mutex<Option<Usage>>> = Arc::default();
        let io = self.backend.io(&cid)?;
        let samples = io.usage_stream(&cid).await.ok();
        let sampler = {
            let last = last_usage.clone();
            tokio::spawn(async move {
                if let Some(mut samples) = samples {
                    while let Some(u) = samples.next().await {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
                    }
                }
            })
        };
        let mut exit = exit;
        let ending = tokio::select! {
            code = &mut exit => match code {
                Ok(code) => Ending::Exited(code),
                Err(e) => Ending::Broken(e.to_string()),
            },
            _ = tokio::time::sleep(timeout) => Ending::TimedOut,
            _ = token.cancelled() => Ending::Cancelled,
        };
        let wall = started.elapsed();
        let exit_code = match ending {
            Ending::Exited(code) => Some(code),
            Ending::TimedOut | Ending::Cancelled => {
                self.backend.kill(&cid).await?;
                tokio::time::timeout(Duration::from_secs(10), exit).await.ok().and_then(Result::ok)
            }
            Ending::Broken(_) => None,
        };
        sampler.abort();
        let state = self.backend.inspect(&cid).await?;
        let plan = self.backend.plan(&cid).await?;

        let cap = self.policy.config.output_cap;
        let logs = io.logs(&cid, &LogRequest::default()).await?;
        let CappedStreams { stdout: out, stderr: err } = CappedStreams::new(cap).collect(logs).await?;
        let usage = last_usage.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        conclude(
            record,
            Outcome {
                ending,
                exit_code: exit_code.or(state.exit_code),
                oom_killed: state.oom_killed,
                stdout: out.into_text(),
                stdout_truncated,
                stderr: err.into_text(),
                stderr_truncated,
                usage: RunUsage {
                    wall_ms: wall.as_millis() as u64,
                    cpu_ms: usage.as_ref().map(|u| u.cpu_time_ns / 1_000_000),
                    peak_memory_bytes: usage.and_then(|u| u.memory_peak),
                },
            },
        );
        // A backend that renders plans ran nothing: the run ends with its plan.
        if let Some(plan) = plan {
            record.status = RunStatus::DryRun;
            record.plan = Some(plan);
        }
        Ok(())
    }

    /// Hands the run's script (and its end marker) to a warm member and
    /// reads its output to the end line, raced against the deadline and the
    /// cancellation like the cold path (the member is killed, which ends its
    /// output and its wait); fills in the record. `Ok(false)`: the member had
    /// ended before the run was handed to it (reaped, engine restarted),
    /// nothing ran.
    async fn drive_pooled(
        &self,
        member: &mut Member,
        script: &str,
        marker: &str,
        timeout: Duration,
        token: &CancellationToken,
        record: &mut RunRecord,
    ) -> Result<bool, EngineError> {
        if member.has_ended() {
            return Ok(false);
        }
        record.container_id = Some(member.id.id.0.clone());
        record.placement = member.id.placement.clone();
        record.container_name = member.name.clone();
        record.path = "pooled".into();
        record.status = RunStatus::Running;
        if let Err(e) = self.store.put_run(record) {
            tracing::warn!(%e, "run record not updated");
        }
        let cap = self.policy.config.output_cap;
        let (mut out, mut err) = (CappedOutput::new(cap), CappedOutput::new(cap));
        let started = Instant::now();
        let (mut oom_killed, mut member_exited) = (false, false);
        let (ending, exit_code) = {
            let run = hand_off(&mut member.session, script, marker, &mut out, &mut err);
            tokio::pin!(run);
            let ending = tokio::select! {
                ended = &mut run => match ended {
                    Ok(HandOff::Ended(end)) => {
                        oom_killed = end.oom_killed;
                        Ending::Exited(end.exit_code)
                    }
                    Ok(HandOff::MemberExited(code)) => {
                        member_exited = true;
                        Ending::Exited(code)
                    }
                    // Gone between the take and the hand-off: nothing ran.
                    Ok(HandOff::NotDelivered) => return Ok(false),
                    Err(e) => Ending::Broken(e.to_string()),
                },
                _ = tokio::time::sleep(timeout) => Ending::TimedOut,
                _ = token.cancelled() => Ending::Cancelled,
            };
            match ending {
                Ending::Exited(code) => (ending, Some(code)),
                Ending::TimedOut | Ending::Cancelled => {
                    self.backend.kill(&member.id).await?;
                    let code = match tokio::time::timeout(Duration::from_secs(10), run).await {
                        Ok(Ok(HandOff::Ended(end))) => Some(end.exit_code),
                        Ok(Ok(HandOff::MemberExited(code))) => Some(code),
                        Ok(Ok(HandOff::NotDelivered)) | Ok(Err(_)) | Err(_) => None,
                    };
                    (ending, code)
                }
                Ending::Broken(_) => (ending, None),
            }
        };
        let wall = started.elapsed();
        // The shell that would have checked the cgroup is gone: the engine
        // tells whether the OOM killer took the member.
        if member_exited && matches!(ending, Ending::Exited(137)) {
            oom_killed = self.backend.inspect(&member.id).await.map(|s| s.oom_killed).unwrap_or(false);
        }
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        conclude(
            record,
            Outcome {
                ending,
                exit_code,
                oom_killed,
                stdout: out.into_text(),
                stdout_truncated,
                stderr: err.into_text(),
                stderr_truncated,
                usage: RunUsage { wall_ms: wall.as_millis() as u64, cpu_ms: None, peak_memory_bytes: None },
            },
        );
        Ok(true)
    }
}

/// How a hand-off to a member ended.
enum HandOff {
    /// The script could not be written: the member was gone. Nothing ran.
    NotDelivered,
    /// The end line came on both streams.
    Ended(launch::End),
    /// The member's process ended without one (the run killed its shell).
    MemberExited(i64),
}

/// Writes `script` to a member's stdin and closes it, then reads the
/// member's output into `out` and `err` until the end line has come on both
/// streams, or until the member's output ends without it.
async fn hand_off(
    session: &mut StdioSession,
    script: &str,
    marker: &str,
    out: &mut CappedOutput,
    err: &mut CappedOutput,
) -> Result<HandOff, EngineError> {
    let delivered = async {
        session.stdin.write_all(script.as_bytes()).await?;
        session.stdin.shutdown().await
    };
    if delivered.await.is_err() {
        return Ok(HandOff::NotDelivered);
    }
    let (mut stdout, mut stderr) = (EndScanner::new(marker), EndScanner::new(marker));
    loop {
        match (stdout.end(), stderr.end()) {
            (Some(Ok(a)), Some(Ok(b))) if a == b => return Ok(HandOff::Ended(*a)),
            (Some(Ok(a)), Some(Ok(b))) => {
                return Err(EngineError::failed(format!("the member's end lines disagree: {a:?} and {b:?}")));
            }
            (Some(Err(why)), _) | (_, Some(Err(why))) => {
                return Err(EngineError::failed(format!("the member wrote {why}")));
            }
            _ => {}
        }
        let Some(chunk) = session.output.next().await else { break };
        let chunk = chunk?;
        match chunk.stream {
            Stream::Stderr => stderr.feed(&chunk.data, |b| err.push(b)),
            Stream::Stdout | Stream::Console => stdout.feed(&chunk.data, |b| out.push(b)),
        }
    }
    stdout.finish(|b| out.push(b));
    stderr.finish(|b| err.push(b));
    // An end line that came on one stream before the member went is the
    // command's own word; else the member's exit code is all there is.
    match (stdout.end(), stderr.end()) {
        (Some(Ok(end)), _) | (_, Some(Ok(end))) => Ok(HandOff::Ended(*end)),
        _ => Ok(HandOff::MemberExited((&mut session.exit).await?)),
    }
}

/// `PARAM_<NAME>` for a parameter name, or `None` for an empty one.
pub fn param_var(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    Some(format!("PARAM_{name}"))
}

/// The run's result: its whole output when that is JSON, else its last
/// non-empty line when that is.
pub fn parse_result(stdout: &str) -> Option<serde_json::Value> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return None;
    }
    serde_json::from_str(trimmed).ok().or_else(|| {
        trimmed.lines().rev().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str(l.trim()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_become_upper_case_variables() {
        assert_eq!(param_var("file").as_deref(), Some("PARAM_FILE"));
        assert_eq!(param_var("max-pages.v2").as_deref(), Some("PARAM_MAX_PAGES_V2"));
        assert_eq!(param_var(""), None);
    }

    #[test]
    fn a_result_is_the_json_output_or_its_last_json_line() {
        assert_eq!(parse_result("{\"a\":1}\n"), Some(serde_json::json!({"a":1})));
        assert_eq!(parse_result("working...\n{\"ok\":true}\n"), Some(serde_json::json!({"ok":true})));
        assert_eq!(parse_result("plain text\n"), None);
        assert_eq!(parse_result(""), None);
    }

    #[test]
    fn terminal_statuses_are_the_six_endings() {
        let terminal: Vec<_> = [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::TimedOut,
            RunStatus::OomKilled,
            RunStatus::Cancelled,
            RunStatus::DryRun,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(terminal.len(), 6);
        assert_eq!(serde_json::to_string(&RunStatus::TimedOut).unwrap(), "\"timed_out\"");
        assert_eq!(serde_json::to_string(&RunStatus::DryRun).unwrap(), format!("\"{}\"", RunStatus::DryRun.as_str()));
    }
}
