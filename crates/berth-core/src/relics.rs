//! Relics (Cortex): session-scoped services on the session's private
//! network, reachable there by container name. A relic is reported running
//! and healthy only after the engine's own health check (run inside the
//! container against `health_check_endpoint`) passes; one that does not
//! become healthy in time is reported failed with its last logs and removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, GoneIsDone, Handle, Health, LogRequest, Placement};
use crate::ids::{Clock, IdSource};
use crate::output::HeadTailLines;
use crate::policy::{ContainerRequest, NetworkRequest, Policy, PolicyViolation};
use crate::sessions::{check_session_id, network_name, SessionError, Sessions};
use crate::spec::{annotations, labels, HealthCheck, Kind, Network};
use crate::store::{Store, StoreError};
use crate::units::{ByteSize, CpuLimit};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelicStatus {
    Running,
    Stopped,
    Failed,
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

/// The word for a relic's status, as records and APIs show it.
pub fn status_word(s: RelicStatus) -> &'static str {
    match s {
        RelicStatus::Running => "running",
        RelicStatus::Stopped => "stopped",
        RelicStatus::Failed => "failed",
    }
}

impl Relics {
    pub fn new(
        backend: Arc<dyn Engine>,
        policy: Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Relics { sessions: Sessions::new(backend.clone(), clock.clone()), backend, policy, store, ids, clock }
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
        self.backend.start(&cid).await?;

        match endpoint {
            None => record.healthy = true,
            Some(_) => match self.await_health(&cid, timeout).await? {
                Ok(()) => record.healthy = true,
                Err(why) => {
                    let logs = self.last_logs(&cid).await;
                    record.status = RelicStatus::Failed;
                    record.error = Some(format!("{why}\n--- last logs ---\n{logs}"));
                    self.sessions.remove_container(&cid).await?;
                }
            },
        }
        self.save(&record)?;
        self.audit(&record.tenant, "relic.start", &record.relic_id, status_word(record.status));
        Ok(record)
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    /// Polls the engine's health status until healthy, unhealthy, exited or `timeout`.
    async fn await_health(&self, cid: &Handle, timeout: Duration) -> Result<Result<(), String>, RelicError> {
        let deadline = Instant::now() + timeout;
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
            if Instant::now() >= deadline {
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
