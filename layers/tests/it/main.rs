//! Integration tests of kiln-layers: one binary, one module per feature.

#![allow(clippy::unwrap_used)]

mod util;

mod determinism;
mod malicious;
mod oracle;
mod props;
mod roundtrip;
