//! Image manifests and indexes, read from their bytes and media type, sans
//! IO: which document a body is (Docker schema 2 or OCI, manifest or
//! index), the config and layers a manifest names, and which manifest of an
//! index is this machine's platform (`linux/<arch>`).
//!
//! A document's kind is its `Content-Type` when that names one of the four
//! types; when it is missing or generic (`application/json`, ...) the
//! body's own `mediaType` decides, and an OCI body without one is told by
//! its fields. Both given and different is refused. Only what this crate
//! can unpack is accepted: image configs, and tar layers plain or gzipped;
//! zstd, foreign and non-distributable layers, and Docker's schema 1, are
//! refused by name. A document or config above 4 MiB is refused before it
//! is read.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::digest::{Digest, DigestError};
use super::Compression;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` of a manifest request: the four kinds read here.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_NONDISTRIBUTABLE: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// The most a manifest or index may hold.
pub const MAX_MANIFEST: u64 = 4 << 20;

/// The most an image config may hold.
pub const MAX_CONFIG: u64 = 4 << 20;

/// The most indexes followed, one inside another, before a manifest.
pub const MAX_INDEX_DEPTH: usize = 3;

/// The `Content-Type`s that say nothing of which document a body is.
const GENERIC: &[&str] = &["", "application/json", "text/plain", "application/octet-stream", "*/*"];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is {size} bytes, more than the {limit} allowed")]
    TooLarge { size: u64, limit: u64 },
    #[error("the manifest is not the JSON of a manifest or index: {0}")]
    Json(#[source] serde_json::Error),
    #[error("Docker schema 1 manifests are not supported (push the image again with a current client)")]
    Schema1,
    #[error("the manifest's schemaVersion is {0:?}, not 2")]
    SchemaVersion(Option<i64>),
    #[error("media type {0:?} is not a manifest or index this crate reads")]
    UnknownMediaType(String),
    #[error("the manifest is served as {header} but says it is {body}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("the manifest has no {0}")]
    Missing(&'static str),
    #[error("a descriptor of blob {digest} has no mediaType")]
    MissingMediaType { digest: String },
    #[error("a descriptor's digest: {0}")]
    BadDigest(#[source] DigestError),
    #[error("the manifest's config is a {0}, not an image config: this is not a container image")]
    NotAnImage(String),
    #[error("the image config is {size} bytes, more than the {limit} allowed")]
    ConfigTooLarge { size: u64, limit: u64 },
    #[error("layer {digest} is zstd-compressed, which is not supported yet (only plain and gzip tar layers are)")]
    Zstd { digest: Digest },
    #[error("layer {digest} is a foreign or non-distributable layer ({media_type}), which is not pulled")]
    Foreign { digest: Digest, media_type: String },
    #[error("layer {digest} has media type {media_type:?}, not a tar layer this crate unpacks")]
    UnknownLayer { digest: Digest, media_type: String },
    #[error("the index has no manifest for {wanted}; it has: {}", list(.there))]
    NoPlatform { wanted: String, there: Vec<String> },
    #[error("more than {MAX_INDEX_DEPTH} indexes, one inside another, before a manifest")]
    TooDeep,
}

fn list(there: &[String]) -> String {
    if there.is_empty() {
        "none".to_owned()
    } else {
        there.join(", ")
    }
}

/// A manifest's or index's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

impl Kind {
    /// The kind `media_type` names, if one of the four.
    pub fn of(media_type: &str) -> Option<Kind> {
        match media_type {
            DOCKER_MANIFEST | OCI_MANIFEST => Some(Kind::Manifest),
            DOCKER_MANIFEST_LIST | OCI_INDEX => Some(Kind::Index),
            _ => None,
        }
    }
}

/// The platform an index gives one of its manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// What names a blob: its media type, digest and size, and, in an index,
/// its platform and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The kind of document the descriptor names, if a manifest or index.
    pub fn kind(&self) -> Option<Kind> {
        Kind::of(&self.media_type)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// One layer of a manifest, with how its tar is compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub descriptor: Descriptor,
    pub compression: Compression,
}

/// An image manifest: its config and its layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<LayerBlob>,
}

/// An index (an OCI index or a Docker manifest list): manifests for
/// several platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A document read from a registry or layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// What to do with a document to reach a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The manifest is here.
    Manifest(Manifest),
    /// The platform's manifest (or index) is this blob: fetch and read it.
    Fetch(Descriptor),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl RawDescriptor {
    fn into_descriptor(self) -> Result<(Descriptor, Vec<String>), ManifestError> {
        let Some(media_type) = self.media_type else {
            return Err(ManifestError::MissingMediaType { digest: self.digest });
        };
        let digest = Digest::parse(&self.digest).map_err(ManifestError::BadDigest)?;
        let platform = self.platform.map(|p| Platform { os: p.os, architecture: p.architecture, variant: p.variant });
        Ok((Descriptor { media_type, digest, size: self.size, platform, annotations: self.annotations }, self.urls))
    }
}

/// A `Content-Type` without its parameters, lower case.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Reads a manifest or index from its `body` and the `Content-Type` it was
/// served with (or its descriptor's media type).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
    if size > MAX_MANIFEST {
        return Err(ManifestError::TooLarge { size, limit: MAX_MANIFEST });
    }
    let header = content_type.map(essence).unwrap_or_default();
    if DOCKER_SCHEMA1.contains(&header.as_str()) {
        return Err(ManifestError::Schema1);
    }
    let raw: RawDocument = serde_json::from_slice(body).map_err(ManifestError::Json)?;
    if raw.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    let kind = kind(&header, &raw)?;
    if raw.schema_version != Some(2) {
        return Err(ManifestError::SchemaVersion(raw.schema_version));
    }
    match kind {
        Kind::Manifest => manifest(raw).map(Document::Manifest),
        Kind::Index => {
            let entries = raw.manifests.ok_or(ManifestError::Missing("manifests"))?;
            let manifests =
                entries.into_iter().map(|e| e.into_descriptor().map(|(d, _)| d)).collect::<Result<_, _>>()?;
            Ok(Document::Index(Index { manifests }))
        }
    }
}

/// Which document a body is, from its header, its `mediaType`, or its fields.
fn kind(header: &str, raw: &RawDocument) -> Result<Kind, ManifestError> {
    let body = raw.media_type.as_deref().map(essence);
    if let Some(body) = &body {
        if DOCKER_SCHEMA1.contains(&body.as_str()) {
            return Err(ManifestError::Schema1);
        }
    }
    if !GENERIC.contains(&header) {
        let kind = Kind::of(header).ok_or_else(|| ManifestError::UnknownMediaType(header.to_owned()))?;
        return match body {
            Some(body) if body != header => Err(ManifestError::MediaTypeMismatch { header: header.to_owned(), body }),
            _ => Ok(kind),
        };
    }
    match body {
        Some(body) => Kind::of(&body).ok_or(ManifestError::UnknownMediaType(body)),
        // An OCI document may leave its mediaType out; its fields tell.
        None if raw.manifests.is_some() => Ok(Kind::Index),
        None if raw.config.is_some() => Ok(Kind::Manifest),
        None => Err(ManifestError::UnknownMediaType("(none given)".to_owned())),
    }
}

fn manifest(raw: RawDocument) -> Result<Manifest, ManifestError> {
    let (config, _) = raw.config.ok_or(ManifestError::Missing("config"))?.into_descriptor()?;
    if config.media_type != DOCKER_CONFIG && config.media_type != OCI_CONFIG {
        return Err(ManifestError::NotAnImage(config.media_type));
    }
    if config.size > MAX_CONFIG {
        return Err(ManifestError::ConfigTooLarge { size: config.size, limit: MAX_CONFIG });
    }
    let mut layers = Vec::new();
    for entry in raw.layers.ok_or(ManifestError::Missing("layers"))? {
        let (descriptor, urls) = entry.into_descriptor()?;
        let compression = compression(&descriptor, &urls)?;
        layers.push(LayerBlob { descriptor, compression });
    }
    Ok(Manifest { config, layers })
}

/// How a layer is compressed, or why it is not pulled.
fn compression(layer: &Descriptor, urls: &[String]) -> Result<Compression, ManifestError> {
    let media_type = layer.media_type.as_str();
    let foreign = || ManifestError::Foreign { digest: layer.digest.clone(), media_type: media_type.to_owned() };
    if !urls.is_empty() || media_type == DOCKER_LAYER_FOREIGN || media_type.starts_with(OCI_NONDISTRIBUTABLE) {
        return Err(foreign());
    }
    match media_type {
        DOCKER_LAYER_GZIP | OCI_LAYER_GZIP => Ok(Compression::Gzip),
        DOCKER_LAYER_TAR | OCI_LAYER_TAR => Ok(Compression::None),
        DOCKER_LAYER_ZSTD | OCI_LAYER_ZSTD => Err(ManifestError::Zstd { digest: layer.digest.clone() }),
        _ => Err(ManifestError::UnknownLayer { digest: layer.digest.clone(), media_type: media_type.to_owned() }),
    }
}

/// The OCI name of this machine's architecture.
pub fn this_arch() -> &'static str {
    arch_of(std::env::consts::ARCH)
}

/// The OCI name of a Rust target architecture (`x86_64` is `amd64`).
pub fn arch_of(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl Index {
    /// The manifest for `os`/`arch`, the first when several are; the
    /// variant is not asked.
    pub fn pick(&self, os: &str, arch: &str) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .find(|d| d.kind().is_some() && d.platform.as_ref().is_some_and(|p| p.os == os && p.architecture == arch))
            .ok_or_else(|| ManifestError::NoPlatform {
                wanted: format!("{os}/{arch}"),
                there: self
                    .manifests
                    .iter()
                    .map(|d| d.platform.as_ref().map_or_else(|| "(no platform)".to_owned(), Platform::to_string))
                    .collect(),
            })
    }
}

/// The step from `document` towards the manifest of `linux/<arch>`.
pub fn next(document: Document, arch: &str) -> Result<Next, ManifestError> {
    match document {
        Document::Manifest(m) => Ok(Next::Manifest(m)),
        Document::Index(index) => {
            let picked = index.pick("linux", arch)?;
            if picked.size > MAX_MANIFEST {
                return Err(ManifestError::TooLarge { size: picked.size, limit: MAX_MANIFEST });
            }
            Ok(Next::Fetch(picked.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn descriptor(media_type: &str, n: u8, size: u64) -> serde_json::Value {
        serde_json::json!({ "mediaType": media_type, "digest": d(n), "size": size })
    }

    fn manifest_json(media_type: Option<&str>, config: &str, layers: &[&str]) -> Vec<u8> {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "config": descriptor(config, 1, 100),
            "layers": layers.iter().enumerate().map(|(i, t)| descriptor(t, 10 + i as u8, 1000)).collect::<Vec<_>>(),
        });
        if let Some(t) = media_type {
            m["mediaType"] = t.into();
        }
        serde_json::to_vec(&m).unwrap()
    }

    fn index_json(media_type: Option<&str>, platforms: &[(&str, &str)]) -> Vec<u8> {
        let entries: Vec<_> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch))| {
                let mut e = descriptor(OCI_MANIFEST, 20 + i as u8, 500);
                e["platform"] = serde_json::json!({ "os": os, "architecture": arch });
                e
            })
            .collect();
        let mut m = serde_json::json!({ "schemaVersion": 2, "manifests": entries });
        if let Some(t) = media_type {
            m["mediaType"] = t.into();
        }
        serde_json::to_vec(&m).unwrap()
    }

    fn as_manifest(doc: Document) -> Manifest {
        match doc {
            Document::Manifest(m) => m,
            Document::Index(i) => panic!("an index, not a manifest: {i:?}"),
        }
    }

    fn as_index(doc: Document) -> Index {
        match doc {
            Document::Index(i) => i,
            Document::Manifest(m) => panic!("a manifest, not an index: {m:?}"),
        }
    }

    #[test]
    fn a_docker_schema_2_manifest_gives_its_config_and_gzip_layers_in_order() {
        let body = manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, &[DOCKER_LAYER_GZIP, DOCKER_LAYER_GZIP]);
        let m = as_manifest(parse(&body, Some(DOCKER_MANIFEST)).unwrap());
        assert_eq!(m.config.digest.to_string(), d(1));
        assert_eq!(m.config.size, 100);
        let layers: Vec<_> = m.layers.iter().map(|l| (l.descriptor.digest.to_string(), l.compression)).collect();
        assert_eq!(layers, [(d(10), Compression::Gzip), (d(11), Compression::Gzip)]);
    }

    #[test]
    fn an_oci_manifest_takes_plain_and_gzip_layers() {
        let body = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, &[OCI_LAYER_TAR, OCI_LAYER_GZIP]);
        let m = as_manifest(parse(&body, Some(&format!("{OCI_MANIFEST}; charset=utf-8"))).unwrap());
        let kinds: Vec<_> = m.layers.iter().map(|l| l.compression).collect();
        assert_eq!(kinds, [Compression::None, Compression::Gzip]);
    }

    #[test]
    fn a_missing_or_generic_content_type_leaves_the_kind_to_the_body() {
        let docker = manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, &[DOCKER_LAYER_GZIP]);
        as_manifest(parse(&docker, None).unwrap());
        as_manifest(parse(&docker, Some("application/json")).unwrap());
        let list = index_json(Some(DOCKER_MANIFEST_LIST), &[("linux", "amd64")]);
        as_index(parse(&list, Some("text/plain")).unwrap());
        // OCI documents may leave mediaType out: their fields tell.
        as_index(parse(&index_json(None, &[("linux", "amd64")]), None).unwrap());
        as_manifest(parse(&manifest_json(None, OCI_CONFIG, &[]), None).unwrap());
        as_index(parse(&index_json(None, &[]), Some(OCI_INDEX)).unwrap());
    }

    #[test]
    fn a_body_that_says_another_kind_than_its_header_is_refused() {
        let body = manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, &[]);
        assert!(matches!(parse(&body, Some(OCI_INDEX)), Err(ManifestError::MediaTypeMismatch { .. })));
        assert!(matches!(
            parse(&body, Some("application/vnd.oci.artifact.manifest.v1+json")),
            Err(ManifestError::UnknownMediaType(_))
        ));
    }

    #[test]
    fn schema_1_bad_json_and_oversized_documents_are_refused() {
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(parse(v1, None), Err(ManifestError::Schema1)));
        assert!(matches!(parse(v1, Some(DOCKER_SCHEMA1[1])), Err(ManifestError::Schema1)));
        assert!(matches!(parse(b"{", None), Err(ManifestError::Json(_))));
        let big = vec![b' '; (MAX_MANIFEST + 1) as usize];
        assert!(matches!(parse(&big, None), Err(ManifestError::TooLarge { .. })));
        let no_version = br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(matches!(parse(no_version, None), Err(ManifestError::SchemaVersion(None))));
    }

    #[test]
    fn zstd_foreign_and_unknown_layers_are_refused_by_name() {
        let zstd = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, &[OCI_LAYER_GZIP, OCI_LAYER_ZSTD]);
        assert!(matches!(parse(&zstd, None), Err(ManifestError::Zstd { digest }) if digest.to_string() == d(11)));
        for foreign in [DOCKER_LAYER_FOREIGN, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"] {
            let body = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, &[foreign]);
            assert!(matches!(parse(&body, None), Err(ManifestError::Foreign { .. })), "{foreign}");
        }
        let mut with_urls: serde_json::Value =
            serde_json::from_slice(&manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, &[OCI_LAYER_GZIP])).unwrap();
        with_urls["layers"][0]["urls"] = serde_json::json!(["https://example.com/layer"]);
        assert!(matches!(parse(&serde_json::to_vec(&with_urls).unwrap(), None), Err(ManifestError::Foreign { .. })));
        let odd = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, &["application/x-squashfs"]);
        assert!(matches!(parse(&odd, None), Err(ManifestError::UnknownLayer { .. })));
    }

    #[test]
    fn a_config_that_is_not_an_image_config_or_too_big_is_refused() {
        let artifact = manifest_json(Some(OCI_MANIFEST), "application/vnd.cncf.helm.config.v1+json", &[]);
        assert!(matches!(parse(&artifact, None), Err(ManifestError::NotAnImage(_))));
        let mut big: serde_json::Value = serde_json::from_slice(&manifest_json(None, OCI_CONFIG, &[])).unwrap();
        big["config"]["size"] = (MAX_CONFIG + 1).into();
        assert!(matches!(parse(&serde_json::to_vec(&big).unwrap(), None), Err(ManifestError::ConfigTooLarge { .. })));
    }

    #[test]
    fn a_descriptor_with_a_digest_of_another_algorithm_is_refused() {
        let mut m: serde_json::Value = serde_json::from_slice(&manifest_json(None, OCI_CONFIG, &[])).unwrap();
        m["config"]["digest"] = "sha512:abcd".into();
        assert!(matches!(
            parse(&serde_json::to_vec(&m).unwrap(), None),
            Err(ManifestError::BadDigest(DigestError::Algorithm(_)))
        ));
    }

    #[test]
    fn an_index_gives_the_manifest_of_this_platform() {
        let body = index_json(Some(OCI_INDEX), &[("linux", "arm64"), ("windows", "amd64"), ("linux", "amd64")]);
        let index = as_index(parse(&body, Some(OCI_INDEX)).unwrap());
        assert_eq!(index.pick("linux", "amd64").unwrap().digest.to_string(), d(22));
        assert_eq!(index.pick("linux", "arm64").unwrap().digest.to_string(), d(20));
        match next(Document::Index(index), "amd64").unwrap() {
            Next::Fetch(picked) => assert_eq!(picked.digest.to_string(), d(22)),
            Next::Manifest(m) => panic!("an index gave a manifest at once: {m:?}"),
        }
    }

    #[test]
    fn an_index_without_this_platform_names_the_platforms_it_has() {
        let body = index_json(Some(DOCKER_MANIFEST_LIST), &[("linux", "arm64"), ("linux", "s390x")]);
        let err = next(parse(&body, None).unwrap(), "amd64").unwrap_err();
        assert!(matches!(&err, ManifestError::NoPlatform { wanted, there }
            if wanted == "linux/amd64" && there == &["linux/arm64", "linux/s390x"]));
        assert!(err.to_string().contains("linux/arm64, linux/s390x"), "{err}");
    }

    #[test]
    fn rust_architectures_map_to_oci_names() {
        assert_eq!(arch_of("x86_64"), "amd64");
        assert_eq!(arch_of("aarch64"), "arm64");
        assert_eq!(arch_of("riscv64"), "riscv64");
        assert!(!this_arch().is_empty());
    }
}
