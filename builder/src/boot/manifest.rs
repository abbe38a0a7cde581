//! `boot/manifest.json`: what `kiln boot` starts and what it checks on each host, written by
//! `kiln build` next to the disks. Everything here is derived from the [`Plan`] once, at build
//! time, so booting needs no spec: the checks name IPs, ports, paths and units as the built
//! images use them.

use std::net::Ipv4Addr;

use kiln_model::plan::{EtcdAccess, HostPlan, Plan, Profile, StorePlan};
use serde::{Deserialize, Serialize};

use crate::build::Dist;

/// Version of the manifest's shape; bumped when a field changes meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// The bootable disk of one profile, as `kiln build` made it. Paths are relative to the dist
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileBoot {
    /// Profile name (`master`, `agent`, `master-agent`, …).
    pub name: String,
    /// `boot/PROFILE/disk.raw`.
    pub disk_raw: String,
    /// `boot/PROFILE/disk.qcow2`.
    pub disk_qcow2: String,
    /// dm-verity root hash of the read-only root.
    pub root_hash: String,
    /// The kernel command line the disk boots with.
    pub cmdline: String,
}

/// `boot/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootManifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    pub cluster: String,
    pub profiles: Vec<ProfileBoot>,
    /// Hosts in spec order (the order VMs start in).
    pub hosts: Vec<HostBoot>,
}

impl BootManifest {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&ProfileBoot> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

/// One host: how to start it and what must be true once it is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBoot {
    pub name: String,
    pub profile: String,
    /// Lowercase, colon-separated: the NIC's MAC (cloud-init's network-config matches on it).
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// `cloud-init/HOST-cidata.iso`, relative to the dist directory.
    pub seed_iso: String,
    pub checks: Vec<Check>,
}

/// One health check, run inside the guest through its QEMU guest agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable within a host: `etcd-version`, `unit:etcd.service`, …
    pub id: String,
    /// What it is about, for people: `etcd /version on 10.0.0.11:2379`.
    pub about: String,
    #[serde(flatten)]
    pub probe: Probe,
}

/// How a check is probed. Serialized with a `probe` tag (`http`, `zk-srvr`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "probe", rename_all = "kebab-case")]
pub enum Probe {
    /// `GET path` over plain HTTP/1.0: the status must be `status` and the body contain
    /// `body_contains` when set.
    Http {
        host: String,
        port: u16,
        path: String,
        status: u16,
        body_contains: Option<String>,
    },
    /// ZooKeeper's `srvr` four-letter word: `Mode: standalone|leader|follower`.
    ZkSrvr { host: String, port: u16 },
    /// `docker info` succeeds and, when set, shows `Cluster Store: <cluster_store>`.
    DockerInfo { cluster_store: Option<String> },
    /// A Docker container runs (`docker inspect`).
    Container { name: String },
    /// An executable file.
    Executable { path: String },
    /// A regular file.
    File { path: String },
    /// A systemd unit is `ActiveState=active` with `NRestarts=0`.
    Unit { unit: String },
    /// Not from the manifest: `kiln boot` brings up the VM's host link (the NIC with `mac`)
    /// with `address` and checks that it holds it. Idempotent, so it is re-run like a check.
    HostLink { mac: String, address: String },
}

/// The boot manifest of a plan whose disks `kiln build` made: `profiles` as built, hosts and
/// their checks derived from the plan.
pub fn manifest(plan: &Plan, profiles: Vec<ProfileBoot>) -> BootManifest {
    let hosts = plan
        .hosts
        .iter()
        .map(|h| HostBoot {
            name: h.name.as_str().to_string(),
            profile: h.profile.clone(),
            mac: h.mac.to_string().to_lowercase(),
            address: h.ip(),
            prefix: h.prefix(),
            seed_iso: Dist::seed_iso_rel(h.name.as_str()),
            checks: plan
                .profile(&h.profile)
                .map(|p| checks(plan, p, h))
                .unwrap_or_default(),
        })
        .collect();
    BootManifest {
        version: MANIFEST_VERSION,
        cluster: plan.cluster.as_str().to_string(),
        profiles,
        hosts,
    }
}

fn check(id: impl Into<String>, about: impl Into<String>, probe: Probe) -> Check {
    Check {
        id: id.into(),
        about: about.into(),
        probe,
    }
}

fn http(host: impl ToString, port: u16, path: &str, body_contains: Option<&str>) -> Probe {
    Probe::Http {
        host: host.to_string(),
        port,
        path: path.into(),
        status: 200,
        body_contains: body_contains.map(String::from),
    }
}

