//! Provisioning renderers: cloud-init (NoCloud seeds, [`cloudinit`]); kickstart and PXE
//! configs are not started (issue 11). They take the typed host plan
//! ([`kiln_model::plan::HostPlan`]) and render through [`kiln_model::templates::Templates`],
//! never reaching back into `builder`.

pub mod cloudinit;

pub use kiln_model::plan::HostPlan;

/// Errors of the renderers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Template(#[from] kiln_model::templates::TemplateError),
    /// cloud-init's `write_files` takes owners by name; kiln knows only `root` (uid/gid 0).
    #[error(
        "identity file {path} is owned by {uid}:{gid}; cloud-init's write_files names owners, \
         and identity files must be owned by root (0:0)"
    )]
    Owner { path: String, uid: u32, gid: u32 },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
