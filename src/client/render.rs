//! How the client shows what the server answered (sans IO): a table for
//! people, with the columns each kind of object is known by, or the
//! server's JSON as it came, for scripts.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// A column: its header and the JSON pointer of its cell in an object.
pub type Column = (&'static str, &'static str);

pub const RUNS: &[Column] = &[
    ("ID", "/id"),
    ("STATUS", "/status"),
    ("EXIT", "/exit_code"),
    ("KIND", "/kind"),
    ("PATH", "/path"),
    ("RUNTIME", "/runtime"),
    ("NODE", "/node"),
    ("CREATED", "/created_at"),
];
pub const AGENTS: &[Column] = &[
    ("ID", "/id"),
    ("IMAGE", "/image"),
    ("STATUS", "/status"),
    ("NODE", "/node"),
    ("PORTS", "/ports"),
    ("EXPIRES", "/expires_at"),
];
pub const SANDBOXES: &[Column] = &[
    ("ID", "/sandbox_id"),
    ("TEMPLATE", "/template"),
    ("STATE", "/state"),
    ("PATH", "/path"),
    ("NODE", "/node"),
    ("EXPIRES", "/expires_at"),
];
pub const RELICS: &[Column] = &[
    ("ID", "/relic_id"),
    ("NAME", "/relic_name"),
    ("STATUS", "/status"),
    ("HEALTHY", "/healthy"),
    ("SESSION", "/session_id"),
    ("URL", "/internal_url"),
    ("NODE", "/node"),
];
pub const POOLS: &[Column] = &[
    ("NAME", "/name"),
    ("IMAGE", "/image"),
    ("ORIGIN", "/origin"),
    ("IDLE", "/idle"),
    ("MIN", "/min"),
    ("MAX", "/max"),
    ("HITS", "/hits"),
    ("MISSES", "/misses"),
];
pub const SESSIONS: &[Column] = &[("SESSION", "")];

/// A cell's text: strings bare, nothing as `-`, ports as `8080->9000`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let each: Vec<String> = items
                .iter()
                .map(|i| match (i.get("container"), i.get("host")) {
                    (Some(c), Some(h)) => format!("{c}->{h}"),
                    _ => cell(Some(i)),
                })
                .collect();
            if each.is_empty() {
                "-".into()
            } else {
                each.join(",")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// `rows` (a JSON array, or one object) as a table of `columns`.
pub fn table(rows: &Value, columns: &[Column]) -> String {
    let rows: Vec<&Value> = match rows {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut table = Table::new();
    table.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(columns.iter().map(|(h, _)| *h));
    for row in rows {
        table.add_row(columns.iter().map(|(_, at)| cell(if at.is_empty() { Some(row) } else { row.pointer(at) })));
    }
    let mut text: String = table.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    if text.is_empty() {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_has_a_header_and_one_aligned_row_per_object_with_dashes_for_nothing() {
        let runs = serde_json::json!([
            {"id": "run_1", "status": "succeeded", "exit_code": 0, "kind": "code", "path": "cold"},
            {"id": "run_22", "status": "timed_out", "exit_code": null, "kind": "tool", "path": "pooled"},
        ]);
        let text = table(&runs, &RUNS[..5]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].trim_start().starts_with("ID") && lines[0].contains("STATUS"), "{text}");
        assert!(lines[2].contains("run_22") && lines[2].contains("timed_out") && lines[2].contains(" - "), "{text}");
        let status_at = |l: &str| l.find("succeeded").or_else(|| l.find("timed_out")).unwrap();
        assert_eq!(status_at(lines[1]), status_at(lines[2]), "{text}");
    }

    #[test]
    fn ports_read_as_container_to_host() {
        let ports = serde_json::json!([{"container": 8080, "host": 9000}]);
        assert_eq!(cell(Some(&ports)), "8080->9000");
    }
}
