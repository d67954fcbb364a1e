//! What berth made beside its services that nothing uses any more (sans
//! IO): volumes no container mounts, and the networks of runs with no
//! network whose service is gone. Each is left alone for a while after it
//! was made, since a task's node makes its volumes a moment before its
//! container, and berth a run's network a moment before its service.

use std::collections::BTreeSet;

use berth_core::spec::{labels, Kind};
use chrono::{DateTime, TimeDelta, Utc};
use engine_api::models::{Network, Volume};

/// How long something unused is left alone after it was made.
pub const SETTLES: TimeDelta = TimeDelta::seconds(60);

/// Whether something made at `made` (RFC 3339; unknown counts as old) has
/// been there long enough to be taken as left behind.
fn settled(made: Option<&str>, now: DateTime<Utc>) -> bool {
    let made = made.and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    made.is_none_or(|t| now.signed_duration_since(t) >= SETTLES)
}

/// The names of `dangling` volumes (berth's, mounted by no container, as
/// the node lists them) to remove now.
pub fn volumes(dangling: &[Volume], now: DateTime<Utc>) -> Vec<String> {
    dangling.iter().filter(|v| settled(v.created_at.as_deref(), now)).map(|v| v.name.clone()).collect()
}

/// The ids of berth's `networks` on the manager to remove now: a
/// workload's own network (it carries the workload's kind and no session)
/// that no service of its name uses. A session's or a seed's network is
/// the core's to sweep, by its users.
pub fn networks(networks: &[Network], services: &BTreeSet<String>, now: DateTime<Utc>) -> Vec<String> {
    networks
        .iter()
        .filter(|n| n.labels.get(labels::KIND).and_then(|k| Kind::from_word(k)).is_some())
        .filter(|n| !n.labels.contains_key(labels::SESSION) && !services.contains(&n.name))
        .filter(|n| settled(n.created.as_deref(), now))
        .map(|n| n.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn network(name: &str, kind: &str, created: &str, session: bool) -> Network {
        let mut labels = std::collections::BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::KIND.to_owned(), kind.to_owned()),
        ]);
        if session {
            labels.insert(labels::SESSION.to_owned(), "s1".to_owned());
        }
        serde_json::from_value(serde_json::json!({
            "Id": format!("id-{name}"), "Name": name, "Created": created, "Labels": labels,
        }))
        .unwrap()
    }

    fn volume(name: &str, created: Option<&str>) -> Volume {
        serde_json::from_value(serde_json::json!({"Name": name, "CreatedAt": created})).unwrap()
    }

    #[test]
    fn a_runs_network_whose_service_is_gone_is_removed_once_it_settled() {
        let old = "2026-12-03T09:58:00Z";
        let found = [
            network("berth-run-gone", "code", old, false),
            network("berth-run-live", "code", old, false),
            network("berth-run-new", "tool", "2026-12-03T09:59:30Z", false),
            network("berth-s1", "session-network", old, false),
            network("seed-net", "seed-network", old, false),
            network("berth-relic-x", "relic", old, true),
        ];
        let services = BTreeSet::from(["berth-run-live".to_owned()]);
        assert_eq!(networks(&found, &services, now()), ["id-berth-run-gone"]);
    }

    #[test]
    fn a_dangling_volume_is_removed_once_a_minute_old_and_one_of_unknown_age_at_once() {
        let found = [
            volume("a-space-0", Some("2026-12-03T09:58:59Z")),
            volume("b-space-0", Some("2026-12-03T09:59:30Z")),
            volume("c-space-0", None),
        ];
        assert_eq!(volumes(&found, now()), ["a-space-0", "c-space-0"]);
    }
}
