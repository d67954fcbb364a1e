//! The dry run's engine state: containers and networks in memory, with the
//! state machine a daemon enforces, and the same typed errors.
//!
//! - a name is taken once (`Conflict`), an unknown id or name is `NotFound`;
//! - starting a running container is a `Conflict`; stopping one that is not
//!   running is a no-op, as the docker backend reports it;
//! - removing a running container needs `force` (`Conflict` otherwise);
//! - a container joins only a network that exists (`NotFound`), and a network
//!   with running containers on it cannot be removed (`Conflict`).
//!
//! This module owns transitions only: it renders nothing, writes no file and
//! runs nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use berth_core::engine::{self, EngineError, Handle, NetworkInfo, Placement, Selector, WorkloadInfo};
use berth_core::spec::{ContainerId, ContainerSpec, Network};

/// Where a container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    Running,
    Exited { code: i64 },
}

impl Phase {
    /// The seam's phase for it.
    pub fn engine_phase(self) -> engine::Phase {
        match self {
            Phase::Created => engine::Phase::Created,
            Phase::Running => engine::Phase::Running,
            Phase::Exited { .. } => engine::Phase::Exited,
        }
    }
}

/// Exit code of a container stopped with SIGTERM.
pub const STOPPED: i64 = 128 + 15;
/// Exit code of a container killed with SIGKILL.
pub const KILLED: i64 = 128 + 9;

/// A container of the dry run.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: ContainerId,
    pub spec: ContainerSpec,
    pub phase: Phase,
}

/// A network of the dry run.
#[derive(Debug, Clone)]
pub struct Net {
    pub id: String,
    pub name: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
}

/// Containers and networks, and the rules between them.
#[derive(Debug, Default)]
pub struct State {
    containers: BTreeMap<ContainerId, Container>,
    networks: BTreeMap<String, Net>,
}

impl State {
    /// A container by id, name, or unique id prefix, as the engine finds them.
    pub fn container(&self, id_or_name: &str) -> Result<&Container, EngineError> {
        let missing = || EngineError::not_found(format!("No such container: {id_or_name}"));
        if id_or_name.is_empty() {
            return Err(missing());
        }
        if let Some(c) = self.containers.get(&ContainerId(id_or_name.to_owned())) {
            return Ok(c);
        }
        if let Some(c) = self.containers.values().find(|c| c.spec.name == id_or_name) {
            return Ok(c);
        }
        let mut prefixed = self.containers.values().filter(|c| c.id.0.starts_with(id_or_name));
        match (prefixed.next(), prefixed.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(EngineError::not_found(format!("{id_or_name} is ambiguous"))),
            _ => Err(missing()),
        }
    }

    fn container_mut(&mut self, id_or_name: &str) -> Result<&mut Container, EngineError> {
        let id = self.container(id_or_name)?.id.clone();
        self.containers.get_mut(&id).ok_or_else(|| EngineError::not_found(format!("No such container: {id}")))
    }

    fn network(&self, id_or_name: &str) -> Option<&Net> {
        self.networks.get(id_or_name).or_else(|| self.networks.values().find(|n| n.name == id_or_name))
    }

