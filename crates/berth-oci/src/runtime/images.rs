//! Where the `oci` backend's images come from, in this order: the engine's
//! image store (when a daemon is there), an OCI image layout on disk, and a
//! registry pull (plain HTTP to loopback or listed registries). Each source
//! first names the image's id (its config's digest) and process without
//! its layers, so a root the cache holds is used as it is; only a miss
//! reads the layers. A name is resolved again at every create, so a tag
//! that moved is a new id and a new unpack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;

use berth_core::engine::{Engine, EngineError, EngineErrorKind, ImageInfo};

use crate::cache::{ImageCache, Lease};
use crate::image::layout::{self, LayoutError};
use crate::image::reference::Reference;
use crate::image::registry::{Registry, RegistryError};
use crate::image::{self, manifest};
use crate::render::ImageConfig;

/// The sources, any of which may be absent.
#[derive(Clone, Default)]
pub struct Images {
    /// The engine whose image store is asked first.
    pub engine: Option<Arc<dyn Engine>>,
    /// An OCI image layout whose images are found by their
    /// `org.opencontainers.image.ref.name`.
    pub layout: Option<PathBuf>,
    /// Pulls of images whose names carry a registry host.
    pub registry: Option<Registry>,
}

impl From<Arc<dyn Engine>> for Images {
    fn from(engine: Arc<dyn Engine>) -> Self {
        Images { engine: Some(engine), ..Images::default() }
    }
}

/// An image named, its layers not read yet.
pub struct Found {
    pub id: String,
    pub config: ImageConfig,
    origin: Origin,
}

enum Origin {
    Engine(Arc<dyn Engine>),
    Layout(PathBuf, manifest::Manifest),
    Registry(Registry, Reference),
}

fn of_layout(image: &str, e: LayoutError) -> EngineError {
    match e {
        LayoutError::NoSuchTag { .. } => EngineError::not_found(format!("image {image}: {e}")),
        e => EngineError::failed(format!("image {image}: {e}")).with_source(e),
    }
}

fn of_registry(image: &str, e: RegistryError) -> EngineError {
    match e {
        RegistryError::NotFound { .. } => EngineError::not_found(format!("image {image}: {e}")).with_source(e),
        RegistryError::Unauthorized { .. } | RegistryError::TlsNotSupported { .. } => {
            EngineError::invalid(format!("image {image}: {e}")).with_source(e)
        }
        e => EngineError::unavailable(format!("image {image}: {e}")).with_source(e),
    }
}

impl Images {
    /// Whether anything but the engine may hold an image.
    pub(crate) fn beyond_engine(&self) -> bool {
        self.layout.is_some() || self.registry.is_some()
    }

    /// The image `image` names now: its id and process, from the first
    /// source that holds it. `scratch` takes a registry's config blob on its
    /// way.
    pub async fn find(&self, image: &str, scratch: &Path) -> Result<Found, EngineError> {
        let mut missing = Vec::new();
        if let Some(engine) = &self.engine {
            match engine.image_info(image).await {
                Ok(info) => return Ok(from_engine(engine.clone(), info)),
                Err(e)
                    if self.beyond_engine()
                        && matches!(e.kind(), EngineErrorKind::NotFound | EngineErrorKind::Unavailable) =>
                {
                    missing.push(format!("not in the engine: {e}"))
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(dir) = &self.layout {
            match layout::manifest(dir, Some(image)) {
                Ok(m) => {
                    let config = layout::config(dir, &m).map_err(|e| of_layout(image, e))?;
                    return of_config(image, &config, m.config.digest.to_string(), Origin::Layout(dir.clone(), m));
                }
                Err(e @ LayoutError::NoSuchTag { .. }) => {
                    missing.push(format!("not in the layout at {}: {e}", dir.display()))
                }
                Err(e) => return Err(of_layout(image, e)),
            }
        }
        if let Some(registry) = &self.registry {
            let reference = Reference::parse(image)
                .map_err(|e| EngineError::invalid(format!("image {image}: {e}")).with_source(e))?;
            if image.starts_with(reference.registry()) {
                std::fs::create_dir_all(scratch).map_err(|e| {
                    EngineError::failed(format!("image {image}: {}: {e}", scratch.display())).with_source(e)
                })?;
                let m = registry.manifest(&reference).await.map_err(|e| of_registry(image, e))?;
                let config = registry.config(&reference, &m, scratch).await.map_err(|e| of_registry(image, e))?;
                let id = m.config.digest.to_string();
                return of_config(image, &config, id, Origin::Registry(registry.clone(), reference));
            }
            missing.push("no registry to pull it from (its name carries no host:port/)".to_owned());
        }
        if missing.is_empty() {
            return Err(EngineError::not_found(format!("image {image}: the oci backend has no image source")));
        }
        Err(EngineError::not_found(format!("image {image} was not found: {}", missing.join("; "))))
    }
}

impl Found {
    /// The image's root (`image` is its name as asked), from `cache`:
    /// unpacked from its source first when the cache does not hold it.
    pub async fn root(self, cache: &Arc<ImageCache>, image: &str) -> Result<Lease, EngineError> {
        let id = self.id;
        let got = match self.origin {
            Origin::Engine(engine) => {
                let asked = id.clone();
                cache
                    .get(&id, move |to: PathBuf| async move {
                        use tokio::io::AsyncWriteExt;
                        let mut body = engine.image_archive(&asked).await.map_err(|e| e.to_string())?;
                        let mut file = tokio::fs::File::create(&to).await.map_err(|e| e.to_string())?;
                        while let Some(chunk) = body.next().await {
                            file.write_all(&chunk.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
                        }
                        file.flush().await.map_err(|e| e.to_string())
                    })
                    .await
            }
            Origin::Layout(dir, m) => {
                cache
                    .get_pulled(&id, move |_scratch, _room| async move {
                        tokio::task::spawn_blocking(move || layout::gather(&dir, m).map_err(|e| e.to_string()))
                            .await
                            .map_err(|e| format!("reading the layout's blobs failed: {e}"))?
                    })
                    .await
            }
            Origin::Registry(registry, reference) => {
                cache
                    .get_pulled(&id, move |scratch, room| async move {
                        registry.pull(&reference, &scratch, room).await.map_err(|e| e.to_string())
                    })
                    .await
            }
        };
        got.map_err(|e| EngineError::unavailable(format!("image {image}: {e}")).with_source(e))
    }
}

/// An image found outside the engine, its process read from its config blob.
fn of_config(image: &str, config: &[u8], id: String, origin: Origin) -> Result<Found, EngineError> {
    let config = image::process(config)
        .map_err(|e| EngineError::failed(format!("image {image}: its config: {e}")).with_source(e))?;
    Ok(Found { id, config, origin })
}

fn from_engine(engine: Arc<dyn Engine>, info: ImageInfo) -> Found {
    let config = ImageConfig {
        entrypoint: info.entrypoint,
        cmd: info.cmd,
        env: info.env,
        working_dir: info.working_dir,
        user: info.user,
    };
    Found { id: info.id, config, origin: Origin::Engine(engine) }
}
