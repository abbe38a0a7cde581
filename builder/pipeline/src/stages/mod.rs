//! `kiln build`: rendered trees (+ base image, + baked component images) → OCI layout,
//! identity archives, SHA256SUMS and a build report under `dist/`, published atomically.
//!
//! Layout of `dist/` ([`Dist`]):
//! - `oci/`: one OCI image layout; refs `CLUSTER-PROFILE` (role images) and the baked
//!   component images (`calico-node`, `calico-libnetwork`). Every blob is stored once.
//! - `archives/REF.tar`: a docker-archive per image, only with `--archives`.
//! - `identity/HOST.tar`: each host's identity tree placed on its image.
//! - `sbom/REF.spdx.json`: an SPDX 2.3 document per role image ([`crate::sbom`]).
//! - `cloud-init/HOST/{meta-data,user-data,network-config}` and `cloud-init/HOST-cidata.iso`:
//!   each host's NoCloud seed carrying that identity (mode 0600).
//! - `pxe/`: with `[provision]`, the PXE tree ([`pxe`]): `boot.ipxe`, per MAC an iPXE
//!   script, a PXELINUX and two GRUB configs, and `sha256/HEX` links to the boot files.
//! - `kickstart/HOST.ks`: with `[kickstart]`, each host's kickstart.
//! - `build-report.json`: every image with its name, tags, digests and layers.
//! - `SHA256SUMS`: every file above.
//!
//! Seeds, kickstarts and PXE configs are written by [`provision::write`], incrementally: the
//! previous output's files are hard-linked into the staging directory first, and only what
//! changed is written again (a changed identity rewrites that host's files only).
//!
//! The build runs in stages (`role_images`, `bootable`, `outputs`) over one context; layers come from a
//! [`layer_cache::LayerCache`] when their inputs did not change, and a build whose inputs
//! (spec, sources, options, kiln version) equal those of the output it would replace does
//! nothing and says so.

pub mod boot_manifest;
mod bootable;
mod kickstart;
pub mod layer_cache;
mod outputs;
pub mod provision;
pub mod pxe;
mod role_images;
mod seed;

pub use bootable::BootableReport;
pub use kickstart::{render_host as render_kickstart, KickstartReport};
pub use kiln_dist::{Dist, REPORT};
pub use seed::identity_files;

use std::fs;
use std::path::{Path, PathBuf};

use kiln_layers::{Compression, Digest, FileTree, IoError};
use kiln_model::plan::Plan;
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::BlobStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::components::Rendered;
use crate::sources::{PresenceError, Resolved};
use layer_cache::LayerCache;

/// Runs one stage of the build inside a `stage` tracing span: with `-v` the CLI prints each
/// stage as it closes, with the time it took.
fn stage<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let _span = tracing::info_span!("stage", name).entered();
    f()
}

