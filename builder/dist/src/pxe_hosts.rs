//! `pxe/hosts.json`: the hosts of a PXE tree, written by `kiln build` and read by `kiln serve`
//! to answer the kickstart MAC header and to serve each host's own files only to the host's
//! address. It holds no secret.

use std::net::Ipv4Addr;

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
    /// The host's address on the cluster network (the spec's, without the prefix): the only
    /// peer `kiln serve` hands the host's seed and kickstart to. `None` in a hosts.json
    /// written before kiln recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    pub profile: String,
    /// Its iPXE script below `pxe/`.
    pub ipxe: String,
}
