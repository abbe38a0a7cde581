//! OCI image manifest and image index, and [`write_image`], which turns an [`ImageSpec`] and
//! layer blobs into config + manifest blobs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{History, ImageConfig, RootFs, RunConfig};
use super::{
    canonical_json, rfc3339, Descriptor, Layer, Platform, ANNOTATION_CREATED, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::store::BlobStore;
use crate::{Error, Result};

/// An image manifest. Also parses Docker v2 schema 2 manifests (same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_TYPE_MANIFEST`] (or Docker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (also parses Docker manifest lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_TYPE_INDEX`] (or Docker's manifest list type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An OCI index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }

    /// Canonical JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        canonical_json("image index", self)
    }
}

impl ImageManifest {
    /// Canonical JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        canonical_json("image manifest", self)
    }
}

/// What an image is made of: layers already in the blob store plus the run configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Repository name (`kiln/agent`); used by writers that need one (docker-archive, push).
    pub name: String,
    /// Tag (`1.0`).
    pub tag: String,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Entrypoint argv.
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// `user[:group]`.
    pub user: Option<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// `port/proto` entries, e.g. `2379/tcp`.
    pub exposed_ports: Vec<String>,
    /// History comment per layer (same order as `layers`; missing ones are left out).
    pub history: Vec<String>,
    /// `SOURCE_DATE_EPOCH`: every timestamp in config and manifest.
    pub created_epoch: i64,
    /// Platform (default linux/amd64).
    pub platform: Platform,
    /// Manifest annotations (a `created` annotation is always added).
    pub annotations: BTreeMap<String, String>,
}

impl ImageSpec {
    /// A linux/amd64 spec with the given name, tag and layers and nothing else set.
    pub fn new(name: &str, tag: &str, layers: Vec<Layer>, created_epoch: i64) -> Self {
        ImageSpec {
            name: name.into(),
            tag: tag.into(),
            layers,
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: Vec::new(),
            history: Vec::new(),
            created_epoch,
            platform: Platform::linux_amd64(),
            annotations: BTreeMap::new(),
        }
    }

    /// The `name:tag` reference.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The image config this spec describes.
    pub fn config(&self) -> ImageConfig {
        let created = rfc3339(self.created_epoch);
        let run = RunConfig {
            user: self.user.clone(),
            exposed_ports: (!self.exposed_ports.is_empty()).then(|| {
                self.exposed_ports
                    .iter()
                    .map(|p| (p.clone(), Default::default()))
                    .collect()
            }),
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            volumes: None,
            working_dir: self.working_dir.clone(),
            labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
            stop_signal: None,
        };
        let history = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, _)| History {
                created: Some(created.clone()),
                created_by: Some("kiln".into()),
                comment: self.history.get(i).cloned(),
                ..History::default()
            })
            .collect();
        ImageConfig {
            created: Some(created),
            author: None,
            architecture: self.platform.architecture.clone(),
            os: self.platform.os.clone(),
            variant: self.platform.variant.clone(),
            config: Some(run),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: self.layers.iter().map(|l| l.diff_id).collect(),
            },
            history,
        }
    }
}

/// The blobs [`write_image`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The manifest (`application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Descriptor,
    /// The config; its digest is the image ID Docker shows.
    pub config: Descriptor,
}

/// Writes the config and manifest blobs of `spec` into `store`. Every layer must already be in
/// the store with the declared size. Deterministic: the same spec gives the same digests.
pub fn write_image(store: &BlobStore, spec: &ImageSpec) -> Result<WrittenImage> {
    for layer in &spec.layers {
        let size = store.size(&layer.digest)?;
        if size != layer.size {
            return Err(Error::invalid(
                format!("layer {}", layer.digest),
                format!("declared size {} but the blob has {size} bytes", layer.size),
            ));
        }
    }
    let config_bytes = canonical_json("image config", &spec.config())?;
    let (config_digest, config_size) = store.put_bytes(&config_bytes)?;
    let config = Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_size);
    let mut annotations = spec.annotations.clone();
    annotations.insert(ANNOTATION_CREATED.into(), rfc3339(spec.created_epoch));
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: config.clone(),
        layers: spec.layers.iter().map(Layer::descriptor).collect(),
        annotations,
    };
    let (digest, size) = store.put_bytes(&manifest.to_json()?)?;
    Ok(WrittenImage {
        manifest: Descriptor::new(MEDIA_TYPE_MANIFEST, digest, size),
        config,
    })
}

/// Writes an OCI image index over `manifests` into `store`; returns its descriptor.
pub fn write_index(store: &BlobStore, manifests: Vec<Descriptor>) -> Result<Descriptor> {
    let (digest, size) = store.put_bytes(&ImageIndex::new(manifests).to_json()?)?;
    Ok(Descriptor::new(MEDIA_TYPE_INDEX, digest, size))
}

/// Parses a manifest blob (OCI or Docker schema 2).
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest> {
    let m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| Error::json("parsing image manifest", e))?;
    if m.schema_version != 2 {
        return Err(Error::invalid(
            "image manifest",
            format!("schemaVersion {}", m.schema_version),
        ));
    }
    Ok(m)
}

/// Parses an index blob (OCI index or Docker manifest list).
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes).map_err(|e| Error::json("parsing image index", e))
}

/// Parses an image config blob.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig> {
    serde_json::from_slice(bytes).map_err(|e| Error::json("parsing image config", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_layer() -> (tempfile::TempDir, BlobStore, Layer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("store");
        let (digest, size) = store.put_bytes(b"not really a tar").expect("put");
        let layer = Layer {
            digest,
            diff_id: kiln_layers::Digest::sha256_of(b"tar"),
            size,
            media_type: super::super::MEDIA_TYPE_LAYER_GZIP.into(),
        };
        (dir, store, layer)
    }

    #[test]
    fn write_image_is_deterministic_and_round_trips() {
        let (_dir, store, layer) = store_with_layer();
        let mut spec = ImageSpec::new("kiln/test", "1", vec![layer.clone()], 1_700_000_000);
        spec.env = vec!["PATH=/bin".into()];
        spec.history = vec!["base".into()];
        let a = write_image(&store, &spec).expect("write");
        let b = write_image(&store, &spec).expect("write again");
        assert_eq!(a, b);
        let manifest =
            parse_manifest(&store.read_verified(&a.manifest.digest).expect("read")).expect("parse");
        assert_eq!(manifest.layers, vec![layer.descriptor()]);
        assert_eq!(manifest.config, a.config);
        let config =
            parse_config(&store.read_verified(&a.config.digest).expect("read")).expect("parse");
        assert_eq!(config.rootfs.diff_ids, vec![layer.diff_id]);
        assert_eq!(config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(config.history[0].comment.as_deref(), Some("base"));
        spec.created_epoch += 1;
        assert_ne!(write_image(&store, &spec).expect("write").config, a.config);
    }

    #[test]
    fn write_image_rejects_missing_or_wrongly_sized_layers() {
        let (_dir, store, mut layer) = store_with_layer();
        layer.size += 1;
        let spec = ImageSpec::new("x", "y", vec![layer.clone()], 0);
        assert!(matches!(
            write_image(&store, &spec),
            Err(Error::Invalid { .. })
        ));
        layer.digest = kiln_layers::Digest::sha256_of(b"absent");
        let spec = ImageSpec::new("x", "y", vec![layer], 0);
        assert!(matches!(
            write_image(&store, &spec),
            Err(Error::MissingBlob(_))
        ));
    }
}
