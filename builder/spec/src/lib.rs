//! kiln-spec: the cluster spec as the user writes it. It holds the spec's TOML types (with
//! the source spans that let every error name its file, line and column), the diagnostics
//! those errors are printed with, the built-in demo spec, the spec's JSON Schema and the
//! generated spec reference. Turning a spec into a resolved plan is the pipeline's job
//! (`kiln_pipeline::validate`); nothing here reads anything but the spec's own text.

pub mod diag;
pub mod reference;
mod types;

pub use types::*;

use diag::SpecSource;

/// The built-in demo spec: one host running everything.
pub const DEMO_SPEC: &str = include_str!("../demo/cluster.toml");

/// The name diagnostics show for the built-in demo.
pub const DEMO_NAME: &str = "<built-in demo>";

/// Why a spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadSpecError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not UTF-8; the diagnostic points at the first invalid byte.
    #[error("{0}")]
    NotUtf8(Box<diag::Diagnostic>),
}

/// Reads a spec from `path`, or the built-in demo when `None`.
pub fn read_spec(path: Option<&std::path::Path>) -> Result<SpecSource, ReadSpecError> {
    match path {
        None => Ok(SpecSource {
            name: DEMO_NAME.into(),
            text: DEMO_SPEC.into(),
        }),
        Some(p) => SpecSource::from_bytes(p.display().to_string(), std::fs::read(p)?)
            .map_err(ReadSpecError::NotUtf8),
    }
}

/// The JSON Schema of the spec, pretty-printed with a trailing newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Spec);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
