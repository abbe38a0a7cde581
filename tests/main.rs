//! kiln's integration tests: one test binary driving the `kiln` binary on fixture specs.
//! Helpers are in `util.rs`, fixtures in `fixtures/`, rendered-tree snapshots in `snapshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The images crate's test helpers: local docker-registry, Docker checks, busybox layer.
#[path = "../images/tests/it/util.rs"]
mod imgutil;
mod util;

mod build;
mod cli;
mod debian;
mod invalid;
mod render;
mod sources;
mod validators;
