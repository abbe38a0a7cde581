//! firewalld: one service definition per component a profile runs and a zone that opens only
//! those, so a host opens just the ports of its roles.

use minijinja::context;

use super::{Ctx, RenderError};
use crate::plan::Proto;

fn description(component: &str) -> &'static str {
    match component {
        "zookeeper" => "ZooKeeper client, peer and leader-election ports",
        "etcd" => "etcd client and peer ports",
        "mesos-master" => "Mesos master",
        "mesos-agent" => "Mesos agent",
        "marathon" => "Marathon HTTP API and UI",
        "docker" => "Docker cluster advertise address",
        "calico-node" => "Calico BGP and IP-in-IP",
        _ => "kiln service",
    }
}

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let fw = &ctx.plan.spec.firewall;
    if !fw.enabled {
        return Ok(());
    }
    let mut names = Vec::new();
    let profile = ctx.profile;
    for s in &profile.services {
        let ports: Vec<_> = s
            .ports
            .iter()
            .filter(|p| !p.local)
            .map(|p| {
                let proto = match p.proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                    Proto::Ipip => "ipip",
                };
                context! { port => p.port, proto }
            })
            .collect();
        if ports.is_empty() {
            continue;
        }
        let name = format!("kiln-{}", s.component);
        ctx.template(
            &format!("/etc/firewalld/services/{name}.xml"),
            0o644,
            "firewalld-service.xml",
            context! { name, description => description(s.component), ports },
        )?;
        names.push(name);
    }
    ctx.template(
        &format!("/etc/firewalld/zones/{}.xml", fw.zone),
        0o644,
        "firewalld-zone.xml",
        context! { zone => fw.zone, profile => profile.name, cluster => ctx.plan.cluster, services => names },
    )
}
