//! Deriving the plan from checked parts: pure, no diagnostics. Hosts get their ZooKeeper ids
//! and etcd names, hosts that boot the same image are grouped into profiles, and the component
//! registry says what each profile runs and masks.

use std::collections::BTreeMap;

use kiln_model::plan::{Endpoint, EtcdAccess, EtcdPlan, KernelArg, Plan, Profile, Roles};
use kiln_model::values::HostName;

use crate::components;

/// The plan of checked parts: `plan` comes with hosts and component settings and no
/// profiles yet.
pub(super) fn plan(mut plan: Plan) -> Plan {
    let hosts = &mut plan.hosts;
    if plan.zookeeper.is_some() {
        for (id, h) in (1..).zip(hosts.iter_mut().filter(|h| h.roles.master)) {
            h.zk_id = Some(id);
        }
    }
    // Hosts of one profile boot the same image: group by roles and etcd membership.
    let mut groups: BTreeMap<(Roles, bool), (String, Vec<HostName>)> = BTreeMap::new();
    for h in hosts.iter_mut() {
        let member = plan.etcd.as_ref().is_some_and(|e| e.is_member(&h.name));
        if member {
            h.etcd_name = Some(h.name.clone());
        }
        let mut name = h.roles.names().join("-");
        if h.roles.master && !member && plan.etcd.is_some() {
            name.push_str("-etcd-proxy");
        }
        h.profile = name.clone();
        groups
            .entry((h.roles, member))
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(h.name.clone());
    }
    let etcd = plan.etcd.as_ref();
    plan.profiles = groups
        .into_iter()
        .map(|((roles, member), (name, hosts))| Profile {
            name,
            roles,
            hosts,
            etcd_member: member,
            etcd_client_endpoints: etcd
                .map(|e| client_endpoints(e, member))
                .unwrap_or_default(),
            services: Vec::new(),
            masked: Vec::new(),
            kernel_args: Vec::new(),
        })
        .collect();
    plan.profiles.sort_by(|a, b| a.name.cmp(&b.name));
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
    let m = &plan.mesos;
    let (flavour, agent_unit) = (m.flavour, m.flavour.agent_unit());
    let version = m.version.to_string();
    for pr in plan.profiles.iter_mut() {
        if pr.runs(agent_unit) && !flavour.cgroup_v2() {
            pr.kernel_args.push(legacy_cgroups(&version));
        }
    }
    plan
}

/// The legacy (v1) cgroup hierarchy for a Mesos agent of the `mesosphere` packaging (clusterd's
/// builds run on v2: [`kiln_model::values::MesosFlavour::cgroup_v2`]). No released Mesos supports cgroup v2
/// (it exists only on apache/mesos' unreleased master, PR #552): the 1.x agent's Linux
/// launcher and its cgroups isolators mount and use v1 subsystems (`freezer`, `cpu`,
/// `memory`), which a host on the unified hierarchy — Debian 12's systemd default — does not
/// have. systemd 252 (bookworm's) still boots the legacy hierarchy when asked on the kernel
/// command line.
fn legacy_cgroups(version: &str) -> KernelArg {
    KernelArg {
        arg: "systemd.unified_cgroup_hierarchy=0".into(),
        why: format!(
            "the Mesos {version} agent (mesosphere packaging) needs the legacy cgroup hierarchy: no released Mesos supports cgroup v2"
        ),
    }
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
