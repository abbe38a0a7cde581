//! `kiln build`: build a spec's images and bootable outputs into `dist/`.

use std::path::PathBuf;

use anyhow::Context;

use crate::args::{load, report_recorded, spec_dir, PlanArgs, SourceArgs, Usage};

/// Build the images: one per role profile (base + one layer per component) plus the
/// container images the units run, as an OCI layout (docker-archives on request).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Layout of DIR (default dist/):\n  oci/                 OCI image layout, one ref \
per image (CLUSTER-PROFILE, calico-node, …); every blob once\n  identity/HOST.tar    each host's identity, placed on its image\n  \
cloud-init/HOST/     its cloud-init NoCloud seed (meta-data, user-data, network-config)\n  \
cloud-init/HOST-cidata.iso  the seed as a cidata ISO (needs xorriso)\n  \
archives/REF.tar     docker-archive per image, with --archives\n  \
sbom/REF.spdx.json   SPDX 2.3 SBOM per role image (Debian packages, sources, baked images)\n  \
build-report.json    images, tags, digests, layers, SBOMs\n  SHA256SUMS\n\n\
The base comes from base.debian (mmdebstrap) or base.source.oci (oci:DIR[:REF] or \
docker-archive:FILE). SOURCE_DATE_EPOCH (default 1980-01-01) sets every timestamp, so the \
same spec and sources give the same digests. Compressed layers are cached by their inputs \
(CACHE/layers): an unchanged layer is never compressed twice, and a build whose spec, \
sources and options did not change finds nothing to do. After each build the cache is pruned \
to its cap (--cache-max-size, $KILN_CACHE_MAX_SIZE, else 20G), keeping what the newest \
builds use; see `kiln cache prune`. DIR is swapped in only when the \
whole build succeeded; a second build of the same DIR waits until the first has finished \
(--no-wait: fails instead).\n\nExamples:\n  kiln build cluster.toml -o dist\n  \
skopeo copy oci:dist/oci:prod-agent docker-daemon:kiln/prod-agent:latest\n  \
kiln build cluster.toml -o dist --archives && docker load -i dist/archives/prod-agent.tar\n  \
kiln push dist --to 127.0.0.1:5000/kiln --insecure"
)]
pub(crate) struct BuildArgs {
    /// The cluster spec (default: the built-in demo).
    spec: Option<PathBuf>,
    /// Output directory.
    #[arg(short, long, default_value = "dist")]
    output: PathBuf,
    /// Compress layers with zstd instead of gzip.
    #[arg(long)]
    zstd: bool,
    /// Compression threads per layer (0: all cores). Output is identical for any value.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also write a docker-archive per image under DIR/archives/ (for `docker load`).
    #[arg(long)]
    archives: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    /// When another kiln build is writing DIR, fail at once instead of waiting for it.
    #[arg(long)]
    no_wait: bool,
    /// After the build, prune the cache to at most SIZE (`20G`, `512M`; `0`: never),
    /// least recently used first, keeping what the newest builds use [default:
    /// $KILN_CACHE_MAX_SIZE, else 20G]
    #[arg(long, value_name = "SIZE", value_parser = kiln_pipeline::cache_prune::parse_size)]
    cache_max_size: Option<u64>,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    sources: SourceArgs,
}

impl BuildArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let BuildArgs {
            spec,
            output,
            zstd,
            threads,
            archives,
            strict,
            no_wait,
            cache_max_size,
            plan,
            sources,
        } = self;
        let cap = match cache_max_size {
            Some(0) => None,
            Some(n) => Some(n),
            None => kiln_pipeline::cache_prune::max_size_from_env().map_err(Usage)?,
        };
        let plan = load(spec.as_deref(), strict, &plan)?.plan;
        let rendered = kiln_pipeline::components::render(&plan).context("rendering the plan")?;
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v.parse().map_err(|_| {
                Usage(format!(
                    "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
                ))
            })?,
            Err(_) => kiln_pipeline::stages::DEFAULT_EPOCH,
        };
        // Refuse a foreign output directory before any download.
        kiln_pipeline::publish::replaceable(&output, kiln_pipeline::stages::REPORT, "build")
            .with_context(|| format!("writing {}", output.display()))?;
        // The signing key and certificates, checked before any download or build.
        let secure_boot = plan
            .boot
            .as_ref()
            .and_then(|b| b.secure_boot.as_ref())
            .map(|sb| kiln_pipeline::secure_boot::open(sb, &spec_dir(spec.as_deref())))
            .transpose()
            .map_err(|e| Usage(e.to_string()))?;
        let mut src_opts = sources.options(spec.as_deref());
        src_opts.source_date_epoch = epoch;
        let resolved =
            kiln_pipeline::sources::resolve(&plan, &spec_dir(spec.as_deref()), &src_opts)
                .context("resolving sources")?;
        report_recorded(&resolved);
        let opts = kiln_pipeline::stages::BuildOptions {
            dist: output.clone(),
            source_date_epoch: epoch,
            compression: if zstd {
                kiln_layers::Compression::Zstd { level: 3 }
            } else {
                kiln_layers::Compression::default()
            },
            threads,
            archives,
            layer_cache: Some(src_opts.cache_dir.join("layers")),
            wait_for_output: !no_wait,
            secure_boot,
        };
        let built = kiln_pipeline::stages::build(&plan, &rendered, &resolved, &opts, &mut |m| {
            eprintln!("  {m}")
        })
        .with_context(|| format!("building {}", output.display()))?;
        let report = &built.report;
        if built.unchanged {
            eprintln!(
                "nothing changed: {} is up to date (spec, sources and options as in its build report)",
                output.display()
            );
            super::cache::after_build(&src_opts.cache_dir, cap);
            return Ok(());
        }
        for img in &report.images {
            eprintln!(
                "{} {}:{} {}",
                img.kind,
                img.repository,
                img.tags.join(","),
                img.manifest_digest
            );
        }
        eprintln!(
            "wrote {} image(s) to {} ({} layer(s) compressed, {} from the layer cache)",
            report.images.len(),
            output.display(),
            built.layers_compressed,
            built.layers_cached
        );
        super::cache::after_build(&src_opts.cache_dir, cap);
        Ok(())
    }
}
