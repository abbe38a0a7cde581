//! What the subcommands share: the argument groups [`PlanArgs`] and [`SourceArgs`], loading
//! a spec ([`load`]), where its relative paths point ([`spec_dir`]), reporting recorded
//! digests ([`report_recorded`]) and the [`Usage`] error.

use std::path::{Path, PathBuf};

use kiln_pipeline::diag::Severity;
use kiln_pipeline::validate::Rejected;

/// A usage error (exit code 2) that is not clap's: e.g. a spec file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// What goes into the plan besides the spec: flags shared by every command that loads one.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct PlanArgs {
    /// Leave upstream components out of the plan, with their units and ports: `mesos`,
    /// `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their
    /// releases). The plan and the build report list what was left out; nothing stands in.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["mesos", "marathon", "calico", "upstream"])]
    leave_out: Vec<String>,
}

impl PlanArgs {
    fn options(&self) -> kiln_pipeline::validate::LoadOptions {
        use kiln_pipeline::plan::Upstream;
        let mut leave_out = Vec::new();
        for name in &self.leave_out {
            match name.as_str() {
                "upstream" => leave_out.extend(Upstream::ALL),
                "mesos" => leave_out.push(Upstream::Mesos),
                "marathon" => leave_out.push(Upstream::Marathon),
                _ => leave_out.push(Upstream::Calico),
            }
        }
        kiln_pipeline::validate::LoadOptions { leave_out }
    }
}

/// Where sources come from: flags shared by `lock`, `fetch` and `build`.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct SourceArgs {
    /// Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Use only the cache; fail listing every missing artifact.
    #[arg(long)]
    offline: bool,
    /// Read upstream URLs from a mirror: https://HOST/PATH becomes MIRROR/HOST/PATH.
    #[arg(long, value_name = "URL|DIR")]
    mirror: Option<String>,
    /// Refuse any artifact that kiln.lock does not list.
    #[arg(long)]
    locked: bool,
}

impl SourceArgs {
    /// The source options for the spec at `spec` (the built-in demo when `None`).
    pub(crate) fn options(&self, spec: Option<&Path>) -> kiln_pipeline::sources::SourceOptions {
        let mut o = kiln_pipeline::sources::SourceOptions::new(&spec_dir(spec));
        if let Some(c) = &self.cache {
            o.cache_dir = c.clone();
        }
        o.offline = self.offline;
        o.mirror = self.mirror.clone();
        o.locked = self.locked;
        o.progress = true;
        o
    }
}

/// Loads and validates a spec, printing warnings; `--strict` turns them into a rejection.
pub(crate) fn load(
    spec: Option<&Path>,
    strict: bool,
    plan: &PlanArgs,
) -> anyhow::Result<kiln_pipeline::validate::Loaded> {
    let src = kiln_pipeline::read_spec(spec).map_err(|e| -> anyhow::Error {
        match e {
            kiln_pipeline::ReadSpecError::NotUtf8(d) => Rejected {
                diagnostics: vec![*d],
            }
            .into(),
            kiln_pipeline::ReadSpecError::Io(e) => {
                let name = spec.map(|p| p.display().to_string()).unwrap_or_default();
                Usage(format!(
                    "cannot read spec {name}: {e} (`kiln init {name}` writes an example)"
                ))
                .into()
            }
        }
    })?;
    let loaded = kiln_pipeline::validate::load_with(&src, &plan.options())?;
    if strict && !loaded.warnings.is_empty() {
        let mut diagnostics = loaded.warnings.clone();
        for d in &mut diagnostics {
            d.severity = Severity::Error;
        }
        return Err(Rejected { diagnostics }.into());
    }
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

/// The directory a spec's relative paths and kiln.lock are resolved against.
pub(crate) fn spec_dir(spec: Option<&Path>) -> PathBuf {
    spec.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Reports digests recorded for sources that had none pinned.
pub(crate) fn report_recorded(r: &kiln_pipeline::sources::Resolved) {
    for repaired in &r.repaired {
        eprintln!("warning: {repaired}");
    }
    for e in &r.recorded {
        eprintln!(
            "recorded {} {} as sha256:{} (no digest was pinned)",
            e.component, e.origin, e.sha256
        );
    }
}
