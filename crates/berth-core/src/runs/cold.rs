//! The cold path: a run in a container of its own, created, started with
//! its exit awaited, raced against its deadline and cancellation, then
//! inspected and its logs read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::conclude::{conclude, Ending, Outcome};
use super::in_flight::Flight;
use super::race::{race, Raced};
use super::Runs;
use crate::engine::{EngineError, EngineErrorKind, LogRequest, Usage};
use crate::model::run::{RunRecord, RunStatus, RunUsage};
use crate::output::CappedStreams;
use crate::spec::{annotations, ContainerSpec};

/// How long past its deadline a run's container is left to the run before
/// its expiry label lets the reaper take it (the kill, the exit, the logs).
const EXPIRY_SLACK: Duration = Duration::from_secs(60);

/// How long the usage stream's last sample is waited for after the exit.
const LAST_SAMPLE: Duration = Duration::from_millis(100);

impl Runs {
    /// Creates, starts and watches the container; fills in the record.
    /// A container that is to be removed after the run carries an expiry
    /// label a minute past the run's deadline: should it outlive the run
    /// unseen (its creation went unanswered and it appeared later), the
    /// reaper takes it. One kept for inspection is the caller's.
    pub(super) async fn drive(
        &self,
        spec: &ContainerSpec,
        timeout: Duration,
        cleanup: bool,
        flight: &Flight<'_>,
        record: &mut RunRecord,
    ) -> Result<(), EngineError> {
        let spec = if cleanup {
            let mut with_expiry = spec.clone();
            let expiry = crate::lifetime::reaper::expiry_after(self.clock.now(), timeout + EXPIRY_SLACK);
            with_expiry.annotations.insert(annotations::EXPIRES_AT.into(), expiry.to_rfc3339());
            std::borrow::Cow::Owned(with_expiry)
        } else {
            std::borrow::Cow::Borrowed(spec)
        };
        let spec = spec.as_ref();
        let engine = self.engine(spec);
        let cid = engine.create(spec).await?;
        record.container_id = Some(cid.id.0.clone());
        record.placement = cid.placement.clone();
        // The container is recorded before it starts, so recovery finds it;
        // the run is `running` only once it is: a follow that came between
        // would read a log that has not begun as one that has ended.
        if let Err(e) = self.store_update(flight, record) {
            tracing::warn!(%e, "run record not updated");
        }
        let started = Instant::now();
        let exit = engine.start_watched(&cid).await?;
        record.status = RunStatus::Running;
        if let Err(e) = self.store_update(flight, record) {
            tracing::warn!(%e, "run record not updated");
        }
        // The sample stream is opened (its head awaited) before the race, so
        // the same requests go out however quickly the run ends.
        let last_usage: Arc<Mutex<Option<Usage>>> = Arc::default();
        let io = engine.io(&cid)?;
        let samples = io.usage_stream(&cid).await.ok();
        let mut sampler = {
            let last = last_usage.clone();
            tokio::spawn(async move {
                if let Some(mut samples) = samples {
                    while let Some(u) = samples.next().await {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
                    }
                }
            })
        };
        let race = race(exit, timeout, flight.token(), started, || engine.kill(&cid)).await?;
        let (ending, exit_code) = match race.raced {
            Raced::Finished(Ok(code)) => (Ending::Exited(code), Some(code)),
            // The workload went with its machine: there is nothing of it
            // left to inspect or read, and the error says why.
            Raced::Finished(Err(e)) if e.kind() == EngineErrorKind::Lost => {
                sampler.abort();
                return Err(e);
            }
            Raced::Finished(Err(e)) => (Ending::Broken(e.to_string()), None),
            Raced::Stopped { why, then } => (why.into(), then.and_then(Result::ok)),
        };
        // The last sample (a backend that reads the cgroup as the workload
        // ends sends it then, and ends the stream) is waited for briefly.
        let _ = tokio::time::timeout(LAST_SAMPLE, &mut sampler).await;
        sampler.abort();
        let state = engine.inspect(&cid).await?;
        let plan = engine.plan(&cid).await?;

        let cap = self.policy.config.output_cap;
        let logs = io.logs(&cid, &LogRequest::default()).await?;
        let CappedStreams { stdout: out, stderr: err } = CappedStreams::new(cap).collect(logs).await?;
        let usage = last_usage.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        conclude(
            record,
            Outcome {
                ending,
                exit_code: exit_code.or(state.exit_code),
                oom_killed: state.oom_killed,
                stdout: out.into_text(),
                stdout_truncated,
                stderr: err.into_text(),
                stderr_truncated,
                usage: RunUsage {
                    wall_ms: race.wall.as_millis() as u64,
                    cpu_ms: usage.as_ref().map(|u| u.cpu_time_ns / 1_000_000),
                    peak_memory_bytes: usage.and_then(|u| u.memory_peak),
                },
            },
        );
        // A backend that renders plans ran nothing: the run ends with its plan.
        if let Some(plan) = plan {
            record.status = RunStatus::DryRun;
            record.plan = Some(plan);
        }
        Ok(())
    }
}
