//! The stages of a build, in order, over one [`Ctx`]: ingest the base, bake component images,
//! place files, plan layers, compress (through the layer cache), assemble role images (with
//! the presence check). Outputs and the report are in [`super::outputs`].

use std::collections::BTreeMap;
use std::io;

use kiln_layers::{Entry, FileTree, IoError, LayerOptions};
use kiln_model::plan::{Plan, Profile};
use kiln_oci::archive::{write_docker_archive, ArchiveImage};
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::{BlobStore, ImageSpec, Layer};

use super::layer_cache::{LayerCache, LayerInput};
use super::outputs::{check_artifacts, labels, metadata_only};
use super::{place, BuildError, BuildOptions, Dist, ImageReport, LayerReport};
use crate::components::{archive_name, Rendered, IMAGES_DIR, LOAD_UNIT};
use crate::sources::{BaseSource, Resolved};

/// What every stage sees.
pub(super) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub rendered: &'a Rendered,
    pub resolved: &'a Resolved,
    pub opts: &'a BuildOptions,
    pub dist: Dist,
    pub store: BlobStore,
    pub cache: LayerCache,
    pub progress: &'a mut dyn FnMut(&str),
}

impl Ctx<'_> {
    pub fn layer_opts(&self) -> LayerOptions {
        LayerOptions {
            source_date_epoch: self.opts.source_date_epoch,
            compression: self.opts.compression,
            threads: self.opts.threads,
        }
    }
}

/// The base: its layers as they go into every role image, and its metadata tree (paths,
/// modes, owners, links) for placing files and checking presence.
pub(super) struct Base<'a> {
    pub layers: Vec<(String, Layer)>,
    pub tree: FileTree,
    /// A base given as a tree, compressed with the other layers.
    pub own: Option<&'a FileTree>,
    /// Layers reused from the layer cache.
    pub cached: usize,
    /// Layers compressed (a streamed tarball base).
    pub compressed: usize,
}

fn layer_of(b: &super::layer_cache::CachedLayer) -> Layer {
    Layer {
        digest: b.digest,
        diff_id: b.diff_id,
        size: b.size,
        media_type: b.media_type.clone(),
    }
}

/// Stage 1: the base's layers (copied from an image, or a tarball streamed into one layer,
/// through the layer cache) and its metadata tree.
pub(super) fn ingest_base<'a>(ctx: &mut Ctx<'a>) -> Result<Base<'a>, BuildError> {
    let mut base = Base {
        layers: Vec::new(),
        tree: FileTree::new(),
        own: None,
        cached: 0,
        compressed: 0,
    };
    match &ctx.resolved.base {
        Some(BaseSource::Image(img)) => {
            (ctx.progress)(&format!("base {}", img.reference));
            for l in &img.image.layers {
                ctx.store.copy_from(&img.store, &l.digest)?;
                base.layers.push(("base".into(), l.clone()));
            }
            base.tree = flatten(&ctx.store, &img.reference, &img.image.layers)?;
        }
        Some(BaseSource::Tree(tree)) => {
            base.own = Some(tree);
            base.tree = metadata_only(tree);
        }
        Some(b @ BaseSource::Tarball { path, sha256 }) => {
            let opts = ctx.layer_opts();
            let key = LayerCache::key(LayerInput::Tarball { sha256 }, &opts)?;
            let layer = match ctx.cache.fetch(&key, &ctx.dist.oci()) {
                Some(hit) => {
                    (ctx.progress)("base layer unchanged (layer cache)");
                    base.cached += 1;
                    layer_of(&hit)
                }
                None => {
                    // Streamed as it is, with all compression threads, before the smaller
                    // layers.
                    (ctx.progress)(&format!("base layer from {}", path.display()));
                    let file = std::fs::File::open(path).map_err(IoError::at("reading", path))?;
                    let blob = kiln_layers::write_tar_stream_to_dir(
                        io::BufReader::new(file),
                        &opts,
                        &ctx.dist.oci(),
                    )?;
                    ctx.cache.store(&key, &blob, &ctx.dist.oci());
                    base.compressed += 1;
                    layer_of(&(&blob).into())
                }
            };
            base.layers.push(("base".into(), layer));
            base.tree = b
                .metadata_tree()
                .map_err(|e| BuildError::Source(e.to_string()))?;
        }
        None => {}
    }
    Ok(base)
}

/// A container image the units run, baked into the profiles that load it.
pub(super) struct Baked {
    pub name: String,
    pub runs_as: String,
    pub image: kiln_oci::oci::layout::ResolvedImage,
}

