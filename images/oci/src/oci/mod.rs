//! OCI image format: descriptors, image config, manifest, index and the image layout.

pub mod config;
pub mod layout;
pub mod manifest;

use std::collections::BTreeMap;

use kiln_layers::Digest;
use serde::{Deserialize, Serialize};

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `application/vnd.oci.image.layer.v1.tar`
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.oci.image.layer.v1.tar+zstd`
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker v2 schema 2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Annotation carrying a manifest's reference (tag) in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation carrying the creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// A layer blob already in a blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// e.g. [`MEDIA_TYPE_LAYER_GZIP`].
    pub media_type: String,
}

impl Layer {
    /// The layer's content descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest, self.size)
    }
}

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// The content's digest (`sha256:<hex>` or `sha512:<hex>`).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor without platform or annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// linux/amd64.
    pub fn linux_amd64() -> Self {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        }
    }
}

pub use kiln_layers::time::rfc3339;

/// Serializes a document canonically: compact, struct fields in declaration order, maps sorted.
/// The same value always gives the same bytes, so digests are stable.
pub(crate) fn canonical_json<T: Serialize>(what: &str, value: &T) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| crate::Error::json(format!("serializing {what}"), e))
}
