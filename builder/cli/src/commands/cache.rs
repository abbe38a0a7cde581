//! `kiln cache`: manage the artifact cache (`kiln cache import`, `kiln cache prune`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
            CacheCommand::Prune(a) => a.run(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum CacheCommand {
    Import(ImportArgs),
    Prune(PruneArgs),
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

/// Remove cache entries the newest builds do not use: bootable outputs, layers, sources.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Entries are boot/KEY/ (a role image's bootable outputs), layers (a \
compressed layer) and blobs/sha256/HEX (a source: a download, an imported file, a Debian \
base). Every kiln build records what it used, per output directory; what the newest build \
into each of the --keep-builds most recently built output directories used is never \
removed, nor anything used in the last 10 minutes. The rest goes least recently used first: \
what --older-than names, then until the cache holds at most --max-size. Without either, \
--max-size is the cap kiln build applies after every build ($KILN_CACHE_MAX_SIZE, else \
20G). Sizes are space on disk (a sparse disk counts its data).\n\nExamples:\n  \
kiln cache prune\n  kiln cache prune --older-than 30d\n  kiln cache prune --max-size 5G --dry-run"
)]
struct PruneArgs {
    /// Remove entries not used for this long (`30d`, `12h`, `90m`, `2w`).
    #[arg(long, value_name = "AGE", value_parser = kiln_pipeline::cache_prune::parse_duration)]
    older_than: Option<Duration>,
    /// Remove the least recently used entries until the cache holds at most SIZE (`20G`,
    /// `512M`).
    #[arg(long, value_name = "SIZE", value_parser = kiln_pipeline::cache_prune::parse_size)]
    max_size: Option<u64>,
    /// Keep what the newest build into each of the N most recently built output directories
    /// used.
    #[arg(long, value_name = "N", default_value_t = kiln_pipeline::cache_prune::DEFAULT_KEEP_BUILDS)]
    keep_builds: usize,
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

impl PruneArgs {
    fn run(self) -> anyhow::Result<()> {
        use kiln_pipeline::cache_prune::{human, max_size_from_env, prune, PruneOptions};
        let dir = self
            .cache
            .unwrap_or_else(kiln_pipeline::sources::default_cache_dir);
        let max_size = match (self.max_size, self.older_than) {
            (Some(m), _) => Some(m),
            (None, Some(_)) => None,
            (None, None) => max_size_from_env().map_err(crate::args::Usage)?,
        };
        let opts = PruneOptions {
            max_size,
            older_than: self.older_than,
            keep_builds: self.keep_builds,
            dry_run: self.dry_run,
            now: SystemTime::now(),
        };
        let r = prune(&dir, &opts).with_context(|| format!("pruning {}", dir.display()))?;
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for e in &r.removed {
            let age = opts.now.duration_since(e.last_use).unwrap_or_default();
            println!(
                "{verb} {} {} ({}, last used {} ago)",
                e.kind.name(),
                e.path,
                human(e.size),
                ago(age)
            );
        }
        println!(
            "cache: {} in {}{} ({} entr{} {verb}, {} freed; {} kept for the newest builds)",
            human(r.size_after),
            dir.display(),
            max_size
                .map(|m| format!(" (cap {})", human(m)))
                .unwrap_or_default(),
            r.removed.len(),
            if r.removed.len() == 1 { "y" } else { "ies" },
            human(r.freed()),
            human(r.referenced),
        );
        Ok(())
    }
}

/// `3 days`, `5 hours`, `12 minutes`.
fn ago(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..=5_399 => (s / 60, "minute"),
        5_400..=129_599 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// After a build: the cache pruned to `cap` (`None`: not pruned), and one line saying what
/// it holds.
pub(crate) fn after_build(cache: &Path, cap: Option<u64>) {
    use kiln_pipeline::cache_prune::{disk_usage, human, prune, PruneOptions};
    let mut line = String::new();
    let size = match cap {
        Some(cap) => match prune(
            cache,
            &PruneOptions {
                max_size: Some(cap),
                ..PruneOptions::default()
            },
        ) {
            Ok(r) => {
                if !r.removed.is_empty() {
                    line = format!(
                        "; pruned {} entr{} ({}) least recently used",
                        r.removed.len(),
                        if r.removed.len() == 1 { "y" } else { "ies" },
                        human(r.freed())
                    );
                }
                if r.size_after > cap {
                    line.push_str(&format!(
                        "; over the cap: the newest builds use {}",
                        human(r.referenced)
                    ));
                }
                r.size_after
            }
            Err(e) => {
                eprintln!("warning: pruning the cache {}: {e}", cache.display());
                disk_usage(cache)
            }
        },
        None => disk_usage(cache),
    };
    let cap = cap.map_or("no cap".to_string(), |c| format!("cap {}", human(c)));
    eprintln!(
        "cache: {} in {} ({cap}{line})",
        human(size),
        cache.display()
    );
}
