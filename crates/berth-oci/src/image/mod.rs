//! Images from outside the engine, for when no daemon is there: an OCI
//! image layout on disk ([`layout`]) or a pull from a registry over the
//! Docker Registry HTTP API v2 ([`registry`]). Both end in a [`Pulled`]
//! image, its config read and its layers' blobs on disk and verified, which
//! [`apply`] unpacks onto a root with [`crate::layers`], bottom first.
//!
//! [`reference`](mod@reference) reads the names a user writes, [`manifest`] the documents
//! that list an image's blobs (sans IO), and [`digest`] names and checks
//! the blobs.

pub mod digest;
pub mod layout;
pub mod manifest;
pub mod reference;
pub mod registry;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use self::digest::Digest;
use crate::layers::{self, Applied, LayerError};

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// One layer's blob on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub compression: Compression,
}

/// An image whose blobs are all at hand and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The config's digest: the image id.
    pub id: Digest,
    /// The config blob, its raw JSON.
    pub config: Vec<u8>,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("applying layer {path}: {source}")]
    Layer {
        path: String,
        #[source]
        source: LayerError,
    },
    #[error("opening layer {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The process an image's config asks for (its `config` object: entrypoint,
/// command, environment, working folder, user), as the bundle renders it.
pub fn process(config: &[u8]) -> Result<crate::render::ImageConfig, serde_json::Error> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Process {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
        user: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        config: Option<Process>,
    }
    let p = serde_json::from_slice::<Config>(config)?.config.unwrap_or_default();
    Ok(crate::render::ImageConfig {
        entrypoint: p.entrypoint.unwrap_or_default(),
        cmd: p.cmd.unwrap_or_default(),
        env: p.env.unwrap_or_default(),
        working_dir: p.working_dir.filter(|w| !w.is_empty()),
        user: p.user.filter(|u| !u.is_empty()),
    })
}

/// Applies `pulled`'s layers onto `root`, bottom first, within `budget`
/// bytes written over all of them.
pub fn apply(pulled: &Pulled, root: &Path, budget: u64) -> Result<Applied, ImageError> {
    let mut left = budget;
    let mut total = Applied::default();
    for layer in &pulled.layers {
        let path = || layer.path.display().to_string();
        let file = std::fs::File::open(&layer.path).map_err(|source| ImageError::Io { path: path(), source })?;
        let file = BufReader::new(file);
        // A gzip stream may be several members one after another; all are read.
        let applied = match layer.compression {
            Compression::None => layers::apply(root, file, &mut left),
            Compression::Gzip => layers::apply(root, flate2::read::MultiGzDecoder::new(file), &mut left),
        }
        .map_err(|source| ImageError::Layer { path: path(), source })?;
        total += applied;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_file_layer(dir: &Path, name: &str, body: &str) -> Layer {
        let path = dir.join(format!("{name}.tar"));
        std::fs::write(&path, layers::one_file_tar(name, body)).unwrap();
        Layer { path, compression: Compression::None }
    }

    fn pulled(layers: Vec<Layer>) -> Pulled {
        Pulled { id: Digest::of(b"{}"), config: b"{}".to_vec(), layers }
    }

    #[test]
    fn the_layers_of_an_image_share_one_byte_budget() {
        let blobs = tempfile::tempdir().unwrap();
        let image = pulled(vec![one_file_layer(blobs.path(), "a", "123"), one_file_layer(blobs.path(), "b", "456")]);
        let root = tempfile::tempdir().unwrap();
        let applied = apply(&image, root.path(), 6).unwrap();
        assert_eq!((applied.entries, applied.bytes), (2, 6));
        let again = tempfile::tempdir().unwrap();
        let err = apply(&image, again.path(), 5).unwrap_err();
        assert!(matches!(&err, ImageError::Layer { path, source: LayerError::TooLarge(_) } if path.ends_with("b.tar")));
    }

    #[test]
    fn a_layer_whose_file_is_gone_is_named_in_the_error() {
        let blobs = tempfile::tempdir().unwrap();
        let image = pulled(vec![Layer { path: blobs.path().join("gone"), compression: Compression::Gzip }]);
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(apply(&image, root.path(), 1), Err(ImageError::Io { path, .. }) if path.ends_with("gone")));
    }

    #[test]
    fn an_image_configs_process_is_read_and_its_empty_or_null_fields_are_none() {
        let config = br#"{"architecture":"amd64","config":{"Entrypoint":null,"Cmd":["sh"],"Env":["PATH=/bin"],"WorkingDir":"","User":"nobody"}}"#;
        let p = process(config).unwrap();
        assert_eq!((p.entrypoint, p.cmd, p.env), (vec![], vec!["sh".to_owned()], vec!["PATH=/bin".to_owned()]));
        assert_eq!((p.working_dir, p.user.as_deref()), (None, Some("nobody")));
        assert_eq!(process(b"{}").unwrap().cmd, Vec::<String>::new(), "a config without a process asks for none");
        assert!(process(b"[1]").is_err());
    }

    #[test]
    fn a_gzip_layer_that_is_not_gzip_is_refused() {
        let blobs = tempfile::tempdir().unwrap();
        let mut layer = one_file_layer(blobs.path(), "a", "plain");
        layer.compression = Compression::Gzip;
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            apply(&pulled(vec![layer]), root.path(), 1 << 20),
            Err(ImageError::Layer { source: LayerError::Tar(_), .. })
        ));
    }
}
