//! `kiln fetch`: fill the artifact cache ahead of a build.

use std::path::PathBuf;

use crate::args::{load, report_recorded, spec_dir, PlanArgs, SourceArgs};

/// Fill the cache with every artifact of a spec ahead of a build (e.g. before going offline).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Unpinned sources are recorded in kiln.lock and reported.\n\nExamples:\n  \
kiln fetch cluster.toml --cache /srv/kiln-cache\n  kiln fetch cluster.toml --locked   # fetch exactly what kiln.lock pins"
)]
pub(crate) struct FetchArgs {
    /// The cluster spec (default: the built-in demo).
    spec: Option<PathBuf>,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    sources: SourceArgs,
}

impl FetchArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let FetchArgs {
            spec,
            plan,
            sources,
        } = self;
        let plan = load(spec.as_deref(), false, &plan)?.plan;
        let mut opts = sources.options(spec.as_deref());
        opts.progress = true;
        let resolved = kiln_pipeline::sources::resolve(&plan, &spec_dir(spec.as_deref()), &opts)?;
        report_recorded(&resolved);
        eprintln!(
            "{} artifact(s) in the cache {}",
            resolved.lock.len(),
            opts.cache_dir.display()
        );
        Ok(())
    }
}
