//! The two text formats of a metrics exposition (sans IO): OpenMetrics,
//! which the metrics library writes and a Prometheus server asks for, and
//! the older Prometheus text format (0.0.4), which `promtool check metrics`
//! and plain text scrapers read. The second is made from the first: a
//! counter's family is named with its `_total` as its samples are, and the
//! `# UNIT` and `# EOF` lines, which that format lacks, are left out.

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `openmetrics` in the Prometheus text format.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match described {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_owned() };
                out.push_str(prefix);
                out.push_str(&name);
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Whether a scraper's `Accept` header asks for the Prometheus text format
/// over OpenMetrics (the default).
pub fn wants_prometheus_text(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/plain") && !a.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_described_under_its_samples_name_and_what_the_old_format_lacks_goes() {
        let open = "# HELP berth_runs_started Runs started.\n# TYPE berth_runs_started counter\n\
                    berth_runs_started_total{kind=\"code\"} 4\n# HELP berth_sessions Sessions.\n\
                    # TYPE berth_sessions gauge\nberth_sessions 0\n# HELP berth_x_seconds X.\n\
                    # TYPE berth_x_seconds histogram\n# UNIT berth_x_seconds seconds\n\
                    berth_x_seconds_count 1\n# EOF\n";
        let text = prometheus_text(open);
        assert_eq!(
            text,
            "# HELP berth_runs_started_total Runs started.\n# TYPE berth_runs_started_total counter\n\
             berth_runs_started_total{kind=\"code\"} 4\n# HELP berth_sessions Sessions.\n\
             # TYPE berth_sessions gauge\nberth_sessions 0\n# HELP berth_x_seconds X.\n\
             # TYPE berth_x_seconds histogram\nberth_x_seconds_count 1\n"
        );
    }

    #[test]
    fn only_a_scraper_asking_for_plain_text_alone_gets_it() {
        assert!(!wants_prometheus_text(None));
        assert!(wants_prometheus_text(Some("text/plain")));
        assert!(!wants_prometheus_text(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")));
        assert!(!wants_prometheus_text(Some("*/*")));
    }
}
