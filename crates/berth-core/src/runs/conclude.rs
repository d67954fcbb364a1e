//! How a run's ending becomes its record: the status, the output, the
//! parsed result and the usage decided in one place for both paths, and
//! the final steps every run takes (its container removed when asked, its
//! record stored, published and audited).

use super::in_flight::Flight;
use super::{RunError, Runs};
use crate::engine::{EngineError, GoneIsDone};
use crate::model::run::{RunRecord, RunStatus, RunUsage};

/// How a run ended, before it is written down.
pub(super) enum Ending {
    Exited(i64),
    TimedOut,
    Cancelled,
    Broken(String),
}

/// What a run left, however it ran: what [`conclude`] writes down.
pub(super) struct Outcome {
    pub ending: Ending,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub stdout: String,
    pub stdout_truncated: bool,
    pub stderr: String,
    pub stderr_truncated: bool,
    pub usage: RunUsage,
}

/// The one place a run's status, output, result and usage are decided, for
/// the cold and the pooled path alike.
pub(super) fn conclude(record: &mut RunRecord, o: Outcome) {
    record.exit_code = o.exit_code;
    record.status = match o.ending {
        Ending::Cancelled => RunStatus::Cancelled,
        Ending::TimedOut => RunStatus::TimedOut,
        _ if o.oom_killed => RunStatus::OomKilled,
        Ending::Exited(0) => RunStatus::Succeeded,
        Ending::Exited(_) => RunStatus::Failed,
        Ending::Broken(why) => {
            record.error = Some(why);
            RunStatus::Failed
        }
    };
    record.stdout_truncated = o.stdout_truncated;
    record.stderr_truncated = o.stderr_truncated;
    record.stdout = o.stdout;
    record.stderr = o.stderr;
    record.result = if record.stdout_truncated { None } else { parse_result(&record.stdout) };
    record.usage = o.usage;
}

/// The run's result: its whole output when that is JSON, else its last
/// non-empty line when that is.
pub fn parse_result(stdout: &str) -> Option<serde_json::Value> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return None;
    }
    serde_json::from_str(trimmed).ok().or_else(|| {
        trimmed.lines().rev().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str(l.trim()).ok())
    })
}

impl Runs {
    /// Ends a run whose path has been driven (`driven` is how that went):
    /// a failure is written down, its container removed when the request
    /// asked for cleanup, and the record stored as final and audited.
    pub(super) async fn finish(
        &self,
        mut record: RunRecord,
        driven: Result<(), EngineError>,
        cleanup: bool,
        flight: &Flight<'_>,
    ) -> Result<RunRecord, RunError> {
        if let Err(e) = driven {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
        }
        if cleanup && !record.container_removed {
            if let Some(h) = record.handle() {
                match self.engine_of(&record).remove(&h, true).await.or_gone() {
                    Ok(()) => record.container_removed = true,
                    Err(e) => {
                        record.error.get_or_insert(format!("the container was not removed: {e}"));
                    }
                }
            }
        }
        record.finished_at = Some(self.clock.now());
        self.store_update(flight, &record)?;
        self.metrics.run_finished(&self.run_labels(&record), record.status.as_str(), &flight.phases());
        self.audit(&record.tenant, "run", &record.id.0, record.status.as_str());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_the_json_output_or_its_last_json_line() {
        assert_eq!(parse_result("{\"a\":1}\n"), Some(serde_json::json!({"a":1})));
        assert_eq!(parse_result("working...\n{\"ok\":true}\n"), Some(serde_json::json!({"ok":true})));
        assert_eq!(parse_result("plain text\n"), None);
        assert_eq!(parse_result(""), None);
    }
}