    /// Adds a created container under `id`.
    pub fn create(&mut self, id: ContainerId, spec: ContainerSpec) -> Result<&Container, EngineError> {
        if self.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(EngineError::conflict(format!(
                "the container name \"/{}\" is already in use by another container",
                spec.name
            )));
        }
        if self.containers.contains_key(&id) {
            return Err(EngineError::conflict(format!("container id {id} is already in use")));
        }
        if let Network::Named { name, .. } = &spec.network {
            if self.network(name).is_none() {
                return Err(EngineError::not_found(format!("network {name} not found")));
            }
        }
        Ok(self.containers.entry(id.clone()).or_insert(Container { id, spec, phase: Phase::Created }))
    }

    /// Created or exited → running.
    pub fn start(&mut self, id: &str) -> Result<&Container, EngineError> {
        let c = self.container_mut(id)?;
        if c.phase == Phase::Running {
            return Err(EngineError::conflict(format!("container {} is already running", c.id)));
        }
        c.phase = Phase::Running;
        Ok(c)
    }

    /// Running → exited with `code`; anything else stays as it is. True when it was running.
    pub fn exit(&mut self, id: &str, code: i64) -> Result<bool, EngineError> {
        let c = self.container_mut(id)?;
        let was_running = c.phase == Phase::Running;
        if was_running {
            c.phase = Phase::Exited { code };
        }
        Ok(was_running)
    }

    /// Removes a container; a running one only with `force`.
    pub fn remove(&mut self, id: &str, force: bool) -> Result<Container, EngineError> {
        let c = self.container(id)?;
        if c.phase == Phase::Running && !force {
            return Err(EngineError::conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                c.id
            )));
        }
        let id = c.id.clone();
        self.containers.remove(&id).ok_or_else(|| EngineError::not_found(format!("No such container: {id}")))
    }

    /// Containers whose labels match `selector`.
    pub fn list(&self, selector: &Selector) -> Vec<WorkloadInfo> {
        self.containers
            .values()
            .filter(|c| selector.matches(&c.spec.labels))
            .map(|c| WorkloadInfo {
                handle: Handle { id: c.id.clone(), placement: Placement::Local },
                name: c.spec.name.clone(),
                phase: c.phase.engine_phase(),
                labels: c.spec.labels.clone(),
                annotations: c.spec.annotations.clone(),
            })
            .collect()
    }

    pub fn create_network(&mut self, net: Net) -> Result<String, EngineError> {
        if self.network(&net.name).is_some() {
            return Err(EngineError::conflict(format!("network with name {} already exists", net.name)));
        }
        let id = net.id.clone();
        self.networks.insert(id.clone(), net);
        Ok(id)
    }

    /// Running containers attached to network `net`.
    fn attached(&self, net: &Net) -> usize {
        self.containers
            .values()
            .filter(|c| c.phase == Phase::Running)
            .filter(|c| matches!(&c.spec.network, Network::Named { name, .. } if *name == net.name || *name == net.id))
            .count()
    }

    pub fn remove_network(&mut self, id_or_name: &str) -> Result<(), EngineError> {
        let net = self
            .network(id_or_name)
            .ok_or_else(|| EngineError::not_found(format!("network {id_or_name} not found")))?;
        if self.attached(net) > 0 {
            return Err(EngineError::conflict(format!(
                "error while removing network: network {} has active endpoints",
                net.name
            )));
        }
        let id = net.id.clone();
        self.networks.remove(&id);
        Ok(())
    }

    pub fn list_networks(&self, selector: &Selector) -> Vec<NetworkInfo> {
        self.networks
            .values()
            .filter(|n| selector.matches(&n.labels))
            .map(|n| NetworkInfo {
                id: n.id.clone(),
                name: n.name.clone(),
                internal: n.internal,
                labels: n.labels.clone(),
                containers: self.attached(n),
                created: Some(n.created),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::policy::{ContainerRequest, NetworkRequest, Policy};
    use berth_core::spec::Kind;

    fn spec(name: &str) -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Agent, name, "busybox:1.35");
        req.labels.insert("team".into(), "a".into());
        Policy::default().admit(req).unwrap()
    }

    fn id(n: u8) -> ContainerId {
        ContainerId(format!("{n:02x}{}", "0".repeat(62)))
    }

    fn conflict<T: std::fmt::Debug>(r: Result<T, EngineError>) -> bool {
        matches!(r, Err(e) if e.kind() == berth_core::engine::EngineErrorKind::Conflict)
    }

    #[test]
    fn a_name_is_taken_once_and_an_unknown_container_is_not_found() {
        let mut s = State::default();
        s.create(id(1), spec("berth-a")).unwrap();
        assert!(conflict(s.create(id(2), spec("berth-a"))));
        assert!(matches!(s.container("berth-b"), Err(e) if e.is_not_found()));
        assert!(matches!(s.start("nope"), Err(e) if e.is_not_found()));
        assert!(matches!(s.remove("nope", true), Err(e) if e.is_not_found()));
        assert_eq!(s.container("berth-a").unwrap().id, id(1), "by name");
        assert_eq!(s.container("01").unwrap().id, id(1), "by id prefix");
    }

    #[test]
    fn starting_a_running_container_and_removing_it_without_force_are_conflicts() {
        let mut s = State::default();
        s.create(id(1), spec("berth-a")).unwrap();
        assert_eq!(s.container("berth-a").unwrap().phase, Phase::Created);
        s.start("berth-a").unwrap();
        assert!(conflict(s.start("berth-a")));
        assert!(conflict(s.remove("berth-a", false)));
        assert!(s.exit("berth-a", STOPPED).unwrap());
        assert!(!s.exit("berth-a", KILLED).unwrap(), "an exited container stays as it ended");
        assert_eq!(s.container("berth-a").unwrap().phase, Phase::Exited { code: STOPPED });
        s.start("berth-a").unwrap();
        assert_eq!(s.remove("berth-a", true).unwrap().id, id(1));
        assert!(s.list(&Selector::all()).is_empty());
    }

    #[test]
    fn lists_filter_by_every_label_given() {
        let mut s = State::default();
        s.create(id(1), spec("berth-a")).unwrap();
        let all = |sel: Selector| s.list(&sel).len();
        assert_eq!(all(Selector::all().label("team", "a").kind(Kind::Agent)), 1);
        assert_eq!(all(Selector::all().has("team")), 1);
        assert_eq!(all(Selector::all().label("team", "b")), 0);
        assert_eq!(all(Selector::all().label("team", "a").has("other")), 0);
    }

    #[test]
    fn a_network_must_exist_to_be_joined_and_cannot_be_removed_while_in_use() {
        let mut s = State::default();
        let mut req = ContainerRequest::new(Kind::Relic, "berth-r", "busybox:1.35");
        req.network = NetworkRequest::Named { name: "berth-session-s1".into(), aliases: vec![] };
        let relic = Policy::default().admit(req).unwrap();
        assert!(matches!(s.create(id(1), relic.clone()), Err(e) if e.is_not_found()));
        let net = |id: &str| Net {
            id: id.into(),
            name: "berth-session-s1".into(),
            internal: true,
            labels: BTreeMap::from([("io.berth.session".into(), "s1".into())]),
            created: Utc::now(),
        };
        s.create_network(net("n1")).unwrap();
        assert!(conflict(s.create_network(net("n2"))), "a name is taken once");
        s.create(id(1), relic).unwrap();
        s.start("berth-r").unwrap();
        assert_eq!(s.list_networks(&Selector::all().session("s1"))[0].containers, 1);
        assert!(conflict(s.remove_network("berth-session-s1")));
        s.exit("berth-r", STOPPED).unwrap();
        s.remove_network("n1").unwrap();
        assert!(matches!(s.remove_network("n1"), Err(e) if e.is_not_found()));
    }
}
