//! Mesos master and agent through the mesosphere init wrapper: one file per flag under
//! `/etc/mesos-master/` and `/etc/mesos-slave/`, the ZooKeeper URL in `/etc/mesos/zk`.

use std::collections::BTreeMap;

use minijinja::context;

use super::{local_etcd_unit, Ctx, RenderError};
use crate::plan::{Plan, Port, Profile, Service};

const WRAPPER: &str = "/usr/bin/mesos-init-wrapper";

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let m = &plan.spec.mesos;
    if m.master.enabled && profile.roles.master {
        out.push(Service {
            unit: "mesos-master.service".into(),
            component: "mesos-master",
            exec: WRAPPER.into(),
            ports: vec![Port::tcp(m.master.port, "mesos.master.port")],
        });
    }
    if m.agent.enabled && profile.roles.agent {
        out.push(Service {
            unit: "mesos-slave.service".into(),
            component: "mesos-agent",
            exec: WRAPPER.into(),
            ports: vec![Port::tcp(m.agent.port, "mesos.agent.port")],
        });
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

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let plan = ctx.plan;
    let m = &plan.spec.mesos;
    let master = ctx.runs("mesos-master.service");
    let agent = ctx.runs("mesos-slave.service");
    if master || agent {
        ctx.file(
            "/etc/mesos/zk",
            0o644,
            format!("{}\n", plan.derived.mesos_zk),
        )?;
    }
    if master {
        let mut flags: BTreeMap<String, String> = BTreeMap::from([
            ("cluster".into(), plan.cluster.clone()),
            ("quorum".into(), plan.derived.mesos_quorum.to_string()),
            ("work_dir".into(), m.master.work_dir.clone()),
            ("port".into(), m.master.port.to_string()),
        ]);
        flags.extend(m.master.flags.clone());
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
        ctx.state_dirs("mesos-master", None, &[(&m.master.work_dir, "0755")])?;
    }
    if agent {
        let d = &plan.derived;
        let mut flags: BTreeMap<String, String> = BTreeMap::from([
            ("containerizers".into(), m.agent.containerizers.join(",")),
            ("isolation".into(), m.agent.isolation.join(",")),
            ("work_dir".into(), m.agent.work_dir.clone()),
            ("port".into(), m.agent.port.to_string()),
        ]);
        if plan.spec.calico.cni.enabled || m.agent.cni_config_dir.is_some() {
            flags.insert(
                "network_cni_config_dir".into(),
                m.agent
                    .cni_config_dir
                    .clone()
                    .unwrap_or(d.cni_config_dir.clone()),
            );
            flags.insert(
                "network_cni_plugins_dir".into(),
                m.agent
                    .cni_plugins_dir
                    .clone()
                    .unwrap_or(d.cni_plugins_dir.clone()),
            );
        }
        if m.agent.containerizers.iter().any(|c| c == "docker") {
            // Pulling a Docker image can take longer than the default 1 minute.
            flags.insert("executor_registration_timeout".into(), "5mins".into());
        }
        flags.extend(m.agent.flags.clone());
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
        ctx.state_dirs("mesos-agent", None, &[(&m.agent.work_dir, "0755")])?;
    }
    Ok(())
}
