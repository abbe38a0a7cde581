//! OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`): writer and reader.
//!
//! Blobs are content-addressed, so images sharing a layer store it once. `index.json` and every
//! blob are written atomically (temporary file + rename).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kiln_layers::IoError;
use serde::{Deserialize, Serialize};

use super::config::ImageConfig;
use super::manifest::{
    parse_config, parse_index, parse_manifest, write_image, ImageIndex, ImageManifest, ImageSpec,
    WrittenImage,
};
use super::{
    canonical_json, Descriptor, Layer, Platform, ANNOTATION_REF_NAME, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::store::{write_atomic, BlobStore};
use crate::{Error, Result};

/// Contents of the `oci-layout` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayoutFile {
    image_layout_version: String,
}

const LAYOUT_VERSION: &str = "1.0.0";

/// Writes an OCI image layout. Call [`LayoutWriter::finish`] to write `index.json`.
#[derive(Debug)]
pub struct LayoutWriter {
    dir: PathBuf,
    store: BlobStore,
    refs: BTreeMap<String, Descriptor>,
}

impl LayoutWriter {
    /// Creates the layout directory (or reuses one: existing blobs are kept, the index starts
    /// empty) and writes `oci-layout`.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(IoError::at("creating OCI layout", &dir))?;
        let store = BlobStore::open(dir.join("blobs"))?;
        let layout = canonical_json(
            "oci-layout",
            &OciLayoutFile {
                image_layout_version: LAYOUT_VERSION.into(),
            },
        )?;
        write_atomic(&dir.join("oci-layout"), &layout)?;
        Ok(LayoutWriter {
            dir,
            store,
            refs: BTreeMap::new(),
        })
    }

    /// The layout's blob store; layer blobs may be written straight into it.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Adds an image: copies its layers from `layers_from` (a no-op when that is this layout's
    /// own store), writes config and manifest, and records the manifest in the index under
    /// `ref_name` (the spec's tag when `None`).
    pub fn add_image(
        &mut self,
        spec: &ImageSpec,
        layers_from: &BlobStore,
        ref_name: Option<&str>,
    ) -> Result<WrittenImage> {
        for layer in &spec.layers {
            self.store.copy_from(layers_from, &layer.digest)?;
        }
        let written = write_image(&self.store, spec)?;
        let mut desc = written.manifest.clone();
        desc.platform = Some(spec.platform.clone());
        self.add_manifest(desc, ref_name.unwrap_or(&spec.tag))?;
        Ok(written)
    }

    /// Records a manifest (or index) already in the store under `ref_name`.
    pub fn add_manifest(&mut self, mut desc: Descriptor, ref_name: &str) -> Result<()> {
        if ref_name.is_empty() {
            return Err(Error::invalid("image reference", "empty ref name"));
        }
        if !self.store.contains(&desc.digest) {
            return Err(Error::MissingBlob(desc.digest));
        }
        if self.refs.contains_key(ref_name) {
            return Err(Error::invalid(
                "OCI layout",
                format!("ref {ref_name:?} is given to two images"),
            ));
        }
        desc.annotations
            .insert(ANNOTATION_REF_NAME.into(), ref_name.into());
        self.refs.insert(ref_name.into(), desc);
        Ok(())
    }

    /// Writes `index.json` (manifests sorted by ref name) and returns the layout's path.
    pub fn finish(self) -> Result<PathBuf> {
        let index = ImageIndex::new(self.refs.into_values().collect());
        write_atomic(&self.dir.join("index.json"), &index.to_json()?)?;
        Ok(self.dir)
    }
}

/// An image read back from a layout or registry, with every digest verified.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Descriptor of the image manifest.
    pub manifest_descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// Descriptor of the config.
    pub config_descriptor: Descriptor,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config's exact bytes.
    pub config_bytes: Vec<u8>,
    /// Layers, bottom first, with diff IDs from the config.
    pub layers: Vec<Layer>,
}

/// An OCI image layout opened for reading.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    store: BlobStore,
    index: ImageIndex,
}

