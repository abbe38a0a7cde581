//! Error type of the crate.

use kiln_layers::IoError;

/// Everything that can go wrong while making bootable artifacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// An input is not what the format requires.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which document or input.
        what: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An external program is not installed.
    #[error("`{tool}` is not installed (Debian package `{package}`: apt-get install {package})")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// An external program failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// Its exit status and the end of its error output.
        detail: String,
    },
    /// The Secure Boot signing key can be read by other users.
    #[error(
        "{}: the signing key is readable or writable by other users (mode {mode:o}): \
         run `chmod 600 {}` (and keep it off shared disks)",
        path.display(),
        path.display()
    )]
    KeyExposed {
        /// The key file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The root filesystem lacks something a bootable image needs.
    #[error("image {image}: {what} (the base must include the Debian package `{package}`)")]
    MissingInRootfs {
        /// The image name.
        image: String,
        /// What is missing and where it was looked for.
        what: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A template failed to render (a bug in kiln).
    #[error(transparent)]
    Template(#[from] kiln_model::templates::TemplateError),
    /// Writing an archive (cpio) failed.
    #[error(transparent)]
    Layers(#[from] kiln_layers::Error),
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
