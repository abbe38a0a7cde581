//! ZooKeeper: `zoo.cfg` listing every master, `myid` per host, the unit and its user.

use kiln_layers::FileTree;
use minijinja::context;

use super::{identity_file, Ctx, RenderError};
use crate::plan::{HostPlan, Plan, Port, Profile, Service};

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let zk = &plan.spec.zookeeper;
    if !zk.enabled || !profile.roles.master {
        return;
    }
    out.push(Service {
        unit: "zookeeper.service".into(),
        component: "zookeeper",
        exec: format!("{}/bin/zkServer.sh", zk.home.trim_end_matches('/')),
        ports: vec![
            Port::tcp(zk.client_port, "zookeeper.client_port"),
            Port::tcp(zk.peer_port, "zookeeper.peer_port"),
            Port::tcp(zk.election_port, "zookeeper.election_port"),
        ],
    });
}

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    if !ctx.runs("zookeeper.service") {
        return Ok(());
    }
    let zk = &ctx.plan.spec.zookeeper;
    let servers: Vec<_> = ctx
        .plan
        .masters()
        .filter_map(|h| h.zk_id.map(|id| context! { id, ip => h.ip.to_string() }))
        .collect();
    let conf_dir = zk.conf_dir.trim_end_matches('/');
    ctx.template(
        &format!("{conf_dir}/zoo.cfg"),
        0o644,
        "zoo.cfg",
        context! {
            cluster => ctx.plan.cluster, tick_time => zk.tick_time, init_limit => zk.init_limit,
            sync_limit => zk.sync_limit, data_dir => zk.data_dir, client_port => zk.client_port,
            peer_port => zk.peer_port, election_port => zk.election_port, servers,
        },
    )?;
    let exec = ctx
        .profile
        .services
        .iter()
        .find(|s| s.component == "zookeeper")
        .map(|s| s.exec.clone());
    ctx.unit(
        "zookeeper.service",
        "zookeeper.service",
        context! { conf_dir, exec },
    )?;
    ctx.state_dirs(
        "zookeeper",
        Some(("zookeeper", "ZooKeeper", &zk.data_dir)),
        &[(&zk.data_dir, "0750"), ("/var/log/zookeeper", "0750")],
    )
}

/// `myid` lives in the data dir and is the host's ensemble id.
pub(super) fn identity_files(
    plan: &Plan,
    host: &HostPlan,
    tree: &mut FileTree,
) -> Result<(), RenderError> {
    let zk = &plan.spec.zookeeper;
    match host.zk_id {
        Some(id) if zk.enabled => identity_file(
            tree,
            host,
            &format!("{}/myid", zk.data_dir.trim_end_matches('/')),
            format!("{id}\n"),
        ),
        _ => Ok(()),
    }
}
