//! Agents: long-lived containers (LAIS, Warder, docker-spawner).
//!
//! An agent is a definition kept in the store (image, the agent's code
//! mounted read-only at `/app/agent` or a worktree mounted for a uid/gid,
//! env, network, ports to publish, limits, expiry) and at most one container
//! made from it. Starting an agent creates its container when it is missing
//! (never made, or gone); published host ports come from a persisted pool
//! (default 9000–9500), are never given twice, and are freed on removal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{
    Engine, EngineError, ExecOutput, ExecRequest, GoneIsDone, Handle, LogRequest, LogStream, Placement, Usage,
    WorkloadState,
};
use crate::ids::{Clock, IdSource};
use crate::policy::{ContainerRequest, NetworkRequest, Policy, PolicyViolation};
use crate::spec::{annotations, labels, Bind, Kind, PortMapping};
use crate::store::{port_owner, Store, StoreError};
use crate::units::{ByteSize, CpuLimit};

const KIND: &str = "agent";

/// Where the agent's code is mounted, read-only.
pub const AGENT_CODE_MOUNT: &str = "/app/agent";

/// A worktree mounted read-write for a given uid/gid (docker-spawner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    pub host_path: String,
    pub mount_at: String,
    pub uid: u32,
    pub gid: u32,
}

/// What an agent is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDefinition {
    pub id: String,
    pub tenant: String,
    pub session: Option<String>,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    /// Host folder of the agent's code, mounted read-only at `/app/agent`.
    pub code_dir: Option<String>,
    pub worktree: Option<Worktree>,
    pub env: BTreeMap<String, String>,
    /// A named network to join (the bridge when `None`).
    pub network: Option<String>,
    /// Container ports to publish on pool ports of the host.
    pub ports: Vec<u16>,
    pub memory: Option<ByteSize>,
    pub cpu: Option<CpuLimit>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Extra labels (a seed's own, such as `com.tidepool.*`).
    pub labels: BTreeMap<String, String>,
    /// What people and other containers call the agent (LAIS's name,
    /// docker-spawner's hostname): its hostname when it is a DNS label, and
    /// its alias on its named network. Never the engine's name, which is
    /// berth's own (records made before kept theirs under `container_name`).
    #[serde(default, alias = "container_name")]
    pub name: Option<String>,
}

/// An agent with what berth made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub definition: AgentDefinition,
    pub container_id: Option<String>,
    /// Where its container runs (records made before placements read as local).
    #[serde(default)]
    pub placement: Placement,
    pub container_name: String,
    pub published: Vec<PortMapping>,
    pub created_at: DateTime<Utc>,
}

