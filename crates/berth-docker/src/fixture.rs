//! The fixture backend: the docker backend over a replay of a named,
//! recorded scenario (or over a recording of it, when
//! `BERTH_RECORD_FIXTURES` names a folder), with the deterministic ids and
//! clock that make a scenario send the same bytes every time.
//!
//! Tests build the orchestration core or the HTTP service on it as they
//! would on a daemon; [`Fixture::finish`] then says whether the flow went
//! exactly as recorded. It knows nothing of which flows exist: those are the
//! tests'. Recordings are written only by `scripts/record-fixtures.sh`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use engine_api::transport::cassette::CassetteError;
use engine_api::transport::scenario::Scenario;

use crate::DockerBackend;
use berth_core::engine::Engine;
use berth_core::model::ids::{FixedClock, IdSource, SequentialIds};

/// The committed recordings: `fixtures/<suite>/<scenario>.json`.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

/// What a fixture's clock reads.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01T00:00:00Z is a time")
}

/// A scenario's backend, ids and clock.
pub struct Fixture {
    pub backend: Arc<DockerBackend>,
    pub ids: Arc<SequentialIds>,
    pub clock: Arc<FixedClock>,
    scenario: Scenario,
}

impl Fixture {
    /// Scenario `name` of `suite` (`berth`, `http`), replayed from the
    /// committed recordings, or from `BERTH_FIXTURES_DIR` when set.
    pub fn open(suite: &str, name: &str) -> Result<Fixture, CassetteError> {
        let scenario = Scenario::open(Path::new(COMMITTED), suite, name)?;
        Ok(Fixture {
            backend: Arc::new(DockerBackend::over(scenario.transport())),
            ids: Arc::new(SequentialIds::default()),
            clock: Arc::new(FixedClock::at(epoch())),
            scenario,
        })
    }

    /// The backend as orchestration holds it.
    pub fn backend(&self) -> Arc<dyn Engine> {
        self.backend.clone()
    }

    /// The ids as orchestration draws them.
    pub fn ids(&self) -> Arc<dyn IdSource> {
        self.ids.clone()
    }

    /// Saves the recording, or checks that the replay went exactly as
    /// recorded: every request held by the recording, every exchange used.
    pub fn finish(self) -> Result<(), String> {
        self.scenario.finish()
    }
}
