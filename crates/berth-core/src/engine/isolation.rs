//! Isolation of a session's workloads from everything else: on one engine
//! a private (internal) network, on a swarm an attachable overlay, on
//! Kubernetes a NetworkPolicy. The core asks for a session's network and
//! lists and removes what it made; how an engine isolates is its own.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::error::EngineError;
use super::select::Selector;

/// A network berth manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// Workloads attached now.
    pub containers: usize,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

#[async_trait]
pub trait Isolation: Send + Sync {
    /// Makes a network; `internal` ones reach nothing beyond their members.
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError>;

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError>;

    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError>;
}
