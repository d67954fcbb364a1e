//! `berth doctor`: what `berth serve` needs on this machine, checked with
//! the configuration it would serve, each finding with its fix. The checks
//! gather (they reach the engines, the runtimes, the ports, the disk); the
//! report decides and renders without IO.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use berth::config::{BackendChoice, OciChoice, ServeConfig};
use berth_core::runs::default_languages;

/// The largest skew allowed between this machine's clock and an engine's:
/// containers' expiry annotations are compared across them.
const MAX_SKEW: Duration = Duration::from_secs(1);
/// The free space below which the data folder is a problem.
const MIN_FREE: u64 = 512 * 1024 * 1024;
/// How long an engine has to answer each check.
const ENGINE_WITHIN: Duration = Duration::from_secs(5);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, with less than berth can do (say, no OCI runtime here).
    Warn,
    /// `berth serve` cannot do what it is configured to.
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about it, when it is not ok.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding { check, verdict: Verdict::Ok, detail: detail.into(), fix: None }
    }

    fn bad(check: &'static str, verdict: Verdict, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, verdict, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Every finding, in the order checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report(pub Vec<Finding>);

impl Report {
    /// Whether something stops `berth serve` doing what it is configured to.
    pub fn blocking(&self) -> bool {
        self.0.iter().any(|f| f.verdict == Verdict::Fail)
    }

    /// One line per finding (`ok`, `warn`, `FAIL`, the check, what was
    /// found), its fix on the next line, and a last line that sums up.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            out.push_str(&format!("{:<4}  {:<10}  {}\n", f.verdict.word(), f.check, f.detail));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("{:<4}  {:<10}  fix: {fix}\n", "", ""));
            }
        }
        let count = |v| self.0.iter().filter(|f| f.verdict == v).count();
        out.push_str(&format!(
            "berth doctor: {} ok, {} warnings, {} blocking\n",
            count(Verdict::Ok),
            count(Verdict::Warn),
            count(Verdict::Fail)
        ));
        out
    }
}

/// An engine berth would talk to, by what the findings call it.
struct Reached {
    name: String,
    docker: engine_api::Docker,
    /// Whether tasks run on it, so its images matter (a swarm's manager
    /// places them on its nodes).
    runs_tasks: bool,
}

/// Checks everything `berth serve` with `config` needs.
pub async fn examine(config: &ServeConfig) -> Report {
    let mut report = Report::default();
    let engines = engines(config, &mut report.0).await;
    for engine in &engines {
        report.0.push(clock(engine).await);
    }
    report.0.extend(images(config, &engines).await);
    report.0.push(cgroups());
    report.0.extend(runtimes(config, !engines.is_empty()).await);
    report.0.extend(listeners(config));
    report.0.push(data_folder(&config.data));
    report
}

async fn within<T>(call: impl std::future::Future<Output = Result<T, engine_api::Error>>) -> Result<T, String> {
    match tokio::time::timeout(ENGINE_WITHIN, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", ENGINE_WITHIN.as_secs())),
    }
}

/// The engines of the configured backend that answer, each found said.
async fn engines(config: &ServeConfig, findings: &mut Vec<Finding>) -> Vec<Reached> {
    let mut wanted: Vec<(String, Result<engine_api::Docker, String>, bool)> = Vec::new();
    match config.backend {
        BackendChoice::OciDryRun => {
            findings.push(Finding::ok("engine", "none needed: the oci-dry-run backend runs nothing"));
            return Vec::new();
        }
        BackendChoice::Swarm => match &config.swarm {
            Some(swarm) => {
                wanted.push(("the swarm manager".into(), swarm.client(&swarm.manager, &swarm.manager_name), false));
                for (name, endpoint) in &swarm.nodes {
                    wanted.push((format!("node {name}"), swarm.client(endpoint, name), true));
                }
            }
            None => {
                findings.push(Finding::bad(
                    "engine",
                    Verdict::Fail,
                    "backend swarm: no [swarm] manager is configured",
                    "name the manager and the nodes under [swarm] (README.md, \"swarm backend\")",
                ));
                return Vec::new();
            }
        },
        BackendChoice::Docker | BackendChoice::Auto => {
            let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
            let client = engine_api::Docker::from_env().map_err(|e| e.to_string());
            wanted.push((format!("the engine at {host}"), client, true));
        }
    }
    let mut reached = Vec::new();
    for (name, client, runs_tasks) in wanted {
        let answer = match client {
            Ok(docker) => within(docker.api_version()).await.map(|api| (docker, api)),
            Err(e) => Err(e),
        };
        match answer {
            Ok((docker, api)) => {
                let server = within(docker.version()).await.ok().and_then(|v| v.version).unwrap_or_default();
                let old = api.minor < 41 && api.major == 1;
                findings.push(match old {
                    false => Finding::ok("engine", format!("{name}: API {api}, server {server}")),
                    true => Finding::bad(
                        "engine",
                        Verdict::Fail,
                        format!("{name}: API {api}, older than the 1.41 berth speaks"),
                        "upgrade the engine (Debian 12's docker.io speaks 1.41)",
                    ),
                });
                reached.push(Reached { name, docker, runs_tasks });
            }
            Err(e) if config.backend == BackendChoice::Auto => findings.push(Finding::bad(
                "engine",
                Verdict::Warn,
                format!("{name} does not answer ({e}): berth serve would take the oci-dry-run backend"),
                "start dockerd (scripts/provision.sh here), or set DOCKER_HOST",
            )),
            Err(e) => findings.push(Finding::bad(
                "engine",
                Verdict::Fail,
                format!("{name} does not answer: {e}"),
                "start the engine, or point DOCKER_HOST (or [swarm]) at it",
            )),
        }
    }
    reached
}

