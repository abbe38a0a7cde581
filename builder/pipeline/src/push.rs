//! `kiln push DIST --to REGISTRY/PREFIX`: every image of a build to a registry.

use std::path::Path;

use kiln_oci::registry::{push, Client, ClientOptions, Progress, PushOptions, PushReport};
use kiln_oci::{BlobStore, Descriptor};

use crate::stages::BuildReport;

/// Errors of a push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("reading {path}: {source} (is it the output of `kiln build`?)")]
    Report {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("destination {0:?} is not REGISTRY/PREFIX (e.g. 127.0.0.1:5000/kiln)")]
    Destination(String),
    #[error("pushing {image}: {source}")]
    Push {
        image: String,
        source: kiln_oci::Error,
    },
}

/// What to push where.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// Repository prefix (may be empty).
    pub prefix: String,
    /// Plain HTTP.
    pub insecure: bool,
}

impl PushTarget {
    /// Parses `REGISTRY/PREFIX` (`127.0.0.1:5000/kiln`, `registry.example.com`).
    pub fn parse(to: &str, insecure: bool) -> Result<Self, PushError> {
        let to = to.trim_end_matches('/');
        let (registry, prefix) = to.split_once('/').unwrap_or((to, ""));
        if registry.is_empty() || registry.contains(char::is_whitespace) {
            return Err(PushError::Destination(to.into()));
        }
        Ok(PushTarget {
            registry: registry.into(),
            prefix: prefix.into(),
            insecure,
        })
    }
}

/// One pushed image.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `REGISTRY/REPO:TAG` of the primary tag.
    pub reference: String,
    pub report: PushReport,
}

/// Pushes every image in `dist` (as listed in its `build-report.json`). Layers shared with an
/// image pushed before are mounted from its repository where the registry allows.
pub fn push_dist(
    dist: &Path,
    target: &PushTarget,
    progress: &mut dyn Progress,
) -> Result<Vec<Pushed>, PushError> {
    let dist = crate::stages::Dist::new(dist);
    let report_path = dist.report();
    let report: BuildReport = std::fs::read(&report_path)
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| Box::new(e) as _))
        .map_err(|source| PushError::Report {
            path: report_path.display().to_string(),
            source,
        })?;
    let store = BlobStore::open(dist.blobs()).map_err(|e| PushError::Report {
        path: dist.oci().display().to_string(),
        source: Box::new(e),
    })?;
    let mut opts = ClientOptions::new(&target.registry);
    opts.insecure = target.insecure;
    let client = Client::new(opts).map_err(|source| PushError::Push {
        image: target.registry.clone(),
        source,
    })?;
    let mut out = Vec::new();
    let mut previous: Option<String> = None;
    for img in &report.images {
        let repository = if target.prefix.is_empty() {
            img.push_name.clone()
        } else {
            format!("{}/{}", target.prefix, img.push_name)
        };
        let size = store
            .size(&img.manifest_digest)
            .map_err(|source| PushError::Push {
                image: repository.clone(),
                source,
            })?;
        let top = Descriptor::new(&img.manifest_media_type, img.manifest_digest, size);
        let tags: Vec<&str> = img.tags.iter().map(String::as_str).collect();
        let mut po = PushOptions::new(&repository, &tags);
        po.mount_from = previous.clone();
        let r = push(&client, &store, &top, &po, progress).map_err(|source| PushError::Push {
            image: repository.clone(),
            source,
        })?;
        out.push(Pushed {
            reference: format!(
                "{}/{repository}:{}",
                target.registry,
                tags.first().copied().unwrap_or("latest")
            ),
            report: r,
        });
        previous = Some(repository);
    }
    Ok(out)
}
