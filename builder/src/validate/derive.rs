//! Deriving the plan from checked parts: pure, no diagnostics. Hosts get their ZooKeeper ids
//! and etcd names, hosts that boot the same image are grouped into profiles, and the component
//! registry says what each profile runs and masks.

use std::collections::BTreeMap;

use kiln_model::plan::{
    BasePlan, CalicoPlan, DockerPlan, Endpoint, EtcdAccess, EtcdPlan, FirewallPlan, HostPlan,
    ImagesPlan, MarathonPlan, MesosPlan, Plan, Profile, RegistryPlan, Roles, ZooKeeperPlan,
};
use kiln_model::values::{DomainName, HostName};

use crate::components;

/// Everything the checkers produced.
pub(super) struct Parts {
    pub cluster: HostName,
    pub domain: DomainName,
    pub spec_sha256: String,
    pub hosts: Vec<HostPlan>,
    pub base: BasePlan,
    pub zookeeper: Option<ZooKeeperPlan>,
    pub etcd: Option<EtcdPlan>,
    pub mesos: MesosPlan,
    pub marathon: Option<MarathonPlan>,
    pub docker: Option<DockerPlan>,
    pub calico: CalicoPlan,
    pub firewall: Option<FirewallPlan>,
    pub registry: Option<RegistryPlan>,
    pub images: ImagesPlan,
}

/// The plan of checked parts.
pub(super) fn plan(p: Parts) -> Plan {
    let mut hosts = p.hosts;
    if p.zookeeper.is_some() {
        for (id, h) in (1..).zip(hosts.iter_mut().filter(|h| h.roles.master)) {
            h.zk_id = Some(id);
        }
    }
    // Hosts of one profile boot the same image: group by roles and etcd membership.
    let mut groups: BTreeMap<(Roles, bool), (String, Vec<HostName>)> = BTreeMap::new();
    for h in &mut hosts {
        let member = p.etcd.as_ref().is_some_and(|e| e.is_member(&h.name));
        if member {
            h.etcd_name = Some(h.name.clone());
        }
        let mut name = h.roles.names().join("-");
        if h.roles.master && !member && p.etcd.is_some() {
            name.push_str("-etcd-proxy");
        }
        h.profile = name.clone();
        groups
            .entry((h.roles, member))
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(h.name.clone());
    }
    let mut profiles: Vec<Profile> = groups
        .into_iter()
        .map(|((roles, member), (name, hosts))| Profile {
            name,
            roles,
            hosts,
            etcd_member: member,
            etcd_client_endpoints: p
                .etcd
                .as_ref()
                .map(|e| client_endpoints(e, member))
                .unwrap_or_default(),
            services: Vec::new(),
            masked: Vec::new(),
        })
        .collect();
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    let mut plan = Plan {
        cluster: p.cluster,
        domain: p.domain,
        spec_sha256: p.spec_sha256,
        hosts,
        profiles,
        base: p.base,
        zookeeper: p.zookeeper,
        etcd: p.etcd,
        mesos: p.mesos,
        marathon: p.marathon,
        docker: p.docker,
        calico: p.calico,
        firewall: p.firewall,
        registry: p.registry,
        images: p.images,
    };
    let services: Vec<_> = plan
        .profiles
        .iter()
        .map(|pr| components::services(&plan, pr))
        .collect();
    for (pr, s) in plan.profiles.iter_mut().zip(services) {
        pr.services = s;
    }
    let masked: Vec<_> = plan
        .profiles
        .iter()
        .map(|pr| components::masked(&plan, pr))
        .collect();
    for (pr, m) in plan.profiles.iter_mut().zip(masked) {
        pr.masked = m;
    }
    plan
}

/// What local clients (Docker, Calico) of a profile use: the local member or proxy, else the
/// static endpoints.
fn client_endpoints(e: &EtcdPlan, member: bool) -> Vec<Endpoint> {
    if member || e.access != EtcdAccess::Static {
        vec![Endpoint::http("127.0.0.1", e.client_port)]
    } else {
        e.static_endpoints.clone()
    }
}
