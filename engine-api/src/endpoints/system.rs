//! `/_ping`, `/version`, `/info`, `/events`.

use crate::client::Call;
use crate::error::Result;
use crate::models::{Event, SystemInfo, SystemVersion};
use crate::query::{Filters, Query};
use crate::stream::JsonStream;
use crate::Docker;

/// Which events to follow. Times are Unix seconds.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filters: Filters,
}

impl Docker {
    /// `GET /_ping`: the daemon answers `OK` when it is up.
    pub async fn ping(&self) -> Result<()> {
        self.empty(Call::get("/_ping")).await.map(|_| ())
    }

    pub async fn version(&self) -> Result<SystemVersion> {
        self.json(Call::get("/version")).await
    }

    pub async fn info(&self) -> Result<SystemInfo> {
        self.json(Call::get("/info")).await
    }

    /// Follows the daemon's events. Without `until` the stream stays open.
    pub async fn events(&self, options: &EventsOptions) -> Result<JsonStream<Event>> {
        let mut q = Query::new();
        q.opt("since", options.since).opt("until", options.until).filters(&options.filters);
        let res = self.send(Call::get("/events").query(q)).await?;
        Ok(JsonStream::new(res.body, "events"))
    }
}
