//! `kiln check`: validate a spec and print the resolved plan.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::args::{load, PlanArgs};

/// Validate a spec and print the resolved plan: per host its role, units, ports and files.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Errors name the file, line and column and how to fix them. Warnings \
are printed and do not fail unless --strict.\n\nExamples:\n  kiln check                  # the built-in demo\n  \
kiln check cluster.toml --json | jq '.profiles[].services'"
)]
pub(crate) struct CheckArgs {
    /// The cluster spec (default: the built-in demo).
    spec: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    plan: PlanArgs,
}

impl CheckArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let kiln_pipeline::validate::Loaded { plan, warnings } =
            load(self.spec.as_deref(), self.strict, &self.plan)?;
        let rendered = kiln_pipeline::components::render(&plan).context("rendering the plan")?;
        let report = kiln_pipeline::report::build(&plan, &warnings, &rendered);
        let out = if self.json {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            s
        } else {
            kiln_pipeline::report::text(&report)
        };
        std::io::stdout().write_all(out.as_bytes())?;
        Ok(())
    }
}
