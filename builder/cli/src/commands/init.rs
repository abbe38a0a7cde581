//! `kiln init`: write the demo spec as a starting point.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

/// Write the built-in demo spec as a commented starting point.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln init                 # writes ./cluster.toml\n  \
kiln init prod.toml\n  kiln init -                # print to stdout"
)]
pub(crate) struct InitArgs {
    /// Where to write it; `-` prints to stdout.
    #[arg(default_value = "cluster.toml")]
    file: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

impl InitArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let InitArgs { file, force } = self;
        if file.as_os_str() == "-" {
            std::io::stdout().write_all(kiln_pipeline::DEMO_SPEC.as_bytes())?;
            return Ok(());
        }
        if file.exists() && !force {
            anyhow::bail!(
                "{} already exists; pass --force to overwrite it",
                file.display()
            );
        }
        std::fs::write(&file, kiln_pipeline::DEMO_SPEC)
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "wrote {}; next: kiln check {}",
            file.display(),
            file.display()
        );
        Ok(())
    }
}
