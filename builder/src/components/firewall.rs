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
                .map(|p| match p.proto {
                    Proto::Tcp | Proto::Udp => context! {
                        port => p.port,
                        proto => if p.proto == Proto::Tcp { "tcp" } else { "udp" },
                        protocol => None::<u8>,
                    },
                    // By number: firewalld accepts `int(value)` in 0…255 or a name that
                    // `socket.getprotobyname` resolves from the host's /etc/protocols
                    // (firewalld src/firewall/functions.py `checkProtocol`, v0.6.3 l.239–252,
                    // unchanged at HEAD). RHEL's /etc/protocols calls 4 `ipv4`, not `ipencap`:
                    // a name fails there with INVALID_PROTOCOL, and firewalld ≥ 1.2 then
                    // falls back to its stock configuration (`_start_failsafe`), ignoring every
                    // file under /etc/firewalld.
                    Proto::Ipip => context! { protocol => p.proto.ip_number() },
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