impl Layout {
    /// Opens a layout: checks `oci-layout` and parses `index.json`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let read = |name: &str| {
            let p = dir.join(name);
            fs::read(&p).map_err(IoError::at("reading OCI layout", p))
        };
        let marker: OciLayoutFile = serde_json::from_slice(&read("oci-layout")?)
            .map_err(|e| Error::json("parsing oci-layout", e))?;
        if marker.image_layout_version != LAYOUT_VERSION {
            return Err(Error::invalid(
                "oci-layout",
                format!(
                    "unsupported imageLayoutVersion {}",
                    marker.image_layout_version
                ),
            ));
        }
        let index = parse_index(&read("index.json")?)?;
        let store = BlobStore::open(dir.join("blobs"))?;
        Ok(Layout { dir, store, index })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout's blob store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// Ref names (`org.opencontainers.image.ref.name`) in index order.
    pub fn refs(&self) -> Vec<String> {
        self.index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).cloned())
            .collect()
    }

    /// The index entry for `ref_name`.
    pub fn descriptor(&self, ref_name: &str) -> Result<&Descriptor> {
        self.index
            .manifests
            .iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(ref_name))
            .ok_or_else(|| Error::NotFound(format!("ref {ref_name:?} in {}", self.dir.display())))
    }

    /// Resolves `ref_name` to manifest, config and layers, verifying every digest (layers are
    /// hashed in full). A ref naming an index resolves to its linux/amd64 manifest.
    pub fn resolve(&self, ref_name: &str) -> Result<ResolvedImage> {
        let desc = self.descriptor(ref_name)?.clone();
        resolve_in_store(&self.store, desc, &Platform::linux_amd64())
    }
}

/// Resolves a manifest (or index) descriptor against a blob store, verifying every digest.
pub fn resolve_in_store(
    store: &BlobStore,
    desc: Descriptor,
    platform: &Platform,
) -> Result<ResolvedImage> {
    let mut desc = desc;
    // Bounded: an index may point at an index, but not forever.
    for _ in 0..4 {
        let bytes = store.read_verified(&desc.digest)?;
        if desc.media_type == MEDIA_TYPE_INDEX || desc.media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
        {
            desc = select_platform(&parse_index(&bytes)?, platform)?;
            continue;
        }
        if desc.media_type != MEDIA_TYPE_MANIFEST && desc.media_type != MEDIA_TYPE_DOCKER_MANIFEST {
            return Err(Error::invalid(
                format!("manifest {}", desc.digest),
                format!("unsupported media type {}", desc.media_type),
            ));
        }
        let manifest = parse_manifest(&bytes)?;
        let config_bytes = store.read_verified(&manifest.config.digest)?;
        let config = parse_config(&config_bytes)?;
        let layers = layers_of(&manifest, &config)?;
        for layer in &layers {
            let size = store.verify(&layer.digest)?;
            if size != layer.size {
                return Err(Error::invalid(
                    format!("layer {}", layer.digest),
                    format!("manifest says {} bytes, blob has {size}", layer.size),
                ));
            }
        }
        return Ok(ResolvedImage {
            config_descriptor: manifest.config.clone(),
            manifest_descriptor: desc,
            manifest,
            config,
            config_bytes,
            layers,
        });
    }
    Err(Error::invalid("image index", "indexes nested too deeply"))
}

/// Pairs a manifest's layer descriptors with the config's diff IDs.
pub fn layers_of(manifest: &ImageManifest, config: &ImageConfig) -> Result<Vec<Layer>> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error::invalid(
            "image",
            format!(
                "manifest has {} layers but the config {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    Ok(manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(d, diff_id)| Layer {
            digest: d.digest,
            diff_id: *diff_id,
            size: d.size,
            media_type: d.media_type.clone(),
        })
        .collect())
}

/// Picks the manifest for `platform` from an index.
pub fn select_platform(index: &ImageIndex, platform: &Platform) -> Result<Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == platform.os
                    && p.architecture == platform.architecture
                    && (platform.variant.is_none() || p.variant == platform.variant)
            })
        })
        .or_else(|| match index.manifests.as_slice() {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        })
        .cloned()
        .ok_or_else(|| {
            Error::NotFound(format!(
                "manifest for {}/{} in index",
                platform.os, platform.architecture
            ))
        })
}
