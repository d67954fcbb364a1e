//! What a workload is for.

use serde::{Deserialize, Serialize};

/// What a container is for; decides its policy defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A long-lived agent container.
    Agent,
    /// A tool image run to completion.
    Tool,
    /// Untrusted code run to completion in a sandbox.
    Code,
    /// A session-scoped service.
    Relic,
    /// A long-lived workspace: files, processes and terminals through
    /// berth's helper inside it.
    Sandbox,
}

impl Kind {
    /// The kind a label's word names, if any.
    pub fn from_word(word: &str) -> Option<Kind> {
        word.parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