/// The checks of `host`, which boots `profile`: each service on its endpoint, then every unit.
pub fn checks(plan: &Plan, profile: &Profile, host: &HostPlan) -> Vec<Check> {
    let ip = host.ip();
    let mut out = Vec::new();
    if let Some(e) = &plan.etcd {
        let port = e.client_port;
        if profile.etcd_member && e.is_member(&host.name) {
            out.push(check(
                "etcd-version",
                format!("etcd /version on {ip}:{port}"),
                http(ip, port, "/version", Some("etcdserver")),
            ));
            out.push(check(
                "etcd-health",
                format!("etcd /health on {ip}:{port}"),
                http(ip, port, "/health", Some("\"health\":\"true\"")),
            ));
        } else if let Some(local) = local_etcd(profile, e.access) {
            // The local proxy answers only when it reaches a member.
            let (path, body) = match e.access {
                EtcdAccess::Proxy => ("/version", "etcdserver"),
                _ => ("/health", "\"health\":\"true\""),
            };
            out.push(check(
                "etcd-proxy",
                format!("etcd {path} through the local {local} on 127.0.0.1:{port}"),
                http(Ipv4Addr::LOCALHOST, port, path, Some(body)),
            ));
        }
    }
    if let Some(zk) = plan
        .zookeeper
        .as_ref()
        .filter(|_| profile.runs("zookeeper.service"))
    {
        let port = zk.client_port;
        out.push(check(
            "zookeeper-srvr",
            format!("ZooKeeper srvr on {ip}:{port}"),
            Probe::ZkSrvr {
                host: ip.to_string(),
                port,
            },
        ));
    }
    if plan.docker.is_some() && profile.runs("docker.service") {
        let store = crate::components::docker::cluster_store(plan, profile);
        out.push(check(
            "docker-info",
            match &store {
                Some(s) => format!("docker info shows Cluster Store: {s}"),
                None => "docker info".to_string(),
            },
            Probe::DockerInfo {
                cluster_store: store,
            },
        ));
        if let Some(c) = docker_node_key(plan, profile, host) {
            out.push(c);
        }
    }
    if let (Some(cni), true) = (&plan.calico.cni, profile.roles.agent) {
        for bin in ["calico", "calico-ipam"] {
            let path = cni.plugins_dir.child(bin);
            out.push(check(
                format!("cni-{bin}"),
                format!("CNI plugin {path}"),
                Probe::Executable { path },
            ));
        }
        let path = cni.config_dir.child(cni.config_file);
        out.push(check(
            "cni-config",
            format!("CNI network config {path}"),
            Probe::File { path },
        ));
    }
    for (unit, name) in [
        ("calico-node.service", "calico-node"),
        ("calico-libnetwork.service", "calico-libnetwork"),
    ] {
        if profile.runs(unit) {
            out.push(check(
                format!("container-{name}"),
                format!("container {name} running"),
                Probe::Container { name: name.into() },
            ));
        }
    }
    if let (Some(m), true) = (&plan.mesos.master, profile.runs("mesos-master.service")) {
        out.push(check(
            "mesos-master",
            format!("Mesos master /health on {ip}:{}", m.port),
            http(ip, m.port, "/health", None),
        ));
    }
    if let (Some(a), true) = (&plan.mesos.agent, profile.runs("mesos-slave.service")) {
        out.push(check(
            "mesos-agent",
            format!("Mesos agent /health on {ip}:{}", a.port),
            http(ip, a.port, "/health", None),
        ));
    }
    if let (Some(m), true) = (&plan.marathon, profile.runs("marathon.service")) {
        out.push(check(
            "marathon",
            format!("Marathon /ping on {ip}:{}", m.port),
            http(ip, m.port, "/ping", Some("pong")),
        ));
    }
    for s in &profile.services {
        out.push(check(
            format!("unit:{}", s.unit),
            format!("{} active, never restarted", s.unit),
            Probe::Unit {
                unit: s.unit.clone(),
            },
        ));
    }
    out
}

/// The name of the local etcd access unit's kind, when the profile runs one.
fn local_etcd(profile: &Profile, access: EtcdAccess) -> Option<&'static str> {
    let (unit, kind) = match access {
        EtcdAccess::Proxy => ("etcd-proxy.service", "v2 proxy"),
        EtcdAccess::Gateway => ("etcd-gateway.service", "gateway"),
        EtcdAccess::GrpcProxy => ("etcd-grpc-proxy.service", "grpc-proxy"),
        EtcdAccess::Static => return None,
    };
    profile.runs(unit).then_some(kind)
}

/// Docker's node registration in its etcd cluster store: libnetwork's discovery puts
/// `docker/nodes/ADVERTISE` (value: the advertised address, with a TTL) through etcd's v2 API
/// (moby `pkg/discovery/kv`, `defaultDiscoveryPath`). Only for `cluster_store = "etcd"` with an
/// advertise address; read through the first endpoint the host's clients use.
fn docker_node_key(plan: &Plan, profile: &Profile, host: &HostPlan) -> Option<Check> {
    let d = plan.docker.as_ref()?;
    if d.cluster_store.as_ref()? != &StorePlan::Etcd {
        return None;
    }
    let addr = match d.advertise.as_ref()? {
        kiln_model::plan::Advertise::HostIp { port } => format!("{}:{port}", host.ip()),
        kiln_model::plan::Advertise::Literal(hp) => hp.to_string(),
    };
    let ep = profile.etcd_client_endpoints.first()?;
    let key = format!("/docker/nodes/{addr}");
    Some(check(
        "docker-node-key",
        format!("Docker's node key {key} in etcd (via {})", ep.host_port()),
        http(
            &ep.host,
            ep.port,
            &format!("/v2/keys{key}"),
            Some(&format!("\"key\":\"{key}\"")),
        ),
    ))
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
