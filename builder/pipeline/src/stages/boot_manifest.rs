//! The boot manifest's content, derived from the plan: which hosts `kiln boot` starts and what
//! it checks on each (the types are [`kiln_dist::boot_manifest`]).

use std::net::Ipv4Addr;

use kiln_dist::boot_manifest::{
    BootManifest, Check, HostBoot, Probe, ProfileBoot, MANIFEST_VERSION,
};
use kiln_dist::Dist;
use kiln_model::plan::{EtcdAccess, HostPlan, Plan, Profile, StorePlan};

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
        secure_boot: None,
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
    // Every baked image runs as the container named after it (`Ctx::container_unit`).
    for img in crate::components::images_of(plan, profile) {
        let name = img.name;
        out.push(check(
            format!("container-{name}"),
            format!("container {name} running"),
            Probe::Container { name: name.into() },
        ));
    }
    if let (Some(m), true) = (&plan.mesos.master, profile.runs("mesos-master.service")) {
        out.push(check(
            "mesos-master",
            format!("Mesos master /health on {ip}:{}", m.port),
            http(ip, m.port, "/health", None),
        ));
    }
    if let (Some(a), true) = (
        &plan.mesos.agent,
        profile.runs(plan.mesos.flavour.agent_unit()),
    ) {
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
/// advertise address, on the profiles whose Docker uses the store (the agents); read through
/// the first endpoint the host's clients use.
fn docker_node_key(plan: &Plan, profile: &Profile, host: &HostPlan) -> Option<Check> {
    let d = plan.docker.as_ref()?;
    crate::components::docker::cluster_store(plan, profile)?;
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
#[path = "boot_manifest_tests.rs"]
mod tests;
