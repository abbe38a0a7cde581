//! Error type of the crate.

use kiln_layers::{Digest, IoError, ParseDigestError};

/// Everything that can go wrong while writing, reading, pushing or pulling images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem or stream operation failed: with a path for files, without one for
    /// streams and sockets (a registry retries those).
    #[error(transparent)]
    Io(#[from] IoError),
    /// Content did not hash to the digest that names it. (The digests are boxed: a sha512
    /// digest is 64 bytes, and every `Result` of the crate carries this enum.)
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified.
        what: String,
        /// The digest it should have had.
        expected: Box<Digest>,
        /// The digest it had (same algorithm as `expected`).
        actual: Box<Digest>,
    },
    /// A digest string is not `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase).
    #[error(transparent)]
    InvalidDigest(#[from] ParseDigestError),
    /// A blob is not in the store.
    #[error("blob {0} is not in the blob store")]
    MissingBlob(Digest),
    /// JSON could not be parsed or produced.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A document is well-formed JSON but not what the format requires.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which document or input.
        what: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A reference (tag, image name) was not found.
    #[error("{0} not found")]
    NotFound(String),
    /// A registry answered with an unexpected status.
    #[error("registry: {method} {url} answered {status}: {body}")]
    Registry {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body (the registry's error JSON).
        body: String,
    },
    /// The registry could not be reached, after all retries.
    #[error("registry: {method} {url}: {reason}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Authentication with a registry failed.
    #[error("registry authentication: {0}")]
    Auth(String),
    /// A layer operation failed.
    #[error(transparent)]
    Layers(#[from] kiln_layers::Error),
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
