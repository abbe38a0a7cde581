//! A blocking OCI distribution API client: push ([`push::push`]), pull ([`pull::pull`]),
//! authentication ([`auth`]) and the HTTP plumbing ([`client::Client`]).
//!
//! Progress is reported through [`Progress`], a plain callback, so a binary can draw bars on a
//! terminal or print lines; the library knows nothing about terminals.

pub mod auth;
pub mod client;
pub mod pull;
pub mod push;

pub use client::{Client, ClientOptions, RetryPolicy};
pub use pull::pull;
pub use push::{push, BlobOutcome, PushOptions, PushReport};

use kiln_layers::Digest;

use crate::Error;

/// Something that happened during a push or pull.
#[derive(Debug)]
pub enum ProgressEvent<'a> {
    /// Work on a blob begins.
    BlobStarted {
        /// Its digest.
        digest: &'a Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob sent or received so far (reported about every MiB and at the end).
    BlobBytes {
        /// Its digest.
        digest: &'a Digest,
        /// Bytes done.
        done: u64,
        /// Total size.
        size: u64,
    },
    /// A blob is done.
    BlobFinished {
        /// Its digest.
        digest: &'a Digest,
        /// What happened to it.
        outcome: BlobOutcome,
    },
    /// An upload or download failed and starts over.
    Restarted {
        /// The blob.
        digest: &'a Digest,
        /// Attempt about to start (2 = first retry).
        attempt: u32,
        /// Why.
        error: &'a Error,
    },
    /// A manifest or index was stored under `reference`.
    ManifestPushed {
        /// Tag or digest.
        reference: &'a str,
        /// Manifest digest.
        digest: &'a Digest,
    },
}

/// Receives [`ProgressEvent`]s. Closures `FnMut(&ProgressEvent)` implement it.
pub trait Progress {
    /// Called for each event, on the pushing/pulling thread.
    fn on_event(&mut self, event: &ProgressEvent<'_>);
}

impl<F: FnMut(&ProgressEvent<'_>)> Progress for F {
    fn on_event(&mut self, event: &ProgressEvent<'_>) {
        self(event)
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_event(&mut self, _: &ProgressEvent<'_>) {}
}

/// Checks a repository name against the distribution spec's grammar (lowercase path
/// components of `[a-z0-9]` separated by `.`, `_`, `__`, `-`, joined by `/`).
pub fn validate_repository(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                && c.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
                && c.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "repository name",
            format!("{name:?} is not a valid repository name"),
        ))
    }
}
