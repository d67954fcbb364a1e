//! Sessions: a group of agents, runs and relics with an optional private
//! network. Ending a session stops and removes every container labelled with
//! it and its network; a sweep removes every berth network no longer in use.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, EngineErrorKind, GoneIsDone, Handle, Isolation, NetworkInfo, Selector};
use crate::model::ids::Clock;
use crate::spec::labels;

/// The name of a new private network for a tenant's session: berth's own,
/// from both (two tenants may choose one session id), a DNS label. Networks
/// are found by their labels, never by this name: those made before it was
/// so are named `berth-session-<session>` and still found.
pub fn network_name(tenant: &str, session: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new().chain_update(tenant).chain_update([0u8]).chain_update(session).finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("berth-session-{hex}")
}

/// The labels that find a tenant's session network.
fn session_network(tenant: &str, session: &str) -> Selector {
    Selector::all().kind_word(SESSION_NETWORK).session(session).tenant(tenant)
}

/// The kind label of session networks.
pub const SESSION_NETWORK: &str = "session-network";

/// A session's private network, as berth made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNetwork {
    pub id: String,
    pub name: String,
}

/// What ending a session removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCleanup {
    pub containers_removed: Vec<String>,
    pub networks_removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {session} still has running containers ({running}); end it with force")]
    Running { session: String, running: usize },
    #[error("{0:?} is not a session id ([a-zA-Z0-9_.-], at most 64)")]
    BadId(String),
    #[error("the {0} backend has no session networks")]
    NoIsolation(&'static str),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub fn check_session_id(id: &str) -> Result<(), SessionError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SessionError::BadId(id.into()))
    }
}

pub struct Sessions {
    backend: Arc<dyn Engine>,
    /// What "old enough to sweep" is measured against (injected, so that a
    /// recorded sweep replays the same removals).
    clock: Arc<dyn Clock>,
}

impl Sessions {
    pub fn new(backend: Arc<dyn Engine>, clock: Arc<dyn Clock>) -> Self {
        Sessions { backend, clock }
    }

    fn isolation(&self) -> Result<&dyn Isolation, SessionError> {
        self.backend.isolation().ok_or(SessionError::NoIsolation(self.backend.name()))
    }

    /// The session's private network, if it has one.
    pub async fn network(&self, tenant: &str, session: &str) -> Result<Option<NetworkInfo>, SessionError> {
        let Some(isolation) = self.backend.isolation() else {
            return Ok(None);
        };
        Ok(isolation.list_networks(&session_network(tenant, session)).await?.into_iter().next())
    }

