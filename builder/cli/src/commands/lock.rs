//! `kiln lock`: resolve a spec's sources and write `kiln.lock`.

use std::path::PathBuf;

use crate::args::{load, report_recorded, spec_dir, PlanArgs, SourceArgs};

/// Resolve every source of a spec and write kiln.lock beside it (URL and sha256 of each).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Fetches what is not cached yet (first fetches record their digest), keeps \
digests already pinned, and drops entries the spec no longer uses. Commit kiln.lock with the \
spec; `--locked` builds then refuse anything not in it.\n\nExamples:\n  kiln lock cluster.toml\n  \
kiln lock cluster.toml --mirror http://mirror.local/kiln   # air-gapped: upstream URLs via a mirror"
)]
pub(crate) struct LockArgs {
    /// The cluster spec (default: the built-in demo; kiln.lock goes to the current dir).
    spec: Option<PathBuf>,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    sources: SourceArgs,
}

impl LockArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let LockArgs {
            spec,
            plan,
            sources,
        } = self;
        let plan = load(spec.as_deref(), false, &plan)?.plan;
        let opts = sources.options(spec.as_deref());
        let (resolved, lock) =
            kiln_pipeline::sources::lock(&plan, &spec_dir(spec.as_deref()), &opts)?;
        report_recorded(&resolved);
        eprintln!(
            "locked {} artifact(s) in {}",
            lock.artifacts.len(),
            opts.lock_path.display()
        );
        Ok(())
    }
}
