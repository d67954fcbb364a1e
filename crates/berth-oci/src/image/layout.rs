//! An OCI image layout on disk (a folder of `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`), read into a [`Pulled`] image without a registry
//! or daemon.
//!
//! The manifest is the one of `index.json` whose annotation
//! `org.opencontainers.image.ref.name` is the tag asked for (or the whole
//! reference asked for), or the only one when no tag is asked; an index
//! it names is followed to this machine's platform. Blobs are used where
//! they are, not copied, but each is read through once and checked against
//! its descriptor's digest and size before it is handed out: a corrupted
//! layout is refused, not unpacked. (A blob changed after that check is
//! not noticed: the layout is the caller's, and is trusted to stay put.)

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::{Digest, DigestError, Verifier};
use super::manifest::{self, Descriptor, Document, ManifestError, Next, MAX_CONFIG, MAX_INDEX_DEPTH, MAX_MANIFEST};
use super::{Layer, Pulled};

/// The file that marks a layout, and the version of it read here.
pub const LAYOUT_FILE: &str = "oci-layout";
pub const LAYOUT_VERSION: &str = "1.0.0";
pub const INDEX_FILE: &str = "index.json";

/// The annotation that names a manifest of the index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The most the `oci-layout` file may hold.
const MAX_LAYOUT_FILE: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{0} is not an OCI image layout: it has no oci-layout file")]
    NotALayout(String),
    #[error("the layout's oci-layout file is not the JSON of an imageLayoutVersion: {0}")]
    BadLayoutFile(#[source] serde_json::Error),
    #[error("the layout's imageLayoutVersion is {0:?}, not {LAYOUT_VERSION}")]
    Version(String),
    #[error("the layout's {what}: {source}")]
    Manifest {
        what: String,
        #[source]
        source: ManifestError,
    },
    #[error("the layout's index.json is an image manifest, not an index")]
    IndexIsManifest,
    #[error("the layout has no manifest named {asked:?}; it has: {}", names(.there))]
    NoSuchTag { asked: String, there: Vec<String> },
    #[error("the layout holds {} manifests ({}), so a tag must be asked for", .there.len(), names(.there))]
    Ambiguous { there: Vec<String> },
    #[error("the layout's blob {digest} is {size} bytes, more than the {limit} allowed")]
    TooLarge { digest: Digest, size: u64, limit: u64 },
    #[error("{path} is more than the {limit} bytes allowed")]
    FileTooLarge { path: String, limit: u64 },
    #[error("the layout lacks its blob {digest}")]
    MissingBlob { digest: Digest },
    #[error("the layout's blob {digest} is corrupted: {source}")]
    Corrupt {
        digest: Digest,
        #[source]
        source: DigestError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn names(there: &[String]) -> String {
    if there.is_empty() {
        "none".to_owned()
    } else {
        there.join(", ")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io { path: path.display().to_string(), source }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

/// Where blob `digest` lives in the layout at `dir`.
pub fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest.hex())
}

/// The tag part of a reference asked for (`1.35` of `registry/x:1.35`), if
/// it has one.
fn tag_of(asked: &str) -> Option<&str> {
    let named = asked.split('@').next().unwrap_or(asked);
    let last = &named[named.rfind('/').map_or(0, |i| i + 1)..];
    last.rsplit_once(':').map(|(_, tag)| tag)
}

/// The entry of `index` that `asked` names, or its only entry when nothing
/// is asked.
pub fn choose<'a>(index: &'a manifest::Index, asked: Option<&str>) -> Result<&'a Descriptor, LayoutError> {
    let named = |d: &Descriptor| d.annotation(REF_NAME).map(str::to_owned);
    let there = || index.manifests.iter().map(|d| named(d).unwrap_or_else(|| d.digest.to_string())).collect();
    match asked {
        None => match index.manifests.as_slice() {
            [only] => Ok(only),
            _ => Err(LayoutError::Ambiguous { there: there() }),
        },
        Some(asked) => {
            let wanted = |name: &str| name == asked || tag_of(asked) == Some(name);
            index
                .manifests
                .iter()
                .find(|d| d.annotation(REF_NAME).is_some_and(wanted))
                .ok_or_else(|| LayoutError::NoSuchTag { asked: asked.to_owned(), there: there() })
        }
    }
}

