//! kiln-oci: OCI images from layer blobs — image config, manifest and index, the OCI image
//! layout, docker-archives, the content-addressed blob store, and a registry client.
//!
//! - [`oci`]: image config, manifest and index ([`oci::manifest::write_image`]), and the OCI
//!   image layout writer/reader ([`oci::layout`]).
//! - [`archive`]: docker-archive (`docker load`) writer and reader.
//! - [`registry`]: a blocking OCI distribution client (push, pull, auth).
//! - [`store`]: the content-addressed blob store everything reads from and writes to.
//!
//! Input is a set of layer blobs already in a [`BlobStore`]; see [`Layer`].

pub mod archive;
mod error;
pub mod oci;
pub mod registry;
pub mod store;

pub use error::{Error, Result};
pub use oci::manifest::{write_image, ImageSpec, WrittenImage};
pub use oci::{Descriptor, Layer, Platform};
pub use store::BlobStore;