/// The engine's clock against this machine's.
async fn clock(engine: &Reached) -> Finding {
    let info = match within(engine.docker.info()).await {
        Ok(info) => info,
        Err(e) => return Finding::bad("clock", Verdict::Warn, format!("{}: /info: {e}", engine.name), "see above"),
    };
    let Some(theirs) = info.system_time.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return Finding::bad("clock", Verdict::Warn, format!("{}: says no time", engine.name), "none needed");
    };
    let skew = chrono::Utc::now().signed_duration_since(theirs).abs().to_std().unwrap_or_default();
    if skew <= MAX_SKEW {
        Finding::ok("clock", format!("{}: {} ms apart", engine.name, skew.as_millis()))
    } else {
        Finding::bad(
            "clock",
            Verdict::Fail,
            format!(
                "{}: {:.1} s apart (at most {} s: expiry labels are compared across them)",
                engine.name,
                skew.as_secs_f64(),
                MAX_SKEW.as_secs()
            ),
            "run a time daemon (chrony, systemd-timesyncd) on both machines",
        )
    }
}

/// The images of the languages and the sandbox templates, on every engine
/// reached (a swarm's tasks use what their node has).
async fn images(config: &ServeConfig, engines: &[Reached]) -> Vec<Finding> {
    let mut wanted: Vec<(String, String)> =
        default_languages().into_iter().map(|(name, l)| (l.image, format!("language {name}"))).collect();
    let mut templates = berth_core::sandboxes::SandboxConfig::default().templates;
    templates.extend(config.templates.clone());
    wanted.extend(templates.into_iter().map(|(name, t)| (t.image, format!("template {name}"))));
    let mut out = Vec::new();
    for engine in engines.iter().filter(|e| e.runs_tasks) {
        let mut missing = Vec::new();
        for (image, of) in &wanted {
            if within(engine.docker.inspect_image(image)).await.is_err() {
                missing.push(format!("{image} ({of})"));
            }
        }
        out.push(match missing.is_empty() {
            true => Finding::ok("images", format!("{}: all {} there", engine.name, wanted.len())),
            false => Finding::bad(
                "images",
                Verdict::Fail,
                format!("{}: missing {}", engine.name, missing.join(", ")),
                "docker pull (or docker load) each; scripts/provision.sh builds berth/base:1 from Debian's packages",
            ),
        });
    }
    out
}

/// The cgroup layout and the controllers berth's runtimes limit by.
fn cgroups() -> Finding {
    let root = Path::new("/sys/fs/cgroup");
    let needed = ["memory", "cpu", "pids"];
    let (version, missing): (u8, Vec<&str>) = if root.join("cgroup.controllers").is_file() {
        let have = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        (2, needed.into_iter().filter(|c| !have.split_whitespace().any(|h| h == *c)).collect())
    } else {
        (1, needed.into_iter().filter(|c| !root.join(c).is_dir()).collect())
    };
    if missing.is_empty() {
        Finding::ok("cgroups", format!("v{version}, with {}", needed.join(", ")))
    } else {
        Finding::bad(
            "cgroups",
            Verdict::Warn,
            format!("v{version}, without {}: the oci backend cannot limit its sandboxes", missing.join(", ")),
            "enable the controllers (the engine's runs are not affected)",
        )
    }
}

