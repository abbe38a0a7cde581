//! Integration tests of kiln-images against independent tools: skopeo, umoci, Debian's
//! docker-registry and the machine's Docker Engine. Each test checks its tools first and fails
//! naming the Debian package to install.

mod archive;
mod docker;
mod layout;
mod registry;
mod util;
