//! An image as the engine saves it (`GET /images/{name}/get`, the `docker
//! save` archive): its `manifest.json` names the image's config (whose
//! digest is the image id) and its layers, bottom first, each a tar of its
//! own inside the archive; [`unpack`] applies them in that order onto a
//! root with [`crate::layers`].
//!
//! The archive's entries come in no promised order (the manifest may come
//! after the layers), so the layers are first copied out of it into a
//! scratch folder, then applied; the scratch folder is the caller's to
//! remove.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::layers::{self, Applied, LayerError};

/// The most a `manifest.json` may hold.
const MAX_MANIFEST: u64 = 1024 * 1024;

/// One image of a saved archive.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manifest {
    /// The config's file in the archive (`<hex>.json`, or
    /// `blobs/sha256/<hex>` in newer engines).
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The layers' files in the archive, bottom first.
    pub layers: Vec<String>,
}

impl Manifest {
    /// The image id the config's file name carries (its sha256), if it does.
    pub fn image_id(&self) -> Option<String> {
        let name = self.config.rsplit('/').next()?.trim_end_matches(".json");
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("the saved image has no manifest.json")]
    NoManifest,
    #[error("the saved image's manifest.json: {0}")]
    BadManifest(String),
    #[error("the saved image holds {0} images, not one")]
    NotOne(usize),
    #[error("the saved image lacks its layer {0}")]
    MissingLayer(String),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SavedError {
    let what = what.into();
    move |source| SavedError::Io { what, source }
}

/// Reads a saved archive: its one image's manifest, its layers copied into
/// `scratch` (named by their index, bottom first).
pub fn split(archive: impl Read, scratch: &Path) -> Result<(Manifest, Vec<std::path::PathBuf>), SavedError> {
    let mut tar = tar::Archive::new(archive);
    let mut manifest_text = None;
    let mut copied = std::collections::BTreeMap::new();
    for (n, entry) in tar.entries().map_err(io("the saved image"))?.enumerate() {
        let mut entry = entry.map_err(io("the saved image"))?;
        let name = entry.path().map_err(io("the saved image"))?.to_string_lossy().trim_start_matches("./").to_owned();
        if name == "manifest.json" {
            let mut text = String::new();
            (&mut entry).take(MAX_MANIFEST).read_to_string(&mut text).map_err(io("manifest.json"))?;
            manifest_text = Some(text);
        } else if entry.header().entry_type().is_file() {
            let path = scratch.join(format!("entry-{n}"));
            let mut file = std::fs::File::create(&path).map_err(io(path.display().to_string()))?;
            std::io::copy(&mut entry, &mut file).map_err(io(name.clone()))?;
            copied.insert(name, path);
        }
    }
    let text = manifest_text.ok_or(SavedError::NoManifest)?;
    let mut manifests: Vec<Manifest> =
        serde_json::from_str(&text).map_err(|e| SavedError::BadManifest(e.to_string()))?;
    if manifests.len() != 1 {
        return Err(SavedError::NotOne(manifests.len()));
    }
    let manifest = manifests.remove(0);
    let mut layers = Vec::new();
    for name in &manifest.layers {
        let path =
            copied.remove(name.trim_start_matches("./")).ok_or_else(|| SavedError::MissingLayer(name.clone()))?;
        layers.push(path);
    }
    // What the manifest does not name (the config, `repositories`) goes now.
    for (_, path) in copied {
        let _ = std::fs::remove_file(path);
    }
    Ok((manifest, layers))
}

/// Applies the layers [`split`] copied out onto `root`, bottom first,
/// within `budget` bytes.
pub fn unpack(layers: &[std::path::PathBuf], root: &Path, budget: u64) -> Result<Applied, SavedError> {
    let mut left = budget;
    let mut total = Applied::default();
    for path in layers {
        let file = std::fs::File::open(path).map_err(io(path.display().to_string()))?;
        let applied = layers::apply(root, std::io::BufReader::new(file), &mut left)?;
        total += applied;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn one_file_layer(name: &str, data: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, name, data.as_bytes());
        b.into_inner().unwrap()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_saved_image_is_split_and_unpacked_in_the_manifests_order_wherever_it_comes() {
        let mut b = tar::Builder::new(Vec::new());
        // The upper layer first in the archive, the manifest in the middle.
        file(&mut b, "bbb/layer.tar", &one_file_layer("etc/motd", "upper"));
        let manifest =
            format!(r#"[{{"Config":"{ID}.json","RepoTags":["x:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#);
        file(&mut b, "manifest.json", manifest.as_bytes());
        file(&mut b, "aaa/layer.tar", &one_file_layer("etc/motd", "lower"));
        file(&mut b, &format!("{ID}.json"), b"{}");
        let archive = b.into_inner().unwrap();

        let scratch = tempfile::tempdir().unwrap();
        let (m, layers) = split(&archive[..], scratch.path()).unwrap();
        assert_eq!(m.image_id().as_deref(), Some(&*format!("sha256:{ID}")));
        assert_eq!(layers.len(), 2);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 2, "only the layers are kept");
        let root = tempfile::tempdir().unwrap();
        let applied = unpack(&layers, root.path(), u64::MAX).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("etc/motd")).unwrap(), "upper");
        assert_eq!(applied.entries, 2);
    }

    #[test]
    fn an_archive_without_a_manifest_or_with_a_missing_layer_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "aaa/layer.tar", b"");
        assert!(matches!(split(&b.into_inner().unwrap()[..], scratch.path()), Err(SavedError::NoManifest)));
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "manifest.json", br#"[{"Config":"c.json","Layers":["gone/layer.tar"]}]"#);
        assert!(matches!(split(&b.into_inner().unwrap()[..], scratch.path()), Err(SavedError::MissingLayer(_))));
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "manifest.json", b"[]");
        assert!(matches!(split(&b.into_inner().unwrap()[..], scratch.path()), Err(SavedError::NotOne(0))));
    }

    #[test]
    fn a_config_name_that_is_not_a_digest_gives_no_image_id() {
        let m = Manifest { config: "config.json".into(), repo_tags: None, layers: vec![] };
        assert_eq!(m.image_id(), None);
        let blob = Manifest { config: format!("blobs/sha256/{ID}"), repo_tags: None, layers: vec![] };
        assert_eq!(blob.image_id(), Some(format!("sha256:{ID}")));
    }
}
