//! The pooled path: a run that fits a warm pool is handed, as a script, to
//! a ready member of [`crate::pool`], raced against its deadline and
//! cancellation like a cold run, and the member is removed afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::admit::Admitted;
use super::conclude::{conclude, Ending, Outcome};
use super::in_flight::Flight;
use super::race::{race, Raced};
use super::request::{RunRequest, Workload};
use super::Runs;
use crate::engine::{EngineError, StdioSession, Stream};
use crate::model::run::{RunRecord, RunStatus, RunUsage};
use crate::output::CappedOutput;
use crate::pool::launch::{self, EndScanner};
use crate::pool::{Member, PoolKey, Pools};

/// The warm pool that may serve a run: its name and the key of the run's spec.
pub(super) struct PoolChoice<'a> {
    pools: &'a Arc<Pools>,
    name: String,
    key: PoolKey,
}

impl PoolChoice<'_> {
    /// Whether the pool has a member ready for the run now.
    pub fn has_ready(&self) -> bool {
        self.pools.has_ready(&self.name, &self.key)
    }

    /// Counts the run towards its image's demand pool.
    pub fn note_run(&self) {
        self.pools.note_tool_run(&self.key);
    }
}

impl Runs {
    /// The pool that may serve the run: only code runs that fit it, whose
    /// container would go anyway (a kept container is the run's own). Code
    /// runs have their language's pool; tool runs their image's, once its
    /// runs come often enough. A run whose command or environment no script
    /// carries (a NUL) is not pooled.
    pub(super) fn pool_for(&self, req: &RunRequest, admitted: &Admitted) -> Option<PoolChoice<'_>> {
        let spec = &admitted.spec;
        let scriptable = launch::carries(spec.cmd.as_deref().unwrap_or_default(), &spec.env);
        match (&self.pools, &req.workload, PoolKey::of(spec)) {
            // A member runs on the pools' runtime only.
            (Some(pools), _, Some(key)) if key.runtime.as_deref() != Some(pools.runtime()) => None,
            (Some(pools), Workload::Code { language, .. }, Some(key)) if req.cleanup && scriptable => {
                Some(PoolChoice { pools, name: language.clone(), key })
            }
            (Some(pools), Workload::Tool { image, .. }, Some(key)) if req.cleanup && scriptable => {
                Some(PoolChoice { pools, name: crate::pool::tool_pool(image), key })
            }
            _ => None,
        }
    }

    /// Serves the run from its pool while a member is there and the run
    /// fits it: `None` when no member took it (the run goes cold), else how
    /// driving it went. The member is given back (removed) either way.
    pub(super) async fn run_pooled(
        &self,
        choice: &PoolChoice<'_>,
        admitted: &Admitted,
        flight: &Flight<'_>,
        record: &mut RunRecord,
    ) -> Option<Result<(), EngineError>> {
        let PoolChoice { pools, name, key } = choice;
        let marker = launch::marker(&format!("{}{}", self.ids.next_hex(), self.ids.next_hex()));
        flight.set_marker(&marker);
        let mut pooled = None;
        while let Some(mut member) = pools.take(name, key) {
            // A member becomes the run's process through a script; a run
            // that no script carries faithfully (a NUL in a variable) goes cold.
            let argv = member.argv(admitted.spec.cmd.as_deref());
            let Some(script) = launch::script(&argv, &admitted.spec.env, &marker) else {
                pools.release(member, false);
                break;
            };
            match self.drive_pooled(&mut member, &script, &marker, admitted.timeout, flight, record).await {
                Ok(false) => {
                    // Gone before the run started (reaped, engine restarted): the next one.
                    pools.lost(member);
                    record.container_id = None;
                    record.container_name = admitted.name.clone();
                    record.status = RunStatus::Pending;
                }
                Ok(true) => {
                    pooled = Some((member, Ok(())));
                    break;
                }
                Err(e) => {
                    pooled = Some((member, Err(e)));
                    break;
                }
            }
        }
        let (member, outcome) = pooled?;
        // Never reused: removed in the background.
        pools.release(member, true);
        record.container_removed = true;
        Some(outcome)
    }

    /// Hands the run's script (and its end marker) to a warm member and
    /// reads its output to the end line, raced against the deadline and the
    /// cancellation like the cold path (the member is killed, which ends its
    /// output and its wait); fills in the record. `Ok(false)`: the member had
    /// ended before the run was handed to it (reaped, engine restarted),
    /// nothing ran.
    async fn drive_pooled(
        &self,
        member: &mut Member,
        script: &str,
        marker: &str,
        timeout: Duration,
        flight: &Flight<'_>,
        record: &mut RunRecord,
    ) -> Result<bool, EngineError> {
        if member.has_ended() {
            return Ok(false);
        }
        // The pools' engine: a member's key names its runtime, the run's too.
        let engine = self.engine_of(record).clone();
        record.container_id = Some(member.id.id.0.clone());
        record.placement = member.id.placement.clone();
        record.container_name = member.name.clone();
        record.path = "pooled".into();
        record.status = RunStatus::Running;
        if let Err(e) = self.store_update(flight, record) {
            tracing::warn!(%e, "run record not updated");
        }
        let cap = self.policy.config.output_cap;
        let (mut out, mut err) = (CappedOutput::new(cap), CappedOutput::new(cap));
        let started = Instant::now();
        let run = hand_off(&mut member.session, script, marker, &mut out, &mut err);
        let race = race(run, timeout, flight.token(), started, || engine.kill(&member.id)).await?;
        let (mut oom_killed, mut member_exited) = (false, false);
        let (ending, exit_code) = match race.raced {
            Raced::Finished(Ok(HandOff::Ended(end))) => {
                oom_killed = end.oom_killed;
                (Ending::Exited(end.exit_code), Some(end.exit_code))
            }
            Raced::Finished(Ok(HandOff::MemberExited(code))) => {
                member_exited = true;
                (Ending::Exited(code), Some(code))
            }
            // Gone between the take and the hand-off: nothing ran.
            Raced::Finished(Ok(HandOff::NotDelivered)) => return Ok(false),
            Raced::Finished(Err(e)) => (Ending::Broken(e.to_string()), None),
            Raced::Stopped { why, then } => (why.into(), then.and_then(Result::ok).and_then(HandOff::exit_code)),
        };
        // The shell that would have checked the cgroup is gone: the engine
        // tells whether the OOM killer took the member.
        if member_exited && matches!(ending, Ending::Exited(137)) {
            oom_killed = engine.inspect(&member.id).await.map(|s| s.oom_killed).unwrap_or(false);
        }
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        conclude(
            record,
            Outcome {
                ending,
                exit_code,
                oom_killed,
                stdout: out.into_text(),
                stdout_truncated,
                stderr: err.into_text(),
                stderr_truncated,
                usage: RunUsage { wall_ms: race.wall.as_millis() as u64, cpu_ms: None, peak_memory_bytes: None },
            },
        );
        Ok(true)
    }
}

