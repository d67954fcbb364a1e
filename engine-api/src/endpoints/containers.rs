//! `/containers/...`: lifecycle, inspection, logs, stats, archives.

use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;

use crate::client::Call;
use crate::decode::Framing;
use crate::endpoints::{content_type, Attached};
use crate::error::{DecodeError, Error, Result};
use crate::models::{
    ContainerConfig, ContainerCreated, ContainerInspect, ContainerSummary, ContainersPruned, PathStat, Stats, WaitExit,
};
use crate::query::{segment, Filters, Query};
use crate::stream::{JsonStream, OutputStream};
use crate::transport::{Body, RequestBody};
use crate::Docker;

/// What `start` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Started,
    /// `304`: it was running already.
    AlreadyRunning,
}

/// What `stop` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// `304`: it was not running.
    AlreadyStopped,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Returns at once for a container that is not running (even one never started).
    NotRunning,
    /// The next exit after the wait is registered: register it before `start`.
    NextExit,
    /// The container's removal.
    Removed,
}

impl WaitCondition {
    fn as_str(self) -> &'static str {
        match self {
            WaitCondition::NotRunning => "not-running",
            WaitCondition::NextExit => "next-exit",
            WaitCondition::Removed => "removed",
        }
    }
}

/// `GET /containers/json` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    pub limit: Option<u32>,
    pub filters: Filters,
}

/// `DELETE /containers/{id}` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveOptions {
    /// Kill a running container first instead of refusing with 409.
    pub force: bool,
    /// Remove its anonymous volumes.
    pub volumes: bool,
}

/// How many lines of logs to read from the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tail {
    #[default]
    All,
    Lines(u64),
}

/// `GET /containers/{id}/logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix seconds (fractions allowed by the daemon as `1700000000.5`).
    pub since: Option<String>,
    pub until: Option<String>,
    pub timestamps: bool,
    pub tail: Tail,
    /// The container's TTY flag, when the caller knows it. Otherwise, and
    /// when the Content-Type cannot tell, the container is inspected.
    pub tty: Option<bool>,
}

/// A registered wait: the daemon has acknowledged it (its response head is
/// here), so an exit that happens from now on will be reported.
pub struct Waiting {
    body: Body,
    what: String,
}

impl Waiting {
    /// The exit, whenever it comes: no timeout applies to this read.
    pub async fn exit(self) -> Result<WaitExit> {
        let bytes = crate::client::collect_small(self.body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::decode(self.what, DecodeError::json(e, &bytes)))
    }
}

fn path(id: &str, rest: &str) -> String {
    format!("/containers/{}{rest}", segment(id))
}

impl Docker {
    /// Creates a container, named when `name` is given.
    pub async fn create_container(&self, name: Option<&str>, config: &ContainerConfig) -> Result<ContainerCreated> {
        let mut q = Query::new();
        q.opt("name", name);
        self.json(Call::post("/containers/create").query(q).json(config)?).await
    }

    pub async fn start_container(&self, id: &str) -> Result<Started> {
        let status = self.empty(Call::post(path(id, "/start")).accept_not_modified()).await?;
        Ok(if status == StatusCode::NOT_MODIFIED { Started::AlreadyRunning } else { Started::Started })
    }

    /// Stops with SIGTERM, then SIGKILL after `grace` (the container's own
    /// default when `None`). The call waits for the grace period on top of
    /// its timeout.
    pub async fn stop_container(&self, id: &str, grace: Option<Duration>) -> Result<Stopped> {
        let mut q = Query::new();
        q.opt("t", grace.map(|g| g.as_secs()));
        let extra = grace.unwrap_or(Duration::from_secs(10));
        let status = self.empty(Call::post(path(id, "/stop")).query(q).accept_not_modified().extra_time(extra)).await?;
        Ok(if status == StatusCode::NOT_MODIFIED { Stopped::AlreadyStopped } else { Stopped::Stopped })
    }

    /// Sends a signal (`SIGKILL` when `None`).
    pub async fn kill_container(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let mut q = Query::new();
        q.opt("signal", signal);
        self.empty(Call::post(path(id, "/kill")).query(q)).await.map(|_| ())
    }

    pub async fn restart_container(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        let mut q = Query::new();
        q.opt("t", grace.map(|g| g.as_secs()));
        let extra = grace.unwrap_or(Duration::from_secs(10));
        self.empty(Call::post(path(id, "/restart")).query(q).extra_time(extra)).await.map(|_| ())
    }

    pub async fn pause_container(&self, id: &str) -> Result<()> {
        self.empty(Call::post(path(id, "/pause"))).await.map(|_| ())
    }

    pub async fn unpause_container(&self, id: &str) -> Result<()> {
        self.empty(Call::post(path(id, "/unpause"))).await.map(|_| ())
    }

    /// Registers a wait and returns once the daemon has acknowledged it.
    /// For a race-free run: `wait(NextExit)`, then `start`, then `exit()`.
    pub async fn wait_container(&self, id: &str, condition: WaitCondition) -> Result<Waiting> {
        let mut q = Query::new();
        q.push("condition", condition.as_str());
        let res = self.send(Call::post(path(id, "/wait")).query(q)).await?;
        Ok(Waiting { body: res.body, what: format!("POST /containers/{id}/wait") })
    }

    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspect> {
        self.json(Call::get(path(id, "/json"))).await
    }

