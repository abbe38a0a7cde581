//! File trees, deterministic archive writers, compression and digests for kiln.
//!
//! This crate knows nothing about clusters or the command line: it models a root filesystem
//! (or a part of one) as a [`FileTree`] and turns it into bytes.

pub mod tree;

pub use tree::{Entry, EntryKind, FileTree, TreeError};
