//! `kiln build`: rendered trees (+ base image, + baked component images) → OCI layout,
//! docker-archives, SHA256SUMS and a build report under `dist/`, published atomically.
//!
//! Layout of `dist/`:
//! - `oci/`: one OCI image layout; refs `CLUSTER-PROFILE` (role images) and the baked
//!   component images (`calico-node`, `calico-libnetwork`).
//! - `archives/REF.tar`: a docker-archive per image (`docker load -i`).
//! - `build-report.json`: every image with its name, tags, digests and layers.
//! - `SHA256SUMS`: every file above.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_images::archive::{write_docker_archive, write_docker_archive_file, ArchiveImage};
use kiln_images::oci::layout::{LayoutWriter, ResolvedImage};
use kiln_images::{BlobStore, ImageSpec, Layer};
use kiln_layers::{Compression, Entry, FileTree, LayerOptions};
use serde::{Deserialize, Serialize};

use crate::components::{calico::archive_name, Rendered, IMAGES_DIR};
use crate::imagesrc;
use crate::plan::Plan;

/// The build report; its presence marks a directory as kiln build output that a later build may
/// replace.
pub const REPORT: &str = "build-report.json";

/// Default `SOURCE_DATE_EPOCH` when the environment sets none: 1980-01-01T00:00:00Z.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Layers(#[from] kiln_layers::Error),
    #[error(transparent)]
    Images(#[from] kiln_images::Error),
    #[error("{action}: {source}")]
    Io { action: String, source: io::Error },
    #[error("{0}")]
    Source(String),
    #[error(
        "profile {profile}: {} file(s) the units need are in no source:\n{}",
        missing.len(),
        missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n")
    )]
    Missing {
        profile: String,
        missing: Vec<String>,
    },
}

fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let action = action.into();
    move |source| BuildError::Io { action, source }
}

/// What a build needs besides the plan.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Final output directory (`dist`).
    pub dist: PathBuf,
    /// Directory of the spec: relative `oci:`/`docker-archive:` sources are resolved here.
    pub spec_dir: PathBuf,
    pub source_date_epoch: u64,
    pub compression: Compression,
    /// Compression threads per layer (0 = all cores).
    pub threads: usize,
}

/// One layer of a built image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerReport {
    /// `base`, or the component whose files it holds.
    pub from: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

/// One built image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageReport {
    /// Ref in `dist/oci` and file name in `dist/archives`.
    pub reference: String,
    /// `role` or `component`.
    pub kind: String,
    /// Profile (role images) or the image it repackages (component images).
    pub of: String,
    /// Repository name, without registry (`kiln/demo-master-agent`).
    pub repository: String,
    /// Name below the destination prefix of `kiln push --to REGISTRY/PREFIX`
    /// (`demo-master-agent`, `calico/node`).
    pub push_name: String,
    pub tags: Vec<String>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub config_digest: String,
    pub layers: Vec<LayerReport>,
}

/// `dist/build-report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub kiln_version: String,
    pub cluster: String,
    pub spec_sha256: String,
    pub source_date_epoch: u64,
    pub images: Vec<ImageReport>,
}

/// A container image the role images bake in, as loaded from its source.
struct Baked {
    /// The reference units run (`calico/node:v2.6.12`, or registry-qualified).
    image: String,
    /// Ref in the layout (`calico-node`).
    reference: String,
    resolved: ResolvedImage,
}

