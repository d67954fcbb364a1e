use std::path::PathBuf;

use engine_api::transport::cassette::Cassette;
use engine_api::transport::{RecordingTransport, ReplayTransport, SocketTransport};
use engine_api::{Docker, Endpoint};

/// Where recordings are read from.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("BERTH_FIXTURES_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/engine-api")),
    }
}

/// A scenario's client: replaying, or recording when `BERTH_RECORD_FIXTURES` is set.
pub struct Scenario {
    pub docker: Docker,
    mode: Mode,
}

enum Mode {
    Record(RecordingTransport, PathBuf),
    Replay(ReplayTransport),
}

pub fn scenario(name: &str) -> Scenario {
    match std::env::var_os("BERTH_RECORD_FIXTURES") {
        Some(dir) if !dir.is_empty() => {
            let endpoint = Endpoint::from_env().expect("DOCKER_HOST names the daemon to record");
            let recorder = RecordingTransport::new(SocketTransport::new(endpoint), name);
            let path = PathBuf::from(dir).join(format!("{name}.json"));
            Scenario { docker: Docker::new(recorder.clone()), mode: Mode::Record(recorder, path) }
        }
        _ => {
            let path = fixtures_dir().join(format!("{name}.json"));
            let replay = ReplayTransport::load(&path)
                .unwrap_or_else(|e| panic!("{e}\n(recordings are made by scripts/record-fixtures.sh)"));
            Scenario { docker: Docker::new(replay.clone()), mode: Mode::Replay(replay) }
        }
    }
}

impl Scenario {
    /// Saves the recording, or checks that the replay went exactly as recorded.
    pub fn finish(self) {
        match self.mode {
            Mode::Record(recorder, path) => recorder.save(&path).expect("the recording is written"),
            Mode::Replay(replay) => {
                if let Err(e) = replay.finish() {
                    panic!("{e}")
                }
            }
        }
    }
}

/// The exchanges of a recorded scenario whose target contains one of `targets`,
/// each as many times as given, in the order given.
pub fn exchanges_of(name: &str, targets: &[(&str, usize)]) -> Cassette {
    let path = fixtures_dir().join(format!("{name}.json"));
    let recorded = Cassette::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut exchanges = Vec::new();
    for (target, times) in targets {
        let e = recorded
            .exchanges
            .iter()
            .find(|e| e.request.target.contains(target))
            .unwrap_or_else(|| panic!("{name} has no exchange for {target}"));
        exchanges.extend(std::iter::repeat_n(e.clone(), *times));
    }
    Cassette { scenario: format!("{name} (excerpt)"), exchanges }
}