/// Each OCI runtime berth can drive: on `PATH`, and whether its probe run
/// passes here.
async fn runtimes(config: &ServeConfig, engine_here: bool) -> Vec<Finding> {
    if config.oci == OciChoice::Off {
        let why = match Path::new("/.dockerenv").exists() {
            true => "berth runs in a container, where making namespaces and cgroups of its own needs privileges it should not be given; sealed runs go to the engine",
            false => "oci = \"off\"; sealed runs go to the engine",
        };
        return vec![Finding::ok("runtime", format!("the oci backend is off: {why}"))];
    }
    let mut out = Vec::new();
    for name in berth::sealed::RUNTIMES {
        let probe = berth::sealed::probe(name, &config.data).await;
        // runc carries sealed runs by default; runsc only when asked for.
        let verdict = match (probe.ok, name, config.oci) {
            (true, _, _) => Verdict::Ok,
            (false, "runc", OciChoice::Required) => Verdict::Fail,
            (false, "runc", _) if !engine_here => Verdict::Fail,
            _ => Verdict::Warn,
        };
        out.push(match verdict {
            Verdict::Ok => Finding::ok("runtime", format!("{name}: {}", probe.detail)),
            _ => Finding::bad(
                "runtime",
                verdict,
                format!("{name}: {} (sealed runs go to the engine)", probe.detail),
                match name {
                    "runsc" => "apt-get install runsc, as root with writable cgroups",
                    _ => "run berth as root with writable cgroups, and apt-get install runc tini",
                },
            ),
        });
    }
    out
}

/// The configured listeners: each must be free to bind.
fn listeners(config: &ServeConfig) -> Vec<Finding> {
    let mut wanted: Vec<(String, SocketAddr)> = vec![("native API".into(), config.listen)];
    wanted.extend(config.dialects.iter().map(|(d, a)| (format!("dialect {}", d.name()), *a)));
    if let Some(e2b) = &config.e2b {
        wanted.push(("e2b control plane".into(), e2b.api));
        wanted.push(("e2b envd".into(), e2b.envd));
    }
    wanted
        .into_iter()
        .map(|(what, addr)| match std::net::TcpListener::bind(addr) {
            Ok(_) => Finding::ok("listen", format!("{what} on {addr}: free")),
            Err(e) => Finding::bad(
                "listen",
                Verdict::Fail,
                format!("{what} on {addr}: {e}"),
                "stop what listens there (ss -ltnp), or choose another address (--listen, the configuration)",
            ),
        })
        .collect()
}

/// The data folder: made, written to, and with room.
fn data_folder(data: &Path) -> Finding {
    let shown = data.display();
    if let Err(e) = std::fs::create_dir_all(data) {
        return Finding::bad(
            "data",
            Verdict::Fail,
            format!("{shown} cannot be made: {e}"),
            "choose --data berth may write",
        );
    }
    let probe = data.join(".berth-doctor");
    if let Err(e) = std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        return Finding::bad(
            "data",
            Verdict::Fail,
            format!("{shown} is not writable: {e}"),
            "chown it to berth's user, or choose --data",
        );
    }
    match nix::sys::statvfs::statvfs(data) {
        Ok(fs) => {
            let free = fs.blocks_available() * fs.fragment_size();
            let mib = free / (1024 * 1024);
            if free >= MIN_FREE {
                Finding::ok("data", format!("{shown}: writable, {mib} MiB free"))
            } else {
                Finding::bad(
                    "data",
                    Verdict::Fail,
                    format!("{shown}: {mib} MiB free, under {} MiB", MIN_FREE / (1024 * 1024)),
                    "free space there, or choose --data on a larger disk",
                )
            }
        }
        Err(e) => Finding::bad("data", Verdict::Warn, format!("{shown}: free space unknown ({e})"), "check df"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_blocks_and_says_its_fix_a_warning_does_not_block() {
        let warned = Report(vec![
            Finding::ok("engine", "API 1.41"),
            Finding::bad("runtime", Verdict::Warn, "runsc: missing", "apt-get install runsc"),
        ]);
        assert!(!warned.blocking());
        let failed =
            Report(vec![Finding::bad("images", Verdict::Fail, "missing busybox:1.35", "docker pull busybox:1.35")]);
        assert!(failed.blocking());
        let text = failed.render();
        assert!(text.starts_with("FAIL  images      missing busybox:1.35\n"), "{text}");
        assert!(text.contains("fix: docker pull busybox:1.35\n"), "{text}");
        assert!(text.ends_with("berth doctor: 0 ok, 0 warnings, 1 blocking\n"), "{text}");
    }
}
