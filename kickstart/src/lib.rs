//! Provisioning renderers: cloud-init (NoCloud seeds, [`cloudinit`]), kickstarts
//! ([`kickstart`]) and PXE configs ([`pxe`]: iPXE, PXELINUX, GRUB) for diskless boots and
//! kickstart installs. They take the typed host plan
//! ([`kiln_model::plan::HostPlan`]) and render through [`kiln_model::templates::Templates`],
//! never reaching back into `builder`.

pub mod cloudinit;
pub mod kickstart;
pub mod pxe;

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
    /// A value that would end a kickstart line, start a comment or leave a shell quote.
    #[error("{what} {value:?} cannot be written into a kickstart (a space, quote, '#' or control character)")]
    Unsafe { what: String, value: String },
    /// The build did not give what the mode installs.
    #[error("kickstart mode {mode} needs {what}")]
    ModeInput {
        mode: &'static str,
        what: &'static str,
    },
    /// `ostreecontainer` exists from RHEL 9's Anaconda on.
    #[error("kickstart mode bootc needs CentOS Stream 9; {target} has no ostreecontainer command")]
    BootcTarget { target: &'static str },
    #[error("unit {unit} opens port 0, which no firewall can open")]
    Port { unit: String },
    /// Anaconda's liveimg takes only these tarball names; anything else it reads as a disk image.
    #[error(
        "rootfs tarball {name} is not a name Anaconda's liveimg takes: it must end in .tar, \
         .tgz, .tar.gz, .txz, .tar.xz, .tbz or .tar.bz2"
    )]
    LiveimgName { name: String },
    #[error("liveimg checksum {value:?} is not a sha256 (64 hex digits)")]
    Checksum { value: String },
    #[error(transparent)]
    Pxe(#[from] pxe::PxeError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
