//! kiln's integration tests, slow tier: the tests that boot QEMU guests or make a Debian base
//! with mmdebstrap (minutes each, and the network to Debian's mirror on a cold cache). Built
//! only with the `slow-tests` feature of `kiln-cli`:
//!
//! ```text
//! cargo test -p kiln-cli --features slow-tests --test slow
//! ```
//!
//! `./dev test` (what CI runs) runs it after the fast tier. What is slow to make is kept in
//! the machine's test cache (`kiln_test_support::machine_cache`), so a warm machine builds
//! little; QEMU guests run one set at a time (`common::vm::vm_lock`), and builds on the same
//! Debian base take turns so that mmdebstrap makes it once (`common::vm::debian_base_lock`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod cluster_boot;
mod debian_base_build;
mod debian_base_source;
mod pxe_boot;
mod verified_disk_boot;
mod vm_runner;