/// Builds every image of the plan into `opts.dist` (swapped in only when complete).
pub fn build(
    plan: &Plan,
    rendered: &Rendered,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, BuildError> {
    let staging = staging_dir(&opts.dist)?;
    let result = build_into(plan, rendered, opts, &staging, progress);
    match result {
        Ok(report) => {
            crate::treedir::swap_in(&staging, &opts.dist)
                .map_err(io_err(format!("publishing {}", opts.dist.display())))?;
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn staging_dir(dist: &Path) -> Result<PathBuf, BuildError> {
    let staging = crate::treedir::stage(dist, REPORT, "build")
        .map_err(io_err(format!("preparing {}", dist.display())))?;
    fs::create_dir_all(staging.join("archives"))
        .map_err(io_err(format!("creating {}", staging.display())))?;
    Ok(staging)
}

fn build_into(
    plan: &Plan,
    rendered: &Rendered,
    opts: &BuildOptions,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, BuildError> {
    let epoch = opts.source_date_epoch;
    let mut layout = LayoutWriter::create(out.join("oci"))?;
    let store = BlobStore::open(out.join("oci/blobs"))?;

    // The base and the baked component images, from their sources.
    let base = match &plan.spec.base.source.as_ref().and_then(|s| s.oci.clone()) {
        Some(src) => {
            progress(&format!("importing base {src}"));
            Some(imagesrc::load(src, &opts.spec_dir, &store).map_err(BuildError::Source)?)
        }
        None => None,
    };
    let base_tree = match &base {
        Some(b) => imagesrc::flatten(&store, &b.layers).map_err(BuildError::Source)?,
        None => FileTree::new(),
    };
    let baked = baked_images(plan, opts, &store, progress)?;

    // Component layers of every profile, compressed in parallel. Identical trees give
    // identical blobs, stored once.
    let mut trees: Vec<(String, &'static str, FileTree)> = Vec::new();
    for (profile, parts) in &rendered.layers {
        for (component, tree) in parts {
            trees.push((profile.clone(), component, tree.clone()));
        }
        let loads = rendered.profiles.get(profile).and_then(|t| {
            t.get(&format!(
                "/etc/systemd/system/{}",
                crate::components::LOAD_UNIT
            ))
        });
        if loads.is_some() && !baked.is_empty() {
            let mut t = FileTree::new();
            for b in &baked {
                let bytes = archive_bytes(&store, b, epoch)?;
                t.insert(
                    &format!("{IMAGES_DIR}/{}", archive_name(&b.image)),
                    Entry::file(bytes, 0o644),
                )
                .map_err(|e| BuildError::Source(e.to_string()))?;
            }
            trees.push((profile.clone(), "images", t));
        }
    }
    let layer_opts = LayerOptions {
        source_date_epoch: epoch,
        compression: opts.compression,
        threads: opts.threads,
    };
    progress(&format!("writing {} layer(s)", trees.len()));
    let refs: Vec<&FileTree> = trees.iter().map(|(_, _, t)| t).collect();
    let blobs = kiln_layers::compress_layers_parallel(&refs, &layer_opts, &out.join("oci"))?;

    let mut report = BuildReport {
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        cluster: plan.cluster.clone(),
        spec_sha256: plan.spec_digest.clone(),
        source_date_epoch: epoch,
        images: Vec::new(),
    };
    let im = &plan.spec.images;
    let prefix = im.prefix.trim_matches('/');
    for profile in &plan.profiles {
        let mut layers: Vec<Layer> = Vec::new();
        let mut layer_reports = Vec::new();
        let mut history = Vec::new();
        if let Some(b) = &base {
            for l in &b.layers {
                layers.push(l.clone());
                history.push("base image layer".to_string());
                layer_reports.push(LayerReport {
                    from: "base".into(),
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    size: l.size,
                });
            }
        }
        let mut rootfs = base_tree.clone();
        for ((p, component, tree), blob) in trees.iter().zip(&blobs) {
            if *p != profile.name {
                continue;
            }
            rootfs
                .overlay(tree)
                .map_err(|e| BuildError::Source(e.to_string()))?;
            layers.push(Layer {
                digest: blob.digest.clone(),
                diff_id: blob.diff_id.clone(),
                size: blob.size,
                media_type: blob.media_type.to_string(),
            });
            history.push(format!("kiln component {component}"));
            layer_reports.push(LayerReport {
                from: component.to_string(),
                digest: blob.digest.clone(),
                diff_id: blob.diff_id.clone(),
                size: blob.size,
            });
        }
        check_artifacts(plan, profile, &rootfs)?;
        let reference = format!("{}-{}", plan.cluster, profile.name);
        let repository = format!("{prefix}/{reference}");
        let mut spec = ImageSpec::new(&repository, &im.tags[0], layers, epoch as i64);
        spec.history = history;
        spec.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
        if base.is_some() {
            spec.cmd = Some(vec!["/sbin/init".into()]);
        }
        spec.labels = labels(
            plan,
            &profile.name,
            base.as_ref().map(|_| plan.spec.base.image.as_str()),
        );
        progress(&format!("image {repository}:{}", im.tags[0]));
        let written = layout.add_image(&spec, &store, Some(&reference))?;
        report.images.push(ImageReport {
            reference: reference.clone(),
            kind: "role".into(),
            of: profile.name.clone(),
            push_name: reference.clone(),
            repository,
            tags: im.tags.clone(),
            manifest_digest: written.manifest.digest.clone(),
            manifest_media_type: written.manifest.media_type.clone(),
            config_digest: written.config.digest.clone(),
            layers: layer_reports,
        });
    }
    for b in &baked {
        layout.add_manifest(b.resolved.manifest_descriptor.clone(), &b.reference)?;
        let (repository, tag) = split_tag(&b.image);
        // Drop the cluster registry and its prefix: `kiln push --to` supplies them again.
        let mut push_name = repository;
        if let Some(r) = &plan.spec.registry {
            let own = format!("{}/{}/", r.address, r.prefix.trim_matches('/'));
            push_name = push_name.strip_prefix(own.as_str()).unwrap_or(push_name);
        }
        report.images.push(ImageReport {
            reference: b.reference.clone(),
            kind: "component".into(),
            of: b.image.clone(),
            push_name: push_name.to_string(),
            repository: repository.to_string(),
            tags: vec![tag.to_string()],
            manifest_digest: b.resolved.manifest_descriptor.digest.clone(),
            manifest_media_type: b.resolved.manifest_descriptor.media_type.clone(),
            config_digest: b.resolved.config_descriptor.digest.clone(),
            layers: b
                .resolved
                .layers
                .iter()
                .map(|l| LayerReport {
                    from: b.image.clone(),
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    size: l.size,
                })
                .collect(),
        });
    }
    layout.finish()?;

    for img in &report.images {
        let manifest = kiln_images::Descriptor::new(
            &img.manifest_media_type,
            &img.manifest_digest,
            store.size(&img.manifest_digest)?,
        );
        let repo_tags = img
            .tags
            .iter()
            .map(|t| format!("{}:{t}", img.repository))
            .collect();
        let path = out.join("archives").join(format!("{}.tar", img.reference));
        progress(&format!(
            "archive {}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        write_docker_archive_file(
            &path,
            &store,
            &[ArchiveImage {
                manifest,
                repo_tags,
            }],
            epoch as i64,
        )?;
    }
    let mut json =
        serde_json::to_string_pretty(&report).map_err(|e| BuildError::Source(e.to_string()))?;
    json.push('\n');
    fs::write(out.join(REPORT), json).map_err(io_err("writing build-report.json"))?;
    write_sha256sums(out)?;
    Ok(report)
}

fn labels(plan: &Plan, profile: &str, base: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("{} {profile}", plan.cluster),
        ),
        (
            "io.kiln.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("io.kiln.spec-sha256".to_string(), plan.spec_digest.clone()),
        ("io.kiln.profile".to_string(), profile.to_string()),
    ]);
    if let Some(b) = base {
        l.insert("org.opencontainers.image.base.name".into(), b.into());
    }
    let sources: Vec<String> = crate::components::source_list(plan);
    l.insert(
        "io.kiln.sources".into(),
        serde_json::to_string(&sources).unwrap_or_default(),
    );
    l
}

/// Loads every container image the units run that has an `oci` source.
fn baked_images(
    plan: &Plan,
    opts: &BuildOptions,
    store: &BlobStore,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Baked>, BuildError> {
    let c = &plan.spec.calico;
    let d = &plan.derived;
    let mut wanted: Vec<(&str, Option<&crate::spec::Source>, String)> = Vec::new();
    if c.node.enabled && plan.spec.docker.enabled {
        wanted.push((
            "calico-node",
            c.node.source.as_ref(),
            d.calico_node_image.clone(),
        ));
    }
    if let crate::plan::Libnetwork::Container(img) = &d.libnetwork {
        wanted.push((
            "calico-libnetwork",
            c.libnetwork.source.as_ref(),
            img.clone(),
        ));
    }
    let mut out = Vec::new();
    for (reference, source, image) in wanted {
        let Some(src) = source.and_then(|s| s.oci.as_deref()) else {
            continue;
        };
        progress(&format!("importing {image} from {src}"));
        let resolved = imagesrc::load(src, &opts.spec_dir, store).map_err(BuildError::Source)?;
        out.push(Baked {
            image,
            reference: reference.to_string(),
            resolved,
        });
    }
    Ok(out)
}

/// The docker-archive of a baked image, tagged as the units run it.
fn archive_bytes(store: &BlobStore, b: &Baked, epoch: u64) -> Result<Vec<u8>, BuildError> {
    let img = ArchiveImage {
        manifest: b.resolved.manifest_descriptor.clone(),
        repo_tags: vec![b.image.clone()],
    };
    Ok(write_docker_archive(
        Vec::new(),
        store,
        &[img],
        epoch as i64,
    )?)
}

/// Every file the profile's units need and no rendering provides (CNI plugins, baked images)
/// must be in the image: base, sources and rendered layers together.
fn check_artifacts(
    plan: &Plan,
    profile: &crate::plan::Profile,
    rootfs: &FileTree,
) -> Result<(), BuildError> {
    let missing: Vec<String> = crate::components::artifacts(plan, profile)
        .into_iter()
        .filter(|a| rootfs.get(&a.path).is_none())
        .map(|a| {
            format!(
                "{} ({}): give the {} component a source",
                a.path, a.what, a.component
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Missing {
            profile: profile.name.clone(),
            missing,
        })
    }
}

/// `SHA256SUMS` of every regular file under `root` (sorted, `sha256sum -c` format).
fn write_sha256sums(root: &Path) -> Result<(), BuildError> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))? {
            let p = e.map_err(io_err("listing dist"))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                files.push(p);
            }
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        let mut h = Sha256::new();
        let mut file = fs::File::open(&f).map_err(io_err(format!("reading {rel}")))?;
        io::copy(&mut file, &mut h).map_err(io_err(format!("reading {rel}")))?;
        lines.push(format!("{}  {rel}\n", hex::encode(h.finalize())));
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    fs::write(root.join("SHA256SUMS"), lines.concat()).map_err(io_err("writing SHA256SUMS"))
}

/// `name:tag` → (`name`, `tag`); `latest` when there is no tag (a `:` in a registry port is
/// not a tag).
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}
