//! `pxe/hosts.json`: the hosts of a PXE tree, written by `kiln build` and read by `kiln serve`
//! to answer the kickstart MAC header. It holds no secret.

use serde::{Deserialize, Serialize};

/// `pxe/hosts.json`: what `kiln serve` needs to know of each host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PxeHosts {
    /// The cluster's name.
    pub cluster: String,
    /// `provision.url`, without its trailing `/`.
    pub url: String,
    pub hosts: Vec<PxeHost>,
}

/// One host in `pxe/hosts.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PxeHost {
    pub name: String,
    /// Lowercase, colon-separated.
    pub mac: String,
    pub profile: String,
    /// Its iPXE script below `pxe/`.
    pub ipxe: String,
}
