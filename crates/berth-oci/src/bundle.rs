//! Writing a rendered [`Bundle`] to disk: one folder per container with
//! `config.json`, the files its mounts bind in (`hosts`, `hostname`,
//! `resolv.conf`), `berth-bundle.json` (the note: the image expected at
//! `rootfs/`, what was left unresolved, what an engine would add) and an
//! empty `rootfs/` to unpack the image into.
//!
//! This module owns the bundle's layout on disk; it renders nothing and
//! never unpacks an image.

use std::path::{Path, PathBuf};

use super::render::Bundle;

/// The note's file name in a bundle.
pub const NOTE_FILE: &str = "berth-bundle.json";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("bundle: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.to_owned(), source }
}

/// Writes `bundle` into `dir` (created when missing; files there are replaced).
pub fn write(dir: &Path, bundle: &Bundle) -> Result<(), BundleError> {
    let rootfs = dir.join(&bundle.note.rootfs);
    std::fs::create_dir_all(&rootfs).map_err(io(&rootfs))?;
    let put = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))
    };
    put("config.json", &serde_json::to_string_pretty(&bundle.config)?)?;
    put(NOTE_FILE, &serde_json::to_string_pretty(&bundle.note)?)?;
    for (name, text) in &bundle.files {
        put(name, text)?;
    }
    Ok(())
}

/// Removes a bundle folder; one already gone is not an error.
pub fn remove(dir: &Path) -> Result<(), BundleError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BundleError::Io { path: dir.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;
    use berth_core::policy::{ContainerRequest, Policy};
    use berth_core::spec::Kind;

    #[test]
    fn a_written_bundle_has_its_config_note_files_and_an_empty_rootfs() {
        let mut req = ContainerRequest::new(Kind::Tool, "berth-x", "busybox:1.35");
        req.cmd = Some(vec!["true".into()]);
        let spec = Policy::default().admit(req).unwrap();
        let bundle = render(&spec, "0123456789abcdef", None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b1");
        write(&dir, &bundle).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config, serde_json::to_value(&bundle.config).unwrap());
        let note: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(NOTE_FILE)).unwrap()).unwrap();
        assert_eq!(note["image"], "busybox:1.35");
        assert_eq!(std::fs::read_to_string(dir.join("hostname")).unwrap(), "0123456789ab\n");
        assert_eq!(std::fs::read_dir(dir.join("rootfs")).unwrap().count(), 0);
        remove(&dir).unwrap();
        assert!(!dir.exists());
        remove(&dir).unwrap();
    }
}
