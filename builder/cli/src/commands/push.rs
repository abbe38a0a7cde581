//! `kiln push`: push a build's images to a registry.

use std::path::PathBuf;

use crate::args::Usage;
use crate::progress;

/// Push every image of a build to a registry (OCI distribution API).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Images go to REGISTRY/PREFIX/NAME:TAG for every tag of the spec \
(images.tags). Blobs the registry has are skipped, shared layers are mounted across \
repositories, transient errors are retried. Credentials come from ~/.docker/config.json \
(or $DOCKER_CONFIG).\n\nExamples:\n  kiln push dist --to registry.example.com/mesos\n  \
kiln push dist --to 127.0.0.1:5000/kiln --insecure\n  docker pull 127.0.0.1:5000/kiln/demo-master-agent:latest"
)]
pub(crate) struct PushArgs {
    /// The output directory of `kiln build`.
    dist: PathBuf,
    /// Destination `REGISTRY/PREFIX`.
    #[arg(long)]
    to: String,
    /// Plain HTTP (a registry without TLS).
    #[arg(long)]
    insecure: bool,
}

impl PushArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let PushArgs { dist, to, insecure } = self;
        let target = kiln_pipeline::push::PushTarget::parse(&to, insecure)
            .map_err(|e| Usage(e.to_string()))?;
        let mut progress = progress::Bars::new();
        let pushed = kiln_pipeline::push::push_dist(&dist, &target, &mut progress)?;
        progress.finish();
        for p in &pushed {
            let r = &p.report;
            eprintln!(
                "pushed {} {} ({} uploaded, {} mounted, {} already there, {} bytes)",
                p.reference,
                r.digest,
                r.blobs_uploaded,
                r.blobs_mounted,
                r.blobs_skipped,
                r.bytes_uploaded
            );
        }
        Ok(())
    }
}
