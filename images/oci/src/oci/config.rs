//! OCI image configuration (`application/vnd.oci.image.config.v1+json`).
//!
//! Field order here is the serialized order; maps are `BTreeMap`s. Together with compact
//! serialization that makes the bytes — and so the digest, which Docker shows as the image
//! ID — a pure function of the inputs.

use std::collections::BTreeMap;

use kiln_layers::Digest;
use serde::{Deserialize, Serialize};

/// The image config document. Unknown fields of foreign configs (Docker's `container_config`,
/// …) are ignored when parsing; never re-serialize a parsed foreign config, keep its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Execution parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// Layer diff IDs, bottom first.
    pub rootfs: RootFs,
    /// One entry per layer (plus empty-layer entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// Execution parameters of a container started from the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user[:group]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `port/proto` keys with empty objects as values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// `KEY=value` entries, in the given order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volume mount points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `{}` in JSON (values of `ExposedPorts` and `Volumes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The root filesystem: ordered diff IDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each uncompressed layer tar, bottom first.
    pub diff_ids: Vec<Digest>,
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What created the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step created no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// Diff IDs of the layers that are not marked empty in history (all of `rootfs.diff_ids`).
    pub fn diff_ids(&self) -> &[Digest] {
        &self.rootfs.diff_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_fixed_order_without_absent_fields() {
        let cfg = ImageConfig {
            created: Some("1970-01-01T00:00:00Z".into()),
            author: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            config: Some(RunConfig {
                env: Some(vec!["B=2".into(), "A=1".into()]),
                cmd: Some(vec!["sh".into()]),
                labels: Some(BTreeMap::from([
                    ("z".into(), "1".into()),
                    ("a".into(), "2".into()),
                ])),
                ..RunConfig::default()
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![Digest::sha256_of(b"")],
            },
            history: vec![],
        };
        let json = serde_json::to_string(&cfg).expect("json");
        assert_eq!(
            json,
            r#"{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"Env":["B=2","A=1"],"Cmd":["sh"],"Labels":{"a":"2","z":"1"}},"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#
        );
        let back: ImageConfig = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, cfg);
    }
}
