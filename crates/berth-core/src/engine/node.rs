//! The machines of a cluster as the seam reports them: each node's name
//! (berth's configured name, its identity), whether the cluster sees it,
//! and whether it is to be given work.

use serde::Serialize;

/// Whether the cluster's manager sees a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

impl NodeState {
    /// The manager's word for it (`ready`, `down`, …); an unknown word is
    /// [`NodeState::Unknown`].
    pub fn parse(word: &str) -> NodeState {
        match word {
            "ready" => NodeState::Ready,
            "down" => NodeState::Down,
            "disconnected" => NodeState::Disconnected,
            _ => NodeState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Down => "down",
            NodeState::Disconnected => "disconnected",
            NodeState::Unknown => "unknown",
        }
    }
}

/// Whether a node is to be given new work, as its operator set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    /// Keeps what it runs, takes nothing new.
    Pause,
    /// Its work is moved off it.
    Drain,
}

impl Availability {
    /// The manager's word for it; an unknown word is taken as
    /// [`Availability::Pause`] (nothing new is sent where it is unclear).
    pub fn parse(word: &str) -> Availability {
        match word {
            "active" => Availability::Active,
            "drain" => Availability::Drain,
            _ => Availability::Pause,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

/// One node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub state: NodeState,
    pub availability: Availability,
    /// The address its workloads' published ports are reached at, as the
    /// cluster knows it (an address, never the node's identity).
    pub address: Option<String>,
}

impl NodeStatus {
    /// Whether new work can be placed on it.
    pub fn takes_work(&self) -> bool {
        self.state == NodeState::Ready && self.availability == Availability::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ready_and_active_node_takes_work() {
        let node = |state, availability| NodeStatus { name: "n".into(), state, availability, address: None };
        assert!(node(NodeState::Ready, Availability::Active).takes_work());
        assert!(!node(NodeState::Ready, Availability::Drain).takes_work());
        assert!(!node(NodeState::Ready, Availability::Pause).takes_work());
        assert!(!node(NodeState::Down, Availability::Active).takes_work());
        assert_eq!(NodeState::parse("disconnected"), NodeState::Disconnected);
        assert_eq!(NodeState::parse("odd"), NodeState::Unknown);
        assert_eq!(Availability::parse("odd"), Availability::Pause);
    }
}
