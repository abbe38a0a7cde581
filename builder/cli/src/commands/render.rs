//! `kiln render`: write every profile's and host's file tree into a directory.

use std::path::PathBuf;

use anyhow::Context;

use crate::args::{load, PlanArgs};

/// Render every profile's file tree and every host's identity tree into a directory.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Layout of DIR:\n  profiles/NAME/…         files of the image profile NAME \
(e.g. master-agent)\n  profiles/NAME.manifest  mode, owner and kind of each entry\n  \
hosts/HOST/…            the host's identity files\n  hosts/HOST.manifest\n  plan.json               the resolved plan (as `kiln check --json`)\n\n\
DIR is written beside its final place and swapped in when complete; an existing DIR is \
replaced only if it is empty or an earlier render.\n\nExample:\n  kiln render cluster.toml -o rendered/"
)]
pub(crate) struct RenderArgs {
    /// The cluster spec (default: the built-in demo).
    spec: Option<PathBuf>,
    /// Output directory.
    #[arg(short, long, default_value = "rendered")]
    output: PathBuf,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    plan: PlanArgs,
}

impl RenderArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let RenderArgs {
            spec,
            output,
            strict,
            plan,
        } = self;
        let kiln_pipeline::validate::Loaded { plan, warnings } =
            load(spec.as_deref(), strict, &plan)?;
        let rendered = kiln_pipeline::components::render(&plan).context("rendering the plan")?;
        let mut json = serde_json::to_string_pretty(&kiln_pipeline::report::build(
            &plan, &warnings, &rendered,
        ))?;
        json.push('\n');
        kiln_pipeline::treedir::publish(&rendered, &json, &output)
            .with_context(|| format!("writing {}", output.display()))?;
        let files: usize = rendered
            .profiles
            .values()
            .chain(rendered.hosts.values())
            .map(|t| t.len())
            .sum();
        eprintln!(
            "rendered {} profile(s) and {} host(s), {files} entries, into {}",
            rendered.profiles.len(),
            rendered.hosts.len(),
            output.display()
        );
        Ok(())
    }
}
