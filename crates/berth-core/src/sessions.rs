//! Sessions: a group of agents, runs and relics with an optional private
//! network. Ending a session stops and removes every container labelled with
//! it and its network; a sweep removes every berth network no longer in use.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, EngineErrorKind, GoneIsDone, Handle, Isolation, NetworkInfo, Selector};
use crate::ids::Clock;
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
    use super::*;

    #[test]
    fn a_session_network_is_named_apart_for_each_tenant_and_as_a_dns_label() {
        let (a, b) = (network_name("tenant-a", "s1"), network_name("tenant-b", "s1"));
        assert_ne!(a, b, "two tenants' sessions of one id get two networks");
        assert_eq!(a, network_name("tenant-a", "s1"), "the name is the same every time");
        assert!(crate::spec::is_dns_label(&a) && crate::spec::is_dns_label(&b), "{a} {b}");
        assert!(crate::spec::is_dns_label(&network_name("t", "Session_With.Odd_Chars")));
    }
}
