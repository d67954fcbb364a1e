//! Where a service's one task stands, read from the manager's task list
//! (sans IO): not placed yet, placed with its container on a node, or
//! refused before any container was made. Task states come from swarmkit:
//! a task is placed once it has a node and its container an id.

use engine_api::models::Task;

/// The one task of a service, as far as berth needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskPlace {
    /// Not on a node with a container yet; the manager's state and message
    /// (`no suitable node (insufficient resources on 3 nodes)`, say).
    Waiting { state: String, message: String },
    /// On node `node_id` (the swarm's id, not berth's name), in container
    /// `container_id` of that node's engine.
    Placed { node_id: String, container_id: String, state: String },
    /// Ended before a container was made, and why.
    Refused(String),
}

/// States in which a task never gets a container.
const REFUSED: [&str; 3] = ["rejected", "failed", "orphaned"];

/// The place of the service's task among `tasks` (one, for berth's
/// services; the one with a container wins when there are more).
pub fn of_tasks(tasks: &[Task]) -> TaskPlace {
    let with_container = tasks.iter().find(|t| {
        !t.node_id.is_empty() && t.status.container_status.as_ref().is_some_and(|c| !c.container_id.is_empty())
    });
    if let Some(t) = with_container {
        let container_id = t.status.container_status.as_ref().map(|c| c.container_id.clone()).unwrap_or_default();
        return TaskPlace::Placed { node_id: t.node_id.clone(), container_id, state: t.status.state.clone() };
    }
    match tasks.first() {
        None => TaskPlace::Waiting { state: "new".into(), message: "no task yet".into() },
        Some(t) if REFUSED.contains(&t.status.state.as_str()) => {
            let why = t.status.err.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| t.status.message.clone());
            TaskPlace::Refused(format!("the task was {}: {why}", t.status.state))
        }
        Some(t) => TaskPlace::Waiting { state: t.status.state.clone(), message: t.status.message.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(json: serde_json::Value) -> Task {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_task_with_a_node_and_a_container_is_placed() {
        let t = task(serde_json::json!({
            "ID": "t1", "ServiceID": "s1", "NodeID": "n2", "DesiredState": "running",
            "Status": {"State": "running", "Message": "started", "ContainerStatus": {"ContainerID": "c9", "ExitCode": 0}}
        }));
        assert_eq!(
            of_tasks(&[t]),
            TaskPlace::Placed { node_id: "n2".into(), container_id: "c9".into(), state: "running".into() }
        );
    }

    #[test]
    fn a_task_not_yet_scheduled_waits_with_the_managers_message() {
        let t = task(serde_json::json!({
            "ID": "t1", "ServiceID": "s1",
            "Status": {"State": "pending", "Message": "pending task scheduling", "Err": "no suitable node (insufficient resources on 3 nodes)"}
        }));
        assert_eq!(
            of_tasks(&[t]),
            TaskPlace::Waiting { state: "pending".into(), message: "pending task scheduling".into() }
        );
        assert!(matches!(of_tasks(&[]), TaskPlace::Waiting { .. }));
    }

    #[test]
    fn a_task_rejected_before_its_container_says_why() {
        let t = task(serde_json::json!({
            "ID": "t1", "NodeID": "n1",
            "Status": {"State": "rejected", "Message": "preparing", "Err": "No such image: nothing:1"}
        }));
        assert_eq!(of_tasks(&[t]), TaskPlace::Refused("the task was rejected: No such image: nothing:1".into()));
    }
}
