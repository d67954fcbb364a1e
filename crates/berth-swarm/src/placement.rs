//! Where a service's one task stands, read from the manager's task list
//! (sans IO): not placed yet, placed with its container on a node, or
//! refused before any container was made. Task states come from swarmkit:
//! a task is placed once it has a node and its container an id.
//!
//! A service that the manager restarts (an agent's) has a history of
//! tasks: the one it wants running is the service's, even while an older
//! one still runs on a node that was lost (the manager shuts that one down
//! once the node answers again). Only when it wants none running (the
//! service scaled to zero, or its task ended) does the newest task with a
//! container stand for the service.

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

/// The place of the service's task among `tasks`: the task the manager
/// wants running when there is one, else the newest with a container.
pub fn of_tasks(tasks: &[Task]) -> TaskPlace {
    let wanted: Vec<&Task> = tasks.iter().filter(|t| t.desired_state == "running").collect();
    match newest(&wanted) {
        // A task the manager keeps replacing because each is refused (a
        // missing image, say) is refused, with the last reason.
        Some(t) => match place_of(t) {
            TaskPlace::Waiting { .. } if tasks.iter().any(|o| o.desired_state != "running") => {
                let refused: Vec<&Task> = tasks.iter().filter(|o| REFUSED.contains(&o.status.state.as_str())).collect();
                newest(&refused).map(place_of).unwrap_or_else(|| place_of(t))
            }
            place => place,
        },
        None => {
            let with_container: Vec<&Task> = tasks.iter().filter(|t| container_of(t).is_some()).collect();
            match newest(&with_container).or_else(|| newest(&tasks.iter().collect::<Vec<_>>())) {
                Some(t) => place_of(t),
                None => TaskPlace::Waiting { state: "new".into(), message: "no task yet".into() },
            }
        }
    }
}

/// The newest of `tasks` by creation time (RFC 3339 of one writer, so
/// their order is the strings' order).
fn newest<'a>(tasks: &[&'a Task]) -> Option<&'a Task> {
    tasks.iter().copied().max_by(|a, b| a.created_at.cmp(&b.created_at))
}

fn container_of(t: &Task) -> Option<&str> {
    t.status
        .container_status
        .as_ref()
        .map(|c| c.container_id.as_str())
        .filter(|c| !c.is_empty() && !t.node_id.is_empty())
}

fn place_of(t: &Task) -> TaskPlace {
    if let Some(container_id) = container_of(t) {
        return TaskPlace::Placed {
            node_id: t.node_id.clone(),
            container_id: container_id.to_owned(),
            state: t.status.state.clone(),
        };
    }
    if REFUSED.contains(&t.status.state.as_str()) {
        let why = t.status.err.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| t.status.message.clone());
        return TaskPlace::Refused(format!("the task was {}: {why}", t.status.state));
    }
    TaskPlace::Waiting { state: t.status.state.clone(), message: t.status.message.clone() }
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
    fn a_replaced_task_gives_way_to_the_one_the_manager_wants_running_even_before_its_container() {
        let old = task(serde_json::json!({
            "ID": "t1", "NodeID": "n2", "DesiredState": "shutdown", "CreatedAt": "2026-12-02T10:00:00.1Z",
            "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c-old"}}
        }));
        let new = task(serde_json::json!({
            "ID": "t2", "NodeID": "n3", "DesiredState": "running", "CreatedAt": "2026-12-02T10:00:20.5Z",
            "Status": {"State": "preparing", "Message": "preparing"}
        }));
        let waiting = of_tasks(&[old.clone(), new.clone()]);
        assert_eq!(waiting, TaskPlace::Waiting { state: "preparing".into(), message: "preparing".into() });
        let mut started = new;
        started.status.container_status =
            Some(serde_json::from_value(serde_json::json!({"ContainerID": "c-new"})).unwrap());
        started.status.state = "running".into();
        assert!(matches!(of_tasks(&[old, started]), TaskPlace::Placed { container_id, .. } if container_id == "c-new"));
    }

    #[test]
    fn a_task_the_manager_replaces_after_each_refusal_is_refused_with_the_last_reason() {
        let refused = task(serde_json::json!({
            "ID": "t1", "NodeID": "n2", "DesiredState": "shutdown", "CreatedAt": "2026-12-02T10:00:00Z",
            "Status": {"State": "rejected", "Err": "No such image: nothing:1"}
        }));
        let next = task(serde_json::json!({
            "ID": "t2", "DesiredState": "running", "CreatedAt": "2026-12-02T10:00:05Z",
            "Status": {"State": "pending", "Message": "pending task scheduling"}
        }));
        assert_eq!(
            of_tasks(&[refused, next]),
            TaskPlace::Refused("the task was rejected: No such image: nothing:1".into())
        );
    }

    #[test]
    fn a_service_wanting_no_task_running_is_its_newest_task_with_a_container() {
        let ended = |id: &str, at: &str, container: &str| {
            task(serde_json::json!({
                "ID": id, "NodeID": "n2", "DesiredState": "shutdown", "CreatedAt": at,
                "Status": {"State": "shutdown", "ContainerStatus": {"ContainerID": container}}
            }))
        };
        let tasks = [ended("t2", "2026-12-02T10:05:00Z", "c2"), ended("t1", "2026-12-02T10:00:00Z", "c1")];
        assert!(matches!(of_tasks(&tasks), TaskPlace::Placed { container_id, .. } if container_id == "c2"));
    }

    #[test]
    fn a_task_rejected_before_its_container_says_why() {
        let t = task(serde_json::json!({
            "ID": "t1", "NodeID": "n1", "DesiredState": "running",
            "Status": {"State": "rejected", "Message": "preparing", "Err": "No such image: nothing:1"}
        }));
        assert_eq!(of_tasks(&[t]), TaskPlace::Refused("the task was rejected: No such image: nothing:1".into()));
    }
}
