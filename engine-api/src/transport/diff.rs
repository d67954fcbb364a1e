//! What differs between a request that came and the recorded one it most
//! likely should have been, said so that a reader sees the difference at
//! once: query parameters by name, JSON bodies by the path of each value
//! that differs, other bodies at the first byte where they part.
//!
//! This is for the replay's failure messages only; it decides nothing.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

/// At most this many differences are listed; the rest are counted.
const MAX_LINES: usize = 20;
/// Past this many, differences are no longer even looked for.
const MAX_COUNTED: usize = 1000;
/// Bytes shown on each side of the first difference of two opaque bodies.
const WINDOW: usize = 60;

/// The differences between two targets (`/v1.41/path?query`), one per line.
pub fn targets(came: &str, recorded: &str) -> Vec<String> {
    let (came_path, came_query) = came.split_once('?').unwrap_or((came, ""));
    let (rec_path, rec_query) = recorded.split_once('?').unwrap_or((recorded, ""));
    let mut lines = Vec::new();
    if came_path != rec_path {
        lines.push(format!("path: came {came_path}, recorded {rec_path}"));
    }
    let params = |q: &str| q.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect::<BTreeSet<_>>();
    let (came_params, rec_params) = (params(came_query), params(rec_query));
    for p in came_params.difference(&rec_params) {
        lines.push(format!("query: came {p}, not recorded"));
    }
    for p in rec_params.difference(&came_params) {
        lines.push(format!("query: recorded {p}, did not come"));
    }
    lines
}

/// The differences between two request bodies, one per line.
pub fn bodies(came: &[u8], recorded: &[u8]) -> Vec<String> {
    if came == recorded {
        return Vec::new();
    }
    match (serde_json::from_slice::<Value>(came), serde_json::from_slice::<Value>(recorded)) {
        (Ok(c), Ok(r)) => {
            let mut lines = Vec::new();
            values("body", &c, &r, &mut lines);
            if lines.is_empty() {
                // Same values, other bytes (key order, spacing).
                lines.push(format!("body: the same JSON written differently{}", bytes(came, recorded)));
            }
            bounded(lines)
        }
        _ => vec![format!("body:{}", bytes(came, recorded))],
    }
}

fn bounded(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("… and {more} more"));
    }
    lines
}

fn values(path: &str, came: &Value, recorded: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_COUNTED {
        return;
    }
    match (came, recorded) {
        (Value::Object(c), Value::Object(r)) => {
            let keys: BTreeSet<&String> = c.keys().chain(r.keys()).collect();
            for k in keys {
                let at = format!("{path}.{k}");
                match (c.get(k), r.get(k)) {
                    (Some(cv), Some(rv)) => values(&at, cv, rv, out),
                    (Some(cv), None) => out.push(format!("{at}: came {}, not recorded", short(cv))),
                    (None, Some(rv)) => out.push(format!("{at}: recorded {}, did not come", short(rv))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(c), Value::Array(r)) if c.len() == r.len() => {
            for (i, (cv, rv)) in c.iter().zip(r).enumerate() {
                values(&format!("{path}[{i}]"), cv, rv, out);
            }
        }
        (c, r) if c != r => out.push(format!("{path}: came {}, recorded {}", short(c), short(r))),
        _ => {}
    }
}

/// A JSON value in at most about 120 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{} …", &text[..cut]),
        None => text,
    }
}

/// Where two byte strings part, with a window of each around it.
fn bytes(came: &[u8], recorded: &[u8]) -> String {
    let at = came.iter().zip(recorded).position(|(a, b)| a != b).unwrap_or(came.len().min(recorded.len()));
    let window = |b: &[u8]| {
        let from = at.saturating_sub(WINDOW);
        let to = (at + WINDOW).min(b.len());
        String::from_utf8_lossy(&b[from..to]).into_owned()
    };
    let mut s = String::new();
    let _ = write!(
        s,
        " they part at byte {at} (came {} bytes, recorded {})\n        came:     …{}…\n        recorded: …{}…",
        came.len(),
        recorded.len(),
        window(came),
        window(recorded)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_that_differs_deep_inside_names_the_path_of_each_difference() {
        let recorded = br#"{"Image":"busybox","HostConfig":{"Memory":1048576,"CapDrop":["ALL"]},"Labels":{"a":"1"}}"#;
        let came =
            br#"{"Image":"busybox","HostConfig":{"Memory":2097152,"CapDrop":["ALL"]},"Labels":{"a":"1","b":"2"}}"#;
        assert_eq!(
            bodies(came, recorded),
            ["body.HostConfig.Memory: came 2097152, recorded 1048576", "body.Labels.b: came \"2\", not recorded"]
        );
    }

    #[test]
    fn opaque_bodies_are_shown_where_they_part() {
        let recorded = [b'x'; 500].iter().chain(b"tail-one").copied().collect::<Vec<u8>>();
        let came = [b'x'; 500].iter().chain(b"tail-two").copied().collect::<Vec<u8>>();
        let lines = bodies(&came, &recorded);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("they part at byte 505"), "{lines:?}");
        assert!(lines[0].contains("tail-two") && lines[0].contains("tail-one"), "{lines:?}");
    }

    #[test]
    fn query_parameters_are_compared_by_name_not_by_position() {
        assert_eq!(targets("/v1.41/x?b=2&a=1", "/v1.41/x?a=1&b=2"), Vec::<String>::new());
        assert_eq!(
            targets("/v1.41/containers/c/logs?stdout=1&tail=5", "/v1.41/containers/c/logs?stdout=1&tail=all"),
            ["query: came tail=5, not recorded", "query: recorded tail=all, did not come"]
        );
    }

    #[test]
    fn a_long_list_of_differences_is_bounded() {
        let came: Value =
            (0..100).map(|i| (format!("k{i:03}"), Value::from(i))).collect::<serde_json::Map<_, _>>().into();
        let lines = bodies(came.to_string().as_bytes(), b"{}");
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(lines[MAX_LINES].starts_with("… and "), "{lines:?}");
    }
}
