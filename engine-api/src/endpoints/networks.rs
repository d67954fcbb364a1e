//! `/networks/...`.

use crate::client::Call;
use crate::error::Result;
use crate::models::{Network, NetworkConfig, NetworkConnect, NetworkCreated, NetworkDisconnect, NetworksPruned};
use crate::query::{segment, Filters, Query};
use crate::Docker;

impl Docker {
    pub async fn create_network(&self, config: &NetworkConfig) -> Result<NetworkCreated> {
        self.json(Call::post("/networks/create").json(config)?).await
    }

    pub async fn inspect_network(&self, id: &str) -> Result<Network> {
        self.json(Call::get(format!("/networks/{}", segment(id)))).await
    }

    pub async fn list_networks(&self, filters: &Filters) -> Result<Vec<Network>> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::get("/networks").query(q)).await
    }

    /// Attaches a container, with its aliases on this network.
    pub async fn connect_network(&self, id: &str, connect: &NetworkConnect) -> Result<()> {
        self.empty(Call::post(format!("/networks/{}/connect", segment(id))).json(connect)?).await.map(|_| ())
    }

    pub async fn disconnect_network(&self, id: &str, disconnect: &NetworkDisconnect) -> Result<()> {
        self.empty(Call::post(format!("/networks/{}/disconnect", segment(id))).json(disconnect)?).await.map(|_| ())
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        self.empty(Call::delete(format!("/networks/{}", segment(id)))).await.map(|_| ())
    }

    /// Removes unused networks matching `filters`.
    pub async fn prune_networks(&self, filters: &Filters) -> Result<NetworksPruned> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::post("/networks/prune").query(q)).await
    }
}
