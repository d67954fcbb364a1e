//! What a test made on the engine through a server of its own, removed
//! when the test ends however it ends: a test that fails halfway would
//! otherwise leave its agents and relics behind, since its server (and
//! with it the reaper) is gone.

use std::process::Command;

/// The containers carrying one berth label's value (say the agent
/// `io.berth.object` or the session `io.berth.session` a test made),
/// removed with force when dropped.
pub struct Leftovers {
    filters: Vec<String>,
}

impl Leftovers {
    pub fn new() -> Leftovers {
        Leftovers { filters: Vec::new() }
    }

    /// Also removes the containers whose label `key` is `value`.
    pub fn labelled(mut self, key: &str, value: &str) -> Leftovers {
        self.filters.push(format!("label={key}={value}"));
        self
    }
}

impl Default for Leftovers {
    fn default() -> Self {
        Leftovers::new()
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for filter in &self.filters {
            let Ok(found) = Command::new("docker").args(["ps", "-aq", "--filter", filter]).output() else { continue };
            let ids: Vec<String> =
                String::from_utf8_lossy(&found.stdout).split_whitespace().map(str::to_owned).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
            }
        }
    }
}
