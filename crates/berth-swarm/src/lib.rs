//! The swarm backend: workloads placed across several machines by a Docker
//! Swarm manager, and acted on through each node's own engine. Swarm
//! places tasks and keeps desired state, but has no exec, attach, stats or
//! exact exit and OOM report for a task: those go to the engine of the node
//! the task runs on, which berth reaches at the address its configuration
//! gives under the node's name (the manager's view of a node's address is
//! never taken as its identity).
//!
//! A workload is a service of one replica that is never restarted
//! ([`service`]); its [`Handle`] is the service's id with the node as its
//! placement, and the backend keeps which container on that node is the
//! task's ([`placement`]), asking the manager again after a restart.
//! `create` returns once the task is placed with its container (so the
//! record can say where it runs); the container starts as it is placed, so
//! `start` has nothing left to do and `start_watched` waits on the node.
//!
//! This crate knows the Engine API (through engine-api), the docker
//! backend it reuses for each node, and berth's backend seam; nothing of
//! runs, agents or HTTP.

pub mod leftovers;
pub mod nodes;
pub mod placement;
pub mod service;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use berth_core::engine::state::split_annotations;
use berth_core::engine::{
    ByteStream, Capabilities, Engine, EngineError, EngineErrorKind, ExecRequest, ExecSession, ExitWatch, GoneIsDone,
    Handle, ImageCommand, Isolation, LogRequest, LogStream, NetworkInfo, NodeStatus, Phase, ProcessId, Selector,
    StdioSession, TtySize, UsageStream, WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use berth_core::model::handle::Placement;
use berth_core::spec::{labels, ContainerId, ContainerSpec};
use berth_docker::{engine_err, DockerBackend};
use engine_api::{Docker, Filters};

use self::placement::TaskPlace;
use self::watch::NodeBook;

/// The label the swarm puts on a task's container: its service's id.
const SERVICE_LABEL: &str = "com.docker.swarm.service.id";

/// How long a task may take to be placed with its container.
pub const PLACE_WITHIN: Duration = Duration::from_secs(30);

/// How long a sealed run's network is waited on to be released by its task.
const NETWORK_RELEASE: Duration = Duration::from_secs(10);

/// How long a removal waits for a manager that does not answer (one
/// restarting comes back within seconds), so that what a run made goes
/// with it.
const MANAGER_BACK_WITHIN: Duration = Duration::from_secs(30);

/// How long past its grace an agent's container may take to stop once
/// its service is scaled to zero (the node's agent acts on the manager's
/// word within a moment).
const STOPPED_WITHIN: Duration = Duration::from_secs(15);

/// How long a call to a node's engine may wait for its answer: a node cut
/// off answers nothing, and a run on it must still end within seconds of
/// the manager marking it down (streams, once answered, have no bound).
pub const NODE_CALLS_WITHIN: Duration = Duration::from_secs(5);

/// One node as berth's configuration names it, and its engine.
#[derive(Clone)]
pub struct NodeEngine {
    /// The node's name: its hostname in the swarm, and its identity here.
    pub name: String,
    pub docker: Docker,
}

/// The swarm backend.
pub struct SwarmBackend {
    manager: Docker,
    /// Configured name → the node's engine, as a docker backend.
    nodes: BTreeMap<String, DockerBackend>,
    /// The swarm's node ids of the configured nodes, as learnt.
    node_names: Mutex<BTreeMap<String, String>>,
    /// Service id → the node and container of its task.
    placed: Mutex<BTreeMap<String, Placed>>,
    place_within: Duration,
    /// The manager's view of the nodes, for watches and readiness.
    book: Arc<NodeBook>,
    /// The configured bind roots, which nodes are labelled as holding.
    bind_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    node: String,
    container: String,
}

impl SwarmBackend {
    /// The backend over `manager`, acting on `nodes` (every node whose
    /// tasks berth is to reach).
    pub fn new(manager: Docker, nodes: Vec<NodeEngine>) -> SwarmBackend {
        let nodes: BTreeMap<String, DockerBackend> =
            nodes.into_iter().map(|n| (n.name, DockerBackend::new(n.docker.with_timeout(NODE_CALLS_WITHIN)))).collect();
        let book = Arc::new(NodeBook::new(manager.clone(), nodes.keys().cloned().collect()));
        SwarmBackend {
            manager,
            nodes,
            node_names: Mutex::default(),
            placed: Mutex::default(),
            place_within: PLACE_WITHIN,
            book,
            bind_roots: Vec::new(),
        }
    }

    /// The same backend giving tasks `bound` to be placed.
    pub fn with_place_within(mut self, bound: Duration) -> SwarmBackend {
        self.place_within = bound;
        self
    }

    /// The same backend knowing the configured bind roots, so that a task
    /// with binds goes to the nodes labelled as holding their roots.
    pub fn with_bind_roots(mut self, roots: Vec<PathBuf>) -> SwarmBackend {
        self.bind_roots = roots;
        self
    }

    /// Refuses a spec whose binds' roots no configured node is labelled as
    /// holding (its task would wait for a node forever), saying how to
    /// label one.
    async fn check_roots_held(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let needed = service::root_labels(spec, &self.bind_roots).map_err(|e| EngineError::invalid(e.to_string()))?;
        if needed.is_empty() {
            return Ok(());
        }
        let listed = patiently(|| self.manager.list_nodes()).await.map_err(engine_err)?;
        if !nodes::holding(self.nodes.keys().map(String::as_str), &listed, &needed).is_empty() {
            return Ok(());
        }
        let labels: Vec<String> = needed.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let adds: String = labels.iter().map(|l| format!(" --label-add '{l}'")).collect();
        Err(EngineError::invalid(format!(
            "{}: no node is labelled as holding the bind roots of its binds ({}); on the manager, label each node \
             that holds them: docker node update{adds} NODE",
            spec.name,
            labels.join(", ")
        )))
    }

    /// The names of the configured nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn node(&self, name: &str) -> Result<&DockerBackend, EngineError> {
        self.nodes
            .get(name)
            .ok_or_else(|| EngineError::failed(format!("node {name:?} is not one of berth's configured nodes")))
    }

    /// The configured name of the swarm's node `id`: the node's hostname,
    /// when berth's configuration names it.
    async fn name_of(&self, id: &str) -> Result<String, EngineError> {
        if let Some(name) = self.node_names.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(name.clone());
        }
        let nodes = self.manager.list_nodes().await.map_err(engine_err)?;
        let mut names = self.node_names.lock().unwrap_or_else(|p| p.into_inner());
        for n in &nodes {
            if self.nodes.contains_key(&n.description.hostname) {
                names.insert(n.id.clone(), n.description.hostname.clone());
            }
        }
        names.get(id).cloned().ok_or_else(|| {
            let hostname = nodes.iter().find(|n| n.id == id).map(|n| n.description.hostname.clone());
            EngineError::failed(format!(
                "a task went to node {id} ({}), which berth's configuration does not name",
                hostname.unwrap_or_else(|| "unknown to the manager".into())
            ))
        })
    }

    /// Where service `service`'s task is now.
    async fn task_place(&self, service: &str) -> Result<TaskPlace, EngineError> {
        let tasks = self.manager.list_tasks(&Filters::new().add("service", service)).await.map_err(engine_err)?;
        Ok(placement::of_tasks(&tasks))
    }

    /// Waits until service `service`'s task is placed with its container,
    /// within the backend's bound.
    async fn wait_placed(&self, service: &str) -> Result<Placed, EngineError> {
        self.wait_placed_anew(service, None).await
    }

    /// As [`Self::wait_placed`], for a task in a container other than
    /// `old` (the one a task made again replaces).
    async fn wait_placed_anew(&self, service: &str, old: Option<&str>) -> Result<Placed, EngineError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.task_place(service).await? {
                TaskPlace::Placed { container_id, state, .. } if Some(container_id.as_str()) == old => {
                    if started.elapsed() >= self.place_within {
                        return Err(EngineError::unavailable(format!(
                            "service {service}: its task was not made again within {:?} (still {state})",
                            self.place_within
                        )));
                    }
                }
                TaskPlace::Placed { node_id, container_id, .. } => {
                    let node = self.name_of(&node_id).await?;
                    return Ok(Placed { node, container: container_id });
                }
                TaskPlace::Refused(why) => return Err(EngineError::failed(format!("service {service}: {why}"))),
                TaskPlace::Waiting { state, message } if started.elapsed() >= self.place_within => {
                    return Err(EngineError::unavailable(format!(
                        "service {service}: no node took its task within {:?} (task {state}: {message})",
                        self.place_within
                    )));
                }
                TaskPlace::Waiting { .. } => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The node and container of workload `h`: as kept for a run, else
    /// asked of the manager (an agent's task may have been made again on
    /// another node; after a restart of berth nothing is kept).
    async fn placed(&self, h: &Handle) -> Result<Placed, EngineError> {
        if let Some(p) = self.placed.lock().unwrap_or_else(|p| p.into_inner()).get(&h.id.0) {
            return Ok(p.clone());
        }
        match self.task_place(&h.id.0).await? {
            TaskPlace::Placed { node_id, container_id, .. } => {
                Ok(Placed { node: self.name_of(&node_id).await?, container: container_id })
            }
            TaskPlace::Refused(why) => Err(EngineError::failed(format!("{h}: {why}"))),
            TaskPlace::Waiting { state, .. } => {
                Err(EngineError::conflict(format!("{h}: its task is {state}, not placed")))
            }
        }
    }

    /// The node's engine and the container handle it knows the task by.
    async fn on_node(&self, h: &Handle) -> Result<(&DockerBackend, Handle), EngineError> {
        let p = self.placed(h).await?;
        Ok((self.node(&p.node)?, Handle::local(p.container)))
    }

    /// Service `id` as the manager has it, when the manager makes its task
    /// again (an agent's); `None` for a run's.
    async fn moving(&self, id: &str) -> Result<Option<engine_api::models::Service>, EngineError> {
        let found = patiently(|| self.manager.inspect_service(id)).await.map_err(engine_err)?;
        let condition = found.spec.task_template.restart_policy.as_ref().map(|r| r.condition.as_str());
        Ok((condition == Some(service::MOVES)).then_some(found))
    }

    /// Service `found` with `replicas` tasks wanted; `again` has the
    /// manager make its task anew although the count did not change.
    async fn scale(&self, found: engine_api::models::Service, replicas: u64, again: bool) -> Result<(), EngineError> {
        let mut spec = found.spec;
        spec.mode.replicated = Some(engine_api::models::Replicated { replicas });
        if again {
            spec.task_template.force_update += 1;
        }
        self.manager.update_service(&found.id, found.version.index, &spec).await.map_err(engine_err)
    }

    /// Waits until the container of workload `h` on its node has stopped.
    async fn until_stopped(&self, h: &Handle, within: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + within;
        loop {
            let running = match self.on_node(h).await {
                Ok((node, c)) => node.inspect(&c).await.map(|s| s.running()).or_else(|e| match e.is_not_found() {
                    true => Ok(false),
                    false => Err(e),
                })?,
                // No task with a container any more.
                Err(_) => false,
            };
            if !running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EngineError::unavailable(format!("{h}: still running {within:?} after it was stopped")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Removes `volumes` from `node` (what is left, its sweep removes).
    async fn remove_volumes(&self, node: &str, volumes: &[String]) {
        let Ok(engine) = self.node(node) else { return };
        for volume in volumes {
            match engine.client().remove_volume(volume, false).await {
                Ok(()) | Err(engine_api::Error::NotFound { .. }) => {}
                Err(e) => tracing::info!(%node, %volume, %e, "a task's volume stays for the sweep"),
            }
        }
    }

    /// `session`, its exit raced with the loss of `node`.
    fn ends_when_lost(&self, mut session: StdioSession, node: String) -> StdioSession {
        let (exit, book) = (session.exit, self.book.clone());
        session.exit = Box::pin(async move {
            tokio::select! {
                exit = exit => exit,
                lost = book.until_lost(&node) => Err(lost),
            }
        });
        session
    }

    /// Removes service `id`, a service already gone counting as removed.
    async fn remove_service(&self, id: &str) -> Result<(), EngineError> {
        match patiently(|| self.manager.remove_service(id)).await {
            Ok(()) | Err(engine_api::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(engine_err(e)),
        }
    }

    /// Removes the sealed run's own network `name`, if it has one: retried
    /// while the manager still counts the task's endpoint on it.
    async fn remove_sealed_network(&self, name: &str) {
        let deadline = Instant::now() + NETWORK_RELEASE;
        loop {
            match self.manager.remove_network(name).await {
                Ok(()) | Err(engine_api::Error::NotFound { .. }) => return,
                Err(e) if Instant::now() >= deadline => {
                    // The sweep takes it by its labels once its service is gone.
                    tracing::warn!(%name, %e, "a sealed run's network was not removed");
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Services whose answer to their creation was lost: found by name, and
    /// removed when they carry the spec's labels.
    async fn remove_lost(&self, spec: &ContainerSpec) {
        let filters = Filters::new().add("name", spec.name.clone());
        let Ok(found) = self.manager.list_services(&filters).await else { return };
        for s in found.iter().filter(|s| s.spec.name == spec.name) {
            if spec.labels.iter().all(|(k, v)| s.spec.labels.get(k) == Some(v)) {
                let _ = self.remove_service(&s.id).await;
            }
        }
    }
}

/// `call` to the manager, made again while the manager does not answer,
/// for up to [`MANAGER_BACK_WITHIN`].
async fn patiently<T, F, Fut>(mut call: F) -> Result<T, engine_api::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, engine_api::Error>>,
{
    let deadline = Instant::now() + MANAGER_BACK_WITHIN;
    loop {
        match call().await {
            // Not reached, or up but not yet the swarm's manager again
            // (503 "This node is not a swarm manager").
            Err(e @ (engine_api::Error::Transport(_) | engine_api::Error::Server { status: 503, .. }))
                if Instant::now() < deadline =>
            {
                tracing::debug!(%e, "the swarm manager does not answer; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Engine for SwarmBackend {
    fn name(&self) -> &'static str {
        "swarm"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            attach_before_start: false,
            // A pool member's task starts as it is placed; its ready line
            // is replayed from its node's logs.
            attach_replays: true,
            follow_logs: true,
            interactive_exec: true,
            tty: true,
            pause: false,
            // In host mode, on the task's node.
            host_ports: true,
            plans: false,
            isolation: false,
        }
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.manager.ping().await.map_err(engine_err)
    }

    /// Every configured node must hold the image: tasks use what their
    /// node has and pull nothing.
    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        for (name, node) in &self.nodes {
            node.image_command(image).await.map_err(|e| {
                EngineError::not_found(format!("image {image} is not on node {name}: {e}")).with_source(e)
            })?;
        }
        Ok(())
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        let mut last = EngineError::not_found(format!("image {image}: no node is configured"));
        for node in self.nodes.values() {
            match node.image_command(image).await {
                Ok(command) => return Ok(command),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        let body = service::service_spec(spec, &self.bind_roots).map_err(|e| EngineError::invalid(e.to_string()))?;
        self.check_roots_held(spec).await?;
        if let Some(own) = service::sealed_network(spec) {
            self.manager.create_network(&own).await.map_err(engine_err)?;
        }
        let created = match self.manager.create_service(&body).await {
            Ok(created) => created,
            Err(e @ (engine_api::Error::Transport(_) | engine_api::Error::Timeout { .. })) => {
                self.remove_lost(spec).await;
                self.remove_sealed_network(&spec.name).await;
                return Err(engine_err(e));
            }
            Err(e) => {
                self.remove_sealed_network(&spec.name).await;
                return Err(engine_err(e));
            }
        };
        match self.wait_placed(&created.id).await {
            Ok(placed) => {
                let handle = Handle::at(created.id.clone(), Placement::Node { name: placed.node.clone() });
                // A task the manager may make again elsewhere is asked for
                // each time; a run's stays where it was placed.
                if service::restart_condition(spec) == "none" {
                    self.placed.lock().unwrap_or_else(|p| p.into_inner()).insert(created.id, placed);
                }
                Ok(handle)
            }
            Err(e) => {
                let _ = self.remove_service(&created.id).await;
                self.remove_sealed_network(&spec.name).await;
                Err(e)
            }
        }
    }

    /// A run's container started as it was placed. An agent's service is
    /// asked for its task again when that task is not running (scaled to
    /// zero by a stop, or ended), and its new task is waited on.
    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        let Some(found) = self.moving(&h.id.0).await? else {
            return self.placed(h).await.map(drop);
        };
        let old = match self.on_node(h).await {
            Ok((node, c)) if node.inspect(&c).await.is_ok_and(|s| s.running()) => return Ok(()),
            Ok((_, c)) => Some(c.id.0),
            Err(_) => None,
        };
        self.scale(found, 1, true).await?;
        self.wait_placed_anew(&h.id.0, old.as_deref()).await.map(drop)
    }

    /// The task's container started as it was placed: its exit, however
    /// early it came, is awaited on its node, and the node is watched
    /// meanwhile through the manager: a node marked down or drained ends
    /// the wait as lost (a cut-off node's wait would never end).
    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        let p = self.placed(h).await?;
        let node = self.node(&p.node)?.client().clone();
        let waiting =
            node.wait_container(&p.container, engine_api::WaitCondition::NotRunning).await.map_err(engine_err)?;
        let book = self.book.clone();
        Ok(Box::pin(async move {
            tokio::select! {
                exit = waiting.exit() => exit.map(|e| e.status_code).map_err(engine_err),
                lost = book.until_lost(&p.node) => Err(lost),
            }
        }))
    }

    /// An agent's service is scaled to zero first (a container stopped
    /// under it would be made again by the manager), then its container is
    /// stopped on its node and awaited; a run's container is stopped on its
    /// node.
    /// The task's container started as it was placed: attached on its
    /// node with its output so far replayed, its exit awaited there while
    /// its node is watched (a member on a lost node ends as lost).
    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let p = self.placed(h).await?;
        let session = self.node(&p.node)?.attach_replaying(&Handle::local(p.container)).await?;
        Ok(self.ends_when_lost(session, p.node))
    }

    async fn stop(&self, h: &Handle, grace: Duration) -> Result<(), EngineError> {
        match self.moving(&h.id.0).await? {
            Some(found) => {
                self.scale(found, 0, false).await?;
                // The node's agent stops it with the service's grace; the
                // caller's is kept by stopping it on the node as well.
                if let Ok((node, c)) = self.on_node(h).await {
                    node.stop(&c, grace).await.or_gone()?;
                }
                self.until_stopped(h, grace + STOPPED_WITHIN).await
            }
            None => {
                let (node, c) = self.on_node(h).await?;
                node.stop(&c, grace).await
            }
        }
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.kill(&c).await
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the swarm backend does not pause workloads")))
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the swarm backend does not pause workloads")))
    }

    /// The container goes from its node first (at once, where the manager
    /// would give it a grace period), then the service.
    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        let mut placed_on = None;
        match self.placed(h).await {
            Ok(p) => match self.node(&p.node)?.remove(&Handle::local(p.container), force).await {
                Ok(()) => placed_on = Some(p.node),
                Err(e) if e.is_not_found() => placed_on = Some(p.node),
                // A node cut off: its agent removes the container of a
                // removed service when it is back with the manager.
                Err(e) if e.kind() == EngineErrorKind::Unavailable => {
                    tracing::info!(%h, %e, "the task's node does not answer; the manager removes its container")
                }
                Err(e) => return Err(e),
            },
            Err(e) if e.is_not_found() => {}
            // A task never placed, or a node not answering: the manager
            // removes what there is.
            Err(e) => tracing::debug!(%h, %e, "the task's container was not removed on its node"),
        }
        let found = match patiently(|| self.manager.inspect_service(&h.id.0)).await {
            Ok(s) => Some(s.spec),
            Err(engine_api::Error::NotFound { .. }) => {
                // No such service: the handle may be a container left on its
                // node by a service gone ([`Engine::list`] lists those).
                if let Some(node) = h.placement.node() {
                    self.node(node)?.remove(&Handle::local(h.id.0.clone()), force).await.or_gone()?;
                }
                None
            }
            Err(e) => return Err(engine_err(e)),
        };
        self.remove_service(&h.id.0).await?;
        self.placed.lock().unwrap_or_else(|p| p.into_inner()).remove(&h.id.0);
        if let Some(spec) = found {
            self.remove_sealed_network(&spec.name).await;
            if let Some(node) = placed_on {
                self.remove_volumes(&node, &service::volumes_of(&spec)).await;
            }
        }
        Ok(())
    }

    /// Removes what berth made beside its services that nothing uses any
    /// more ([`leftovers`]): the volumes on every node that no container
    /// uses (a task's writable spaces whose node was cut off when it was
    /// removed), and a run's own network on the manager whose service is
    /// gone (removed by someone else, or while the manager did not answer).
    async fn sweep_leftovers(&self) -> Result<usize, EngineError> {
        let managed = Filters::new().label(format!("{}=true", labels::MANAGED));
        let networks = self.manager.list_networks(&managed).await.map_err(engine_err)?;
        let services: BTreeSet<String> =
            self.manager.list_services(&managed).await.map_err(engine_err)?.into_iter().map(|s| s.spec.name).collect();
        let mut removed = 0;
        for id in leftovers::networks(&networks, &services, chrono::Utc::now()) {
            match self.manager.remove_network(&id).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::debug!(network = %id, %e, "a run's network left behind stays"),
            }
        }
        let dangling = managed.add("dangling", "true");
        for (name, node) in &self.nodes {
            let found = match node.client().list_volumes(&dangling).await {
                Ok(found) => found.volumes,
                Err(e) => {
                    tracing::debug!(node = %name, %e, "the node's volumes were not listed");
                    continue;
                }
            };
            for volume in leftovers::volumes(&found, chrono::Utc::now()) {
                match node.client().remove_volume(&volume, false).await {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::debug!(node = %name, %volume, %e, "a volume left behind stays"),
                }
            }
        }
        Ok(removed)
    }

    /// The task's container as its node has it, with the node it is on.
    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        let p = self.placed(h).await?;
        let mut state = self.node(&p.node)?.inspect(&Handle::local(p.container)).await?;
        state.placement = Some(Placement::Node { name: p.node });
        Ok(state)
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        let filters = selector.label_filters().into_iter().fold(Filters::new(), |f, l| f.label(l));
        let services = self.manager.list_services(&filters).await.map_err(engine_err)?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let h = Handle::local(s.id.clone());
            let (placement, phase) = match self.placed(&h).await {
                Ok(p) => {
                    let phase = match self.node(&p.node)?.inspect(&Handle::local(p.container.clone())).await {
                        Ok(state) => state.phase,
                        Err(_) => Phase::Exited,
                    };
                    (Placement::Node { name: p.node }, phase)
                }
                Err(_) => (Placement::Local, Phase::Created),
            };
            let (labels, annotations) = split_annotations(s.spec.labels.clone());
            out.push(WorkloadInfo {
                handle: Handle { id: ContainerId(s.id), placement },
                name: s.spec.name,
                phase,
                labels,
                annotations,
            });
        }
        // A task's container whose service is gone (removed while its node
        // was away, and not cleaned up by its agent): listed by its own id
        // on its node, so that the reaper and recovery take it too.
        let live: BTreeSet<String> = out.iter().map(|w| w.handle.id.0.clone()).collect();
        for (name, node) in &self.nodes {
            let found = match node.list(selector).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(%name, %e, "a node's containers were not listed");
                    continue;
                }
            };
            for mut c in found {
                match c.labels.get(SERVICE_LABEL) {
                    Some(service) if !live.contains(service) => {
                        c.handle.placement = Placement::Node { name: name.clone() };
                        out.push(c);
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Each node's container events of berth's workloads, their handles the
    /// services' (the manager has no task events).
    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        let mut streams = Vec::new();
        for (name, node) in &self.nodes {
            let name = name.clone();
            let events = node.events(selector).await?;
            streams.push(
                events
                    .filter_map(move |e| {
                        let name = name.clone();
                        async move {
                            match e {
                                Ok(mut e) => {
                                    let service = e.attributes.remove(SERVICE_LABEL)?;
                                    e.handle = Handle::at(service, Placement::Node { name });
                                    Some(Ok(e))
                                }
                                Err(e) => Some(Err(e)),
                            }
                        }
                    })
                    .boxed(),
            );
        }
        Ok(futures_util::stream::select_all(streams).boxed())
    }

    fn io(&self, _h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        Some(self)
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, EngineError> {
        self.book.read().await
    }
}

/// Sessions' networks are overlays made by the manager: they span the
/// nodes, so a session's members reach each other wherever they were placed.
#[async_trait]
impl Isolation for SwarmBackend {
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let config = service::session_network(name, internal, labels);
        Ok(self.manager.create_network(&config).await.map_err(engine_err)?.id)
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError> {
        patiently(|| self.manager.remove_network(id_or_name)).await.map_err(engine_err)
    }

    /// The swarm's networks of berth's, each with the number of berth's
    /// services attached to it (the manager's inspect of an overlay shows
    /// only the containers on its own node).
    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError> {
        let filters = selector.label_filters().into_iter().fold(Filters::new(), |f, l| f.label(l));
        let networks = self.manager.list_networks(&filters).await.map_err(engine_err)?;
        let berths = Selector::managed().label_filters().into_iter().fold(Filters::new(), |f, l| f.label(l));
        let services = self.manager.list_services(&berths).await.map_err(engine_err)?;
        Ok(networks
            .into_iter()
            .filter(|n| n.scope == "swarm")
            .map(|n| {
                let attached = services
                    .iter()
                    .filter(|s| s.spec.task_template.networks.iter().any(|a| a.target == n.id || a.target == n.name))
                    .count();
                let created = n.created.as_deref().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
                NetworkInfo {
                    id: n.id,
                    name: n.name,
                    internal: n.internal,
                    labels: n.labels,
                    containers: attached,
                    created: created.map(|c| c.to_utc()),
                }
            })
            .collect())
    }
}

#[async_trait]
impl WorkloadIo for SwarmBackend {
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.logs(&c, request).await
    }

    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.usage_stream(&c).await
    }

    async fn exec(&self, h: &Handle, request: &ExecRequest) -> Result<ExecSession, EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.exec(&c, request).await
    }

    async fn resize(&self, h: &Handle, process: &ProcessId, size: TtySize) -> Result<(), EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.resize(&c, process, size).await
    }

    /// Attached on the task's node, the session ending as lost when its
    /// node is (a cut-off node's stream would never end).
    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let p = self.placed(h).await?;
        let session = self.node(&p.node)?.attach(&Handle::local(p.container)).await?;
        Ok(self.ends_when_lost(session, p.node))
    }

    async fn put_files(&self, h: &Handle, dir: &str, tar: ByteStream) -> Result<(), EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.put_files(&c, dir, tar).await
    }

    async fn get_files(&self, h: &Handle, path: &str) -> Result<ByteStream, EngineError> {
        let (node, c) = self.on_node(h).await?;
        node.get_files(&c, path).await
    }
}
