//! Where a workload is: its id as its engine knows it, and its placement
//! (this engine, or a node of a cluster). Every record that names a
//! workload keeps its handle, so the data plane of the right node is found
//! again after a restart.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A container id as its engine knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a workload runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// On the one engine berth drives (records made before placements
    /// existed read so).
    #[default]
    Local,
    /// On a node of a cluster, by the node's configured name.
    Node { name: String },
}

impl Placement {
    /// The node's name, on a cluster.
    pub fn node(&self) -> Option<&str> {
        match self {
            Placement::Node { name } => Some(name),
            Placement::Local => None,
        }
    }
}

/// A workload as the seam addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handle {
    pub id: ContainerId,
    #[serde(default)]
    pub placement: Placement,
}

impl Handle {
    /// A workload on the one local engine.
    pub fn local(id: impl Into<String>) -> Handle {
        Handle { id: ContainerId(id.into()), placement: Placement::Local }
    }

    /// A workload whose id and placement a record keeps.
    pub fn at(id: impl Into<String>, placement: Placement) -> Handle {
        Handle { id: ContainerId(id.into()), placement }
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.placement {
            Placement::Local => write!(f, "{}", self.id),
            Placement::Node { name } => write!(f, "{}@{name}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_missing_from_a_stored_handle_reads_as_local() {
        let h: Handle = serde_json::from_str(r#"{"id":"abc"}"#).unwrap();
        assert_eq!(h, Handle::local("abc"));
        let on_node = Handle::at("abc", Placement::Node { name: "n2".into() });
        let back: Handle = serde_json::from_str(&serde_json::to_string(&on_node).unwrap()).unwrap();
        assert_eq!(back, on_node);
        assert_eq!(on_node.to_string(), "abc@n2");
    }
}
