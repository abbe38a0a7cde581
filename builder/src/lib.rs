//! kiln: bakes immutable host images for a Calico-networked Apache Mesos cluster.
//!
//! The library behind the `kiln` binary. Data flows spec → [`validate`] → [`plan::Plan`] →
//! [`components::render`] → file trees; see `shared/DESIGN.md`. Nothing here knows about clap:
//! every entry point takes plain values so tests call it directly.

pub mod boot;
pub mod build;
pub mod components;
pub mod diag;
pub mod publish;
pub mod push;
pub mod reference;
pub mod report;
pub mod sbom;
pub mod serve;
pub mod sources;
pub mod spec;
pub mod templates;
pub mod treedir;
pub mod validate;
pub use kiln_model::{plan, values};

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
    let schema = schemars::schema_for!(spec::Spec);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
