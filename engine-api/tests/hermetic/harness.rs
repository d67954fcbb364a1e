use std::path::PathBuf;

use engine_api::transport::cassette::Cassette;
use engine_api::Docker;

/// The repository's committed `fixtures/`.
pub fn committed_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

/// Where this suite's recordings are read from.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("BERTH_FIXTURES_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("engine-api"),
        _ => committed_root().join("engine-api"),
    }
}

/// A scenario's client: replaying, or recording when `BERTH_RECORD_FIXTURES` is set.
pub struct Scenario {
    pub docker: Docker,
    inner: engine_api::transport::scenario::Scenario,
}

pub fn scenario(name: &str) -> Scenario {
    let inner = engine_api::transport::scenario::Scenario::open(&committed_root(), "engine-api", name)
        .unwrap_or_else(|e| panic!("{e}\n(recordings are made by scripts/record-fixtures.sh)"));
    Scenario { docker: Docker::from_transport(inner.transport()), inner }
}

impl Scenario {
    /// Saves the recording, or checks that the replay went exactly as recorded.
    pub fn finish(self) {
        if let Err(e) = self.inner.finish() {
            panic!("{e}")
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
