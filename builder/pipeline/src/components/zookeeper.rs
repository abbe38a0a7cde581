//! ZooKeeper: `zoo.cfg` listing every master, `myid` per host, the unit and its user.

use kiln_model::plan::{ComponentId, Plan, Port, Profile, Service};
use minijinja::context;

use super::{profiles_running, Component, Ctx, HostCtx, RenderError, SourceSet};
use crate::sources::catalog;

/// FastLeaderElection's longest wait between two rounds of votes, in ms (the Java property
/// `zookeeper.fastleader.maxNotificationInterval`, ZooKeeper 3.6+; its default is 60000).
/// apache/zookeeper release-3.8.0 FastLeaderElection.java, lookForLeader: when no vote arrives
/// within the wait, the peer re-sends its votes, or retries the connections it lacks
/// (connectAll), and doubles the wait, from 200 ms up to this bound. A master that started
/// while its peers' hosts were still booting only retries them that often, up to a minute
/// apart; 2 s bounds that to seconds. Older ZooKeeper ignores the property.
pub(crate) const ELECTION_MAX_INTERVAL_MS: u32 = 2000;

/// The ZooKeeper component.
pub(crate) struct ZooKeeper;

impl Component for ZooKeeper {
    fn id(&self) -> ComponentId {
        ComponentId::ZooKeeper
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        let Some(zk) = plan.zookeeper.as_ref().filter(|_| profile.roles.master) else {
            return Vec::new();
        };
        vec![Service {
            unit: "zookeeper.service".into(),
            component: ComponentId::ZooKeeper,
            about: "ZooKeeper client, peer and leader-election ports",
            exec: zk
                .home
                .join("bin/zkServer.sh")
                .unwrap_or_else(|_| zk.home.clone()),
            ports: [
                Port::tcp(zk.client_port, "zookeeper.client_port"),
                Port::tcp(zk.peer_port, "zookeeper.peer_port"),
                Port::tcp(zk.election_port, "zookeeper.election_port"),
            ]
            .into_iter()
            // The AdminServer listens on all addresses (JettyAdminServer DEFAULT_ADDRESS
            // 0.0.0.0), so its port is opened and enters the port-clash check.
            .chain(zk.admin_port.map(|p| Port::tcp(p, "zookeeper.admin_port")))
            .collect(),
        }]
    }

    fn masks(&self, _plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        vec!["zookeeper.service"]
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let Some(zk) = ctx.plan.zookeeper.as_ref() else {
            return Ok(());
        };
        let Some(svc) = ctx.profile.services_of(ComponentId::ZooKeeper).next() else {
            return Ok(());
        };
        let exec = svc.exec.clone();
        let servers: Vec<_> = zk
            .servers
            .iter()
            .map(|(id, ip)| context! { id, ip => ip.to_string() })
            .collect();
        // ZooKeeper 3.5+ starts an AdminServer on 8080 unless told otherwise, and Debian's
        // zookeeper has Jetty on its class path, so it does start there
        // (builder/notes/issue8-upstream.md §2). apache/zookeeper release-3.8.0-1:
        // JettyAdminServer.java l.69 DEFAULT_PORT = 8080; AdminServerFactory.java l.41 skips it
        // only for zookeeper.admin.enableServer=false; QuorumPeerConfig.java l.389 turns any
        // other zoo.cfg key into the system property "zookeeper." + key, so
        // `admin.enableServer` and `admin.serverPort` work in zoo.cfg (zookeeperAdmin.md
        // l.2097-2111; 3.4 sets the property and ignores it). Standalone, a failed bind makes
        // ZooKeeper exit; in a quorum it runs on and keeps 8080 from Marathon.
        let conf_file = zk.conf_dir.child("zoo.cfg");
        ctx.template(
            &conf_file,
            0o644,
            "zoo.cfg",
            context! {
                myid => zk.data_dir.child("myid"),
                cluster => ctx.plan.cluster, tick_time => zk.tick_time, init_limit => zk.init_limit,
                sync_limit => zk.sync_limit, data_dir => zk.data_dir, client_port => zk.client_port,
                peer_port => zk.peer_port, election_port => zk.election_port,
                admin_port => zk.admin_port, servers,
            },
        )?;
        ctx.unit(
            "zookeeper.service",
            "zookeeper.service",
            context! {
                conf_dir => zk.conf_dir, conf_file, exec,
                election_max_interval_ms => ELECTION_MAX_INTERVAL_MS,
            },
        )?;
        ctx.state_dirs(
            "zookeeper",
            Some(("zookeeper", "ZooKeeper", zk.data_dir.as_str())),
            &[
                (zk.data_dir.as_str(), "0750"),
                ("/var/log/zookeeper", "0750"),
            ],
        )
    }

    /// `myid` lives in the data dir and is the host's ensemble id.
    fn identity_files(&self, ctx: &mut HostCtx) -> Result<(), RenderError> {
        match (&ctx.plan.zookeeper, ctx.host.zk_id) {
            (Some(zk), Some(id)) => ctx.file(&zk.data_dir.child("myid"), format!("{id}\n")),
            _ => Ok(()),
        }
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(zk) = &plan.zookeeper else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "zookeeper",
            version: &zk.version,
            source: zk.source.as_ref(),
            catalog: catalog::zookeeper(&zk.version, &zk.home),
            profiles: profiles_running(plan, ComponentId::ZooKeeper),
        }]
    }

    fn program_source(&self, _plan: &Plan) -> Option<(&'static str, String)> {
        Some(("zookeeper.source", String::new()))
    }
}
