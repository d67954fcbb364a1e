//! What a container says about itself: its logs (read at once with a cap,
//! or followed) and its resource use (one sample or a stream), for any
//! object of a tenant that has a container (an agent, a relic, or any
//! container berth manages, named as the seeds name them).
//!
//! This module owns the object → container lookup, the capped reading of a
//! finite log and the "how did it end" of a followed container. It knows
//! nothing of how a front end frames what it reads.

use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use crate::engine::{Engine, EngineError, Handle, LogStream, Phase, WorkloadInfo};
use crate::output::{CappedOutput, CappedStreams};
use crate::spec::labels;
use crate::Error;

/// An object of a tenant whose container is to be observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An agent, by its id.
    Agent(String),
    /// A relic, by its id.
    Relic(String),
    /// Any container berth manages for the tenant, named by berth's object
    /// id (run, relic, agent), its container name, or its container id (or
    /// a prefix of it of at least 12 characters), as the seeds name them.
    Managed(String),
}

/// Logs read at once, each stream and both together kept to the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsRead {
    pub stdout: String,
    pub stderr: String,
    /// Both streams in the order they came (what a terminal would show).
    pub logs: String,
    /// True when the cap cut them short.
    pub truncated: bool,
}

impl LogsRead {
    /// Reads a finite log stream, keeping at most `cap` bytes of each view.
    pub async fn collect(mut stream: LogStream, cap: usize) -> Result<LogsRead, EngineError> {
        let (mut each, mut all) = (CappedStreams::new(cap), CappedOutput::new(cap));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            each.push(&chunk);
            // Memory stays within the caps; the rest is only counted.
            all.push(&chunk.data);
        }
        let truncated = all.truncated();
        Ok(LogsRead {
            stdout: each.stdout.into_text(),
            stderr: each.stderr.into_text(),
            logs: all.into_text(),
            truncated,
        })
    }
}

/// How a followed container ended, from its state once its output ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The container's phase (`Exited`, or `Running` when only the stream
    /// ended).
    pub status: Phase,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// The ending of a followed stream, resolved once the stream has ended.
pub type EndingFuture = BoxFuture<'static, Result<Ending, Error>>;

/// A future that reads how `id` ended.
pub(crate) fn ending(backend: std::sync::Arc<dyn Engine>, id: Handle) -> EndingFuture {
    Box::pin(async move {
        let st = backend.inspect(&id).await?;
        Ok(Ending {
            status: st.phase,
            exit_code: if st.running() { None } else { st.exit_code },
            oom_killed: st.oom_killed,
        })
    })
}

/// The managed container of `tenant` that `key` names (object id, name,
/// or an id prefix of at least 12 characters), from a list of them.
pub(crate) fn find_managed(containers: Vec<WorkloadInfo>, key: &str) -> Option<WorkloadInfo> {
    containers.into_iter().find(|c| {
        c.labels.get(labels::OBJECT).is_some_and(|o| o == key)
            || c.name == key
            || (key.len() >= 12 && c.handle.id.0.starts_with(key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info(id: &str, name: &str, object: &str) -> WorkloadInfo {
        WorkloadInfo {
            handle: Handle::local(id),
            name: name.into(),
            phase: Phase::Running,
            labels: BTreeMap::from([(labels::OBJECT.to_owned(), object.to_owned())]),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_managed_container_is_found_by_object_id_name_or_a_long_enough_id_prefix() {
        let all = || vec![info("0123456789abcdef", "berth-agent-a1", "a1"), info("fedcba9876543210", "r", "run_1")];
        assert_eq!(find_managed(all(), "run_1").unwrap().name, "r");
        assert_eq!(find_managed(all(), "berth-agent-a1").unwrap().name, "berth-agent-a1");
        assert_eq!(find_managed(all(), "0123456789ab").unwrap().name, "berth-agent-a1");
        assert!(find_managed(all(), "0123").is_none(), "a short prefix names nothing");
    }

    #[tokio::test]
    async fn a_log_read_keeps_each_view_to_the_cap_and_says_so() {
        use crate::engine::{LogChunk, Stream};
        let chunks = vec![
            Ok(LogChunk { stream: Stream::Stdout, data: bytes::Bytes::from_static(b"hello ") }),
            Ok(LogChunk { stream: Stream::Stderr, data: bytes::Bytes::from_static(b"oops ") }),
            Ok(LogChunk { stream: Stream::Stdout, data: bytes::Bytes::from_static(b"world") }),
        ];
        let read = LogsRead::collect(futures_util::stream::iter(chunks).boxed(), 8).await.unwrap();
        assert!(read.truncated);
        assert!(read.stdout.starts_with("hello wo\n[berth: output truncated"), "{}", read.stdout);
        assert_eq!(read.stderr, "oops ");
        assert!(read.logs.starts_with("hello oo"), "{}", read.logs);
    }
}