/// Default `SOURCE_DATE_EPOCH` when the environment sets none: 1980-01-01T00:00:00Z.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Layers(#[from] kiln_layers::Error),
    #[error(transparent)]
    Images(#[from] kiln_oci::Error),
    /// Making a role's bootable outputs failed.
    #[error(transparent)]
    Bootable(#[from] kiln_bootable::Error),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}")]
    Source(String),
    /// A layer of the base cannot be read, or a member of it is refused.
    #[error("reading {what}: {source}{}", crate::sources::base_hint(.source))]
    Base {
        /// The base and its layer (`base image oci:base-oci:base, layer sha256:…`).
        what: String,
        #[source]
        source: kiln_layers::Error,
    },
    #[error(transparent)]
    Presence(#[from] PresenceError),
    #[error(transparent)]
    Publish(#[from] crate::publish::Error),
    #[error(transparent)]
    Sbom(#[from] crate::sbom::Error),
    #[error(transparent)]
    Seed(#[from] kiln_provision::Error),
    #[error(
        "`{tool}` is needed: {why}; install the Debian package with `apt-get install {package}`"
    )]
    Tool {
        tool: &'static str,
        package: &'static str,
        why: &'static str,
    },
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

/// What a build needs besides the plan.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Final output directory (`dist`).
    pub dist: PathBuf,
    pub source_date_epoch: u64,
    pub compression: Compression,
    /// Compression threads per layer (0 = all cores).
    pub threads: usize,
    /// Also write a docker-archive per image under `archives/` (each blob again).
    pub archives: bool,
    /// Where compressed layers are cached across builds (`None`: no cache).
    pub layer_cache: Option<PathBuf>,
    /// When another build is writing `dist`: wait for it to finish (then this build sees its
    /// output), or fail at once with [`crate::publish::Error::Busy`].
    pub wait_for_output: bool,
    /// The keys of `[boot.secure_boot]`, opened ([`crate::secure_boot::open`]); `None`: the
    /// UKIs are not signed.
    pub secure_boot: Option<crate::secure_boot::SecureBootFiles>,
}

/// One layer of a built image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerReport {
    /// `base`, or the component whose files it holds.
    pub from: String,
    pub digest: Digest,
    pub diff_id: Digest,
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
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    pub layers: Vec<LayerReport>,
}

/// `dist/build-report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub kiln_version: String,
    pub cluster: String,
    pub spec_sha256: String,
    pub source_date_epoch: u64,
    /// Digest of everything the output depends on: spec, sources, options, kiln version. A
    /// build with the same key finds nothing to do.
    #[serde(default)]
    pub build_key: String,
    /// Whether `archives/` was written.
    #[serde(default)]
    pub archives: bool,
    pub images: Vec<ImageReport>,
    /// Per host: `identity/HOST.tar`, the identity tree placed on the role image (through
    /// the base's symlinks, keeping the base's directory owners).
    #[serde(default)]
    pub identity: Vec<IdentityReport>,
    /// Per role image: `sbom/REF.spdx.json`, its SPDX 2.3 document.
    #[serde(default)]
    pub sbom: Vec<crate::sbom::SbomReport>,
    /// Per role image: its bootable outputs under `boot/PROFILE/` (when the plan has boot).
    #[serde(default)]
    pub boot: Vec<BootableReport>,
    /// Per host: `kickstart/HOST.ks` (when the plan has kickstarts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kickstart: Vec<KickstartReport>,
    /// Upstream components the plan left out (`--leave-out`), and why.
    #[serde(default)]
    pub left_out: Vec<LeftOutReport>,
}

/// A component left out of the build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeftOutReport {
    pub component: String,
    pub what: String,
    pub reason: String,
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
    /// cloud-init's `instance-id` in the host's seed (from the identity's digest).
    #[serde(default)]
    pub instance_id: String,
    /// `cloud-init/HOST-cidata.iso`, the NoCloud seed, under the output directory.
    #[serde(default)]
    pub seed_iso: String,
}