/// Stage 2: the baked component images' blobs into the layout, and per image the tree of its
/// docker-archive under [`IMAGES_DIR`], placed on the base: a layer of its own, in the
/// profiles whose units run it.
pub(super) fn bake_images(
    ctx: &mut Ctx,
    base: &Base,
) -> Result<(Vec<Baked>, BTreeMap<String, FileTree>), BuildError> {
    let mut baked = Vec::new();
    for (component, img) in &ctx.resolved.images {
        let Some(runs_as) = crate::components::images(ctx.plan)
            .into_iter()
            .find(|i| i.name == component)
            .map(|i| i.runs_as.to_string())
        else {
            continue;
        };
        (ctx.progress)(&format!("image {runs_as} from {}", img.reference));
        for d in std::iter::once(&img.image.manifest_descriptor.digest)
            .chain(std::iter::once(&img.image.config_descriptor.digest))
            .chain(img.image.layers.iter().map(|l| &l.digest))
        {
            ctx.store.copy_from(&img.store, d)?;
        }
        baked.push(Baked {
            name: component.clone(),
            runs_as,
            image: img.image.clone(),
        });
    }
    let epoch = ctx.opts.source_date_epoch as i64;
    let mut trees = BTreeMap::new();
    for b in &baked {
        let archive = ArchiveImage {
            manifest: b.image.manifest_descriptor.clone(),
            repo_tags: vec![b.runs_as.clone()],
        };
        let bytes = write_docker_archive(Vec::new(), &ctx.store, &[archive], epoch)?;
        let mut t = FileTree::new();
        t.insert(
            &format!("{IMAGES_DIR}/{}", archive_name(&b.runs_as)),
            Entry::file(bytes, 0o644),
        )
        .map_err(|e| BuildError::Source(e.to_string()))?;
        trees.insert(b.name.clone(), place(&t, &base.tree)?);
    }
    Ok((baked, trees))
}

/// Files placed where the base keeps them: through its symlinks (merged /usr, Debian's
/// alternatives), never replacing a symlink with a directory.
pub(super) struct Placed<'a> {
    /// Source set name → its files.
    pub sources: BTreeMap<&'a str, FileTree>,
    /// Per profile (plan order): component → its rendered files.
    pub config: Vec<Vec<(&'static str, FileTree)>>,
}

/// Stage 3: sources and rendered trees placed on the base.
pub(super) fn place_files<'a>(ctx: &Ctx<'a>, base: &Base) -> Result<Placed<'a>, BuildError> {
    let sources = ctx
        .resolved
        .trees
        .iter()
        .map(|(c, t)| Ok((c.as_str(), place(t, &base.tree)?)))
        .collect::<Result<_, BuildError>>()?;
    let config = ctx
        .plan
        .profiles
        .iter()
        .map(|p| {
            ctx.rendered
                .layers
                .get(&p.name)
                .into_iter()
                .flatten()
                .map(|(c, t)| Ok((*c, place(t, &base.tree)?)))
                .collect::<Result<Vec<_>, BuildError>>()
        })
        .collect::<Result<_, BuildError>>()?;
    Ok(Placed { sources, config })
}

/// Which trees become layers (each once) and which layers each profile gets.
pub(super) struct LayerPlan<'t> {
    /// Label and tree of every distinct layer.
    pub unique: Vec<(String, &'t FileTree)>,
    /// Per profile (plan order): indexes into `unique`, bottom to top (after the base's).
    pub per_profile: Vec<Vec<usize>>,
    /// The index of a tree base, which the profile's rootfs already holds.
    pub base_index: Option<usize>,
}

/// Stage 4: per profile its layers — base, the sources of the components it runs, its
/// rendered component trees, the images its units run. Trees are borrowed, not copied: a
/// base tree can be gigabytes.
pub(super) fn plan_layers<'t>(
    ctx: &Ctx,
    base: &Base<'t>,
    images: &'t BTreeMap<String, FileTree>,
    placed: &'t Placed,
) -> LayerPlan<'t> {
    let mut unique: Vec<(String, &FileTree)> = Vec::new();
    let base_index = base.own.map(|t| {
        unique.push(("base".into(), t));
        unique.len() - 1
    });
    let image_index: BTreeMap<&str, usize> = images
        .iter()
        .map(|(name, tree)| {
            unique.push((format!("image {name}"), tree));
            (name.as_str(), unique.len() - 1)
        })
        .collect();
    let source_index: BTreeMap<&str, usize> = placed
        .sources
        .iter()
        .map(|(component, tree)| {
            unique.push((format!("{component} (sources)"), tree));
            (*component, unique.len() - 1)
        })
        .collect();
    let sets = crate::components::source_sets(ctx.plan);
    let mut per_profile = Vec::new();
    for (profile, config) in ctx.plan.profiles.iter().zip(&placed.config) {
        let mut seq: Vec<usize> = base_index.into_iter().collect();
        for (component, idx) in &source_index {
            let used = sets
                .iter()
                .any(|s| s.name == *component && s.profiles.contains(&profile.name.as_str()));
            if used {
                seq.push(*idx);
            }
        }
        for (component, tree) in config {
            seq.push(unique.len());
            unique.push((format!("{component} (config)"), tree));
        }
        if profile.runs(LOAD_UNIT) {
            for img in crate::components::images_of(ctx.plan, profile) {
                seq.extend(image_index.get(img.name));
            }
        }
        per_profile.push(seq);
    }
    LayerPlan {
        unique,
        per_profile,
        base_index,
    }
}

