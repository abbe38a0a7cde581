//! kiln's integration tests: one test binary driving the `kiln` binary on fixture specs.
//! Helpers are in `util.rs` and, shared with the other crates' tests, in `support/` (the
//! `kiln-test-support` crate); fixtures in `fixtures/`, rendered-tree snapshots in `snapshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod boot;
mod boot_runner;
mod build;
mod cache;
mod cli;
mod cluster;
mod debian;
mod debian_sources;
mod invalid;
mod kickstart;
mod mutated_specs;
mod props;
mod provision;
mod publish;
mod pxe;
mod real_hosts;
mod real_hosts_calico;
mod render;
mod secrets;
mod seed;
mod serve;
mod shapes;
mod sources;
mod sources_server;
mod validators;
