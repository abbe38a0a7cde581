//! File trees, deterministic archive writers, compression and digests for kiln.
//!
//! This crate knows nothing about clusters or the command line: it models a root filesystem
//! (or a part of one) as a [`FileTree`] and turns it into bytes.
//!
//! # Writing
//! - [`tar::write_tar`] streams a [`FileTree`] as a byte-for-byte deterministic tar (ustar
//!   headers, PAX records for long names, xattrs and oversized values; full mode including
//!   setuid/setgid/sticky; mtimes clamped to `SOURCE_DATE_EPOCH`).
//! - [`cpio::write_cpio`] streams it as a deterministic newc cpio archive (initramfs).
//! - [`write_layer`] does tar + compression + both digests in one streaming pass and returns a
//!   [`LayerBlob`] (`diff_id`, blob `digest`, sizes, OCI media type). [`write_layer_to_dir`]
//!   stores the blob at `ROOT/blobs/sha256/<hex>` atomically, and
//!   [`compress_layers_parallel`] does that for several trees at once.
//! - Gzip is produced pigz-style by [`compress::ParallelGzEncoder`]: the stream is cut into
//!   fixed [`compress::GZIP_BLOCK_SIZE`] blocks deflated in parallel, each primed with the
//!   previous 32 KiB. Block boundaries never depend on the thread count, so **the output is the
//!   same bytes for any number of threads**. The deflate backend is pinned (flate2 with
//!   zlib-rs) and a golden-digest test catches any drift.
//!
//! # Reading
//! - [`read::read_layer`] / [`read::apply_layer`] read a plain, gzip or zstd tar layer
//!   (detected by magic) into a [`FileTree`], applying OCI whiteouts. Paths that would escape
//!   the root are rejected with [`Error::UnsafeEntry`] naming the entry (and, for a hard
//!   link, saying its target is wrong); a leading `/` is treated as relative to the root, as
//!   GNU tar and Docker do when they extract. [`read::read_layer_relative`] and
//!   [`read::apply_layer_metadata_relative`], for a base whose layers are published as they
//!   are, refuse a leading `/` like `..`.
//! - [`extract::extract_to_dir`] materialises a tree in a real directory without following
//!   symlinks and without ever writing outside it.
//!
//! Everything returns this crate's [`Result`]; tree construction errors stay [`TreeError`].
//! An I/O error with its context is an [`IoError`], the shape the error types of kiln's crates
//! use for it (`"{action} {path}: {source}"`, built with [`IoError::at`] and [`IoError::new`]).
//!
//! # Example
//! ```
//! use kiln_layers::{read_layer, write_layer, Entry, FileTree, LayerOptions};
//!
//! let mut tree = FileTree::new();
//! tree.insert("/etc/zookeeper/zoo.cfg", Entry::file("tickTime=2000\n", 0o644))?;
//! tree.insert("/usr/bin/helper", Entry::file("#!/bin/sh\n", 0o4755))?;
//! let opts = LayerOptions { source_date_epoch: 1_700_000_000, ..Default::default() };
//! let mut blob = Vec::new();
//! let layer = write_layer(&tree, &opts, &mut blob)?;
//! assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
//! assert_eq!(layer.size, blob.len() as u64);
//! let back = read_layer(&blob[..])?;
//! assert_eq!(back.get("/usr/bin/helper").map(|e| e.mode), Some(0o4755));
//! # Ok::<(), kiln_layers::Error>(())
//! ```

// Tests may unwrap; library code returns errors.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod compress;
pub mod cpio;
pub mod decompress;
pub mod digest;
pub mod extract;
pub mod flatten;
mod io_error;
pub mod read;
pub mod tar;
pub mod time;
pub mod tree;

pub use compress::{
    compress_layers_parallel, write_layer, write_layer_to_dir, write_tar_stream,
    write_tar_stream_to_dir, Compression, LayerBlob, LayerOptions,
};
pub use cpio::{read_cpio, write_cpio};
pub use decompress::{decompress_all, decompressed};
pub use digest::{
    hash_reader, Algorithm, Digest, Hasher, HashingReader, HashingWriter, ParseDigestError,
};
pub use extract::extract_to_dir;
pub use flatten::flatten_tar;
pub use io_error::IoError;
pub use read::{
    apply_layer, apply_layer_metadata, apply_layer_metadata_relative, apply_layer_selected,
    read_layer, read_layer_relative,
};
pub use tar::write_tar;
pub use tree::{resolve_parents, Entry, EntryKind, FileTree, TreeError};

/// Errors from writing, compressing, reading and extracting layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with what was being done and the path when there is one.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Building a tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// An entry cannot be represented in the chosen archive format.
    #[error("cannot write {path} as {format}: {reason}")]
    Unrepresentable {
        path: String,
        format: &'static str,
        reason: String,
    },
    /// A hard link in a tree points at a missing path or at something that cannot be linked.
    #[error("hard link {path} -> {target}: {reason}")]
    BadHardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    /// A layer entry would escape the root or otherwise break containment.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// A tar stream is not well formed.
    #[error("malformed tar at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    /// Invalid options (compression level, ...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The compressor failed.
    #[error("compression failed: {0}")]
    Compress(String),
}

/// A `Result` alias for this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
