//! Mesos master and agent through their package's init wrapper: one file per flag under
//! `/etc/mesos-master/` and the agent's flag directory, the ZooKeeper URL in `/etc/mesos/zk`,
//! and kiln's own `/etc/default/mesos*` so that nothing else adds a flag. The packaging
//! ([`MesosFlavour`]) names the agent: `slave` in Mesosphere's packages (`/etc/mesos-slave/`,
//! `mesos-slave.service`), `agent` in clusterd's (`/etc/mesos-agent/`, `mesos-agent.service`).
//!
//! What the wrapper does (mesosphere/mesos-deb-packaging 54ec74a, `mesos-init-wrapper`; the
//! el7 rpm ships the same file, and clusterd's `support/packaging/common/mesos-init-wrapper.in`
//! at 5ce2c80 is the same script with `slave` renamed `agent`): it sources
//! `/etc/default/mesos` and `/etc/default/mesos-master` (`-slave`, `-agent`) with `allexport`
//! (l.68-71, l.126-129), runs `ulimit $ULIMIT` (l.72, l.130), turns the variables in
//! [`MASTER_VARS`] / [`AGENT_VARS`] into flags (l.131-135, l.73-76), then adds
//! `--NAME="$(cat FILE)"` for every regular file of the flag directory (l.136-146, l.77-87).
//! Mesosphere's package defaults set `PORT=5050` and ``ZK=`cat /etc/mesos/zk` ``
//! (`default/mesos-master`), ``MASTER=`cat /etc/mesos/zk` `` (`default/mesos-slave`),
//! `LOGS=/var/log/mesos` and `ULIMIT="-n 8192"` (`default/mesos`), so with a `port` file the
//! master got `--port` twice, which Mesos 1.11 refuses ("Flag 'port' is already loaded via
//! name 'port'": apache/mesos 1.11.0 3rdparty/stout/include/stout/flags/flags.hpp l.765-768;
//! src/master/main.cpp l.175-179 exits) and `Restart=always` loops it; and bash's `ulimit -n`
//! sets the soft and hard limit, lowering the unit's `LimitNOFILE=`. kiln's default files set
//! none of these variables: every flag is a file, given once.

use std::collections::BTreeMap;

use kiln_model::plan::{ComponentId, Plan, Port, Profile, Service};
use kiln_model::values::{Containerizer, MesosFlavour};
use minijinja::context;

use super::{
    abs, local_etcd_unit, profiles_running, Artifact, Component, Ctx, RenderError, SourceSet,
};

const WRAPPER: &str = "/usr/bin/mesos-init-wrapper";

/// Where Mesos writes its log files (`--log_dir`), as the package's `LOGS` did.
pub(crate) const LOG_DIR: &str = "/var/log/mesos";

/// Variables of the default files (or the environment) the wrapper turns into master flags,
/// with the flag each becomes; `ULIMIT` becomes `ulimit $ULIMIT`.
const MASTER_VARS: &[(&str, &str)] = &[
    ("ULIMIT", "ulimit"),
    ("ZK", "zk"),
    ("IP", "ip"),
    ("PORT", "port"),
    ("CLUSTER", "cluster"),
    ("LOGS", "log_dir"),
];

/// Variables the wrapper turns into agent flags.
const AGENT_VARS: &[(&str, &str)] = &[
    ("ULIMIT", "ulimit"),
    ("MASTER", "master"),
    ("IP", "ip"),
    ("LOGS", "log_dir"),
    ("ISOLATION", "isolation"),
];

/// The Mesos component (master and agent come from one package).
pub(crate) struct Mesos;

