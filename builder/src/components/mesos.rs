//! Mesos master and agent through the mesosphere init wrapper: one file per flag under
//! `/etc/mesos-master/` and `/etc/mesos-slave/`, the ZooKeeper URL in `/etc/mesos/zk`.

use std::collections::BTreeMap;

use kiln_model::plan::{ComponentId, Plan, Port, Profile, Service};
use kiln_model::values::Containerizer;
use minijinja::context;

use super::{abs, local_etcd_unit, profiles_running, Component, Ctx, RenderError, SourceSet};
use crate::sources::catalog;

const WRAPPER: &str = "/usr/bin/mesos-init-wrapper";

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
                unit: "mesos-slave.service".into(),
                component: ComponentId::Mesos,
                about: "Mesos agent",
                exec: abs(WRAPPER),
                ports: vec![Port::tcp(agent.port, "mesos.agent.port")],
            });
        }
        out
    }

    /// The Mesos package ships both daemons' units; a profile runs only its own.
    fn masks(&self, _plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        vec!["mesos-master.service", "mesos-slave.service"]
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let plan = ctx.plan;
        let m = &plan.mesos;
        let master = m
            .master
            .as_ref()
            .filter(|_| ctx.runs("mesos-master.service"));
        let agent = m.agent.as_ref().filter(|_| ctx.runs("mesos-slave.service"));
        if master.is_some() || agent.is_some() {
            ctx.file("/etc/mesos/zk", 0o644, format!("{}\n", m.zk))?;
        }
        if let Some(mm) = master {
            let mut flags: BTreeMap<String, String> = BTreeMap::from([
                ("cluster".into(), plan.cluster.to_string()),
                ("quorum".into(), mm.quorum.to_string()),
                ("work_dir".into(), mm.work_dir.to_string()),
                ("port".into(), mm.port.to_string()),
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
                context! { kind => "master", exec => WRAPPER, after, wants => "network-online.target" },
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
            flag_files(ctx, "/etc/mesos-slave", &flags)?;
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
                "mesos-slave.service",
                "mesos.service",
                context! { kind => "slave", exec => WRAPPER, after => &after, wants => &after },
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
            catalog: catalog::mesos(&m.version),
            profiles: profiles_running(plan, ComponentId::Mesos),
        }]
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
