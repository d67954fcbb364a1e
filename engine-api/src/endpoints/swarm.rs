//! `/services/...`, `/tasks`, `/nodes`: swarm mode, asked of a manager.

use crate::client::Call;
use crate::error::Result;
use crate::models::{Node, Service, ServiceCreated, ServiceSpec, Task};
use crate::query::{segment, Filters, Query};
use crate::Docker;

impl Docker {
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceCreated> {
        self.json(Call::post("/services/create").json(spec)?).await
    }

    pub async fn inspect_service(&self, id: &str) -> Result<Service> {
        self.json(Call::get(format!("/services/{}", segment(id)))).await
    }

    pub async fn list_services(&self, filters: &Filters) -> Result<Vec<Service>> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::get("/services").query(q)).await
    }

    /// Replaces service `id`'s spec, as of `version` (the index its last
    /// inspect gave): the manager refuses an update made over a version
    /// that is no longer the service's ("update out of sequence").
    pub async fn update_service(&self, id: &str, version: u64, spec: &ServiceSpec) -> Result<()> {
        let mut q = Query::new();
        q.push("version", version);
        self.empty(Call::post(format!("/services/{}/update", segment(id))).query(q).json(spec)?).await.map(|_| ())
    }

    /// Removes a service; the manager stops and removes its tasks' containers.
    pub async fn remove_service(&self, id: &str) -> Result<()> {
        self.empty(Call::delete(format!("/services/{}", segment(id)))).await.map(|_| ())
    }

    /// Tasks matching `filters` (`service`, `node`, `desired-state`, `label`).
    pub async fn list_tasks(&self, filters: &Filters) -> Result<Vec<Task>> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::get("/tasks").query(q)).await
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        self.json(Call::get("/nodes")).await
    }
}
