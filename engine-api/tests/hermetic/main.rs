//! The hermetic tier of engine-api: its flows replayed from recordings.
//!
//! Every scenario runs the unchanged client over a [`ReplayTransport`] of
//! `fixtures/engine-api/<scenario>.json`; no daemon is needed (CI runs this
//! binary with `DOCKER_HOST` pointing at nothing). With
//! `BERTH_RECORD_FIXTURES=<dir>` the same scenarios run against the real
//! daemon and are recorded into `<dir>` instead: that is how fixtures are
//! made (`scripts/record-fixtures.sh`). `BERTH_FIXTURES_DIR` replays from
//! another folder (CI's freshness check replays a fresh recording).
//!
//! [`ReplayTransport`]: engine_api::transport::ReplayTransport

mod harness;

mod faults;
mod scenarios;