/// Reads the image `tag` names (the only one when `None`) of the layout at
/// `dir`, its blobs verified.
pub fn open(dir: &Path, tag: Option<&str>) -> Result<Pulled, LayoutError> {
    gather(dir, manifest(dir, tag)?)
}

/// The manifest of the image `tag` names (the only one when `None`) of the
/// layout at `dir`, for this machine's platform: its config's digest is
/// the image id, known without reading the layers.
pub fn manifest(dir: &Path, tag: Option<&str>) -> Result<manifest::Manifest, LayoutError> {
    let marker = dir.join(LAYOUT_FILE);
    let text = match std::fs::File::open(&marker) {
        Ok(file) => read_bounded(file, MAX_LAYOUT_FILE, &marker)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LayoutError::NotALayout(dir.display().to_string()))
        }
        Err(e) => return Err(io(&marker)(e)),
    };
    let layout: LayoutFile = serde_json::from_slice(&text).map_err(LayoutError::BadLayoutFile)?;
    if layout.image_layout_version != LAYOUT_VERSION {
        return Err(LayoutError::Version(layout.image_layout_version));
    }
    let index_path = dir.join(INDEX_FILE);
    let file = std::fs::File::open(&index_path).map_err(io(&index_path))?;
    let body = read_bounded(file, MAX_MANIFEST, &index_path)?;
    let document =
        manifest::parse(&body, None).map_err(|source| LayoutError::Manifest { what: INDEX_FILE.to_owned(), source })?;
    let Document::Index(index) = document else { return Err(LayoutError::IndexIsManifest) };
    let mut descriptor = choose(&index, tag)?.clone();
    for _ in 0..=MAX_INDEX_DEPTH {
        let body = read_blob(dir, &descriptor, MAX_MANIFEST)?;
        let what = || format!("manifest {}", descriptor.digest);
        let document = manifest::parse(&body, Some(&descriptor.media_type))
            .map_err(|source| LayoutError::Manifest { what: what(), source })?;
        match manifest::next(document, manifest::this_arch())
            .map_err(|source| LayoutError::Manifest { what: what(), source })?
        {
            Next::Manifest(m) => return Ok(m),
            Next::Fetch(inner) => descriptor = inner,
        }
    }
    Err(LayoutError::Manifest { what: format!("manifest {}", descriptor.digest), source: ManifestError::TooDeep })
}

/// The config blob of manifest `m`, checked.
pub fn config(dir: &Path, m: &manifest::Manifest) -> Result<Vec<u8>, LayoutError> {
    read_blob(dir, &m.config, MAX_CONFIG)
}

/// The image of manifest `m`: its config read, its layers checked.
pub fn gather(dir: &Path, m: manifest::Manifest) -> Result<Pulled, LayoutError> {
    let config = config(dir, &m)?;
    let mut layers = Vec::with_capacity(m.layers.len());
    for layer in &m.layers {
        let path = blob_path(dir, &layer.descriptor.digest);
        check_blob(&path, &layer.descriptor, |_| {})?;
        layers.push(Layer { path, compression: layer.compression });
    }
    Ok(Pulled { id: m.config.digest, config, layers })
}

/// A small blob's bytes, checked.
fn read_blob(dir: &Path, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>, LayoutError> {
    if descriptor.size > limit {
        return Err(LayoutError::TooLarge { digest: descriptor.digest.clone(), size: descriptor.size, limit });
    }
    let mut bytes = Vec::new();
    check_blob(&blob_path(dir, &descriptor.digest), descriptor, |chunk| bytes.extend_from_slice(chunk))?;
    Ok(bytes)
}

/// Reads the blob at `path` through once, each chunk checked and handed to
/// `sink`; past its descriptor's size it is refused without reading on.
fn check_blob(path: &Path, descriptor: &Descriptor, mut sink: impl FnMut(&[u8])) -> Result<(), LayoutError> {
    let digest = &descriptor.digest;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LayoutError::MissingBlob { digest: digest.clone() })
        }
        Err(e) => return Err(io(path)(e)),
    };
    let corrupt = |source| LayoutError::Corrupt { digest: digest.clone(), source };
    let mut verifier = Verifier::new(digest, descriptor.size);
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]).map_err(corrupt)?;
        sink(&buf[..n]);
    }
    verifier.finish().map_err(corrupt)
}

