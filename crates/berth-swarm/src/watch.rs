//! The manager's view of the nodes, read at most once per [`FRESH_FOR`]
//! however many runs ask, and the watch that ends a run whose node is lost
//! (the decisions are [`crate::nodes`]'s).

use std::time::{Duration, Instant};

use berth_core::engine::{EngineError, NodeStatus};
use berth_docker::engine_err;
use engine_api::Docker;

use crate::nodes;

/// How old a read of the node list may be when a watch asks again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// The node list as last read, shared by every watch of one backend.
pub struct NodeBook {
    manager: Docker,
    configured: Vec<String>,
    last: tokio::sync::Mutex<Option<(Instant, Vec<NodeStatus>)>>,
}

impl NodeBook {
    pub fn new(manager: Docker, configured: Vec<String>) -> NodeBook {
        NodeBook { manager, configured, last: tokio::sync::Mutex::new(None) }
    }

    /// Every configured node's state, read at most [`FRESH_FOR`] ago.
    pub async fn read(&self) -> Result<Vec<NodeStatus>, EngineError> {
        let mut last = self.last.lock().await;
        if let Some((at, statuses)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Ok(statuses.clone());
            }
        }
        let listed = self.manager.list_nodes().await.map_err(engine_err)?;
        let read = nodes::statuses(self.configured.iter().map(String::as_str), &listed);
        *last = Some((Instant::now(), read.clone()));
        Ok(read)
    }

    /// Node `name`'s state, read at most [`FRESH_FOR`] ago.
    async fn status(&self, name: &str) -> Result<Option<NodeStatus>, EngineError> {
        Ok(self.read().await?.into_iter().find(|s| s.name == name))
    }

    /// Returns once a task on node `name` is lost with it, with why. A
    /// manager that does not answer (restarting, say) is waited on: the
    /// task's data plane is its node's, and the run goes on meanwhile.
    pub async fn until_lost(&self, name: &str) -> EngineError {
        loop {
            tokio::time::sleep(FRESH_FOR).await;
            match self.status(name).await {
                Ok(Some(status)) => {
                    if let Some(why) = nodes::lost(&status) {
                        return EngineError::lost(format!("{why}; the run's container there is lost"));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%name, %e, "the manager did not say how the node is"),
            }
        }
    }
}
