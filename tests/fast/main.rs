//! kiln's integration tests, fast tier: everything that needs no VM and no mmdebstrap
//! (`cargo test` runs it; `./dev test --fast` is fmt plus this tier and the crates' own tests).
//! One test binary driving the `kiln` binary and the libraries on fixture specs; external
//! tools (skopeo, umoci, Docker, cloud-init, …) are checked for first, and a missing one is
//! named with its Debian package.
//!
//! The slow tier (QEMU guests, Debian bases made by mmdebstrap) is the `slow` test binary
//! (`tests/slow/`), built only with the `slow-tests` feature. Helpers of both are in
//! `tests/common/` and, shared with the crates' own tests, in `tests/support/` (the
//! `kiln-test-support` crate); fixtures in `tests/fixtures/`, snapshots in `tests/snapshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod base_member_names;
mod boot_path;
mod build_outputs;
mod cache_integrity;
mod cache_size;
mod cli;
mod cloud_init_seeds;
mod crash_safe_publish;
mod debian_package_source;
mod disk_layout;
mod independent_validators;
mod invalid_specs;
mod iptables_mode;
mod kickstart;
mod mutated_specs;
mod pinned_sources;
mod provision_incremental;
mod real_hosts_calico;
mod real_hosts_etcd;
mod real_hosts_marathon;
mod real_hosts_mesos;
mod rendered_trees;
mod role_image_inputs;
mod secret_isolation;
mod secure_boot;
mod serve;
mod spec_value_props;
mod upstream_sources;
