//! Relics (Cortex): session-scoped services on the session's private
//! network, reachable there by container name. A relic is reported running
//! and healthy only after the engine's own health check (run inside the
//! container against `health_check_endpoint`) passes; one that does not
//! become healthy in time is reported failed with its last logs and removed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::engine::{Engine, EngineError, GoneIsDone, Handle, Health, LogRequest, Placement};
use crate::model::ids::{Clock, IdSource};
use crate::model::units::{ByteSize, CpuLimit};
use crate::output::HeadTailLines;
use crate::policy::{ContainerRequest, NetworkRequest, Policy, PolicyViolation};
use crate::sessions::{check_session_id, network_name, SessionError, Sessions};
use crate::spec::{annotations, labels, HealthCheck, Kind, Network};
use crate::store::{Store, StoreError};

const KIND: &str = "relic";
/// Lines of a failed relic's output kept from its start and from its end.
const LOG_LINES_KEPT: usize = 20;
/// A longer line of a failed relic's output is cut here.
const LOG_LINE_MAX: usize = 1024;
/// A failed relic's log is read no further than this.
const LOG_READ_MAX: usize = 16 * 1024 * 1024;

/// A request to start a relic, in Cortex's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelicRequest {
    pub tenant: String,
    pub relic_name: String,
    pub session_id: String,
    pub image: String,
    /// Replaces the image's command (berth's addition to Cortex's request).
    pub cmd: Option<Vec<String>>,
    pub memory: Option<ByteSize>,
    pub cpu: Option<CpuLimit>,
    pub create_private_network: bool,
    /// Path probed inside the container, e.g. `/health`; no check when `None`.
    pub health_check_endpoint: Option<String>,
    pub health_check_timeout: Duration,
    /// The port the service listens on inside the container.
    pub port: u16,
    pub env: std::collections::BTreeMap<String, String>,
    /// When the reaper removes it (within the policy's maximum lifetime).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl RelicRecord {
    /// Its container, once it has one.
    pub fn handle(&self) -> Option<Handle> {
        self.container_id.as_ref().map(|id| Handle::at(id.clone(), self.placement.clone()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RelicStatus {
    Running,
    Stopped,
    Failed,
}

impl RelicStatus {
    /// The word for the status, as records and APIs show it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A relic as stored and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelicRecord {
    pub relic_id: String,
    pub relic_name: String,
    pub session_id: String,
    pub tenant: String,
    pub status: RelicStatus,
    pub container_id: Option<String>,
    /// Where its container runs (records made before placements read as local).
    #[serde(default)]
    pub placement: Placement,
    pub container_name: String,
    pub network_id: Option<String>,
    pub internal_url: String,
    pub healthy: bool,
    /// Why it failed, with its last logs.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelicError {
    #[error("no such relic: {0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Relics {
    backend: Arc<dyn Engine>,
    sessions: Sessions,
    policy: Policy,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
}

/// The probe run by the engine inside the relic: whichever HTTP client the image has.
fn probe(port: u16, endpoint: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{endpoint}");
    format!(
        "wget -q -O /dev/null '{url}' 2>/dev/null || curl -fsS -o /dev/null '{url}' 2>/dev/null || \
         python3 -c \"import urllib.request,sys; urllib.request.urlopen('{url}', timeout=2)\""
    )
}

impl Relics {
    pub fn new(ctx: &Context) -> Self {
        let backend = ctx.engine(Kind::Relic);
        Relics {
            sessions: Sessions::new(backend.clone(), ctx.clock.clone()),
            backend,
            policy: ctx.policy.clone(),
            store: ctx.store.clone(),
            ids: ctx.ids.clone(),
            clock: ctx.clock.clone(),
        }
    }

    pub fn get(&self, tenant: &str, relic_id: &str) -> Result<RelicRecord, RelicError> {
        self.store.get_object(KIND, tenant, relic_id)?.ok_or_else(|| RelicError::NotFound(relic_id.into()))
    }

    pub fn list(&self, tenant: &str, session: Option<&str>) -> Result<Vec<RelicRecord>, RelicError> {
        Ok(self.store.list_objects(KIND, tenant, session)?)
    }

    fn save(&self, r: &RelicRecord) -> Result<(), RelicError> {
        Ok(self.store.put_object(&r.relic_id, KIND, &r.tenant, Some(&r.session_id), r)?)
    }

    /// Starts a relic and waits until it is healthy (or has failed).
    pub async fn start(&self, req: RelicRequest) -> Result<RelicRecord, RelicError> {
        check_session_id(&req.session_id)?;
        let endpoint = req.health_check_endpoint.clone().filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            if !e.starts_with('/') || e.chars().any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\' | '`' | '$'))
            {
                return Err(RelicError::BadRequest(format!("health_check_endpoint: {e:?} must be a plain path")));
            }
        }
        let timeout = self.policy.timeout(Kind::Relic, Some(req.health_check_timeout))?;
        if let Some(t) = req.expires_at {
            self.policy.expiry(self.clock.now(), t)?;
        }
        let hex = self.ids.next_hex();
        let relic_id = format!("relic_{hex}");
        // Cortex's name for it, which its session reaches it by (an alias
        // on the session network); the engine's name is berth's own.
        let container_name = format!("relic_{}_{}_{}", req.relic_name, req.session_id, &hex[..8]);
        let engine_name = crate::spec::engine_name("relic", &hex);
        let mut creq = ContainerRequest::new(Kind::Relic, engine_name, req.image.clone());
        creq.memory = req.memory;
        creq.cpu = req.cpu;
        creq.env = req.env.clone();
        creq.cmd = req.cmd.clone();
        creq.health = endpoint.as_ref().map(|e| HealthCheck {
            command: probe(req.port, e),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_period: timeout,
        });
        if req.create_private_network {
            creq.network = NetworkRequest::Named {
                name: network_name(&req.tenant, &req.session_id),
                aliases: vec![container_name.clone(), req.relic_name.clone()],
            };
        }
        let mut spec = self.policy.admit(creq)?;
        spec.labels.insert(labels::OBJECT.into(), relic_id.clone());
        spec.labels.insert(labels::TENANT.into(), req.tenant.clone());
        spec.labels.insert(labels::SESSION.into(), req.session_id.clone());
        if let Some(t) = req.expires_at {
            spec.annotations.insert(annotations::EXPIRES_AT.into(), t.to_rfc3339());
        }

        let network_id = if req.create_private_network {
            let net = self.sessions.ensure_network(&req.tenant, &req.session_id).await?;
            // A session network made before berth named its own keeps its name.
            if let Network::Named { name, .. } = &mut spec.network {
                name.clone_from(&net.name);
            }
            Some(net.id)
        } else {
            None
        };
        self.backend.ensure_image(&spec.image).await?;
        let mut record = RelicRecord {
            relic_id,
            relic_name: req.relic_name.clone(),
            session_id: req.session_id.clone(),
            tenant: req.tenant.clone(),
            status: RelicStatus::Running,
            container_id: None,
            placement: Placement::Local,
            container_name: container_name.clone(),
            network_id,
            internal_url: format!("http://{container_name}:{}", req.port),
            healthy: false,
            error: None,
            created_at: self.clock.now(),
            expires_at: req.expires_at,
        };
        let cid = self.backend.create(&spec).await?;
        record.container_id = Some(cid.id.0.clone());
        record.placement = cid.placement.clone();
        self.save(&record)?;

        let health = match self.backend.start(&cid).await {
            Ok(()) if endpoint.is_none() => Ok(Ok(())),
            Ok(()) => self.await_health(&cid, timeout).await,
            Err(e) => Err(RelicError::from(e)),
        };
        match health {
            Ok(Ok(())) => record.healthy = true,
            Ok(Err(why)) => {
                let logs = self.last_logs(&cid).await;
                self.failed(&mut record, format!("{why}\n--- last logs ---\n{logs}"))?;
                self.sessions.remove_container(&cid).await?;
                return Ok(record);
            }
            Err(e) => {
                // The start failed, or the engine could not say how it went:
                // recorded failed and removed, as an unhealthy relic is, so
                // that no record says it runs.
                self.failed(&mut record, e.to_string())?;
                if let Err(cleanup) = self.sessions.remove_container(&cid).await {
                    tracing::warn!(relic = %record.relic_id, %cleanup, "a relic whose start failed was not removed");
                }
                return Err(e);
            }
        }
        self.save(&record)?;
        self.audit(&record.tenant, "relic.start", &record.relic_id, record.status.as_str());
        Ok(record)
    }

    /// Records a relic as failed, saying why, before its container is removed.
    fn failed(&self, record: &mut RelicRecord, error: String) -> Result<(), RelicError> {
        record.status = RelicStatus::Failed;
        record.healthy = false;
        record.error = Some(error);
        self.save(record)?;
        self.audit(&record.tenant, "relic.start", &record.relic_id, record.status.as_str());
        Ok(())
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    /// Polls the engine's health status until healthy, unhealthy, exited or `timeout`.
    async fn await_health(&self, cid: &Handle, timeout: Duration) -> Result<Result<(), String>, RelicError> {
        // Tokio's clock, so that a test with paused time reaches the deadline at once.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let state = self.backend.inspect(cid).await?;
            match state.health {
                Some(Health::Healthy) => return Ok(Ok(())),
                Some(Health::Unhealthy) => {
                    return Ok(Err(format!("health check failed: {}", state.health_log.join(" | "))))
                }
                _ if !state.running() => return Ok(Err(format!("the relic exited with code {:?}", state.exit_code))),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(format!("not healthy within {} s", timeout.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The first and last lines of what the relic wrote (stdout and stderr,
    /// in order), so that its start-up stays in view however many lines its
    /// health checks made it log afterwards.
    async fn last_logs(&self, cid: &Handle) -> String {
        let mut kept = HeadTailLines::new(LOG_LINES_KEPT, LOG_LINE_MAX);
        let logs = match self.backend.io(cid) {
            Ok(io) => io.logs(cid, &LogRequest::default()).await,
            Err(e) => Err(e),
        };
        if let Ok(mut logs) = logs {
            let mut read = 0usize;
            while let Some(Ok(chunk)) = logs.next().await {
                kept.push(&chunk.data);
                read += chunk.data.len();
                if read > LOG_READ_MAX {
                    break;
                }
            }
        }
        kept.into_text()
    }

    pub async fn stop(&self, tenant: &str, relic_id: &str) -> Result<RelicRecord, RelicError> {
        let mut record = self.get(tenant, relic_id)?;
        if let Some(h) = record.handle() {
            self.backend.stop(&h, Duration::from_secs(10)).await.or_gone()?;
        }
        record.status = RelicStatus::Stopped;
        record.healthy = false;
        self.save(&record)?;
        self.audit(tenant, "relic.stop", relic_id, "ok");
        Ok(record)
    }

    pub async fn delete(&self, tenant: &str, relic_id: &str) -> Result<(), RelicError> {
        let record = self.get(tenant, relic_id)?;
        if let Some(h) = record.handle() {
            self.sessions.remove_container(&h).await?;
        }
        self.store.delete_object(KIND, tenant, relic_id)?;
        self.audit(tenant, "relic.delete", relic_id, "ok");
        Ok(())
    }

    /// Ends a session: its containers, its network, and its relics' records marked stopped.
    pub async fn end_session(
        &self,
        tenant: &str,
        session: &str,
        force: bool,
    ) -> Result<crate::sessions::SessionCleanup, RelicError> {
        let cleanup = self.sessions.end(tenant, session, force).await?;
        for mut r in self.list(tenant, Some(session))? {
            r.status = RelicStatus::Stopped;
            r.healthy = false;
            self.save(&r)?;
        }
        let outcome = format!(
            "{} containers, {} networks removed",
            cleanup.containers_removed.len(),
            cleanup.networks_removed.len()
        );
        self.audit(tenant, "session.end", session, &outcome);
        Ok(cleanup)
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::fake::{self, Exit, FakeEngine, Op};
    use crate::engine::{Capabilities, EngineErrorKind, Selector};
    use crate::model::ids::{FixedClock, SequentialIds};
    use crate::spec::Network;

    struct World {
        fake: Arc<FakeEngine>,
        store: Arc<Store>,
        relics: Relics,
    }

    fn now() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    fn world() -> World {
        let clock = Arc::new(FixedClock::at(now()));
        let fake = Arc::new(FakeEngine::with_clock(clock.clone()));
        let store = Arc::new(Store::in_memory().unwrap());
        let ids = Arc::new(SequentialIds::default());
        let relics =
            Relics::new(&crate::context::Context::new(fake.clone(), Policy::default(), store.clone(), ids, clock));
        World { fake, store, relics }
    }

    /// A relic `db` of session `s1` on its private network, checked at `/health`.
    fn req() -> RelicRequest {
        RelicRequest {
            tenant: "t1".into(),
            relic_name: "db".into(),
            session_id: "s1".into(),
            image: "svc:1".into(),
            cmd: None,
            memory: None,
            cpu: None,
            create_private_network: true,
            health_check_endpoint: Some("/health".into()),
            health_check_timeout: Duration::from_secs(5),
            port: 8080,
            env: BTreeMap::new(),
            expires_at: None,
        }
    }

    const NAME: &str = "relic_db_s1_00000000";

    fn numbered(n: usize) -> Vec<crate::engine::LogChunk> {
        (1..=n).map(|i| fake::stdout(&format!("line {i}\n"))).collect()
    }

    #[tokio::test]
    async fn a_relic_whose_check_passes_runs_healthy_on_its_sessions_network_under_its_name() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Healthy);
        let r = w.relics.start(req()).await.unwrap();
        assert_eq!((r.status, r.healthy, r.error.as_deref()), (RelicStatus::Running, true, None));
        assert_eq!(r.relic_id, "relic_000000000001");
        assert_eq!(r.container_name, NAME);
        assert_eq!(r.internal_url, format!("http://{NAME}:8080"));
        let net = &w.fake.networks()[0];
        assert_eq!(r.network_id.as_deref(), Some(net.id.as_str()));
        let spec = w.fake.spec_of(&r.handle().unwrap()).expect("its container runs");
        let network = crate::sessions::network_name("t1", "s1");
        assert_eq!(spec.network, Network::Named { name: network, aliases: vec![NAME.into(), "db".into()] });
        assert!(spec.name.starts_with("berth-relic-") && crate::spec::is_dns_label(&spec.name), "{}", spec.name);
        assert_eq!(spec.labels[labels::OBJECT], r.relic_id);
        assert_eq!(spec.labels[labels::SESSION], "s1");
        assert_eq!(spec.labels[labels::TENANT], "t1");
        let check = spec.health.expect("the engine checks it");
        assert!(check.command.contains("http://127.0.0.1:8080/health"), "{}", check.command);
        assert_eq!(w.relics.get("t1", &r.relic_id).unwrap(), r, "the record is stored");
        assert_eq!(w.store.audit_trail("t1", 1).unwrap()[0].outcome, "running");
    }

    #[tokio::test]
    async fn a_relic_without_a_check_is_healthy_once_started_and_is_not_inspected() {
        let w = world();
        let r = w.relics.start(RelicRequest { health_check_endpoint: None, ..req() }).await.unwrap();
        assert!(r.healthy);
        assert!(w.fake.calls_of(Op::Inspect).is_empty());
        assert!(w.fake.spec_of(&r.handle().unwrap()).unwrap().health.is_none());
    }

    #[tokio::test]
    async fn a_relic_without_a_private_network_joins_the_bridge_and_makes_no_network() {
        let w = world();
        let r = w.relics.start(RelicRequest { create_private_network: false, health_check_endpoint: None, ..req() });
        let r = r.await.unwrap();
        assert_eq!(r.network_id, None);
        assert_eq!(w.fake.spec_of(&r.handle().unwrap()).unwrap().network, Network::Bridge);
        assert!(w.fake.networks().is_empty());
    }

    #[tokio::test]
    async fn a_relic_whose_check_turns_unhealthy_is_failed_with_its_first_and_last_log_lines_and_removed() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Unhealthy);
        w.fake.set_image_logs("svc:1", numbered(50));
        let r = w.relics.start(req()).await.expect("a failed relic is a result, not an error");
        assert_eq!((r.status, r.healthy), (RelicStatus::Failed, false));
        let error = r.error.clone().expect("it says why");
        assert!(error.starts_with("health check failed: "), "{error}");
        for kept in ["line 1\n", "line 20\n", "line 31\n", "line 50\n", "[berth: 10 lines left out]"] {
            assert!(error.contains(kept), "{kept:?} is kept: {error}");
        }
        assert!(!error.contains("line 25\n"), "the middle is left out: {error}");
        assert!(w.fake.containers().is_empty(), "its container is removed");
        assert_eq!(w.relics.get("t1", &r.relic_id).unwrap(), r, "the record is stored as it was answered");
        let started: Vec<_> =
            w.store.audit_trail("t1", 10).unwrap().into_iter().filter(|e| e.action == "relic.start").collect();
        assert_eq!(started.len(), 1, "one start, audited once");
        assert_eq!(started[0].outcome, "failed");
    }

    #[tokio::test]
    async fn a_relic_that_exits_before_it_is_healthy_is_failed_with_its_exit_code() {
        let w = world();
        w.fake.set_image_exit("svc:1", Exit::Code(2));
        w.fake.set_image_logs("svc:1", vec![fake::stderr("bad config\n")]);
        let r = w.relics.start(req()).await.unwrap();
        assert_eq!(r.status, RelicStatus::Failed);
        let error = r.error.unwrap();
        assert!(error.starts_with("the relic exited with code Some(2)"), "{error}");
        assert!(error.ends_with("--- last logs ---\nbad config\n"), "{error}");
        assert!(w.fake.containers().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_relic_not_healthy_in_time_is_failed_and_removed() {
        let w = world();
        let r = w.relics.start(RelicRequest { health_check_timeout: Duration::from_secs(3), ..req() }).await.unwrap();
        assert_eq!(r.status, RelicStatus::Failed);
        assert!(r.error.unwrap().starts_with("not healthy within 3 s"));
        assert!(w.fake.calls_of(Op::Inspect).len() >= 12, "it was polled until the deadline");
        assert!(w.fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_relic_whose_create_fails_leaves_no_record_and_no_container() {
        let w = world();
        w.fake.fail_next(Op::Create, EngineError::failed("no space left on device"));
        let e = w.relics.start(req()).await.expect_err("the create fails");
        assert!(matches!(e, RelicError::Engine(ref e) if e.message() == "no space left on device"), "{e}");
        assert!(w.relics.list("t1", None).unwrap().is_empty(), "no record says it runs");
        assert!(w.fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_relic_whose_start_fails_is_recorded_failed_and_its_container_removed() {
        let w = world();
        w.fake.fail_next(Op::Start, EngineError::failed("port is already allocated"));
        let e = w.relics.start(req()).await.expect_err("the start fails");
        assert!(matches!(e, RelicError::Engine(_)), "{e}");
        let records = w.relics.list("t1", Some("s1")).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].status, records[0].healthy), (RelicStatus::Failed, false));
        assert!(records[0].error.as_deref().is_some_and(|e| e.contains("port is already allocated")));
        assert!(w.fake.containers().is_empty(), "no container is left made but not started");
    }

    #[tokio::test]
    async fn a_relic_whose_health_the_engine_cannot_tell_is_recorded_failed_and_removed() {
        let w = world();
        w.fake.fail_next(Op::Inspect, EngineError::unavailable("the daemon is restarting"));
        let e = w.relics.start(req()).await.expect_err("the inspect fails");
        assert!(matches!(e, RelicError::Engine(ref e) if e.kind() == EngineErrorKind::Unavailable), "{e}");
        let records = w.relics.list("t1", Some("s1")).unwrap();
        assert_eq!(records[0].status, RelicStatus::Failed, "no record says it runs");
        assert!(w.fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_failed_relic_whose_container_cannot_be_removed_is_still_recorded_failed() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Unhealthy);
        w.fake.fail_next(Op::Remove, EngineError::failed("device or resource busy"));
        assert!(w.relics.start(req()).await.is_err(), "the removal failed");
        let records = w.relics.list("t1", Some("s1")).unwrap();
        assert_eq!(records[0].status, RelicStatus::Failed);
        assert!(records[0].error.as_deref().is_some_and(|e| e.starts_with("health check failed")));
    }

    #[tokio::test]
    async fn a_relic_whose_image_cannot_be_had_makes_no_container_and_no_record() {
        let w = world();
        w.fake.fail_next(Op::EnsureImage, EngineError::not_found("image svc:1 could not be pulled"));
        assert!(matches!(w.relics.start(req()).await, Err(RelicError::Engine(e)) if e.is_not_found()));
        assert!(w.fake.calls_of(Op::Create).is_empty());
        assert!(w.relics.list("t1", None).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_health_endpoint_that_is_not_a_plain_path_is_refused_before_anything_is_made() {
        let w = world();
        for bad in ["health", "/h'; rm -rf /", "/a b", "/$(id)"] {
            let r = w.relics.start(RelicRequest { health_check_endpoint: Some(bad.into()), ..req() }).await;
            assert!(matches!(r, Err(RelicError::BadRequest(_))), "{bad:?}");
        }
        let bad_session = w.relics.start(RelicRequest { session_id: "no/slash".into(), ..req() }).await;
        assert!(matches!(bad_session, Err(RelicError::Session(SessionError::BadId(_)))));
        assert!(w.fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_relic_on_an_engine_without_isolation_that_asks_for_a_private_network_is_refused() {
        let w = world();
        w.fake.set_capabilities(Capabilities { isolation: false, ..fake::docker_capabilities() });
        let r = w.relics.start(req()).await;
        assert!(matches!(r, Err(RelicError::Session(SessionError::NoIsolation(_)))));
        assert!(w.fake.containers().is_empty());
    }

    #[tokio::test]
    async fn stopping_a_relic_stops_its_container_and_marks_it_stopped() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Healthy);
        let r = w.relics.start(req()).await.unwrap();
        let stopped = w.relics.stop("t1", &r.relic_id).await.unwrap();
        assert_eq!((stopped.status, stopped.healthy), (RelicStatus::Stopped, false));
        assert_eq!(w.fake.inspect(&r.handle().unwrap()).await.unwrap().exit_code, Some(fake::STOPPED));
        assert_eq!(w.relics.get("t1", &r.relic_id).unwrap().status, RelicStatus::Stopped);
        assert!(matches!(w.relics.stop("t2", &r.relic_id).await, Err(RelicError::NotFound(_))));
    }

    #[tokio::test]
    async fn deleting_a_relic_removes_its_container_and_its_record() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Healthy);
        let r = w.relics.start(req()).await.unwrap();
        w.relics.delete("t1", &r.relic_id).await.unwrap();
        assert!(w.fake.containers().is_empty());
        assert!(matches!(w.relics.get("t1", &r.relic_id), Err(RelicError::NotFound(_))));
    }

    #[tokio::test]
    async fn ending_a_session_removes_its_relics_containers_and_network_and_marks_them_stopped() {
        let w = world();
        w.fake.set_image_health("svc:1", Health::Healthy);
        let r = w.relics.start(req()).await.unwrap();
        let refused = w.relics.end_session("t1", "s1", false).await;
        assert!(matches!(refused, Err(RelicError::Session(SessionError::Running { running: 1, .. }))));
        assert_eq!(w.relics.get("t1", &r.relic_id).unwrap().status, RelicStatus::Running, "nothing changed");
        let engine_name = w.fake.spec_of(&r.handle().unwrap()).unwrap().name;
        let cleanup = w.relics.end_session("t1", "s1", true).await.unwrap();
        assert_eq!(cleanup.containers_removed, [engine_name]);
        assert_eq!(cleanup.networks_removed, [crate::sessions::network_name("t1", "s1")]);
        let after = w.relics.get("t1", &r.relic_id).unwrap();
        assert_eq!((after.status, after.healthy), (RelicStatus::Stopped, false));
        assert!(w.fake.list(&Selector::managed()).await.unwrap().is_empty());
        assert_eq!(w.store.audit_trail("t1", 1).unwrap()[0].outcome, "1 containers, 1 networks removed");
    }

    #[tokio::test]
    async fn a_relic_expiring_past_the_maximum_lifetime_is_refused() {
        let w = world();
        let r = w.relics.start(RelicRequest { expires_at: Some(now() + chrono::Duration::days(30)), ..req() }).await;
        assert!(matches!(r, Err(RelicError::Policy(v)) if v.field == "expires_at"));
        assert!(w.fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_relics_expiry_is_kept_with_its_container() {
        let w = world();
        let t = now() + chrono::Duration::hours(2);
        let r = w.relics.start(RelicRequest { expires_at: Some(t), health_check_endpoint: None, ..req() }).await;
        let r = r.unwrap();
        let spec = w.fake.spec_of(&r.handle().unwrap()).unwrap();
        assert_eq!(spec.annotations[annotations::EXPIRES_AT], t.to_rfc3339());
        assert_eq!(r.expires_at, Some(t));
    }
}
