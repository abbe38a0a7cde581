//! Deriving the plan from checked parts: pure, no diagnostics. Hosts get their ZooKeeper ids
//! and etcd names, hosts that boot the same image are grouped into profiles, and the component
//! registry says what each profile runs and masks.

use std::collections::BTreeMap;

use kiln_model::plan::{
    Endpoint, EtcdAccess, EtcdPlan, IptablesMode, IptablesPlan, KernelArg, Plan, Profile, Roles,
};
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
            iptables: IptablesPlan {
                mode: IptablesMode::Base,
                why: String::new(),
            },
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
    let modes: Vec<_> = plan.profiles.iter().map(|pr| iptables(&plan, pr)).collect();
    for (pr, m) in plan.profiles.iter_mut().zip(modes) {
        pr.iptables = m;
    }
    plan
}

/// The first Calico whose calico-node follows the host's iptables mode without being told:
/// Felix's `IptablesBackend` (`FELIX_IPTABLESBACKEND`) exists from Felix v3.9.0
/// (`oneof(legacy,nft);legacy`), gained `auto` (detection by counting the rules each variant
/// lists) in v3.12.0 and defaults to it from v3.17.0 (projectcalico/felix
/// `config/config_params.go`, v3.16.0 l.165 `…;legacy`, v3.17.0 l.165 `…;auto`; commit
/// 88bcfe425 "Change iptables backend default to auto"). Felix 2.x has no such setting: it
/// runs `iptables-restore`/`iptables-save` from its image (felix 2.6.8
/// `iptables/table.go` l.367–371), the Alpine `iptables` of calico/node (projectcalico/calico
/// v2.6.12 `calico_node/Dockerfile` l.34), which is the legacy one. kiln sets no
/// `FELIX_IPTABLESBACKEND`, so before this release calico-node writes legacy rules.
const FELIX_AUTO_BACKEND: (u64, u64) = (3, 17);

/// A profile's iptables mode: legacy where calico-node programs legacy iptables from its
/// image, so that every other program of the host (Docker, the CNI plugins, firewalld) writes
/// to the same rule set (projectcalico/calico PR #3500: Calico 2.6 "is not compatible" with
/// iptables in nftables mode); else the base's own.
fn iptables(plan: &Plan, pr: &Profile) -> IptablesPlan {
    if !pr.runs("calico-node.service") {
        return IptablesPlan {
            mode: IptablesMode::Base,
            why: "no calico-node on this profile: the base's own (Debian 12: iptables-nft, firewalld's nftables backend)".into(),
        };
    }
    let v = &plan.calico.version;
    let (major, minor) = FELIX_AUTO_BACKEND;
    if v.at_least(major, minor) {
        return IptablesPlan {
            mode: IptablesMode::Base,
            why: format!("calico-node of Calico {v} follows the host's iptables mode itself (Felix's IptablesBackend defaults to auto from Calico {major}.{minor})"),
        };
    }
    let host = if crate::components::iptables::debian_layout(plan.base.family) {
        "kiln points the base's iptables and ip6tables alternatives at iptables-legacy"
    } else {
        "the base's iptables must be the legacy one (CentOS 7's is; RHEL 8 and 9 have none)"
    };
    let firewalld = if plan.firewall.is_some() {
        "firewalld runs its iptables backend"
    } else {
        "kiln writes no firewalld files ([firewall] is disabled): a firewalld in the base needs FirewallBackend=iptables"
    };
    IptablesPlan {
        mode: IptablesMode::Legacy,
        why: format!("calico-node of Calico {v} writes legacy iptables rules from its image (Felix follows the host's mode only from Calico {major}.{minor}); {host}, {firewalld}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SpecSource;
    use kiln_model::values::Version;

    /// The mode follows the Calico release (kiln's own spec checks refuse 3.x today, so the
    /// plan is changed by hand): legacy before Felix defaults to detecting the host's mode.
    #[test]
    fn iptables_mode_is_legacy_before_calico_3_17() {
        let src = SpecSource {
            name: "demo.toml".into(),
            text: crate::DEMO_SPEC.into(),
        };
        let mut plan = crate::validate::load(&src).unwrap().plan;
        let node = plan
            .profiles
            .iter()
            .position(|p| p.runs("calico-node.service"));
        let pr = plan.profiles[node.expect("the demo runs calico-node")].clone();
        for (release, mode) in [
            ("1.6.1", IptablesMode::Legacy),
            ("2.6.12", IptablesMode::Legacy),
            ("3.16.9", IptablesMode::Legacy),
            ("3.17.0", IptablesMode::Base),
        ] {
            plan.calico.version = Version::parse(release).unwrap();
            assert_eq!(iptables(&plan, &pr).mode, mode, "Calico {release}");
        }
        let mut no_node = pr;
        no_node.services.retain(|s| s.unit != "calico-node.service");
        assert_eq!(iptables(&plan, &no_node).mode, IptablesMode::Base);
    }
}
