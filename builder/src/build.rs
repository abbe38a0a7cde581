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
use kiln_images::oci::layout::LayoutWriter;
use kiln_images::{BlobStore, ImageSpec, Layer};
use kiln_layers::{Compression, Entry, FileTree, LayerOptions};
use serde::{Deserialize, Serialize};

use crate::components::{calico::archive_name, Rendered, IMAGES_DIR};
use crate::sources::{BaseSource, PresenceError, Resolved};
use kiln_model::plan::{Plan, Profile};

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
    #[error(transparent)]
    Presence(#[from] PresenceError),
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
    /// Per host: `identity/HOST.tar`, the identity tree placed on the role image (through
    /// the base's symlinks, keeping the base's directory owners).
    #[serde(default)]
    pub identity: Vec<IdentityReport>,
}

/// One host's identity archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityReport {
    pub host: String,
    pub profile: String,
    /// Path under the output directory.
    pub path: String,
    pub sha256: String,
    /// The files it holds, as placed on the image.
    pub files: Vec<String>,
}

/// Builds every image of the plan into `opts.dist` (swapped in only when complete).
pub fn build(
    plan: &Plan,
    rendered: &Rendered,
    resolved: &Resolved,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, BuildError> {
    let staging = staging_dir(&opts.dist)?;
    let result = build_into(plan, rendered, resolved, opts, &staging, progress);
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
    resolved: &Resolved,
    opts: &BuildOptions,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, BuildError> {
    let epoch = opts.source_date_epoch;
    let mut layout = LayoutWriter::create(out.join("oci"))?;
    let store = BlobStore::open(out.join("oci/blobs"))?;

    // Layers are compressed once each (in parallel) and referenced by index: a tree that
    // several profiles share becomes one blob.
    let mut base_layers: Vec<(String, Layer)> = Vec::new();
    let mut base_tree = FileTree::new();
    let mut base_own: Option<&FileTree> = None;
    match &resolved.base {
        Some(BaseSource::Image(img)) => {
            progress(&format!("base {}", img.reference));
            for l in &img.image.layers {
                store.copy_from(&img.store, &l.digest)?;
                base_layers.push(("base".into(), l.clone()));
            }
            base_tree = flatten(&store, &img.image.layers)?;
        }
        Some(BaseSource::Tree(tree)) => {
            base_own = Some(tree);
            base_tree = metadata_only(tree);
        }
        Some(base @ BaseSource::Tarball(path)) => {
            // A root filesystem tarball is streamed into its layer as it is, with all
            // compression threads, before the smaller layers.
            progress(&format!("base layer from {}", path.display()));
            let layer_opts = LayerOptions {
                source_date_epoch: epoch,
                compression: opts.compression,
                threads: opts.threads,
            };
            let file =
                fs::File::open(path).map_err(io_err(format!("reading {}", path.display())))?;
            let b = kiln_layers::write_tar_stream_to_dir(
                io::BufReader::new(file),
                &layer_opts,
                &out.join("oci"),
            )?;
            base_layers.push((
                "base".into(),
                Layer {
                    digest: b.digest.clone(),
                    diff_id: b.diff_id.clone(),
                    size: b.size,
                    media_type: b.media_type.to_string(),
                },
            ));
            base_tree = base
                .metadata_tree()
                .map_err(|e| BuildError::Source(e.to_string()))?;
        }
        None => {}
    }

    // The container images the units run, baked into the profiles that load them.
    let mut baked = Vec::new();
    for (component, img) in &resolved.images {
        let Some(runs_as) = crate::components::images(plan)
            .into_iter()
            .find(|i| i.name == component)
            .map(|i| i.runs_as.to_string())
        else {
            continue;
        };
        progress(&format!("image {runs_as} from {}", img.reference));
        for d in std::iter::once(&img.image.manifest_descriptor.digest)
            .chain(std::iter::once(&img.image.config_descriptor.digest))
            .chain(img.image.layers.iter().map(|l| &l.digest))
        {
            store.copy_from(&img.store, d)?;
        }
        baked.push((component.clone(), runs_as, img.image.clone()));
    }
    let images_tree = if baked.is_empty() {
        None
    } else {
        let mut t = FileTree::new();
        for (_, runs_as, image) in &baked {
            let archive = ArchiveImage {
                manifest: image.manifest_descriptor.clone(),
                repo_tags: vec![runs_as.clone()],
            };
            let bytes = write_docker_archive(Vec::new(), &store, &[archive], epoch as i64)?;
            t.insert(
                &format!("{IMAGES_DIR}/{}", archive_name(runs_as)),
                Entry::file(bytes, 0o644),
            )
            .map_err(|e| BuildError::Source(e.to_string()))?;
        }
        Some(place(&t, &base_tree)?)
    };
    // Files go where the base keeps them: through its symlinks (merged /usr, Debian's
    // alternatives), never replacing a symlink with a directory.
    let placed_sources: BTreeMap<&str, FileTree> = resolved
        .trees
        .iter()
        .map(|(c, t)| Ok((c.as_str(), place(t, &base_tree)?)))
        .collect::<Result<_, BuildError>>()?;
    let placed_config: Vec<Vec<(&str, FileTree)>> = plan
        .profiles
        .iter()
        .map(|p| {
            rendered
                .layers
                .get(&p.name)
                .into_iter()
                .flatten()
                .map(|(c, t)| Ok((*c, place(t, &base_tree)?)))
                .collect::<Result<Vec<_>, BuildError>>()
        })
        .collect::<Result<_, BuildError>>()?;

    // Layers are compressed once each (in parallel) and referenced by index: a tree that
    // several profiles share becomes one blob. Trees are borrowed, not copied: a base tree
    // can be gigabytes.
    let mut unique: Vec<(String, &FileTree)> = Vec::new();
    let base_index = base_own.map(|t| {
        unique.push(("base".into(), t));
        unique.len() - 1
    });
    let images_index = images_tree.as_ref().map(|t| {
        unique.push(("images".into(), t));
        unique.len() - 1
    });
    let source_index: BTreeMap<&str, usize> = placed_sources
        .iter()
        .map(|(component, tree)| {
            unique.push((format!("{component} (sources)"), tree));
            (*component, unique.len() - 1)
        })
        .collect();

    // Per profile: base, the sources of the components it runs, its rendered component
    // trees, the baked images.
    let mut plans: Vec<Vec<usize>> = Vec::new();
    for (profile, config) in plan.profiles.iter().zip(&placed_config) {
        let mut seq: Vec<usize> = base_index.into_iter().collect();
        for (component, idx) in &source_index {
            if uses(plan, profile, component) {
                seq.push(*idx);
            }
        }
        for (component, tree) in config {
            seq.push(unique.len());
            unique.push((format!("{component} (config)"), tree));
        }
        if profile
            .services
            .iter()
            .any(|s| s.unit == crate::components::LOAD_UNIT)
        {
            seq.extend(images_index);
        }
        plans.push(seq);
    }
    let layer_opts = LayerOptions {
        source_date_epoch: epoch,
        compression: opts.compression,
        threads: opts.threads,
    };
    progress(&format!("writing {} layer(s)", unique.len()));
    let refs: Vec<&FileTree> = unique.iter().map(|(_, t)| *t).collect();
    let blobs = kiln_layers::compress_layers_parallel(&refs, &layer_opts, &out.join("oci"))?;

    let mut report = BuildReport {
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        cluster: plan.cluster.to_string(),
        spec_sha256: plan.spec_sha256.clone(),
        source_date_epoch: epoch,
        images: Vec::new(),
        identity: Vec::new(),
    };
    let im = &plan.images;
    let prefix = im.prefix.as_str();
    let tags: Vec<String> = im.tags.iter().map(ToString::to_string).collect();
    let has_base = resolved.base.is_some();
    for (profile, seq) in plan.profiles.iter().zip(&plans) {
        let mut layers = base_layers.clone();
        let mut rootfs = base_tree.clone();
        for &i in seq {
            let (label, tree) = &unique[i];
            if Some(i) != base_index {
                rootfs
                    .overlay(&metadata_only(tree))
                    .map_err(|e| BuildError::Source(e.to_string()))?;
            }
            let b = &blobs[i];
            layers.push((
                label.clone(),
                Layer {
                    digest: b.digest.clone(),
                    diff_id: b.diff_id.clone(),
                    size: b.size,
                    media_type: b.media_type.to_string(),
                },
            ));
        }
        let no_units = FileTree::new();
        let units = rendered.profiles.get(&profile.name).unwrap_or(&no_units);
        crate::sources::presence::check_presence_of_units(plan, profile, &rootfs, units)?;
        check_artifacts(plan, profile, &rootfs)?;
        let reference = format!("{}-{}", plan.cluster, profile.name);
        let repository = format!("{prefix}/{reference}");
        let mut spec = ImageSpec::new(
            &repository,
            &tags[0],
            layers.iter().map(|(_, l)| l.clone()).collect(),
            epoch as i64,
        );
        spec.history = layers
            .iter()
            .map(|(label, _)| format!("kiln: {label}"))
            .collect();
        spec.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
        if has_base {
            spec.cmd = Some(vec!["/sbin/init".into()]);
        }
        spec.labels = labels(
            plan,
            &profile.name,
            has_base.then_some(plan.base.image.as_str()),
        );
        progress(&format!("image {repository}:{}", tags[0]));
        let written = layout.add_image(&spec, &store, Some(&reference))?;
        report.images.push(ImageReport {
            reference: reference.clone(),
            kind: "role".into(),
            of: profile.name.clone(),
            push_name: reference.clone(),
            repository,
            tags: tags.clone(),
            manifest_digest: written.manifest.digest.clone(),
            manifest_media_type: written.manifest.media_type.clone(),
            config_digest: written.config.digest.clone(),
            layers: layers
                .iter()
                .map(|(label, l)| LayerReport {
                    from: label.clone(),
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    size: l.size,
                })
                .collect(),
        });
    }
    for (component, runs_as, image) in &baked {
        layout.add_manifest(image.manifest_descriptor.clone(), component)?;
        let (repository, tag) = split_tag(runs_as);
        // Drop the cluster registry and its prefix: `kiln push --to` supplies them again.
        let mut push_name = repository;
        if let Some(r) = &plan.registry {
            let own = format!("{}/{}/", r.address, r.prefix);
            push_name = push_name.strip_prefix(own.as_str()).unwrap_or(push_name);
        }
        report.images.push(ImageReport {
            reference: component.clone(),
            kind: "component".into(),
            of: runs_as.clone(),
            push_name: push_name.to_string(),
            repository: repository.to_string(),
            tags: vec![tag.to_string()],
            manifest_digest: image.manifest_descriptor.digest.clone(),
            manifest_media_type: image.manifest_descriptor.media_type.clone(),
            config_digest: image.config_descriptor.digest.clone(),
            layers: image
                .layers
                .iter()
                .map(|l| LayerReport {
                    from: runs_as.clone(),
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
        progress(&format!("archive {}.tar", img.reference));
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
    report.identity = write_identities(plan, rendered, &base_tree, epoch, out)?;
    let mut json =
        serde_json::to_string_pretty(&report).map_err(|e| BuildError::Source(e.to_string()))?;
    json.push('\n');
    fs::write(out.join(REPORT), json).map_err(io_err("writing build-report.json"))?;
    write_sha256sums(out)?;
    Ok(report)
}

/// Writes each host's identity tree, placed on the base, as a deterministic tar under
/// `identity/`: what boot-time delivery (cloud-init, kickstart) writes onto the role image.
fn write_identities(
    plan: &Plan,
    rendered: &Rendered,
    base: &FileTree,
    epoch: u64,
    out: &Path,
) -> Result<Vec<IdentityReport>, BuildError> {
    let dir = out.join("identity");
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut reports = Vec::new();
    for h in &plan.hosts {
        let Some(tree) = rendered.hosts.get(h.name.as_str()) else {
            continue;
        };
        let placed = place(tree, base)?;
        let mut bytes = Vec::new();
        kiln_layers::write_tar(&placed, epoch, &mut bytes)?;
        let rel = format!("identity/{}.tar", h.name);
        fs::write(out.join(&rel), &bytes).map_err(io_err(format!("writing {rel}")))?;
        reports.push(IdentityReport {
            host: h.name.to_string(),
            profile: h.profile.clone(),
            path: rel,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            files: placed
                .iter()
                .filter(|(_, e)| e.kind != kiln_layers::EntryKind::Dir)
                .map(|(p, _)| p.to_string())
                .collect(),
        });
    }
    Ok(reports)
}

/// `tree` as written on top of `base` (see [`FileTree::placed_on`]).
fn place(tree: &FileTree, base: &FileTree) -> Result<FileTree, BuildError> {
    if base.is_empty() {
        return Ok(tree.clone());
    }
    tree.placed_on(base)
        .map_err(|e| BuildError::Source(e.to_string()))
}

/// Whether `profile` gets the files of the source set named `set`.
fn uses(plan: &Plan, profile: &Profile, set: &str) -> bool {
    crate::components::source_sets(plan)
        .iter()
        .any(|s| s.name == set && s.profiles.contains(&profile.name.as_str()))
}

/// The root filesystem of `layers` (OCI whiteouts applied, hostile entries refused), without
/// file contents: checks need paths, kinds, modes and link targets, and a base of a few GB
/// must not sit in memory.
fn flatten(store: &BlobStore, layers: &[Layer]) -> Result<FileTree, BuildError> {
    let mut tree = FileTree::new();
    for l in layers {
        let blob = store.open_blob(&l.digest)?;
        kiln_layers::apply_layer_metadata(&mut tree, std::io::BufReader::new(blob))?;
    }
    Ok(tree)
}

/// A copy of `tree` with every file emptied.
fn metadata_only(tree: &FileTree) -> FileTree {
    let mut out = FileTree::new();
    for (path, e) in tree.iter() {
        let mut e = e.clone();
        if let kiln_layers::EntryKind::File(data) = &mut e.kind {
            *data = Vec::new();
        }
        // Paths come from a valid tree, so replacing cannot fail.
        let _ = out.replace(path, e);
    }
    out
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
        ("io.kiln.spec-sha256".to_string(), plan.spec_sha256.clone()),
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

/// Every file the profile's units need and no rendering provides (CNI plugins, baked images)
/// must be in the image: base, sources and rendered layers together.
fn check_artifacts(plan: &Plan, profile: &Profile, rootfs: &FileTree) -> Result<(), BuildError> {
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