    pub async fn list_containers(&self, options: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let mut q = Query::new();
        q.flag("all", options.all).opt("limit", options.limit).filters(&options.filters);
        self.json(Call::get("/containers/json").query(q)).await
    }

    pub async fn remove_container(&self, id: &str, options: RemoveOptions) -> Result<()> {
        let mut q = Query::new();
        q.flag("force", options.force).flag("v", options.volumes);
        self.empty(Call::delete(path(id, "")).query(q)).await.map(|_| ())
    }

    /// Reads (or follows) a container's output. Framing follows the
    /// Content-Type and the container's TTY flag, never the bytes.
    pub async fn logs(&self, id: &str, options: &LogsOptions) -> Result<OutputStream> {
        let mut q = Query::new();
        q.flag("follow", options.follow)
            .flag("stdout", options.stdout)
            .flag("stderr", options.stderr)
            .opt("since", options.since.as_deref())
            .opt("until", options.until.as_deref())
            .flag("timestamps", options.timestamps);
        if let Tail::Lines(n) = options.tail {
            q.push("tail", n);
        }
        let res = self.send(Call::get(path(id, "/logs")).query(q)).await?;
        let content_type = content_type(&res.headers).map(str::to_owned);
        let framing = match Framing::choose(content_type.as_deref(), options.tty) {
            Some(f) => f,
            None => {
                let tty = self.inspect_container(id).await?.tty();
                Framing::with_tty(content_type.as_deref(), tty)
            }
        };
        Ok(OutputStream::new(res.body, self.output_decoder(framing)))
    }

    /// Attaches to a container's stdio over an upgraded connection.
    pub async fn attach_container(&self, id: &str, tty: bool) -> Result<Attached> {
        self.attach(id, tty, false).await
    }

    /// Attaches to a running container's stdio, its output so far (as its
    /// log driver kept it) first: for a container started before anyone
    /// could attach, whose early output is text.
    pub async fn attach_container_replaying(&self, id: &str, tty: bool) -> Result<Attached> {
        self.attach(id, tty, true).await
    }

    async fn attach(&self, id: &str, tty: bool, logs: bool) -> Result<Attached> {
        let mut q = Query::new();
        q.push("stream", "true").push("stdin", "true").push("stdout", "true").push("stderr", "true");
        if logs {
            q.push("logs", "true");
        }
        let (headers, io) = self.upgrade(Call::post(path(id, "/attach")).query(q)).await?;
        let framing = Framing::with_tty(content_type(&headers), tty);
        Ok(Attached::new(io, self.output_decoder(framing)))
    }

    /// One stats sample with `precpu_stats` filled (the daemon takes two
    /// samples, about a second apart).
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        let mut q = Query::new();
        q.push("stream", "false");
        self.json(Call::get(path(id, "/stats")).query(q)).await
    }

    /// One stats sample at once, with a zeroed `precpu_stats`: CPU percent
    /// needs a previous sample from the caller.
    pub async fn stats_one_shot(&self, id: &str) -> Result<Stats> {
        let mut q = Query::new();
        q.push("stream", "false").push("one-shot", "true");
        self.json(Call::get(path(id, "/stats")).query(q)).await
    }

    /// A sample about every second until the container stops or the stream is dropped.
    pub async fn stats_stream(&self, id: &str) -> Result<JsonStream<Stats>> {
        let mut q = Query::new();
        q.push("stream", "true");
        let res = self.send(Call::get(path(id, "/stats")).query(q)).await?;
        Ok(JsonStream::new(res.body, "stats"))
    }

    /// Extracts a tar archive into the directory `dir` of the container.
    pub async fn put_archive(&self, id: &str, dir: &str, tar: RequestBody) -> Result<()> {
        let mut q = Query::new();
        q.push("path", dir);
        let call = Call::new(http::Method::PUT, path(id, "/archive")).query(q).body(tar, "application/x-tar");
        self.empty(call).await.map(|_| ())
    }

    /// A tar archive of `path` in the container, with what the daemon says about the path.
    pub async fn get_archive(&self, id: &str, file: &str) -> Result<(PathStat, Body)> {
        let mut q = Query::new();
        q.push("path", file);
        let res = self.send(Call::get(path(id, "/archive")).query(q)).await?;
        let stat = path_stat(&res.headers)?;
        Ok((stat, res.body))
    }

    /// Removes stopped containers matching `filters`.
    pub async fn prune_containers(&self, filters: &Filters) -> Result<ContainersPruned> {
        let mut q = Query::new();
        q.filters(filters);
        self.json(Call::post("/containers/prune").query(q)).await
    }
}

fn path_stat(headers: &http::HeaderMap) -> Result<PathStat> {
    const NAME: &str = "X-Docker-Container-Path-Stat";
    let bad = |reason: String| Error::decode("an archive answer", DecodeError::Header { name: NAME, reason });
    let value = headers.get(NAME).ok_or_else(|| bad("missing".into()))?;
    let json = base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}