impl AgentRecord {
    /// Its container, once it has one.
    pub fn handle(&self) -> Option<Handle> {
        self.container_id.as_ref().map(|id| Handle::at(id.clone(), self.placement.clone()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no such agent: {0}")]
    NotFound(String),
    #[error("agent {0} exists already")]
    Exists(String),
    #[error("no free port left in {0}–{1}")]
    NoPorts(u16, u16),
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The published-port pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange { first: 9000, last: 9500 }
    }
}

pub struct Agents {
    backend: Arc<dyn Engine>,
    policy: Policy,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    ports: PortRange,
}

impl Agents {
    pub fn new(
        backend: Arc<dyn Engine>,
        policy: Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
        ports: PortRange,
    ) -> Self {
        Agents { backend, policy, store, clock, ids, ports }
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    pub fn get(&self, tenant: &str, id: &str) -> Result<AgentRecord, AgentError> {
        self.store.get_object(KIND, tenant, id)?.ok_or_else(|| AgentError::NotFound(id.into()))
    }

    pub fn list(&self, tenant: &str) -> Result<Vec<AgentRecord>, AgentError> {
        Ok(self.store.list_objects(KIND, tenant, None)?)
    }

    /// Defines an agent (checked by policy now, so a bad definition is refused
    /// before anything exists); `id` empty means berth picks one.
    pub fn define(&self, mut def: AgentDefinition) -> Result<AgentRecord, AgentError> {
        if def.id.is_empty() {
            def.id = format!("agent_{}", self.ids.next_hex());
        }
        if self.store.get_object::<AgentRecord>(KIND, &def.tenant, &def.id)?.is_some() {
            return Err(AgentError::Exists(def.id));
        }
        if let Some(t) = def.expires_at {
            self.policy.expiry(self.clock.now(), t)?;
        }
        // The engine's name is berth's own: two tenants may pick one id.
        let name = crate::spec::engine_name("agent", &self.ids.next_hex());
        // Admit once without ports to refuse a bad definition early; the
        // ports get their host side only when the container is made.
        crate::policy::check_ports(def.ports.iter().copied())?;
        self.policy.admit(self.request(&def, &name, &[]))?;
        let record = AgentRecord {
            definition: def,
            container_id: None,
            placement: Placement::Local,
            container_name: name,
            published: vec![],
            created_at: self.clock.now(),
        };
        let d = &record.definition;
        self.store.put_object(&d.id, KIND, &d.tenant, d.session.as_deref(), &record)?;
        self.audit(&d.tenant, "agent.define", &d.id, "ok");
        Ok(record)
    }

    fn request(&self, def: &AgentDefinition, name: &str, published: &[PortMapping]) -> ContainerRequest {
        let mut req = ContainerRequest::new(Kind::Agent, name, def.image.clone());
        req.cmd = def.cmd.clone();
        req.env = def.env.clone();
        req.labels = def.labels.clone();
        req.memory = def.memory;
        req.cpu = def.cpu;
        // Its name for people is its hostname and, on a named network, the
        // alias other containers reach it by; never the engine's name.
        let hostname = def.name.clone().filter(|n| crate::spec::is_dns_label(n));
        req.network = match &def.network {
            Some(n) => NetworkRequest::Named { name: n.clone(), aliases: def.name.iter().cloned().collect() },
            None => NetworkRequest::Bridge,
        };
        req.hostname = hostname;
        if let Some(code) = &def.code_dir {
            req.binds.push(Bind { host: code.clone(), container: AGENT_CODE_MOUNT.into(), read_only: true });
        }
        if let Some(w) = &def.worktree {
            req.binds.push(Bind { host: w.host_path.clone(), container: w.mount_at.clone(), read_only: false });
            req.user = Some(format!("{}:{}", w.uid, w.gid));
            req.working_dir = Some(w.mount_at.clone());
        }
        req.ports = published.to_vec();
        req
    }

    /// Starts an agent, creating its container first when it is missing.
    pub async fn start(&self, tenant: &str, id: &str) -> Result<AgentRecord, AgentError> {
        let mut record = self.get(tenant, id)?;
        let existing = match record.handle() {
            Some(h) => match self.backend.inspect(&h).await {
                Ok(state) => Some((h, state)),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let h = match existing {
            Some((h, state)) if state.running() => return self.saved(record, h),
            Some((h, _)) => h,
            None => self.create_container(&mut record).await?,
        };
        self.backend.start(&h).await?;
        self.audit(tenant, "agent.start", id, "ok");
        self.saved(record, h)
    }

    fn saved(&self, mut record: AgentRecord, h: Handle) -> Result<AgentRecord, AgentError> {
        record.container_id = Some(h.id.0);
        record.placement = h.placement;
        let d = &record.definition;
        self.store.put_object(&d.id, KIND, &d.tenant, d.session.as_deref(), &record)?;
        Ok(record)
    }

    async fn create_container(&self, record: &mut AgentRecord) -> Result<Handle, AgentError> {
        let def = record.definition.clone();
        let owner = port_owner(&def.tenant, &def.id);
        self.store.release_ports(&owner)?;
        let hosts = self.store.allocate_ports(&owner, def.ports.len(), self.ports.first, self.ports.last)?;
        if hosts.len() < def.ports.len() {
            return Err(AgentError::NoPorts(self.ports.first, self.ports.last));
        }
        let published: Vec<PortMapping> =
            def.ports.iter().zip(&hosts).map(|(&container, &host)| PortMapping { container, host }).collect();
        let admitted = self.policy.admit(self.request(&def, &record.container_name, &published));
        let mut spec = match admitted {
            Ok(spec) => spec,
            Err(e) => {
                self.store.release_ports(&owner)?;
                return Err(e.into());
            }
        };
        spec.labels.insert(labels::OBJECT.into(), def.id.clone());
        spec.labels.insert(labels::TENANT.into(), def.tenant.clone());
        if let Some(s) = &def.session {
            spec.labels.insert(labels::SESSION.into(), s.clone());
        }
        if let Some(t) = def.expires_at {
            spec.annotations.insert(annotations::EXPIRES_AT.into(), t.to_rfc3339());
        }
        let created = async {
            self.backend.ensure_image(&spec.image).await?;
            // A container of the same name left behind (by a crash, say) is
            // replaced: engines take a name where they take an id.
            self.backend.remove(&Handle::local(spec.name.clone()), true).await.or_gone()?;
            self.backend.create(&spec).await
        }
        .await;
        match created {
            Ok(h) => {
                record.published = published;
                Ok(h)
            }
            Err(e) => {
                self.store.release_ports(&owner)?;
                Err(e.into())
            }
        }
    }

    /// Stops with SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&self, tenant: &str, id: &str, grace: Duration) -> Result<AgentRecord, AgentError> {
        let record = self.get(tenant, id)?;
        if let Some(h) = record.handle() {
            self.backend.stop(&h, grace).await.or_gone()?;
        }
        self.audit(tenant, "agent.stop", id, "ok");
        Ok(record)
    }

    pub async fn restart(&self, tenant: &str, id: &str, grace: Duration) -> Result<AgentRecord, AgentError> {
        self.stop(tenant, id, grace).await?;
        self.start(tenant, id).await
    }

    /// Removes the agent: its container (killed if running), its ports, its record.
    pub async fn remove(&self, tenant: &str, id: &str) -> Result<(), AgentError> {
        let record = self.get(tenant, id)?;
        if let Some(h) = record.handle() {
            self.backend.remove(&h, true).await.or_gone()?;
        }
        self.store.release_ports(&port_owner(tenant, id))?;
        self.store.delete_object(KIND, tenant, id)?;
        self.audit(tenant, "agent.remove", id, "ok");
        Ok(())
    }

    /// Records a renewed expiry (the reaper keeps the renewal that counts).
    pub fn set_expiry(&self, tenant: &str, id: &str, expires_at: DateTime<Utc>) -> Result<AgentRecord, AgentError> {
        let mut record = self.get(tenant, id)?;
        record.definition.expires_at = Some(expires_at);
        let d = &record.definition;
        self.store.put_object(&d.id, KIND, &d.tenant, d.session.as_deref(), &record)?;
        self.audit(tenant, "agent.renew", id, &expires_at.to_rfc3339());
        Ok(record)
    }

    fn container(&self, tenant: &str, id: &str) -> Result<Handle, AgentError> {
        let record = self.get(tenant, id)?;
        record.handle().ok_or_else(|| AgentError::NotFound(format!("{id} has no container yet")))
    }

    pub async fn state(&self, tenant: &str, id: &str) -> Result<WorkloadState, AgentError> {
        Ok(self.backend.inspect(&self.container(tenant, id)?).await?)
    }

    pub async fn logs(&self, tenant: &str, id: &str, request: &LogRequest) -> Result<LogStream, AgentError> {
        let h = self.container(tenant, id)?;
        Ok(self.backend.io(&h)?.logs(&h, request).await?)
    }

    pub async fn stats(&self, tenant: &str, id: &str) -> Result<Usage, AgentError> {
        let h = self.container(tenant, id)?;
        Ok(self.backend.io(&h)?.usage(&h).await?)
    }

    pub async fn exec(&self, tenant: &str, id: &str, request: &ExecRequest) -> Result<ExecOutput, AgentError> {
        let h = self.container(tenant, id)?;
        let out = self.backend.io(&h)?.exec_to_end(&h, request, self.policy.config.output_cap).await?;
        self.audit(tenant, "agent.exec", id, &format!("exit {}", out.exit_code));
        Ok(out)
    }
}
