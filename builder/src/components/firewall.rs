//! firewalld: one service definition per unit with open ports and a zone that opens only
//! those, so a host opens just the ports of its roles.

use kiln_model::plan::{ComponentId, Proto};
use minijinja::context;

use super::{Component, Ctx, RenderError};

/// The firewalld component.
pub(crate) struct Firewall;

impl Component for Firewall {
    fn id(&self) -> ComponentId {
        ComponentId::Firewall
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let Some(fw) = &ctx.plan.firewall else {
            return Ok(());
        };
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
            let name = format!("kiln-{}", s.stem());
            ctx.template(
                &format!("/etc/firewalld/services/{name}.xml"),
                0o644,
                "firewalld-service.xml",
                context! { name, description => s.about, ports },
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
}