/// How a hand-off to a member ended.
enum HandOff {
    /// The script could not be written: the member was gone. Nothing ran.
    NotDelivered,
    /// The end line came on both streams.
    Ended(launch::End),
    /// The member's process ended without one (the run killed its shell).
    MemberExited(i64),
}

impl HandOff {
    /// The exit code it ended with, when the run was delivered.
    fn exit_code(self) -> Option<i64> {
        match self {
            HandOff::NotDelivered => None,
            HandOff::Ended(end) => Some(end.exit_code),
            HandOff::MemberExited(code) => Some(code),
        }
    }
}

/// Writes `script` to a member's stdin, framed by its length, then reads
/// the member's output into `out` and `err` until the end line has come on
/// both streams, or until the member's output ends without it. Its stdin
/// is left open: an engine may end the attach as soon as the attached
/// stdin ends (the Engine API does, for a container without stdin-once),
/// before the output has come.
async fn hand_off(
    session: &mut StdioSession,
    script: &str,
    marker: &str,
    out: &mut CappedOutput,
    err: &mut CappedOutput,
) -> Result<HandOff, EngineError> {
    let delivered = async {
        session.stdin.write_all(launch::framed(script).as_bytes()).await?;
        session.stdin.flush().await
    };
    if delivered.await.is_err() {
        return Ok(HandOff::NotDelivered);
    }
    let (mut stdout, mut stderr) = (EndScanner::new(marker), EndScanner::new(marker));
    loop {
        match (stdout.end(), stderr.end()) {
            (Some(Ok(a)), Some(Ok(b))) if a == b => return Ok(HandOff::Ended(*a)),
            (Some(Ok(a)), Some(Ok(b))) => {
                return Err(EngineError::failed(format!("the member's end lines disagree: {a:?} and {b:?}")));
            }
            (Some(Err(why)), _) | (_, Some(Err(why))) => {
                return Err(EngineError::failed(format!("the member wrote {why}")));
            }
            _ => {}
        }
        let Some(chunk) = session.output.next().await else { break };
        let chunk = chunk?;
        match chunk.stream {
            Stream::Stderr => stderr.feed(&chunk.data, |b| err.push(b)),
            Stream::Stdout | Stream::Console => stdout.feed(&chunk.data, |b| out.push(b)),
        }
    }
    stdout.finish(|b| out.push(b));
    stderr.finish(|b| err.push(b));
    // An end line that came on one stream before the member went is the
    // command's own word; else the member's exit code is all there is.
    match (stdout.end(), stderr.end()) {
        (Some(Ok(end)), _) | (_, Some(Ok(end))) => Ok(HandOff::Ended(*end)),
        _ => Ok(HandOff::MemberExited((&mut session.exit).await?)),
    }
}
