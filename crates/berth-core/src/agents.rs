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

use crate::context::Context;
use crate::engine::{
    Engine, EngineError, ExecOutput, ExecRequest, GoneIsDone, Handle, LogRequest, LogStream, Placement, Usage,
    WorkloadState,
};
use crate::model::ids::{Clock, IdSource};
use crate::model::units::{ByteSize, CpuLimit};
use crate::policy::{ContainerRequest, NetworkRequest, Policy, PolicyViolation};
use crate::spec::{annotations, labels, Bind, Kind, PortMapping};
use crate::store::{port_owner, Inserted, Store, StoreError};

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

impl AgentDefinition {
    /// An agent of `tenant` named `id` that runs `image` as it is, with
    /// nothing else set (no code, ports, limits, expiry or network).
    pub fn new(tenant: impl Into<String>, id: impl Into<String>, image: impl Into<String>) -> Self {
        AgentDefinition {
            id: id.into(),
            tenant: tenant.into(),
            session: None,
            image: image.into(),
            cmd: None,
            code_dir: None,
            worktree: None,
            env: BTreeMap::new(),
            network: None,
            ports: vec![],
            memory: None,
            cpu: None,
            expires_at: None,
            labels: BTreeMap::new(),
            name: None,
        }
    }
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
    #[error("the container name {0} is another agent's")]
    NameTaken(String),
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
    pub fn new(ctx: &Context, ports: PortRange) -> Self {
        Agents {
            backend: ctx.engine(Kind::Agent),
            policy: ctx.policy.clone(),
            store: ctx.store.clone(),
            clock: ctx.clock.clone(),
            ids: ctx.ids.clone(),
            ports,
        }
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
        // Ids are the tenant's own; the engine's name is berth's and one
        // namespace over every tenant (a record of before may hold one).
        let unique = Some(("$.container_name", record.container_name.as_str()));
        match self.store.insert_object(&d.id, KIND, &d.tenant, d.session.as_deref(), &record, unique)? {
            Inserted::Done => {}
            Inserted::IdTaken => return Err(AgentError::Exists(d.id.clone())),
            Inserted::ValueTaken => return Err(AgentError::NameTaken(record.container_name.clone())),
        }
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
            None => {
                let h = self.create_container(&mut record).await?;
                // Recorded before it starts: should the start fail, the
                // record still names the container (and its ports), so the
                // next start starts it and a removal removes it.
                record = self.saved(record, h.clone())?;
                h
            }
        };
        self.backend.start(&h).await?;
        self.audit(tenant, "agent.start", id, "ok");
        self.saved(record, h)
    }

    /// The record of an agent its engine now runs at `now`: saved there
    /// when it moved (kept as it was, with a warning, should the store
    /// refuse; the next read tries again).
    pub fn moved(&self, record: AgentRecord, now: Placement) -> AgentRecord {
        if record.placement == now {
            return record;
        }
        let Some(h) = record.handle().map(|h| Handle::at(h.id.0, now.clone())) else { return record };
        tracing::info!(agent = %record.definition.id, from = ?record.placement, to = ?now, "the agent runs elsewhere now");
        match self.saved(record.clone(), h) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(agent = %record.definition.id, %e, "the agent's new place was not saved");
                AgentRecord { placement: now, ..record }
            }
        }
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
            // A container of the same name that this agent left behind (by a
            // crash, say) is replaced: engines take a name where they take an
            // id. One that is not this agent's is left alone, and the create
            // then fails on the name.
            let leftover = Handle::local(spec.name.clone());
            match self.backend.inspect(&leftover).await {
                Ok(found) if same_owner(&found.labels, &spec.labels) => {
                    self.backend.remove(&leftover, true).await.or_gone()?
                }
                Ok(_) => {
                    tracing::warn!(name = %spec.name, "a container of the agent's name is not its own; left alone")
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
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

/// Whether a found container's labels say it is berth's container of the
/// same object and tenant as `wanted`'s.
fn same_owner(found: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    [labels::MANAGED, labels::TENANT, labels::OBJECT]
        .iter()
        .all(|k| found.get(*k).is_some() && found.get(*k) == wanted.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, Op};
    use crate::engine::{EngineErrorKind, Phase};
    use crate::model::ids::{FixedClock, SequentialIds};

    struct World {
        fake: Arc<FakeEngine>,
        store: Arc<Store>,
        agents: Agents,
    }

    fn now() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    /// Agents over the fake engine, with three ports (9000–9002) to publish.
    fn world() -> World {
        let fake = Arc::new(FakeEngine::new());
        let store = Arc::new(Store::in_memory().unwrap());
        let agents = Agents::new(
            &crate::context::Context::new(
                fake.clone(),
                Policy::default(),
                store.clone(),
                Arc::new(SequentialIds::default()),
                Arc::new(FixedClock::at(now())),
            ),
            PortRange { first: 9000, last: 9002 },
        );
        World { fake, store, agents }
    }

    fn def(tenant: &str, id: &str) -> AgentDefinition {
        AgentDefinition { cmd: Some(vec!["serve".into()]), ..AgentDefinition::new(tenant, id, "agent:1") }
    }

    fn with_ports(mut d: AgentDefinition, ports: &[u16]) -> AgentDefinition {
        d.ports = ports.to_vec();
        d
    }

    /// Who holds which of the pool's ports now: the free ones are taken by a probe.
    fn free_ports(store: &Store) -> Vec<u16> {
        let mut free = Vec::new();
        while let Some(&p) = store.allocate_ports("probe", 1, 9000, 9002).unwrap().first() {
            free.push(p);
        }
        store.release_ports("probe").unwrap();
        free
    }

    #[test]
    fn defining_an_agent_records_it_and_makes_nothing_on_the_engine() {
        let w = world();
        let record = w.agents.define(def("t1", "a1")).unwrap();
        assert!(record.container_name.starts_with("berth-agent-"), "{}", record.container_name);
        assert!(crate::spec::is_dns_label(&record.container_name));
        assert!(!record.container_name.contains("a1"), "the engine's name is not the client's id");
        assert_eq!(record.container_id, None);
        assert_eq!(w.agents.get("t1", "a1").unwrap(), record);
        assert!(w.fake.calls().is_empty());
        assert_eq!(w.store.audit_trail("t1", 1).unwrap()[0].action, "agent.define");
    }

    #[test]
    fn an_agent_defined_without_an_id_is_given_one_from_the_id_source() {
        let w = world();
        assert_eq!(w.agents.define(def("t1", "")).unwrap().definition.id, "agent_000000000001");
    }

    #[test]
    fn a_definition_the_policy_refuses_is_not_recorded() {
        let w = world();
        let mut bad = def("t1", "a1");
        bad.image = "not an image".into();
        assert!(matches!(w.agents.define(bad), Err(AgentError::Policy(v)) if v.field == "image"));
        assert!(matches!(w.agents.define(with_ports(def("t1", "a2"), &[0])), Err(AgentError::Policy(_))));
        assert!(w.agents.list("t1").unwrap().is_empty());
    }

    #[test]
    fn an_agent_id_the_tenant_has_already_is_refused() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        assert!(matches!(w.agents.define(def("t1", "a1")), Err(AgentError::Exists(id)) if id == "a1"));
    }

    #[test]
    fn an_agent_id_another_tenant_holds_is_that_tenants_and_both_records_stay_apart() {
        let w = world();
        let theirs = w.agents.define(def("t1", "a1")).unwrap();
        let mut mine = def("t2", "a1");
        mine.image = "mine:1".into();
        let mine = w.agents.define(mine).unwrap();
        assert_eq!(w.agents.get("t1", "a1").unwrap(), theirs, "t1's definition was not overwritten");
        assert_eq!(w.agents.get("t2", "a1").unwrap(), mine);
        assert_ne!(theirs.container_name, mine.container_name, "their containers are named apart");
    }

    #[test]
    fn a_name_for_people_is_the_agents_hostname_and_alias_not_its_engine_name() {
        let w = world();
        let mut d = def("t1", "a1");
        d.name = Some("web-1".into());
        d.network = Some("seed_net".into());
        let record = w.agents.define(d).unwrap();
        assert_ne!(record.container_name, "web-1");
        let spec = w.agents.policy.admit(w.agents.request(&record.definition, &record.container_name, &[])).unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(
            spec.network,
            crate::spec::Network::Named { name: "seed_net".into(), aliases: vec!["web-1".into()] }
        );
    }

    #[tokio::test]
    async fn starting_an_agent_makes_its_labelled_container_on_published_pool_ports_and_runs_it() {
        let w = world();
        let mut d = with_ports(def("t1", "a1"), &[8080, 8081]);
        d.session = Some("s1".into());
        d.expires_at = Some(now() + chrono::Duration::hours(1));
        w.agents.define(d).unwrap();
        let record = w.agents.start("t1", "a1").await.unwrap();
        let h = record.handle().expect("the record names its container");
        let spec = w.fake.spec_of(&h).expect("the container exists");
        assert_eq!(spec.name, record.container_name);
        assert_eq!(spec.labels[labels::OBJECT], "a1");
        assert_eq!(spec.labels[labels::TENANT], "t1");
        assert_eq!(spec.labels[labels::SESSION], "s1");
        assert_eq!(spec.annotations[annotations::EXPIRES_AT], "2026-03-01T01:00:00+00:00");
        let published = vec![PortMapping { container: 8080, host: 9000 }, PortMapping { container: 8081, host: 9001 }];
        assert_eq!(spec.ports, published);
        assert_eq!(record.published, published);
        assert_eq!(w.agents.state("t1", "a1").await.unwrap().phase, Phase::Running);
        assert_eq!(w.agents.get("t1", "a1").unwrap(), record, "the record is stored");
        assert_eq!(free_ports(&w.store), [9002]);
        let ops: Vec<Op> = w.fake.calls().iter().map(|c| c.op).collect();
        // The name is looked up first: nothing of it is left, so nothing is removed.
        assert_eq!(ops, [Op::EnsureImage, Op::Inspect, Op::Create, Op::Start, Op::Inspect]);
    }

    #[tokio::test]
    async fn starting_a_running_agent_only_looks_at_its_container() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let first = w.agents.start("t1", "a1").await.unwrap();
        w.fake.clear_calls();
        assert_eq!(w.agents.start("t1", "a1").await.unwrap(), first);
        assert_eq!(w.fake.calls_of(Op::Inspect).len(), 1);
        assert_eq!(w.fake.calls().len(), 1);
    }

    #[tokio::test]
    async fn starting_a_stopped_agent_starts_the_container_it_has() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let first = w.agents.start("t1", "a1").await.unwrap();
        w.agents.stop("t1", "a1", Duration::from_secs(1)).await.unwrap();
        assert_eq!(w.agents.state("t1", "a1").await.unwrap().phase, Phase::Exited);
        let again = w.agents.start("t1", "a1").await.unwrap();
        assert_eq!(again.container_id, first.container_id);
        assert_eq!(w.fake.calls_of(Op::Create).len(), 1);
        assert_eq!(w.agents.state("t1", "a1").await.unwrap().phase, Phase::Running);
    }

    #[tokio::test]
    async fn starting_an_agent_whose_container_is_gone_makes_a_new_one_on_the_same_ports() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080])).unwrap();
        let first = w.agents.start("t1", "a1").await.unwrap();
        assert!(w.fake.vanish(&first.handle().unwrap()));
        let again = w.agents.start("t1", "a1").await.unwrap();
        assert_ne!(again.container_id, first.container_id);
        assert_eq!(again.published, first.published);
        assert_eq!(w.fake.containers().len(), 1);
        assert_eq!(free_ports(&w.store), [9001, 9002]);
    }

    #[tokio::test]
    async fn a_container_left_behind_under_the_agents_name_is_replaced() {
        let w = world();
        let d = w.agents.define(def("t1", "a1")).unwrap();
        let mut spec = w.agents.policy.admit(w.agents.request(&d.definition, &d.container_name, &[])).unwrap();
        // Labelled as a start labels the agent's container.
        spec.labels.insert(labels::TENANT.into(), "t1".into());
        spec.labels.insert(labels::OBJECT.into(), "a1".into());
        let left = w.fake.create(&spec).await.unwrap();
        let record = w.agents.start("t1", "a1").await.unwrap();
        assert_ne!(record.handle(), Some(left.clone()));
        assert!(w.fake.spec_of(&left).is_none(), "the old one is gone");
        assert_eq!(w.fake.containers().len(), 1);
    }

    #[tokio::test]
    async fn an_agent_whose_create_fails_releases_its_published_ports_and_leaves_no_container() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080, 8081])).unwrap();
        w.fake.fail_next(Op::Create, EngineError::failed("no space left on device"));
        let e = w.agents.start("t1", "a1").await.expect_err("the create fails");
        assert!(matches!(e, AgentError::Engine(ref e) if e.message() == "no space left on device"), "{e}");
        assert!(w.fake.containers().is_empty());
        assert_eq!(free_ports(&w.store), [9000, 9001, 9002]);
        assert_eq!(w.agents.get("t1", "a1").unwrap().container_id, None);
    }

    #[tokio::test]
    async fn an_agent_whose_image_cannot_be_had_releases_its_ports_and_makes_nothing() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080])).unwrap();
        w.fake.fail_next(Op::EnsureImage, EngineError::not_found("image agent:1: no such image"));
        assert!(matches!(w.agents.start("t1", "a1").await, Err(AgentError::Engine(e)) if e.is_not_found()));
        assert!(w.fake.calls_of(Op::Create).is_empty());
        assert_eq!(free_ports(&w.store), [9000, 9001, 9002]);
    }

    #[tokio::test]
    async fn an_agent_asking_for_more_ports_than_are_free_is_refused_before_anything_is_made() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[1, 2, 3, 4])).unwrap();
        assert!(matches!(w.agents.start("t1", "a1").await, Err(AgentError::NoPorts(9000, 9002))));
        assert!(w.fake.calls().is_empty());
        assert_eq!(free_ports(&w.store), [9000, 9001, 9002]);
    }

    #[tokio::test]
    async fn a_container_of_the_agents_name_that_another_tenant_labelled_is_left_alone() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let name = w.agents.get("t1", "a1").unwrap().container_name;
        // Someone else's container has taken the name: left alone, the start fails on it.
        let mut other = Policy::default().admit(ContainerRequest::new(Kind::Agent, name, "other:1")).unwrap();
        other.labels.insert(labels::TENANT.into(), "t2".into());
        other.labels.insert(labels::OBJECT.into(), "a1".into());
        let theirs = w.fake.create(&other).await.unwrap();
        assert!(w.agents.start("t1", "a1").await.is_err());
        assert!(w.fake.calls_of(Op::Remove).is_empty(), "another tenant's container is not removed");
        assert_eq!(w.fake.spec_of(&theirs).map(|s| s.image), Some("other:1".into()));
        assert_eq!(w.fake.containers().len(), 1);
    }

    #[tokio::test]
    async fn an_agent_whose_start_fails_keeps_its_container_recorded_for_the_next_start_and_the_removal() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080])).unwrap();
        w.fake.fail_next(Op::Start, EngineError::failed("port is already allocated"));
        assert!(w.agents.start("t1", "a1").await.is_err());
        let made = w.fake.containers();
        assert_eq!(made.len(), 1, "the container was made");
        let record = w.agents.get("t1", "a1").unwrap();
        assert_eq!(record.handle(), Some(made[0].handle.clone()), "and the record names it");
        let again = w.agents.start("t1", "a1").await.unwrap();
        assert_eq!(again.handle(), Some(made[0].handle.clone()), "the next start starts it");
        assert_eq!(w.fake.calls_of(Op::Create).len(), 1);
        w.agents.remove("t1", "a1").await.unwrap();
        assert!(w.fake.containers().is_empty(), "the removal takes it");
        assert_eq!(free_ports(&w.store), [9000, 9001, 9002]);
    }

    #[tokio::test]
    async fn an_engine_that_cannot_tell_the_agents_state_makes_the_start_fail_and_makes_nothing() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        w.agents.start("t1", "a1").await.unwrap();
        w.agents.stop("t1", "a1", Duration::ZERO).await.unwrap();
        w.fake.clear_calls();
        w.fake.fail_next(Op::Inspect, EngineError::unavailable("the daemon is restarting"));
        let e = w.agents.start("t1", "a1").await.expect_err("the inspect fails");
        assert!(matches!(e, AgentError::Engine(e) if e.kind() == EngineErrorKind::Unavailable));
        assert_eq!(w.fake.calls().iter().map(|c| c.op).collect::<Vec<_>>(), [Op::Inspect]);
    }

    #[tokio::test]
    async fn stopping_an_agent_whose_container_is_gone_is_done() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let record = w.agents.start("t1", "a1").await.unwrap();
        w.fake.vanish(&record.handle().unwrap());
        w.agents.stop("t1", "a1", Duration::from_secs(1)).await.expect("gone is stopped");
        assert_eq!(w.store.audit_trail("t1", 1).unwrap()[0].action, "agent.stop");
    }

    #[tokio::test]
    async fn restarting_an_agent_stops_and_starts_the_same_container() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let first = w.agents.start("t1", "a1").await.unwrap();
        w.fake.clear_calls();
        let again = w.agents.restart("t1", "a1", Duration::from_secs(1)).await.unwrap();
        assert_eq!(again.container_id, first.container_id);
        let ops: Vec<Op> = w.fake.calls().iter().map(|c| c.op).collect();
        assert_eq!(ops, [Op::Stop, Op::Inspect, Op::Start]);
    }

    #[tokio::test]
    async fn removing_an_agent_removes_its_running_container_its_ports_and_its_record() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080])).unwrap();
        w.agents.start("t1", "a1").await.unwrap();
        w.agents.remove("t1", "a1").await.unwrap();
        assert!(w.fake.containers().is_empty());
        assert_eq!(free_ports(&w.store), [9000, 9001, 9002]);
        assert!(matches!(w.agents.get("t1", "a1"), Err(AgentError::NotFound(_))));
        assert!(matches!(w.agents.remove("t1", "a1").await, Err(AgentError::NotFound(_))));
    }

    #[tokio::test]
    async fn an_agent_whose_container_cannot_be_removed_keeps_its_record_and_ports() {
        let w = world();
        w.agents.define(with_ports(def("t1", "a1"), &[8080])).unwrap();
        w.agents.start("t1", "a1").await.unwrap();
        w.fake.fail_next(Op::Remove, EngineError::failed("device or resource busy"));
        assert!(w.agents.remove("t1", "a1").await.is_err());
        assert!(w.agents.get("t1", "a1").is_ok());
        assert_eq!(free_ports(&w.store), [9001, 9002]);
        assert_eq!(w.fake.containers().len(), 1);
    }

    #[tokio::test]
    async fn a_command_in_an_agent_returns_its_output_and_is_audited_with_its_exit_code() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let h = w.agents.start("t1", "a1").await.unwrap().handle().unwrap();
        w.fake.set_exec(&h, 3, "partial\n", "boom\n");
        let out = w.agents.exec("t1", "a1", &ExecRequest { cmd: vec!["work".into()], ..Default::default() }).await;
        let out = out.unwrap();
        assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.as_str()), (3, "partial\n", "boom\n"));
        let last = &w.store.audit_trail("t1", 1).unwrap()[0];
        assert_eq!((last.action.as_str(), last.outcome.as_str()), ("agent.exec", "exit 3"));
    }

    #[tokio::test]
    async fn an_agent_without_a_container_has_no_state_logs_usage_or_commands() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        assert!(matches!(w.agents.state("t1", "a1").await, Err(AgentError::NotFound(_))));
        assert!(matches!(w.agents.logs("t1", "a1", &LogRequest::default()).await, Err(AgentError::NotFound(_))));
        assert!(matches!(w.agents.stats("t1", "a1").await, Err(AgentError::NotFound(_))));
        let req = ExecRequest { cmd: vec!["ls".into()], ..Default::default() };
        assert!(matches!(w.agents.exec("t1", "a1", &req).await, Err(AgentError::NotFound(_))));
        assert!(w.fake.calls().is_empty());
    }

    #[tokio::test]
    async fn an_agents_usage_and_logs_come_from_its_container() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let h = w.agents.start("t1", "a1").await.unwrap().handle().unwrap();
        w.fake.set_logs(&h, vec![crate::engine::fake::stdout("listening\n")]);
        let logs: Vec<_> =
            futures_util::StreamExt::collect(w.agents.logs("t1", "a1", &LogRequest::default()).await.unwrap()).await;
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].as_ref().unwrap().data, "listening\n");
        assert_eq!(w.agents.stats("t1", "a1").await.unwrap().memory_limit, Some(512 * 1024 * 1024));
    }

    #[test]
    fn a_renewed_expiry_is_recorded_and_audited() {
        let w = world();
        w.agents.define(def("t1", "a1")).unwrap();
        let t = now() + chrono::Duration::days(2);
        assert_eq!(w.agents.set_expiry("t1", "a1", t).unwrap().definition.expires_at, Some(t));
        assert_eq!(w.agents.get("t1", "a1").unwrap().definition.expires_at, Some(t));
        assert_eq!(w.store.audit_trail("t1", 1).unwrap()[0].outcome, t.to_rfc3339());
    }

    #[test]
    fn a_definition_expiring_past_the_maximum_lifetime_is_refused() {
        let w = world();
        let mut d = def("t1", "a1");
        d.expires_at = Some(now() + chrono::Duration::days(30));
        assert!(matches!(w.agents.define(d), Err(AgentError::Policy(v)) if v.field == "expires_at"));
    }
}
