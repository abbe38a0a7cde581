//! The checks derived from the plans of the demo and the test specs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;

fn plan_of(spec: Option<&str>) -> Plan {
    let path = spec.map(|s| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/specs")
            .join(s)
    });
    let src = crate::read_spec(path.as_deref()).unwrap();
    crate::validate::load(&src)
        .unwrap_or_else(|r| panic!("{r}"))
        .plan
}

const SPECS: &[&str] = &[
    "build.toml",
    "dcos-large.toml",
    "debian.toml",
    "props.toml",
    "static-endpoints.toml",
    "three-two.toml",
];

fn ids(h: &HostBoot) -> BTreeSet<&str> {
    h.checks.iter().map(|c| c.id.as_str()).collect()
}

fn host<'a>(m: &'a BootManifest, name: &str) -> &'a HostBoot {
    m.hosts.iter().find(|h| h.name == name).unwrap()
}

#[test]
fn demo_host_checks_every_service_on_its_endpoint() {
    let plan = plan_of(None);
    let m = manifest(&plan, Vec::new());
    let h = host(&m, "node1");
    assert_eq!(h.mac, "52:54:00:12:34:56");
    assert_eq!(h.address.to_string(), "10.0.2.15");
    assert_eq!(h.prefix, 24);
    assert_eq!(h.seed_iso, "cloud-init/node1-cidata.iso");
    let got = ids(h);
    for want in [
        "etcd-version",
        "etcd-health",
        "zookeeper-srvr",
        "docker-info",
        "docker-node-key",
        "cni-calico",
        "cni-calico-ipam",
        "cni-config",
        "container-calico-node",
        "container-marathon",
        "mesos-master",
        "mesos-agent",
        "marathon",
        "unit:etcd.service",
        "unit:zookeeper.service",
        "unit:docker.service",
    ] {
        assert!(got.contains(want), "node1 lacks {want}: {got:?}");
    }
    let by_id = |id: &str| &h.checks.iter().find(|c| c.id == id).unwrap().probe;
    assert_eq!(
        by_id("etcd-version"),
        &Probe::Http {
            host: "10.0.2.15".into(),
            port: 2379,
            path: "/version".into(),
            status: 200,
            body_contains: Some("etcdserver".into()),
        }
    );
    assert_eq!(
        by_id("zookeeper-srvr"),
        &Probe::ZkSrvr {
            host: "10.0.2.15".into(),
            port: 2181
        }
    );
    match by_id("docker-info") {
        Probe::DockerInfo {
            cluster_store: Some(s),
        } => assert!(s.starts_with("etcd://"), "{s}"),
        other => panic!("{other:?}"),
    }
    match by_id("docker-node-key") {
        Probe::Http { path, .. } => assert_eq!(path, "/v2/keys/docker/nodes/10.0.2.15:2376"),
        other => panic!("{other:?}"),
    }
    match by_id("marathon") {
        Probe::Http { port, path, .. } => assert_eq!((*port, path.as_str()), (8080, "/ping")),
        other => panic!("{other:?}"),
    }
}