impl Component for Mesos {
    fn id(&self) -> ComponentId {
        ComponentId::Mesos
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        let m = &plan.mesos;
        let mut out = Vec::new();
        if let (Some(master), true) = (&m.master, profile.roles.master) {
            out.push(Service {
                unit: "mesos-master.service".into(),
                component: ComponentId::Mesos,
                about: "Mesos master",
                exec: abs(WRAPPER),
                ports: vec![Port::tcp(master.port, "mesos.master.port")],
            });
        }
        if let (Some(agent), true) = (&m.agent, profile.roles.agent) {
            out.push(Service {
                unit: m.flavour.agent_unit().into(),
                component: ComponentId::Mesos,
                about: "Mesos agent",
                exec: abs(WRAPPER),
                // The ports it offers to tasks too: Marathon's host-networked tasks listen
                // there and its health checks reach them from the masters.
                ports: std::iter::once(Port::tcp(agent.port, "mesos.agent.port"))
                    .chain(
                        agent
                            .ports
                            .iter()
                            .map(|(a, b)| Port::tcp_range(*a, *b, "mesos.agent.ports")),
                    )
                    .collect(),
            });
        }
        out
    }

    /// The Mesos package ships both daemons' units; a profile runs only its own.
    fn masks(&self, plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        vec!["mesos-master.service", plan.mesos.flavour.agent_unit()]
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let plan = ctx.plan;
        let m = &plan.mesos;
        let master = m
            .master
            .as_ref()
            .filter(|_| ctx.runs("mesos-master.service"));
        let flavour = m.flavour;
        let agent = m.agent.as_ref().filter(|_| ctx.runs(flavour.agent_unit()));
        if master.is_some() || agent.is_some() {
            // Kept for tools that read it; the daemons get the URL from their own flag file.
            ctx.file("/etc/mesos/zk", 0o644, format!("{}\n", m.zk))?;
            // The package installs all three default files wherever it is installed.
            let agent_default = format!("mesos-{}", flavour.agent());
            for (name, vars) in [
                ("mesos", var_list(&[MASTER_VARS, AGENT_VARS])),
                ("mesos-master", var_list(&[MASTER_VARS])),
                (agent_default.as_str(), var_list(&[AGENT_VARS])),
            ] {
                ctx.template(
                    &format!("/etc/default/{name}"),
                    0o644,
                    "mesos-default",
                    context! { name, vars, agent_dir => flavour.agent_flag_dir() },
                )?;
            }
        }
        if let Some(mm) = master {
            // Also replaces the package's own flag files (`work_dir`, `quorum`).
            let mut flags: BTreeMap<String, String> = BTreeMap::from([
                ("cluster".into(), plan.cluster.to_string()),
                ("quorum".into(), mm.quorum.to_string()),
                ("work_dir".into(), mm.work_dir.to_string()),
                ("port".into(), mm.port.to_string()),
                ("zk".into(), m.zk.clone()),
                ("log_dir".into(), LOG_DIR.into()),
            ]);
            flags.extend(mm.flags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            flag_files(ctx, "/etc/mesos-master", &flags)?;
            let after = if ctx.runs("zookeeper.service") {
                "network-online.target zookeeper.service"
            } else {
                "network-online.target"
            };
            ctx.unit(
                "mesos-master.service",
                "mesos.service",
                context! {
                    kind => "master", agent => false, exec => WRAPPER, after,
                    wants => "network-online.target",
                },
            )?;
            ctx.state_dirs("mesos-master", None, &[(mm.work_dir.as_str(), "0755")])?;
        }
        if let Some(a) = agent {
            let names = |v: &[String]| v.join(",");
            let mut flags: BTreeMap<String, String> = BTreeMap::from([
                (
                    "containerizers".into(),
                    names(
                        &a.containerizers
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>(),
                    ),
                ),
                (
                    "isolation".into(),
                    names(
                        &a.isolation
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>(),
                    ),
                ),
                ("work_dir".into(), a.work_dir.to_string()),
                ("port".into(), a.port.to_string()),
                ("master".into(), m.zk.clone()),
                ("log_dir".into(), LOG_DIR.into()),
            ]);
            if let Some((config, plugins)) = &a.cni_dirs {
                flags.insert("network_cni_config_dir".into(), config.to_string());
                flags.insert("network_cni_plugins_dir".into(), plugins.to_string());
            }
            if a.containerizers.contains(&Containerizer::Docker) {
                // Pulling a Docker image can take longer than the default 1 minute.
                flags.insert("executor_registration_timeout".into(), "5mins".into());
            }
            flags.extend(a.flags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            // The ports resource is always given, so the firewall and what the agent offers
            // are one list (unset, Mesos offers `DEFAULT_PORTS` = [31000-32000]: apache/mesos
            // 1.11.0 `src/slave/constants.hpp`). Added to the spec's own resources (the
            // spec checks they name no ports and are not JSON).
            let ranges: Vec<String> = a.ports.iter().map(|(f, l)| format!("{f}-{l}")).collect();
            let ports = format!("ports:[{}]", ranges.join(","));
            let resources = match flags.get("resources") {
                Some(r) => format!("{};{ports}", r.trim_end_matches(';')),
                None => ports,
            };
            flags.insert("resources".into(), resources);
            flag_files(ctx, flavour.agent_flag_dir(), &flags)?;
            let mut deps = vec!["network-online.target"];
            if ctx.runs("docker.service") {
                deps.push("docker.service");
            }
            if ctx.runs("calico-node.service") {
                deps.push("calico-node.service");
            }
            let profile = ctx.profile;
            if let Some(u) = local_etcd_unit(profile) {
                deps.push(u);
            }
            let after = deps.join(" ");
            ctx.unit(
                flavour.agent_unit(),
                "mesos.service",
                context! {
                    kind => flavour.agent(), agent => true, exec => WRAPPER, after => &after,
                    wants => &after,
                },
            )?;
            ctx.state_dirs("mesos-agent", None, &[(a.work_dir.as_str(), "0755")])?;
        }
        Ok(())
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let m = &plan.mesos;
        if m.master.is_none() && m.agent.is_none() {
            return Vec::new();
        }
        vec![SourceSet {
            name: "mesos",
            version: &m.version,
            source: m.source.as_ref(),
            // No Mesos binary is served anywhere kiln can name: `catalog::gap` says why.
            catalog: Vec::new(),
            profiles: profiles_running(plan, ComponentId::Mesos),
        }]
    }

    /// The daemons the wrapper execs, where the flavour's packaging puts them: a source of
    /// the other packaging fails here, at build, rather than at boot with no flags.
    fn artifacts(&self, plan: &Plan, profile: &Profile) -> Vec<Artifact> {
        let m = &plan.mesos;
        let [master, agent] = m.flavour.daemons();
        let other = match m.flavour {
            MesosFlavour::Clusterd => MesosFlavour::Mesosphere,
            MesosFlavour::Mesosphere => MesosFlavour::Clusterd,
        };
        [
            ("mesos-master.service", master, "master", 0),
            (m.flavour.agent_unit(), agent, "agent", 1),
        ]
        .into_iter()
        .filter(|(unit, ..)| profile.runs(unit))
        .map(|(_, path, what, i)| Artifact {
            path: path.into(),
            component: "mesos",
            what: format!(
                "the Mesos {what} of the {} packaging, {}; a {other} package has {} instead: \
                 set mesos.flavour = \"{other}\" if the source is one",
                m.flavour,
                m.flavour_from,
                other.daemons()[i],
            ),
        })
        .collect()
    }

    fn program_source(&self, _plan: &Plan) -> Option<(&'static str, String)> {
        Some(("mesos.source", String::new()))
    }
}

fn flag_files(
    ctx: &mut Ctx,
    dir: &str,
    flags: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    for (name, value) in flags {
        ctx.file(&format!("{dir}/{name}"), 0o644, format!("{value}\n"))?;
    }
    Ok(())
}

/// `A, B and C`: the wrapper's variables of `sets`, each once, in order.
fn var_list(sets: &[&[(&str, &str)]]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (v, _) in sets.iter().flat_map(|s| s.iter()) {
        if !names.contains(v) {
            names.push(v);
        }
    }
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}