/// Builds every image of the plan into `opts.dist` (swapped in only when complete). The
/// output's lock is held throughout ([`crate::publish::OutputLock`]): builds of one output
/// run one after the other, never both publishing.
pub fn build(
    plan: &Plan,
    rendered: &Rendered,
    resolved: &Resolved,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, BuildError> {
    let started = std::time::SystemTime::now();
    let key = build_key(plan, rendered, resolved, opts);
    if !plan.hosts.is_empty() {
        seed::require_xorriso()?;
    }
    if plan.boot.is_some() && plan.provision.as_ref().is_some_and(|p| p.pxe) {
        pxe::require_loaders()?;
    }
    let _writing = crate::publish::OutputLock::acquire(&opts.dist, opts.wait_for_output, progress)?;
    // What builds that died while writing the layer cache left (a partial copy of a large
    // layer would fill the cache's file system for every later build).
    LayerCache::new(opts.layer_cache.clone()).remove_stale_partials(started);
    // Leftovers of a killed build first: one may hold the output to compare with.
    crate::publish::recover_output(&opts.dist)?;
    if let Some(report) = unchanged(&Dist::new(&opts.dist), &key) {
        record_use(plan, resolved, opts, &report);
        return Ok(Built {
            report,
            unchanged: true,
            layers_cached: 0,
            layers_compressed: 0,
        });
    }
    // Removed when dropped unpublished (a failed build); see `crate::publish`.
    let staging = crate::publish::Staging::new(&opts.dist, REPORT, "build")?;
    let built = build_into(
        plan,
        rendered,
        resolved,
        opts,
        staging.path(),
        key,
        progress,
    )?;
    staging.publish()?;
    record_use(plan, resolved, opts, &built.report);
    Ok(built)
}

/// The cache the build used: where its layer cache is (`CACHE/layers`).
pub fn cache_root(opts: &BuildOptions) -> Option<&Path> {
    opts.layer_cache.as_deref().and_then(Path::parent)
}

/// Records in the cache what this build into `opts.dist` used ([`crate::cache_prune`]): what
/// pruning must keep. A failure only weakens that protection, so it is a warning.
fn record_use(plan: &Plan, resolved: &Resolved, opts: &BuildOptions, report: &BuildReport) {
    let Some(cache) = cache_root(opts) else {
        return;
    };
    let mut digests: Vec<String> = resolved.lock.iter().map(|e| e.sha256.clone()).collect();
    if let Some(crate::sources::BaseSource::Tarball { sha256, .. }) = &resolved.base {
        digests.push(sha256.clone());
    }
    let base_image = match &resolved.base {
        Some(crate::sources::BaseSource::Image(img)) => Some(&img.image),
        _ => None,
    };
    for i in base_image
        .into_iter()
        .chain(resolved.images.values().map(|img| &img.image))
    {
        digests.push(i.manifest_descriptor.digest.hex());
        digests.push(i.config_descriptor.digest.hex());
        digests.extend(i.layers.iter().map(|l| l.digest.hex()));
    }
    for img in &report.images {
        digests.push(img.manifest_digest.hex());
        digests.push(img.config_digest.hex());
        digests.extend(img.layers.iter().map(|l| l.digest.hex()));
    }
    let boot = match &plan.boot {
        Some(b) => report
            .boot
            .iter()
            .filter_map(|r| {
                let img = report.images.iter().find(|i| i.reference == r.image)?;
                let profile = plan.profiles.iter().find(|p| p.name == r.profile)?;
                Some(bootable::cache_key(
                    &img.manifest_digest.to_string(),
                    profile,
                    b,
                ))
            })
            .collect(),
        None => Vec::new(),
    };
    let output = std::path::absolute(&opts.dist).unwrap_or_else(|_| opts.dist.clone());
    let record = crate::cache_prune::BuildRecord {
        output: output.to_string_lossy().into_owned(),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        boot,
        digests,
    };
    if let Err(e) = crate::cache_prune::record_build(cache, record) {
        tracing::warn!(
            "cache: could not record this build's use of {}: {e}",
            cache.display()
        );
    }
}

/// What [`build`] did. The layer counts are not in the report: the output must not depend on
/// what the cache held.
#[derive(Debug, Clone)]
pub struct Built {
    pub report: BuildReport,
    /// The output was already up to date: nothing was written.
    pub unchanged: bool,
    /// Layers taken from the layer cache instead of being compressed.
    pub layers_cached: usize,
    /// Layers compressed by this build.
    pub layers_compressed: usize,
}

/// Everything the output depends on, as one digest.
fn build_key(plan: &Plan, rendered: &Rendered, resolved: &Resolved, opts: &BuildOptions) -> String {
    let mut h = Sha256::new();
    // What kiln rendered (its templates may change without its version).
    for tree in rendered.profiles.values().chain(rendered.hosts.values()) {
        let _ = kiln_layers::write_tar(tree, 0, &mut h);
    }
    let mut part = |s: &str| {
        h.update(s.as_bytes());
        h.update(b"\n");
    };
    // 2: outputs gained sbom/ and cloud-init/; 3: both together (an older output is not
    // "unchanged").
    // 4: outputs gained boot/; 5: and boot/manifest.json; 6: and pxe/.
    part("kiln-build-key-6");
    part(env!("CARGO_PKG_VERSION"));
    part(&plan.spec_sha256);
    for e in &resolved.lock {
        part(&format!("{} {} {}", e.component, e.origin, e.sha256));
    }
    part(&format!("{:?}", opts.compression));
    part(&opts.source_date_epoch.to_string());
    part(&opts.archives.to_string());
    if let Some(sb) = &opts.secure_boot {
        part(&format!("secure-boot {}", sb.fingerprint()));
    }
    hex::encode(h.finalize())
}

/// The output a build replaces, whose provisioning files it reuses ([`provision::carry_over`]).
struct Previous {
    dist: Dist,
    /// Made by this kiln version under the same `SOURCE_DATE_EPOCH`: a seed volume whose
    /// seed files are unchanged is the same volume.
    same_isos: bool,
}

/// The report of the output in `dist`, if there is one.
fn previous_report(dist: &Dist) -> Option<BuildReport> {
    serde_json::from_str(&fs::read_to_string(dist.report()).ok()?).ok()
}

/// The existing report when `dist` holds a complete output built from the same inputs:
/// its report has `key` and every file `SHA256SUMS` lists is there with content (sizes are
/// checked, not contents: a full check is `sha256sum -c SHA256SUMS`).
fn unchanged(dist: &Dist, key: &str) -> Option<BuildReport> {
    let report = previous_report(dist)?;
    if report.build_key != key {
        return None;
    }
    let sums = fs::read_to_string(dist.sha256sums()).ok()?;
    let complete = sums.lines().all(|l| {
        l.get(66..)
            .is_some_and(|rel| dist.root().join(rel).is_file())
    });
    complete.then_some(report)
}

/// The stages, in order, into the staging directory `out`.
fn build_into(
    plan: &Plan,
    rendered: &Rendered,
    resolved: &Resolved,
    opts: &BuildOptions,
    out: &Path,
    build_key: String,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, BuildError> {
    // The output this build replaces, if any (not the staging directory `out`).
    let previous = previous_report(&Dist::new(&opts.dist)).map(|r| Previous {
        dist: Dist::new(&opts.dist),
        same_isos: r.kiln_version == env!("CARGO_PKG_VERSION")
            && r.source_date_epoch == opts.source_date_epoch,
    });
    let dist = Dist::new(out);
    let mut layout = LayoutWriter::create(dist.oci())?;
    let mut ctx = role_images::Ctx {
        plan,
        rendered,
        resolved,
        opts,
        store: BlobStore::open(dist.blobs())?,
        dist,
        cache: LayerCache::new(opts.layer_cache.clone()),
        progress,
    };
    let base = stage("ingest-base", || role_images::ingest_base(&mut ctx))?;
    let (baked, image_trees) = stage("bake-images", || role_images::bake_images(&mut ctx, &base))?;
    let placed = stage("place-files", || role_images::place_files(&ctx, &base))?;
    let lp = stage("plan-layers", || {
        role_images::plan_layers(&ctx, &base, &image_trees, &placed)
    });
    let (layers, cached) = stage("compress", || role_images::compress(&mut ctx, &lp))?;
    let mut images = stage("assemble", || {
        role_images::assemble(&mut ctx, &mut layout, &base, &lp, &layers)
    })?;
    images.extend(outputs::component_images(plan, &baked, &mut layout)?);
    layout.finish()?;

    let mut boot = match &plan.boot {
        Some(b) => stage("bootable", || {
            bootable::write_all(&mut ctx, b, &base, &lp, &images)
        })?,
        None => Vec::new(),
    };
    let (pxe_profiles, pxe_loaders) = match plan.provision.as_ref() {
        Some(p) if p.pxe && !boot.is_empty() => {
            (ctx.progress)("pxe: boot files by digest, network UKIs and loaders");
            let _span = tracing::info_span!("stage", name = "pxe").entered();
            let profiles = pxe::link_boot_files(
                &ctx.dist,
                &mut boot,
                p,
                opts.secure_boot.as_ref(),
                opts.source_date_epoch,
            )?;
            let loaders = pxe::loaders(
                opts.secure_boot.as_ref(),
                opts.source_date_epoch,
                &ctx.dist.root().join(".kiln-tmp-loaders"),
            )?;
            (Some(profiles), loaders)
        }
        _ => (None, Vec::new()),
    };
    if !boot.is_empty() {
        let certs = match &opts.secure_boot {
            Some(sb) => Some(bootable::write_secure_boot(sb, &boot, &ctx.dist)?),
            None => None,
        };
        bootable::write_manifest(plan, &boot, certs, &ctx.dist)?;
    }
    let epoch = opts.source_date_epoch;
    let sbom = stage("sbom", || {
        crate::sbom::write_all(plan, resolved, &base.tree, &images, epoch, &ctx.dist)
    })?;
    if opts.archives {
        outputs::archives(&ctx.dist, &ctx.store, &images, epoch, ctx.progress)?;
    }
    let liveimg = match &plan.kickstart {
        Some(_) => kickstart::liveimages(&boot, &ctx.dist)?,
        None => Default::default(),
    };
    // The previous output's seeds, kickstarts and PXE configs, linked into the staging
    // directory: what did not change keeps its inode, and the output is still swapped in
    // whole.
    if let Some(prev) = &previous {
        provision::carry_over(&prev.dist, &ctx.dist)?;
    }
    let provisioned = stage("provisioning", || {
        provision::write(
            &provision::Provision {
                plan,
                rendered,
                base: &base.tree,
                pxe: pxe_profiles.as_deref(),
                pxe_loaders: &pxe_loaders,
                liveimg: &liveimg,
                signer: opts.secure_boot.as_ref(),
            },
            &ctx.dist,
        )
    })?;
    (ctx.progress)(&format!(
        "provisioning: {} file(s) written, {} unchanged, {} removed",
        provisioned.stats.written.len(),
        provisioned.stats.unchanged,
        provisioned.stats.removed.len()
    ));
    let _finish = tracing::info_span!("stage", name = "identities-report-publish").entered();
    let identity = outputs::identities(
        plan,
        rendered,
        &base.tree,
        &provisioned.hosts,
        epoch,
        previous.as_ref().is_some_and(|p| p.same_isos),
        &ctx.dist,
    )?;
    let kickstart = provisioned
        .hosts
        .iter()
        .filter_map(|h| h.kickstart.clone())
        .collect();
    let report = BuildReport {
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        cluster: plan.cluster.to_string(),
        spec_sha256: plan.spec_sha256.clone(),
        source_date_epoch: epoch,
        build_key,
        archives: opts.archives,
        images,
        identity,
        sbom,
        boot,
        kickstart,
        left_out: plan
            .left_out
            .iter()
            .map(|l| LeftOutReport {
                component: l.component.to_string(),
                what: l.what.into(),
                reason: l.reason.clone(),
            })
            .collect(),
    };
    let mut json =
        serde_json::to_string_pretty(&report).map_err(|e| BuildError::Source(e.to_string()))?;
    json.push('\n');
    fs::write(ctx.dist.report(), json).map_err(IoError::new("writing build-report.json"))?;
    outputs::sha256sums(&ctx.dist)?;
    Ok(Built {
        report,
        unchanged: false,
        layers_cached: cached + base.cached,
        layers_compressed: lp.unique.len() - cached + base.compressed,
    })
}

/// `tree` as written on top of `base` (see [`FileTree::placed_on`]).
fn place(tree: &FileTree, base: &FileTree) -> Result<FileTree, BuildError> {
    if base.is_empty() {
        return Ok(tree.clone());
    }
    tree.placed_on(base)
        .map_err(|e| BuildError::Source(e.to_string()))
}