/// Every unit a profile runs is checked, on every host of every spec; nothing is checked
/// twice; services are checked only where the profile runs them.
#[test]
fn every_unit_of_every_profile_is_checked_and_nothing_else_runs() {
    for spec in SPECS.iter().map(|s| Some(*s)).chain([None]) {
        let plan = plan_of(spec);
        let m = manifest(&plan, Vec::new());
        assert_eq!(m.hosts.len(), plan.hosts.len());
        for (h, hp) in m.hosts.iter().zip(&plan.hosts) {
            let profile = plan.profile(&hp.profile).unwrap();
            let got = ids(h);
            assert_eq!(
                got.len(),
                h.checks.len(),
                "{spec:?} {}: duplicate ids",
                h.name
            );
            for s in &profile.services {
                assert!(
                    got.contains(format!("unit:{}", s.unit).as_str()),
                    "{spec:?} {}",
                    h.name
                );
            }
            let units = h
                .checks
                .iter()
                .filter(|c| c.id.starts_with("unit:"))
                .count();
            assert_eq!(units, profile.services.len(), "{spec:?} {}", h.name);
            let pairs = [
                ("zookeeper-srvr", "zookeeper.service"),
                ("docker-info", "docker.service"),
                ("mesos-master", "mesos-master.service"),
                ("mesos-agent", plan.mesos.flavour.agent_unit()),
                ("marathon", "marathon.service"),
                ("container-calico-node", "calico-node.service"),
            ];
            for (id, unit) in pairs {
                assert_eq!(
                    got.contains(id),
                    profile.runs(unit),
                    "{spec:?} {}: {id} iff {unit}",
                    h.name
                );
            }
            // Marathon's container where it runs from its image; Docker's node key where
            // Docker uses the cluster store (agents).
            assert_eq!(
                got.contains("container-marathon"),
                profile.runs("marathon.service")
                    && plan.marathon.as_ref().and_then(|m| m.image()).is_some(),
                "{spec:?} {}",
                h.name
            );
            if !profile.roles.agent {
                assert!(!got.contains("docker-node-key"), "{spec:?} {}", h.name);
            }
            assert_eq!(
                got.contains("etcd-version"),
                plan.etcd.as_ref().is_some_and(|e| e.is_member(&hp.name)),
                "{spec:?} {}",
                h.name
            );
            assert_eq!(
                got.contains("cni-config"),
                plan.calico.cni.is_some() && profile.roles.agent,
                "{spec:?} {}",
                h.name
            );
        }
    }
}

#[test]
fn agents_check_etcd_through_their_local_proxy() {
    let plan = plan_of(Some("build.toml"));
    let m = manifest(&plan, Vec::new());
    let agent = plan.hosts.iter().find(|h| !h.roles.master).unwrap();
    let h = host(&m, agent.name.as_str());
    let c = h.checks.iter().find(|c| c.id == "etcd-proxy").unwrap();
    match &c.probe {
        Probe::Http { host, port, .. } => assert_eq!((host.as_str(), *port), ("127.0.0.1", 2379)),
        other => panic!("{other:?}"),
    }
    assert!(!ids(h).contains("etcd-version"));
}

#[test]
fn static_endpoints_and_no_cluster_store_mean_no_proxy_and_no_store_checks() {
    let plan = plan_of(Some("static-endpoints.toml"));
    let m = manifest(&plan, Vec::new());
    for h in &m.hosts {
        let got = ids(h);
        assert!(!got.contains("etcd-proxy"), "{}", h.name);
        assert!(!got.contains("docker-node-key"), "{}", h.name);
        if let Some(c) = h.checks.iter().find(|c| c.id == "docker-info") {
            assert_eq!(
                c.probe,
                Probe::DockerInfo {
                    cluster_store: None
                }
            );
        }
    }
}

#[test]
fn the_manifest_round_trips_through_json_with_a_probe_tag() {
    let plan = plan_of(None);
    let profiles = vec![ProfileBoot {
        name: "master-agent".into(),
        disk_raw: "boot/master-agent/disk.raw".into(),
        disk_qcow2: "boot/master-agent/disk.qcow2".into(),
        uki: "boot/master-agent/kiln.efi".into(),
        signed: false,
        pcr11: "cd".repeat(32),
        net_uki: format!("pxe/sha256/{}", "ef".repeat(32)),
        net_pcr11: "01".repeat(32),
        root_hash: "ab".repeat(32),
        cmdline: "console=ttyS0".into(),
    }];
    let m = manifest(&plan, profiles);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["hosts"][0]["checks"][0]["probe"], "http");
    assert_eq!(json["hosts"][0]["checks"][0]["id"], "etcd-version");
    let back: BootManifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}
