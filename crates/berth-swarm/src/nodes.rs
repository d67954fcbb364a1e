//! What the manager says of berth's configured nodes (sans IO): each
//! node's state and availability under its configured name, whether a
//! task on a node is lost with it, and which nodes carry the labels a
//! task's binds need.
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

/// The configured nodes among `nodes` that carry every label of `needed`
/// (the bind roots a task's binds come from), by name.
pub fn holding<'a>(
    configured: impl IntoIterator<Item = &'a str>,
    nodes: &[Node],
    needed: &BTreeMap<String, String>,
) -> Vec<String> {
    let configured: Vec<&str> = configured.into_iter().collect();
    nodes
        .iter()
        .filter(|n| configured.contains(&n.description.hostname.as_str()))
        .filter(|n| needed.iter().all(|(k, v)| n.spec.labels.get(k) == Some(v)))
        .map(|n| n.description.hostname.clone())
        .collect()
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
    fn only_configured_nodes_carrying_every_needed_label_hold_a_tasks_binds() {
        let labelled = |hostname: &str, labels: serde_json::Value| -> Node {
            serde_json::from_value(serde_json::json!({
                "ID": hostname, "Description": {"Hostname": hostname},
                "Status": {"State": "ready"}, "Spec": {"Availability": "active", "Labels": labels}
            }))
            .unwrap()
        };
        let nodes = [
            labelled("n1", serde_json::json!({})),
            labelled("n2", serde_json::json!({"io.berth.root.srv": "/srv", "io.berth.root.wt": "/wt"})),
            labelled("n3", serde_json::json!({"io.berth.root.srv": "/srv"})),
            labelled("other", serde_json::json!({"io.berth.root.srv": "/srv", "io.berth.root.wt": "/wt"})),
        ];
        let needed = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let configured = ["n1", "n2", "n3"];
        assert_eq!(holding(configured, &nodes, &needed(&[("io.berth.root.srv", "/srv")])), ["n2", "n3"]);
        let both = needed(&[("io.berth.root.srv", "/srv"), ("io.berth.root.wt", "/wt")]);
        assert_eq!(holding(configured, &nodes, &both), ["n2"]);
        assert!(holding(configured, &nodes, &needed(&[("io.berth.root.srv", "/other")])).is_empty());
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
