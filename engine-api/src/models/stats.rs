use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// One sample of `GET /containers/{id}/stats`.
///
/// The raw counters, plus the arithmetic a person wants (CPU percent, used
/// memory) done the way that is right on both cgroup v1 and v2 hosts and
/// that says "unknown" instead of a false 0 when a sample lacks the data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub read: Option<String>,
    #[serde(default)]
    pub preread: Option<String>,
    #[serde(default, alias = "Id", alias = "ID")]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pids_stats: PidsStats,
    #[serde(default)]
    pub cpu_stats: CpuStats,
    #[serde(default)]
    pub precpu_stats: CpuStats,
    #[serde(default)]
    pub memory_stats: MemoryStats,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub networks: BTreeMap<String, NetworkStats>,
    #[serde(default)]
    pub blkio_stats: BlkioStats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PidsStats {
    #[serde(default)]
    pub current: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    #[serde(default)]
    pub cpu_usage: CpuUsage,
    #[serde(default)]
    pub system_cpu_usage: Option<u64>,
    #[serde(default)]
    pub online_cpus: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default)]
    pub total_usage: u64,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub percpu_usage: Vec<u64>,
    #[serde(default)]
    pub usage_in_kernelmode: u64,
    #[serde(default)]
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryStats {
    #[serde(default)]
    pub usage: Option<u64>,
    /// cgroup v1 only.
    #[serde(default)]
    pub max_usage: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
    /// Keys differ between cgroup v1 (`total_inactive_file`, `cache`) and v2 (`inactive_file`).
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub stats: BTreeMap<String, u64>,
    #[serde(default)]
    pub failcnt: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkStats {
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    #[serde(default)]
    pub rx_packets: u64,
    #[serde(default)]
    pub tx_packets: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlkioStats {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub value: u64,
}

impl Stats {
    /// CPU use in percent of one CPU (so 2 busy CPUs read 200), from this
    /// sample's `precpu_stats`, or from `previous` when the engine sent a
    /// zeroed `precpu_stats` (one-shot reads do). `None` when there is no
    /// usable pair of samples.
    pub fn cpu_percent(&self, previous: Option<&CpuStats>) -> Option<f64> {
        let prev = if self.precpu_stats.system_cpu_usage.unwrap_or(0) == 0 { previous? } else { &self.precpu_stats };
        let cpu_delta = self.cpu_stats.cpu_usage.total_usage.checked_sub(prev.cpu_usage.total_usage)?;
        let system_delta = self.cpu_stats.system_cpu_usage?.checked_sub(prev.system_cpu_usage?)?;
        if system_delta == 0 {
            return None;
        }
        let cpus = match self.cpu_stats.online_cpus {
            Some(n) if n > 0 => n as f64,
            _ if !self.cpu_stats.cpu_usage.percpu_usage.is_empty() => {
                self.cpu_stats.cpu_usage.percpu_usage.len() as f64
            }
            _ => 1.0,
        };
        Some(cpu_delta as f64 / system_delta as f64 * cpus * 100.0)
    }

    /// Memory in use without the reclaimable page cache, as `docker stats`
    /// shows it: usage less `total_inactive_file` on cgroup v1, less
    /// `inactive_file` on v2.
    pub fn memory_used(&self) -> Option<u64> {
        let usage = self.memory_stats.usage?;
        let stats = &self.memory_stats.stats;
        let cache = match stats.get("total_inactive_file") {
            Some(&v) if v < usage => v,
            _ => stats.get("inactive_file").copied().filter(|&v| v < usage).unwrap_or(0),
        };
        Some(usage - cache)
    }

    /// Memory limit in bytes, when the container has one the engine reports.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_stats.limit.filter(|&l| l > 0)
    }

    /// Total bytes received and sent over all networks.
    pub fn network_io(&self) -> (u64, u64) {
        // Counters come from the daemon: a sum that would overflow saturates.
        self.networks
            .values()
            .fold((0u64, 0u64), |(rx, tx), n| (rx.saturating_add(n.rx_bytes), tx.saturating_add(n.tx_bytes)))
    }

    /// Total bytes read from and written to block devices.
    pub fn block_io(&self) -> (u64, u64) {
        self.blkio_stats.io_service_bytes_recursive.iter().fold((0, 0), |(r, w), e| {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => (r.saturating_add(e.value), w),
                "write" => (r, w.saturating_add(e.value)),
                _ => (r, w),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(total: u64, system: u64, pre_total: u64, pre_system: u64) -> Stats {
        Stats {
            cpu_stats: CpuStats {
                cpu_usage: CpuUsage { total_usage: total, ..Default::default() },
                system_cpu_usage: Some(system),
                online_cpus: Some(2),
            },
            precpu_stats: CpuStats {
                cpu_usage: CpuUsage { total_usage: pre_total, ..Default::default() },
                system_cpu_usage: Some(pre_system),
                online_cpus: Some(2),
            },
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_uses_the_sample_pair_and_the_cpu_count() {
        // Half of the system's time across two CPUs is one full CPU.
        let s = sample(1_500, 2_000, 1_000, 1_000);
        assert_eq!(s.cpu_percent(None), Some(100.0));
    }

    #[test]
    fn a_zeroed_precpu_needs_a_previous_sample_and_is_unknown_without_one() {
        let s = sample(1_500, 2_000, 0, 0);
        assert_eq!(s.cpu_percent(None), None);
        let prev = sample(1_000, 1_000, 0, 0).cpu_stats;
        assert_eq!(s.cpu_percent(Some(&prev)), Some(100.0));
    }

    #[test]
    fn io_totals_saturate_instead_of_overflowing_on_hostile_counters() {
        let s: Stats = serde_json::from_str(
            r#"{"networks":{"a":{"rx_bytes":18446744073709551615},"b":{"rx_bytes":1,"tx_bytes":2}},
                "blkio_stats":{"io_service_bytes_recursive":[
                    {"op":"read","value":18446744073709551615},{"op":"Read","value":1},{"op":"write","value":5}]}}"#,
        )
        .unwrap();
        assert_eq!(s.network_io(), (u64::MAX, 2));
        assert_eq!(s.block_io(), (u64::MAX, 5));
    }

    #[test]
    fn memory_used_excludes_inactive_file_on_v1_and_v2() {
        let mut v1 = Stats::default();
        v1.memory_stats.usage = Some(1000);
        v1.memory_stats.stats.insert("total_inactive_file".into(), 300);
        v1.memory_stats.stats.insert("cache".into(), 600);
        assert_eq!(v1.memory_used(), Some(700));
        let mut v2 = Stats::default();
        v2.memory_stats.usage = Some(1000);
        v2.memory_stats.stats.insert("inactive_file".into(), 100);
        assert_eq!(v2.memory_used(), Some(900));
        assert_eq!(Stats::default().memory_used(), None);
    }
}