/// A small file's bytes, refused past `limit`.
fn read_bounded(file: std::fs::File, limit: u64, path: &Path) -> Result<Vec<u8>, LayoutError> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io(path))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(LayoutError::FileTooLarge { path: path.display().to_string(), limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::image::manifest::{OCI_INDEX, OCI_MANIFEST};

    /// A tar of (name, content): a name ending in `/` is a directory.
    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            if name.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            } else {
                h.set_mode(0o644);
                h.set_size(body.len() as u64);
                b.append_data(&mut h, name, body.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes a blob into the layout at `dir`; its descriptor.
    fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let digest = Digest::of(bytes);
        let path = blob_path(dir, &digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() })
    }

    /// A manifest of gzip layers in the layout at `dir`; its descriptor.
    fn image(dir: &Path, layers: &[Vec<u8>]) -> serde_json::Value {
        let diff_ids: Vec<_> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
        let config = serde_json::json!({
            "architecture": manifest::this_arch(),
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = blob(dir, "application/vnd.oci.image.config.v1+json", &serde_json::to_vec(&config).unwrap());
        let layers: Vec<_> =
            layers.iter().map(|l| blob(dir, "application/vnd.oci.image.layer.v1.tar+gzip", &gzip(l))).collect();
        let m =
            serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers });
        blob(dir, OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
    }

    /// Makes `dir` a layout whose index lists `manifests`.
    fn layout(dir: &Path, manifests: Vec<serde_json::Value>) {
        std::fs::write(dir.join(LAYOUT_FILE), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        std::fs::write(dir.join(INDEX_FILE), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    fn named(mut descriptor: serde_json::Value, name: &str) -> serde_json::Value {
        descriptor["annotations"] = serde_json::json!({ REF_NAME: name });
        descriptor
    }

    fn lower_and_upper() -> [Vec<u8>; 2] {
        let lower = tar_of(&[
            ("etc/", ""),
            ("etc/kept", "kept"),
            ("etc/gone", "gone"),
            ("var/", ""),
            ("var/cache/", ""),
            ("var/cache/old", "old"),
            ("var/cache/sub/", ""),
            ("var/cache/sub/deep", "deep"),
        ]);
        let upper = tar_of(&[("etc/.wh.gone", ""), ("var/cache/.wh..wh..opq", ""), ("var/cache/new", "new")]);
        [lower, upper]
    }

    #[test]
    fn a_layout_with_a_whiteout_and_an_opaque_directory_applies_as_its_layers_say() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = image(dir.path(), &lower_and_upper());
        layout(dir.path(), vec![named(manifest, "1.0")]);

        let pulled = open(dir.path(), Some("1.0")).unwrap();
        assert_eq!(pulled.id, Digest::of(&pulled.config), "the id is the config's digest");
        assert_eq!(pulled.layers.len(), 2);
        assert!(pulled.layers.iter().all(|l| l.compression == crate::image::Compression::Gzip));
        assert!(pulled.layers[0].path.starts_with(dir.path().join("blobs")), "blobs are used in place");

        let root = tempfile::tempdir().unwrap();
        let applied = crate::image::apply(&pulled, root.path(), u64::MAX).unwrap();
        let r = root.path();
        assert_eq!(std::fs::read_to_string(r.join("etc/kept")).unwrap(), "kept");
        assert!(!r.join("etc/gone").exists(), "the whiteout removed the lower file");
        assert!(!r.join("var/cache/old").exists() && !r.join("var/cache/sub").exists(), "the opaque dir hid the lower");
        assert_eq!(std::fs::read_to_string(r.join("var/cache/new")).unwrap(), "new");
        assert!(applied.removed >= 3, "{applied:?}");
    }

    #[test]
    fn a_corrupted_layout_blob_is_refused_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = image(dir.path(), &lower_and_upper());
        layout(dir.path(), vec![named(manifest, "1.0")]);
        let pulled = open(dir.path(), None).unwrap();
        let upper = &pulled.layers[1].path;
        let mut bytes = std::fs::read(upper).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(upper, &bytes).unwrap();
        assert!(matches!(
            open(dir.path(), None),
            Err(LayoutError::Corrupt { source: DigestError::Mismatch { .. }, .. })
        ));
        bytes.push(0);
        std::fs::write(upper, &bytes).unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::Corrupt { source: DigestError::Longer { .. }, .. })));
        std::fs::remove_file(upper).unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::MissingBlob { .. })));
    }

    #[test]
    fn a_manifest_is_found_by_its_tag_or_the_whole_reference_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = image(dir.path(), &[tar_of(&[("a", "a")])]);
        let b = image(dir.path(), &[tar_of(&[("b", "b")])]);
        layout(dir.path(), vec![named(a, "1.0"), named(b, "registry.example.com/x/y:2.0")]);
        let root = tempfile::tempdir().unwrap();
        let pulled = open(dir.path(), Some("example.com:5000/x/y:1.0")).unwrap();
        crate::image::apply(&pulled, root.path(), u64::MAX).unwrap();
        assert!(root.path().join("a").is_file());
        let by_reference = open(dir.path(), Some("registry.example.com/x/y:2.0")).unwrap();
        assert_ne!(by_reference.id, pulled.id);
        let missing = open(dir.path(), Some("3.0")).unwrap_err();
        assert!(matches!(&missing, LayoutError::NoSuchTag { there, .. } if there.len() == 2), "{missing}");
        assert!(missing.to_string().contains("1.0, registry.example.com/x/y:2.0"), "{missing}");
        assert!(matches!(open(dir.path(), None), Err(LayoutError::Ambiguous { there }) if there.len() == 2));
    }

    #[test]
    fn an_index_inside_the_index_is_followed_to_this_platform() {
        let dir = tempfile::tempdir().unwrap();
        let mine = image(dir.path(), &[tar_of(&[("mine", "1")])]);
        let other = image(dir.path(), &[tar_of(&[("other", "1")])]);
        let with = |mut d: serde_json::Value, arch: &str| {
            d["platform"] = serde_json::json!({ "os": "linux", "architecture": arch });
            d
        };
        let inner = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [with(other, "not-this-arch"), with(mine, manifest::this_arch())],
        });
        let inner = blob(dir.path(), OCI_INDEX, &serde_json::to_vec(&inner).unwrap());
        layout(dir.path(), vec![named(inner, "multi")]);
        let pulled = open(dir.path(), Some("multi")).unwrap();
        let root = tempfile::tempdir().unwrap();
        crate::image::apply(&pulled, root.path(), u64::MAX).unwrap();
        assert!(root.path().join("mine").is_file() && !root.path().join("other").exists());
    }

    #[test]
    fn a_folder_without_oci_layout_or_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::NotALayout(_))));
        std::fs::write(dir.path().join(LAYOUT_FILE), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::Version(v)) if v == "2.0.0"));
        std::fs::write(dir.path().join(LAYOUT_FILE), b"not json").unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::BadLayoutFile(_))));
        std::fs::write(dir.path().join(LAYOUT_FILE), vec![b' '; 1 << 20]).unwrap();
        assert!(matches!(open(dir.path(), None), Err(LayoutError::FileTooLarge { .. })));
    }

    #[test]
    fn the_tag_of_an_asked_reference_is_its_last_components_colon_part() {
        assert_eq!(tag_of("localhost:5000/x/y:1.35"), Some("1.35"));
        assert_eq!(tag_of("localhost:5000/x/y"), None);
        assert_eq!(tag_of("y:1@sha256:00"), Some("1"));
        assert_eq!(tag_of("1.35"), None);
    }
}
