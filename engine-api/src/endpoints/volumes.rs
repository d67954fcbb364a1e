//! `/volumes/...`.

use crate::client::Call;
use crate::error::Result;
use crate::models::{Volume, VolumeConfig, VolumeList};
use crate::query::{segment, Filters, Query};
use crate::Docker;

impl Docker {
    pub async fn create_volume(&self, config: &VolumeConfig) -> Result<Volume> {
        self.json(Call::post("/volumes/create").json(config)?).await
    }

    pub async fn list_volumes(&self, filters: &Filters) -> Result<VolumeList> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::get("/volumes").query(q)).await
    }

    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let mut q = Query::new();
        q.flag("force", force);
        self.empty(Call::delete(format!("/volumes/{}", segment(name))).query(q)).await.map(|_| ())
    }
}
