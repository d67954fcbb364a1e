//! A named scenario of a test suite: recorded against the real daemon when
//! `BERTH_RECORD_FIXTURES` names a folder, replayed strictly otherwise.
//!
//! Recordings live in `<root>/<suite>/<scenario>.json`. The root is
//! `BERTH_RECORD_FIXTURES` when recording, else `BERTH_FIXTURES_DIR` when
//! set (to replay a fresh recording), else the suite's committed folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cassette::CassetteError;
use super::{RecordingTransport, ReplayTransport, SocketTransport, Transport};
use crate::host::Endpoint;

pub struct Scenario {
    transport: Arc<dyn Transport>,
    mode: Mode,
}

enum Mode {
    Record(RecordingTransport, PathBuf),
    Replay(ReplayTransport),
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Whether this process records scenarios rather than replaying them.
pub fn recording() -> bool {
    env_dir("BERTH_RECORD_FIXTURES").is_some()
}

impl Scenario {
    /// Opens scenario `name` of `suite`; `committed_root` is the repository's `fixtures/`.
    pub fn open(committed_root: &Path, suite: &str, name: &str) -> Result<Scenario, CassetteError> {
        let file = format!("{name}.json");
        if let Some(root) = env_dir("BERTH_RECORD_FIXTURES") {
            let endpoint = Endpoint::from_env().map_err(|e| CassetteError::Corrupt(e.to_string()))?;
            let recorder = RecordingTransport::new(SocketTransport::new(endpoint), name);
            let path = root.join(suite).join(file);
            return Ok(Scenario { transport: Arc::new(recorder.clone()), mode: Mode::Record(recorder, path) });
        }
        if std::env::var_os("BERTH_REQUIRE_NO_DAEMON").is_some_and(|v| v == "1") {
            no_daemon_answers()?;
        }
        let root = env_dir("BERTH_FIXTURES_DIR").unwrap_or_else(|| committed_root.to_owned());
        let replay = ReplayTransport::load(&root.join(suite).join(file))?;
        Ok(Scenario { transport: Arc::new(replay.clone()), mode: Mode::Replay(replay) })
    }

    /// The transport to build a client or backend on.
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    /// Saves the recording, or checks the replay went exactly as recorded.
    pub fn finish(self) -> Result<(), String> {
        match self.mode {
            Mode::Record(recorder, path) => recorder.save(&path).map_err(|e| e.to_string()),
            Mode::Replay(replay) => replay.finish().map_err(|e| e.0),
        }
    }
}

/// With `BERTH_REQUIRE_NO_DAEMON=1` (as the test command runs the hermetic
/// tier), a replay first proves that nothing answers where `DOCKER_HOST`
/// points, so a passing replay cannot have leaned on a daemon.
fn no_daemon_answers() -> Result<(), CassetteError> {
    let endpoint = Endpoint::from_env().map_err(|e| CassetteError::Corrupt(e.to_string()))?;
    let answered = match &endpoint {
        Endpoint::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        Endpoint::Tcp(addr) => std::net::TcpStream::connect(addr).is_ok(),
    };
    if answered {
        return Err(CassetteError::Corrupt(format!(
            "BERTH_REQUIRE_NO_DAEMON=1, but something answers at {endpoint:?} (DOCKER_HOST): the hermetic tier must run with no daemon"
        )));
    }
    Ok(())
}

impl Transport for Arc<dyn Transport> {
    fn send(
        &self,
        request: super::Request,
    ) -> futures_util::future::BoxFuture<'_, Result<super::Response, super::TransportError>> {
        (**self).send(request)
    }

    fn upgrade(
        &self,
        request: super::Request,
    ) -> futures_util::future::BoxFuture<'_, Result<super::Upgrade, super::TransportError>> {
        (**self).upgrade(request)
    }
}
