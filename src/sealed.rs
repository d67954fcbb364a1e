//! The `oci` backend as `berth serve` sets it up beside the engine: runc
//! from `PATH`, its state, bundles and image cache under the data folder,
//! tini as process 1, a cgroup parent per instance; probed once, and used
//! for sealed runs only when the probe passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::engine::Engine;
use berth_core::RuntimeProbe;
use berth_oci::cache::ImageCache;
use berth_oci::runtime::binary::Binary;
use berth_oci::runtime::{probe, OciRuntime, RuntimeConfig};

/// Where Debian's tini package puts its static build.
pub const TINI: &str = "/usr/bin/tini-static";

/// The first `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
        .unwrap_or(None)
}

/// The runc backend under `data` for instance `instance`, when its probe
/// passes; what the probe found either way.
pub async fn runc(
    data: &Path,
    instance: &str,
    images: Arc<dyn Engine>,
    output_cap: usize,
    cache_bytes: u64,
) -> (Option<Arc<dyn Engine>>, RuntimeProbe) {
    let refused = |detail: String| RuntimeProbe { runtime: "runc".into(), ok: false, detail };
    let Some(path) = on_path("runc") else {
        return (None, refused("runc is not on PATH (Debian's runc package)".into()));
    };
    let root = data.join("oci").join("runc");
    let binary = Binary { name: "runc", path, state: root.join("state"), flags: Vec::new() };
    let short: String = instance.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    let cgroup_parent = format!("/berth-oci/{short}");
    let report = probe::probe(&binary, Path::new(TINI), &root.join("probe"), &cgroup_parent).await;
    if !report.ok {
        return (None, refused(report.reason.unwrap_or_default()));
    }
    let (cache, opened) = match ImageCache::open(&data.join("oci").join("images"), cache_bytes) {
        Ok(c) => c,
        Err(e) => return (None, refused(format!("the image cache: {e}"))),
    };
    if !opened.removed.is_empty() {
        tracing::info!(removed = ?opened.removed, "half-unpacked images removed from the cache");
    }
    let config = RuntimeConfig {
        binary,
        bundles: root.join("bundles"),
        init: PathBuf::from(TINI),
        output_cap,
        cgroup_parent,
        overlay_bytes: 256 * 1024 * 1024,
    };
    let backend = OciRuntime::new(config, images, cache);
    match backend.sweep_leftovers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed what an earlier berth left under the runtime"),
        Err(e) => return (None, refused(format!("removing what an earlier berth left: {e}"))),
    }
    let detail = format!(
        "{}, cgroup v{}, probe run {} ms",
        report.version.unwrap_or_default(),
        report.cgroup_version,
        report.run_ms.unwrap_or_default()
    );
    (Some(backend), RuntimeProbe { runtime: "runc".into(), ok: true, detail })
}