/// Stage 5: every distinct layer, from the layer cache or compressed (in parallel).
/// Returns the layers and how many came from the cache.
pub(super) fn compress(ctx: &mut Ctx, lp: &LayerPlan) -> Result<(Vec<Layer>, usize), BuildError> {
    let opts = ctx.layer_opts();
    let oci = ctx.dist.oci();
    let mut layers: Vec<Option<Layer>> = vec![None; lp.unique.len()];
    let mut keys = Vec::with_capacity(lp.unique.len());
    let mut misses = Vec::new();
    for (i, (_, tree)) in lp.unique.iter().enumerate() {
        let key = LayerCache::key(LayerInput::Tree(tree), &opts)?;
        match ctx.cache.fetch(&key, &oci) {
            Some(hit) => layers[i] = Some(layer_of(&hit)),
            None => misses.push(i),
        }
        keys.push(key);
    }
    let cached = lp.unique.len() - misses.len();
    (ctx.progress)(&format!(
        "{} layer(s): {} unchanged (layer cache), {} to compress",
        lp.unique.len(),
        cached,
        misses.len()
    ));
    let trees: Vec<&FileTree> = misses.iter().map(|&i| lp.unique[i].1).collect();
    let blobs = kiln_layers::compress_layers_parallel(&trees, &opts, &oci)?;
    for (&i, blob) in misses.iter().zip(&blobs) {
        ctx.cache.store(&keys[i], blob, &oci);
        layers[i] = Some(layer_of(&blob.into()));
    }
    let layers = layers
        .into_iter()
        .map(|l| l.ok_or_else(|| BuildError::Source("a layer was not written".into())))
        .collect::<Result<_, _>>()?;
    Ok((layers, cached))
}

/// Stage 6: each profile's role image — its root filesystem checked (every unit's program and
/// every artifact present) before the image is written.
pub(super) fn assemble(
    ctx: &mut Ctx,
    layout: &mut LayoutWriter,
    base: &Base,
    lp: &LayerPlan,
    blobs: &[Layer],
) -> Result<Vec<ImageReport>, BuildError> {
    let plan = ctx.plan;
    let epoch = ctx.opts.source_date_epoch;
    let prefix = plan.images.prefix.as_str();
    let tags: Vec<String> = plan.images.tags.iter().map(ToString::to_string).collect();
    let has_base = ctx.resolved.base.is_some();
    let mut reports = Vec::new();
    for (profile, seq) in plan.profiles.iter().zip(&lp.per_profile) {
        let mut layers = base.layers.clone();
        let mut rootfs = base.tree.clone();
        for &i in seq {
            let (label, tree) = &lp.unique[i];
            if Some(i) != lp.base_index {
                rootfs
                    .overlay(&metadata_only(tree))
                    .map_err(|e| BuildError::Source(e.to_string()))?;
            }
            layers.push((label.clone(), blobs[i].clone()));
        }
        check(ctx, profile, &rootfs)?;
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
        spec.labels = labels(plan, profile, has_base.then_some(plan.base.image.as_str()));
        (ctx.progress)(&format!("image {repository}:{}", tags[0]));
        let written = layout.add_image(&spec, &ctx.store, Some(&reference))?;
        reports.push(ImageReport {
            reference: reference.clone(),
            kind: "role".into(),
            of: profile.name.clone(),
            push_name: reference.clone(),
            repository,
            tags: tags.clone(),
            manifest_digest: written.manifest.digest,
            manifest_media_type: written.manifest.media_type.clone(),
            config_digest: written.config.digest,
            layers: layers
                .iter()
                .map(|(label, l)| LayerReport {
                    from: label.clone(),
                    digest: l.digest,
                    diff_id: l.diff_id,
                    size: l.size,
                })
                .collect(),
        });
    }
    Ok(reports)
}

/// The presence check: every unit's programs and every artifact are in the image.
fn check(ctx: &Ctx, profile: &Profile, rootfs: &FileTree) -> Result<(), BuildError> {
    let no_units = FileTree::new();
    let units = ctx
        .rendered
        .profiles
        .get(&profile.name)
        .unwrap_or(&no_units);
    crate::sources::presence::check_presence_of_units(ctx.plan, profile, rootfs, units)?;
    check_artifacts(ctx.plan, profile, rootfs)
}

/// The root filesystem of the base image `reference`'s `layers` (OCI whiteouts applied,
/// hostile entries refused), without file contents but those the SBOM reads: checks need
/// paths, kinds, modes and link targets, and a base of a few GB must not sit in memory.
///
/// The layers go into every role image byte for byte, so their names must be relative: a
/// leading `/` is refused like `..`, as in every other kind of base
/// ([`crate::sources::base_hint`]).
fn flatten(store: &BlobStore, reference: &str, layers: &[Layer]) -> Result<FileTree, BuildError> {
    let mut tree = FileTree::new();
    for l in layers {
        let blob = store.open_blob(&l.digest)?;
        let blob = io::BufReader::new(blob);
        kiln_layers::apply_layer_selected(&mut tree, blob, crate::sbom::reads, true).map_err(
            |source| BuildError::Base {
                what: format!("base image {reference}, layer {}", l.digest),
                source,
            },
        )?;
    }
    Ok(tree)
}
