//! `kiln cache`: manage the artifact cache (`kiln cache import`).

use std::path::PathBuf;

use anyhow::Context;

/// Manage the artifact cache.
#[derive(clap::Args, Debug)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

impl CacheArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        match self.command {
            CacheCommand::Import(a) => a.run(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum CacheCommand {
    Import(ImportArgs),
}

/// Add files to the cache by their sha256 (for air-gapped sites and --offline builds).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Prints `sha256:<hex>  FILE` per file. A build finds an artifact by the digest \
pinned in the spec or kiln.lock, whatever the file was called.\n\nExamples:\n  \
kiln cache import etcd-v3.4.23-linux-amd64.tar.gz docker-20.10.24.tgz\n  \
kiln cache import --cache /srv/kiln-cache *.deb"
)]
struct ImportArgs {
    /// Files to add.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

impl ImportArgs {
    fn run(self) -> anyhow::Result<()> {
        let dir = self
            .cache
            .unwrap_or_else(kiln_pipeline::sources::default_cache_dir);
        let c = kiln_pipeline::sources::cache::Cache::open(&dir)?;
        for f in &self.files {
            let digest = c
                .import(f)
                .with_context(|| format!("importing {}", f.display()))?;
            println!("{digest}  {}", f.display());
        }
        Ok(())
    }
}
