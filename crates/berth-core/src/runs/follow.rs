//! Following a run to its final record. While a run is in flight, each
//! update of its record that is stored is also published on a watch; a
//! follower waits on that watch instead of reading the store again and
//! again. A run that is not in flight has its last word in the store.

use crate::runs::RunStatus;
use std::time::Duration;

use super::in_flight::Flight;
use super::{RunError, Runs};
use crate::model::run::{RunId, RunRecord};
use crate::store::StoreError;

impl Runs {
    /// Stores `record`, an update of the run in `flight`, and publishes it
    /// to whoever follows the run.
    pub(super) fn store_update(&self, flight: &Flight<'_>, record: &RunRecord) -> Result<(), StoreError> {
        self.store.put_run(record)?;
        if flight.publish(record) {
            self.metrics.run_started(&self.run_labels(record));
        }
        Ok(())
    }

    /// The record of run `id` of `tenant` once it is final, waiting at most
    /// `at_most` for it; the latest one when it is not final by then. A run
    /// that is not in flight (or whose future ends without a final record)
    /// is read from the store once.
    pub async fn final_record(&self, tenant: &str, id: &RunId, at_most: Duration) -> Result<RunRecord, RunError> {
        self.record_when(tenant, id, at_most, |r| r.status.is_terminal()).await
    }

    /// The record of run `id` of `tenant` once it runs (its container
    /// started, or a member handed it) or is final, waiting at most
    /// `at_most`: what a follower of a run still being made needs before it
    /// can read the container's output. A container made but not started
    /// has a log that has not begun, which a follow reads as ended.
    pub async fn running_record(&self, tenant: &str, id: &RunId, at_most: Duration) -> Result<RunRecord, RunError> {
        self.record_when(tenant, id, at_most, |r| r.status == RunStatus::Running || r.status.is_terminal()).await
    }

    /// The record of run `id` once `done` holds of it, within `at_most` (the
    /// latest one when not); read from the store once when not in flight.
    async fn record_when(
        &self,
        tenant: &str,
        id: &RunId,
        at_most: Duration,
        done: impl Fn(&RunRecord) -> bool,
    ) -> Result<RunRecord, RunError> {
        let Some(mut updates) = self.in_flight.watch(tenant, id) else {
            return self.get(tenant, id);
        };
        let last = async { updates.wait_for(|r| done(r)).await.map(|last| last.clone()) };
        let waited = tokio::time::timeout(at_most, last).await;
        match waited {
            Ok(Ok(last)) => Ok(last),
            Ok(Err(_ended)) => self.get(tenant, id),
            Err(_elapsed) => Ok(updates.borrow().clone()),
        }
    }
}
