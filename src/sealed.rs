//! The `oci` backend as `berth serve` sets it up beside the engine: runc
//! (the default) and gVisor's runsc (asked for by name) from `PATH`, each
//! with its state and bundles under the data folder, one image cache for
//! both, tini as process 1, a cgroup parent per instance and runtime;
//! each probed once, and used for sealed runs only when its probe passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::engine::Engine;
use berth_core::RuntimeProbe;
use berth_oci::cache::ImageCache;
use berth_oci::runtime::binary::Binary;
use berth_oci::runtime::images::Images;
use berth_oci::runtime::{probe, OciRuntime, RuntimeConfig};

/// Where Debian's tini package puts its static build.
pub const TINI: &str = "/usr/bin/tini-static";

/// The first `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
        .unwrap_or(None)
}

/// The OCI runtimes berth can drive, the default first.
pub const RUNTIMES: [&str; 2] = ["runc", "runsc"];

/// The engine's own runtimes, beside its default, that runs may ask for
/// when the engine's configuration registers them (as `docker-<name>`).
pub const ENGINE_RUNTIMES: [&str; 1] = ["runsc"];

/// What passed the probe of a runtime: its binary, its folder under the
/// data folder, its cgroup parent, and what to say of it.
struct Probed {
    binary: Binary,
    root: PathBuf,
    cgroup_parent: String,
    detail: String,
}

/// Runtime `name` from `PATH`, its state under `data`, probed once for
/// instance `instance`: what passed, or the refusal with why.
async fn probe_run(name: &'static str, data: &Path, instance: &str) -> Result<Probed, RuntimeProbe> {
    let refused = |detail: String| RuntimeProbe { runtime: name.into(), ok: false, detail };
    let Some(path) = on_path(name) else {
        return Err(refused(format!("{name} is not on PATH (Debian's {name} package)")));
    };
    let root = data.join("oci").join(name);
    let binary = match name {
        "runsc" => Binary::runsc(path, root.join("state")),
        _ => Binary::runc(path, root.join("state")),
    };
    let cgroup_parent = format!("{}/{name}", cgroup_root(instance));
    let report = probe::probe(&binary, Path::new(TINI), &root.join("probe"), &cgroup_parent).await;
    if !report.ok {
        return Err(refused(report.reason.unwrap_or_default()));
    }
    let detail = format!(
        "{}, cgroup v{}, probe run {} ms",
        report.version.unwrap_or_default(),
        report.cgroup_version,
        report.run_ms.unwrap_or_default()
    );
    Ok(Probed { binary, root, cgroup_parent, detail })
}

/// The backend of runtime `name` (`runc`, `runsc`) under `data` for
/// instance `instance`, its images in `cache`, when its probe passes; what
/// the probe found either way.
pub async fn runtime(
    name: &'static str,
    data: &Path,
    instance: &str,
    images: Images,
    cache: Arc<ImageCache>,
    output_cap: usize,
) -> (Option<Arc<dyn Engine>>, RuntimeProbe) {
    let Probed { binary, root, cgroup_parent, detail } = match probe_run(name, data, instance).await {
        Ok(probed) => probed,
        Err(refused) => return (None, refused),
    };
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
        Err(e) => {
            let why = format!("removing what an earlier berth left: {e}");
            return (None, RuntimeProbe { runtime: name.into(), ok: false, detail: why });
        }
    }
    (Some(backend), RuntimeProbe { runtime: name.into(), ok: true, detail })
}

/// Whether runtime `name` works here, as `berth serve` would probe it
/// under `data` (what `berth doctor` says); its cgroups go afterwards.
pub async fn probe(name: &'static str, data: &Path) -> RuntimeProbe {
    let instance = "doctor";
    let found = probe_run(name, data, instance).await;
    remove_cgroups(instance);
    match found {
        Ok(probed) => RuntimeProbe { runtime: name.into(), ok: true, detail: probed.detail },
        Err(refused) => refused,
    }
}

/// The cgroup under which instance `instance`'s runtimes keep theirs.
pub fn cgroup_root(instance: &str) -> String {
    let short: String = instance.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("/berth-oci/{short}")
}

/// What instance `instance` leaves of its cgroups once it stops: the empty
/// ones go (a container still running keeps its own and those above it).
pub fn remove_cgroups(instance: &str) {
    berth_oci::runtime::cgroup::Layout::detect().remove_empty(&cgroup_root(instance));
}

/// The image cache the runtimes share, under `data`.
pub fn cache(data: &Path, bytes: u64) -> Result<Arc<ImageCache>, String> {
    let (cache, opened) = ImageCache::open(&data.join("oci").join("images"), bytes).map_err(|e| e.to_string())?;
    if !opened.removed.is_empty() {
        tracing::info!(removed = ?opened.removed, "half-unpacked images removed from the cache");
    }
    Ok(cache)
}
