//! What the manager says of berth's configured nodes (sans IO): each
//! node's state and availability under its configured name, and whether a
//! task on a node is lost with it.
//!
//! A task on a node the manager marked down stays `running` in the manager
//! for as long as a day, and a drained node's tasks are shut down by the
//! manager whatever berth wants: in both cases the node's state, not the
//! task's, says that the workload is gone.

use std::collections::BTreeMap;

use berth_core::engine::{Availability, NodeState, NodeStatus};
use engine_api::models::Node;

/// The configured nodes as `nodes` (the manager's list) shows them, in the
/// order of `configured`; one the manager does not list is `unknown`.
pub fn statuses<'a>(configured: impl IntoIterator<Item = &'a str>, nodes: &[Node]) -> Vec<NodeStatus> {
    let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.description.hostname.as_str(), n)).collect();
    configured
        .into_iter()
        .map(|name| match by_name.get(name) {
            Some(n) => NodeStatus {
                name: name.to_owned(),
                state: NodeState::parse(&n.status.state),
                availability: Availability::parse(&n.spec.availability),
                address: Some(n.status.addr.clone()).filter(|a| !a.is_empty()),
            },
            None => NodeStatus {
                name: name.to_owned(),
                state: NodeState::Unknown,
                availability: Availability::Pause,
                address: None,
            },
        })
        .collect()
}

/// Why a task on node `status` is gone with it, when it is: the node is
/// down or was drained. A node the manager lost touch with for a moment
/// (`disconnected`, `unknown`) may come back, and is waited on.
pub fn lost(status: &NodeStatus) -> Option<String> {
    match (status.state, status.availability) {
        (NodeState::Down, _) => Some(format!("node {} was marked down by the swarm manager", status.name)),
        (_, Availability::Drain) => {
            Some(format!("node {} was drained: the swarm manager shuts down its tasks", status.name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(hostname: &str, state: &str, availability: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{hostname}"),
            "Description": {"Hostname": hostname},
            "Status": {"State": state, "Addr": "10.0.0.9"},
            "Spec": {"Availability": availability, "Role": "worker"}
        }))
        .unwrap()
    }

    #[test]
    fn configured_nodes_are_reported_by_name_and_one_the_manager_lacks_is_unknown() {
        let listed = [node("n1", "ready", "active"), node("n2", "down", "active"), node("other", "ready", "active")];
        let got = statuses(["n1", "n2", "n3"], &listed);
        assert_eq!(
            got.iter().map(|s| (s.name.as_str(), s.state)).collect::<Vec<_>>(),
            [("n1", NodeState::Ready), ("n2", NodeState::Down), ("n3", NodeState::Unknown)]
        );
        assert!(got[0].takes_work() && !got[1].takes_work() && !got[2].takes_work());
        assert_eq!((got[0].address.as_deref(), got[2].address.as_deref()), (Some("10.0.0.9"), None));
    }

    #[test]
    fn a_task_is_lost_with_a_node_down_or_drained_and_waited_on_while_the_node_is_out_of_touch() {
        let status = |state, availability| NodeStatus { name: "n2".into(), state, availability, address: None };
        assert!(lost(&status(NodeState::Down, Availability::Active)).unwrap().contains("marked down"));
        assert!(lost(&status(NodeState::Ready, Availability::Drain)).unwrap().contains("drained"));
        assert_eq!(lost(&status(NodeState::Ready, Availability::Active)), None);
        assert_eq!(lost(&status(NodeState::Ready, Availability::Pause)), None);
        assert_eq!(lost(&status(NodeState::Disconnected, Availability::Active)), None);
        assert_eq!(lost(&status(NodeState::Unknown, Availability::Active)), None);
    }
}
