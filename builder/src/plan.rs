//! The resolved cluster: what [`crate::validate`] makes of a spec. Every derived value (ZooKeeper
//! connect strings, etcd initial cluster, quorum, CNI dirs, images) is computed once here, so
//! components only lay values out.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::spec::Spec;
use crate::version::Version;

/// The roles of a host, as a small set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Roles {
    pub master: bool,
    pub agent: bool,
}

impl Roles {
    /// Role names, masters first.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.master {
            v.push("master");
        }
        if self.agent {
            v.push("agent");
        }
        v
    }
}

/// One host with its identity.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub name: String,
    pub fqdn: String,
    pub roles: Roles,
    /// Name of the image profile the host boots.
    pub profile: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Lowercase, colon-separated.
    pub mac: String,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
    pub interface: String,
    /// etcd member name, for hosts that run an etcd member.
    pub etcd_name: Option<String>,
    /// ZooKeeper `myid`, for hosts in the ensemble.
    pub zk_id: Option<u32>,
}

/// A group of hosts that boot the same image: same roles, same services.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// `master`, `agent`, `master-agent`, or with `-etcd-proxy` for masters without a member.
    pub name: String,
    pub roles: Roles,
    /// Whether hosts of this profile run an etcd member (else a proxy/gateway or nothing).
    pub etcd_member: bool,
    pub hosts: Vec<String>,
    pub services: Vec<Service>,
    /// etcd endpoints that local clients (Docker, Calico) use, comma-separated URLs.
    pub etcd_client_endpoints: String,
}

/// Transport of an opened port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// IP protocol 4 (IP-in-IP), which has no port.
    Ipip,
}

/// A port a service listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub port: u16,
    pub proto: Proto,
    /// Only on loopback: no firewall opening needed.
    pub local: bool,
    /// The spec key that sets it, for conflict messages.
    #[serde(skip)]
    pub key: String,
}

impl Port {
    /// A TCP port reachable from other hosts.
    pub fn tcp(port: u16, key: &str) -> Self {
        Port {
            port,
            proto: Proto::Tcp,
            local: false,
            key: key.into(),
        }
    }
}

/// A systemd unit a component runs.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Unit name (`etcd.service`).
    pub unit: String,
    /// Component that contributes it (`etcd`).
    pub component: &'static str,
    /// The binary the unit starts, checked for presence in the image.
    pub exec: String,
    pub ports: Vec<Port>,
}

/// How hosts without an etcd member reach etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdAccess {
    /// etcd 2.x `--proxy on`.
    Proxy,
    /// `etcd gateway start` (TCP; carries v2 and v3).
    Gateway,
    /// `etcd grpc-proxy start` (v3 only).
    GrpcProxy,
    /// No local proxy; clients use static endpoints.
    Static,
}

/// How calico-libnetwork runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "image")]
pub enum Libnetwork {
    Off,
    /// Calico 2.x: inside calico-node (`CALICO_LIBNETWORK_ENABLED=true`).
    Builtin,
    /// Calico 1.x: its own container.
    Container(String),
}

/// Values derived from the whole spec.
#[derive(Debug, Clone, Serialize)]
pub struct Derived {
    /// `ip:2181,ip:2181` of the ensemble.
    pub zk_hosts: String,
    /// `zk://…/mesos`.
    pub mesos_zk: String,
    /// `zk://…/marathon`.
    pub marathon_zk: String,
    pub mesos_quorum: u32,
    /// `name=http://ip:2380,…`.
    pub etcd_initial_cluster: String,
    /// Client URLs of every member, comma-separated.
    pub etcd_member_urls: String,
    /// Whether etcd's v2 API is on.
    pub etcd_v2: bool,
    /// Whether any v2 client (Docker cluster store on etcd, Calico ≤ 2.x) is configured.
    pub etcd_v2_clients: bool,
    pub etcd_access: EtcdAccess,
    /// `cluster-store` value for daemon.json, before per-profile endpoint substitution.
    pub docker_cluster_store: Option<String>,
    /// `cluster-advertise` with `${KILN_IP}` for the host address.
    pub docker_cluster_advertise: Option<String>,
    pub cni_plugins_dir: String,
    pub cni_config_dir: String,
    /// File name of the Calico network config in the config dir.
    pub cni_config_file: String,
    pub calico_node_image: String,
    pub libnetwork: Libnetwork,
    /// Container images the units run and the hosts load from local disk at boot.
    pub baked_images: Vec<String>,
}

/// Parsed component versions.
#[derive(Debug, Clone)]
pub struct Versions {
    pub etcd: Version,
    pub docker: Version,
    pub calico: Version,
}

/// A validated, resolved cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub domain: String,
    /// sha256 of the spec text.
    pub spec_digest: String,
    pub hosts: Vec<HostPlan>,
    pub profiles: Vec<Profile>,
    pub derived: Derived,
    pub warnings: Vec<Diagnostic>,
    /// The spec with defaults filled in; components read their settings here.
    #[serde(skip)]
    pub spec: Spec,
    #[serde(skip)]
    pub versions: Versions,
}

impl Plan {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// Hosts that are masters, in spec order.
    pub fn masters(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| h.roles.master)
    }
}
