//! Typed quantities: sizes in bytes and CPU limits, parsed from what people
//! and the seeds write (`512m`, `1g`, `512MB`, `1.5` cores).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size (use bytes or a suffix: k, m, g, as in 512m)")]
pub struct ParseSizeError(pub String);

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    /// Docker's notation: a number with an optional `b`, `k`, `m`, `g` suffix
    /// (binary multiples; `kb`, `mb`, `gb` and `MiB`-style spellings too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseSizeError(s.to_owned());
        let t = s.trim().to_ascii_lowercase();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b % (1 << 30) == 0 {
            write!(f, "{}g", b >> 30)
        } else if b >= 1 << 20 && b % (1 << 20) == 0 {
            write!(f, "{}m", b >> 20)
        } else if b >= 1 << 10 && b % (1 << 10) == 0 {
            write!(f, "{}k", b >> 10)
        } else {
            write!(f, "{b}")
        }
    }
}

/// A CPU limit in billionths of a CPU, as the engine takes it (`NanoCpus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuLimit(pub u64);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0} is not a CPU limit (a positive number of cores, e.g. 0.5)")]
pub struct CpuLimitError(pub f64);

impl CpuLimit {
    pub fn from_cores(cores: f64) -> Result<CpuLimit, CpuLimitError> {
        if !cores.is_finite() || cores <= 0.0 || cores > 1024.0 {
            return Err(CpuLimitError(cores));
        }
        Ok(CpuLimit((cores * 1e9).round() as u64))
    }

    pub fn cores(self) -> f64 {
        self.0 as f64 / 1e9
    }

    pub fn nanos(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_the_way_people_write_them() {
        assert_eq!("512m".parse::<ByteSize>().unwrap(), ByteSize::mib(512));
        assert_eq!("1g".parse::<ByteSize>().unwrap(), ByteSize::mib(1024));
        assert_eq!("512MB".parse::<ByteSize>().unwrap(), ByteSize::mib(512));
        assert_eq!("64KiB".parse::<ByteSize>().unwrap(), ByteSize(64 * 1024));
        assert_eq!("100".parse::<ByteSize>().unwrap(), ByteSize(100));
        for bad in ["", "m", "-1m", "1.5g", "12x", "99999999999999999999g"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert_eq!(ByteSize::mib(512).to_string(), "512m");
    }

    #[test]
    fn cpu_limits_are_positive_and_finite() {
        assert_eq!(CpuLimit::from_cores(1.5).unwrap().nanos(), 1_500_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 5000.0] {
            assert!(CpuLimit::from_cores(bad).is_err());
        }
    }
}