    /// The session's private (internal) network, created on first use.
    pub async fn ensure_network(&self, tenant: &str, session: &str) -> Result<SessionNetwork, SessionError> {
        check_session_id(session)?;
        let name = network_name(tenant, session);
        let mine = session_network(tenant, session);
        let isolation = self.isolation()?;
        if let Some(n) = isolation.list_networks(&mine).await?.into_iter().next() {
            return Ok(SessionNetwork { id: n.id, name: n.name });
        }
        let net_labels = BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::KIND.to_owned(), SESSION_NETWORK.to_owned()),
            (labels::SESSION.to_owned(), session.to_owned()),
            (labels::TENANT.to_owned(), tenant.to_owned()),
        ]);
        match isolation.create_network(&name, true, &net_labels).await {
            Ok(id) => Ok(SessionNetwork { id, name }),
            // Two relics of one session racing: the other one made it.
            Err(e) if e.kind() == EngineErrorKind::Conflict => {
                let found = isolation.list_networks(&mine).await?;
                found.into_iter().next().map(|n| SessionNetwork { id: n.id, name: n.name }).ok_or_else(|| {
                    SessionError::Engine(EngineError::conflict(format!("network {name} is taken by something else")))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a session: removes its containers (running ones only with
    /// `force`) and its network.
    pub async fn end(&self, tenant: &str, session: &str, force: bool) -> Result<SessionCleanup, SessionError> {
        check_session_id(session)?;
        let mine = Selector::all().session(session).tenant(tenant);
        let containers = self.backend.list(&mine).await?;
        let running = containers.iter().filter(|c| c.phase.is_live()).count();
        if running > 0 && !force {
            return Err(SessionError::Running { session: session.into(), running });
        }
        let mut cleanup = SessionCleanup::default();
        for c in containers {
            self.backend.remove(&c.handle, true).await.or_gone()?;
            cleanup.containers_removed.push(c.name);
        }
        let Some(isolation) = self.backend.isolation() else {
            return Ok(cleanup);
        };
        for n in isolation.list_networks(&mine).await? {
            isolation.remove_network(&n.id).await.or_gone()?;
            cleanup.networks_removed.push(n.name);
        }
        Ok(cleanup)
    }

    /// Removes every berth network that no container uses any more and that
    /// is older than `min_age` (a younger one may be about to get its first
    /// relic).
    pub async fn sweep_networks(&self, min_age: std::time::Duration) -> Result<Vec<String>, SessionError> {
        let mut removed = Vec::new();
        let cutoff = self.clock.now() - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let Some(isolation) = self.backend.isolation() else {
            return Ok(removed);
        };
        for n in isolation.list_networks(&Selector::managed()).await? {
            let old_enough = n.created.is_none_or(|c| c <= cutoff);
            if n.containers == 0 && old_enough {
                match isolation.remove_network(&n.id).await.or_gone() {
                    Ok(()) => removed.push(n.name),
                    // In use after all (a container joined since the list).
                    Err(e) if matches!(e.kind(), EngineErrorKind::Conflict | EngineErrorKind::Failed) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }

    /// Stops and removes one container of a session (a relic), as the session's tenant.
    pub async fn remove_container(&self, h: &Handle) -> Result<(), SessionError> {
        Ok(self.backend.remove(h, true).await.or_gone()?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::{FakeEngine, Op};
    use crate::engine::{Capabilities, Phase};
    use crate::model::ids::FixedClock;
    use crate::policy::{ContainerRequest, NetworkRequest, Policy};
    use crate::spec::Kind;

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    fn world() -> (Arc<FakeEngine>, Arc<FixedClock>, Sessions) {
        let clock = Arc::new(FixedClock::at(now()));
        let fake = Arc::new(FakeEngine::with_clock(clock.clone()));
        let sessions = Sessions::new(fake.clone(), clock.clone());
        (fake, clock, sessions)
    }

    /// A running container of the tenant's session, on `network` when given.
    async fn member(fake: &FakeEngine, name: &str, tenant: &str, session: &str, network: Option<&str>) -> Handle {
        let mut req = ContainerRequest::new(Kind::Relic, name, "svc:1");
        if let Some(n) = network {
            req.network = NetworkRequest::Named { name: n.into(), aliases: vec![] };
        }
        let mut spec = Policy::default().admit(req).unwrap();
        spec.labels.insert(labels::TENANT.into(), tenant.into());
        spec.labels.insert(labels::SESSION.into(), session.into());
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    fn engine_conflict(e: &SessionError) -> bool {
        matches!(e, SessionError::Engine(e) if e.kind() == EngineErrorKind::Conflict)
    }

    #[tokio::test]
    async fn a_sessions_network_is_made_internal_and_labelled_as_the_sessions_on_first_use() {
        let (fake, _, sessions) = world();
        let net = sessions.ensure_network("t1", "s1").await.unwrap();
        let nets = fake.networks();
        assert_eq!(nets.len(), 1);
        assert_eq!(
            (nets[0].id.as_str(), nets[0].name.as_str(), nets[0].internal),
            (net.id.as_str(), network_name("t1", "s1").as_str(), true)
        );
        assert_eq!(nets[0].labels[labels::KIND], "session-network");
        assert_eq!(nets[0].labels[labels::SESSION], "s1");
        assert_eq!(nets[0].labels[labels::TENANT], "t1");
        assert_eq!(nets[0].labels[labels::MANAGED], "true");
    }

    #[tokio::test]
    async fn a_sessions_network_is_found_again_and_not_made_twice() {
        let (fake, _, sessions) = world();
        let first = sessions.ensure_network("t1", "s1").await.unwrap();
        fake.clear_calls();
        assert_eq!(sessions.ensure_network("t1", "s1").await.unwrap(), first);
        assert!(fake.calls_of(Op::CreateNetwork).is_empty());
        assert_eq!(fake.networks().len(), 1);
    }

    #[tokio::test]
    async fn two_tenants_sessions_of_one_id_get_a_network_each() {
        let (fake, _, sessions) = world();
        let theirs = sessions.ensure_network("t2", "s1").await.unwrap();
        let mine = sessions.ensure_network("t1", "s1").await.unwrap();
        assert_ne!(theirs, mine);
        assert_eq!(fake.networks().len(), 2);
        assert_eq!(sessions.ensure_network("t2", "s1").await.unwrap(), theirs, "each finds its own again");
    }

    #[tokio::test]
    async fn a_network_of_the_sessions_name_that_is_not_the_sessions_is_a_conflict() {
        let (fake, _, sessions) = world();
        fake.create_network(&network_name("t1", "s1"), false, &BTreeMap::new()).await.unwrap();
        let e = sessions.ensure_network("t1", "s1").await.expect_err("the name is taken by something else");
        assert!(engine_conflict(&e), "{e}");
        assert!(e.to_string().contains("taken by something else"), "{e}");
    }

    #[tokio::test]
    async fn a_network_failure_other_than_a_taken_name_is_passed_on() {
        let (fake, _, sessions) = world();
        fake.fail_next(Op::CreateNetwork, EngineError::unavailable("no daemon"));
        let e = sessions.ensure_network("t1", "s1").await.expect_err("the create fails");
        assert!(matches!(e, SessionError::Engine(e) if e.kind() == EngineErrorKind::Unavailable));
        assert!(fake.networks().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_session_id_is_refused_before_the_engine_is_asked() {
        let (fake, _, sessions) = world();
        assert!(matches!(sessions.ensure_network("t1", "a b").await, Err(SessionError::BadId(_))));
        assert!(matches!(sessions.end("t1", "", true).await, Err(SessionError::BadId(_))));
        assert!(matches!(sessions.ensure_network("t1", &"x".repeat(65)).await, Err(SessionError::BadId(_))));
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn an_engine_without_isolation_has_no_session_networks() {
        let (fake, _, sessions) = world();
        fake.set_capabilities(Capabilities { isolation: false, ..crate::engine::fake::docker_capabilities() });
        assert!(matches!(sessions.ensure_network("t1", "s1").await, Err(SessionError::NoIsolation("fake"))));
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn ending_a_session_with_running_containers_without_force_is_refused_and_changes_nothing() {
        let (fake, _, sessions) = world();
        sessions.ensure_network("t1", "s1").await.unwrap();
        member(&fake, "r1", "t1", "s1", Some(&network_name("t1", "s1"))).await;
        let stopped = member(&fake, "r2", "t1", "s1", None).await;
        fake.stop(&stopped, Duration::ZERO).await.unwrap();
        fake.clear_calls();
        let e = sessions.end("t1", "s1", false).await.expect_err("a container runs");
        assert!(matches!(e, SessionError::Running { ref session, running: 1 } if session == "s1"), "{e}");
        assert_eq!(fake.containers().len(), 2);
        assert_eq!(fake.networks().len(), 1);
        assert!(fake.calls_of(Op::Remove).is_empty() && fake.calls_of(Op::RemoveNetwork).is_empty());
    }

    #[tokio::test]
    async fn ending_a_session_with_force_removes_its_containers_and_network_and_nothing_of_others() {
        let (fake, _, sessions) = world();
        sessions.ensure_network("t1", "s1").await.unwrap();
        member(&fake, "r1", "t1", "s1", Some(&network_name("t1", "s1"))).await;
        member(&fake, "r2", "t1", "s1", None).await;
        member(&fake, "other-session", "t1", "s2", None).await;
        member(&fake, "other-tenant", "t2", "s1", None).await;
        let cleanup = sessions.end("t1", "s1", true).await.unwrap();
        assert_eq!(cleanup.containers_removed, ["r1", "r2"]);
        assert_eq!(cleanup.networks_removed, [network_name("t1", "s1")]);
        let left: Vec<String> = fake.containers().into_iter().map(|c| c.name).collect();
        assert_eq!(left, ["other-session", "other-tenant"]);
        assert!(fake.networks().is_empty());
    }

    #[tokio::test]
    async fn ending_a_session_whose_containers_have_all_exited_needs_no_force() {
        let (fake, _, sessions) = world();
        let h = member(&fake, "r1", "t1", "s1", None).await;
        fake.exit_now(&h, 0);
        assert_eq!(fake.inspect(&h).await.unwrap().phase, Phase::Exited);
        let cleanup = sessions.end("t1", "s1", false).await.unwrap();
        assert_eq!(cleanup.containers_removed, ["r1"]);
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn ending_a_session_on_an_engine_without_isolation_removes_its_containers_only() {
        let (fake, _, sessions) = world();
        member(&fake, "r1", "t1", "s1", None).await;
        fake.set_capabilities(Capabilities { isolation: false, ..crate::engine::fake::docker_capabilities() });
        let cleanup = sessions.end("t1", "s1", true).await.unwrap();
        assert_eq!(cleanup, SessionCleanup { containers_removed: vec!["r1".into()], networks_removed: vec![] });
        assert!(fake.calls_of(Op::ListNetworks).is_empty());
    }

    #[tokio::test]
    async fn a_container_that_will_not_go_makes_ending_the_session_fail_with_its_network_left() {
        let (fake, _, sessions) = world();
        sessions.ensure_network("t1", "s1").await.unwrap();
        member(&fake, "r1", "t1", "s1", None).await;
        fake.fail_next(Op::Remove, EngineError::failed("device or resource busy"));
        let e = sessions.end("t1", "s1", true).await.expect_err("the removal fails");
        assert!(matches!(e, SessionError::Engine(e) if e.message() == "device or resource busy"));
        assert_eq!(fake.containers().len(), 1);
        assert_eq!(fake.networks().len(), 1);
    }

    #[tokio::test]
    async fn the_sweep_removes_unused_berth_networks_old_enough_and_keeps_the_rest() {
        let (fake, clock, sessions) = world();
        sessions.ensure_network("t1", "old-unused").await.unwrap();
        sessions.ensure_network("t1", "old-used").await.unwrap();
        fake.create_network("not-berths", false, &BTreeMap::new()).await.unwrap();
        member(&fake, "r1", "t1", "old-used", Some(&network_name("t1", "old-used"))).await;
        clock.advance(chrono::Duration::minutes(10));
        sessions.ensure_network("t1", "young").await.unwrap();
        let removed = sessions.sweep_networks(Duration::from_secs(300)).await.unwrap();
        assert_eq!(removed, [network_name("t1", "old-unused")]);
        let mut left: Vec<String> = fake.networks().into_iter().map(|n| n.name).collect();
        left.sort();
        let mut kept = vec![network_name("t1", "old-used"), "not-berths".to_owned(), network_name("t1", "young")];
        kept.sort();
        assert_eq!(left, kept);
    }

    #[tokio::test]
    async fn the_sweep_passes_over_a_network_that_turned_out_to_be_in_use_and_stops_when_the_engine_is_down() {
        let (fake, clock, sessions) = world();
        sessions.ensure_network("t1", "a").await.unwrap();
        sessions.ensure_network("t1", "b").await.unwrap();
        clock.advance(chrono::Duration::hours(1));
        fake.fail_next(Op::RemoveNetwork, EngineError::conflict("network has active endpoints"));
        let swept = sessions.sweep_networks(Duration::ZERO).await.unwrap();
        assert_eq!(swept.len(), 1, "one of a and b was in use: {swept:?}");
        assert!([network_name("t1", "a"), network_name("t1", "b")].contains(&swept[0]), "{swept:?}");
        sessions.ensure_network("t1", "c").await.unwrap();
        fake.fail_next(Op::RemoveNetwork, EngineError::unavailable("no daemon"));
        assert!(matches!(sessions.sweep_networks(Duration::ZERO).await, Err(SessionError::Engine(_))));
        assert_eq!(fake.networks().len(), 2);
    }

    #[tokio::test]
    async fn removing_a_container_that_is_gone_is_done() {
        let (fake, _, sessions) = world();
        let h = member(&fake, "r1", "t1", "s1", None).await;
        sessions.remove_container(&h).await.unwrap();
        assert!(fake.containers().is_empty());
        sessions.remove_container(&h).await.expect("gone is removed");
    }

    #[test]
    fn a_session_network_is_named_apart_for_each_tenant_and_as_a_dns_label() {
        let (a, b) = (network_name("tenant-a", "s1"), network_name("tenant-b", "s1"));
        assert_ne!(a, b, "two tenants' sessions of one id get two networks");
        assert_eq!(a, network_name("tenant-a", "s1"), "the name is the same every time");
        assert!(crate::spec::is_dns_label(&a) && crate::spec::is_dns_label(&b), "{a} {b}");
        assert!(crate::spec::is_dns_label(&network_name("t", "Session_With.Odd_Chars")));
    }
}
