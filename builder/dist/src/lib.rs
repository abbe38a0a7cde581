//! kiln-dist: the layout of `kiln build`'s output directory (`dist/`) and the two files in it
//! that other commands read — the boot manifest (`boot/manifest.json`, read by `kiln boot`)
//! and the PXE host list (`pxe/hosts.json`, read by `kiln serve`). The pipeline writes them;
//! the VM runner and the server read them; nothing here renders or builds anything, so those
//! crates need not depend on the pipeline.

pub mod boot_manifest;
mod layout;
pub mod pxe_hosts;

pub use layout::{Dist, REPORT};
