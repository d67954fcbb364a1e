//! What the bench binaries share: their quick mode and their percentiles.

use std::time::Duration;

/// Whether `BERTH_BENCH_QUICK` asks for the shrunken measurements CI runs.
pub fn quick() -> bool {
    std::env::var("BERTH_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The p50 and p99 of `v`, in milliseconds.
pub fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}
