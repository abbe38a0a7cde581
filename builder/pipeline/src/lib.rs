//! kiln-pipeline: everything between a spec and a finished `dist/`. It validates a spec into
//! a plan ([`validate`]), renders each component's files, units, ports and checks
//! ([`components`]), resolves, verifies and caches the upstream artifacts ([`sources`]), and
//! runs the build's stages ([`stages`]): layers, role and component images, bootable outputs,
//! provisioning files, the SBOM ([`sbom`]), the build report ([`report`]) and the atomic
//! publish of `dist/` ([`publish`]); [`push`] sends a build to a registry; [`cache_prune`] keeps
//! the cache within its cap. The artifact
//! formats themselves live in their own crates (`kiln-oci`, `kiln-bootable`,
//! `kiln-provision`, `kiln-layers`); the spec in `kiln-spec`, the plan in `kiln-model`.
//! Nothing here knows about clap: every entry point takes plain values so tests call it
//! directly.

pub mod cache_prune;
pub mod components;
pub mod publish;
pub mod push;
pub mod report;
pub mod sbom;
pub mod secure_boot;
pub mod sources;
pub mod stages;
pub mod templates;
pub mod treedir;
pub mod validate;

pub use kiln_model::{plan, values};
pub use kiln_spec as spec;
pub use kiln_spec::{diag, read_spec, schema_json, ReadSpecError, DEMO_NAME, DEMO_SPEC};
