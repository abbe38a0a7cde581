//! firewalld: one service definition per unit with open ports and a zone that opens only
//! those, so a host opens just the ports of its roles; the zone is the default zone, so it
//! applies to the host's NIC and to Calico's workload interfaces without naming either.

use kiln_model::plan::{ComponentId, IptablesMode, Proto};
use minijinja::context;

use super::{Component, Ctx, RenderError};

/// The firewalld component.
pub(crate) struct Firewall;

/// firewalld's own default zone: `FALLBACK_ZONE` in `src/firewall/config/__init__.py.in` and
/// `DefaultZone` of the shipped `config/firewalld.conf` (v0.6.3 to v2.5.0, and Debian
/// bookworm's 1.3.3 conffile, which is upstream's byte for byte).
pub(crate) const FIREWALLD_DEFAULT_ZONE: &str = "public";

/// Where firewalld reads its main settings. firewalld has no drop-in directory for it:
/// `io/firewalld_conf.py` reads this one file (every release through v2.5.0).
const FIREWALLD_CONF: &str = "/etc/firewalld/firewalld.conf";

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
                        port => p.number(),
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
        // The zone is applied through firewalld's DefaultZone, never by `<interface>`: kiln's
        // hosts run no NetworkManager to assign one, NIC names differ between machines, and
        // Calico's `cali*` workload interfaces come and go. An interface no zone names is in
        // the default zone (firewalld.conf(5): DefaultZone "sets the default zone for
        // connections or interfaces if the zone is not selected or specified by
        // NetworkManager, initscripts or command line tool").
        //
        // For `public` the base's firewalld.conf already says so and is left alone (a
        // distribution may have tuned it: RHEL 7 runs the iptables backend), unless the
        // profile's iptables mode is legacy. For any other zone, or that mode, kiln writes
        // the file with DefaultZone (and FirewallBackend) only: every key missing from it
        // takes the running firewalld's built-in default (`firewalld_conf.py` `read()` falls
        // back per key and warns only for a missing DefaultZone), and those equal upstream's
        // shipped file in every release checked (0.6.3, 0.9.11, 1.3.4, 2.5.0). A full file
        // would pin one release's keys: an older firewalld logs "Invalid option" for keys it
        // does not know.
        //
        // In legacy mode firewalld must write legacy rules too: its nftables backend (the
        // default from firewalld 0.6.0; `FALLBACK_FIREWALL_BACKEND = "nftables"`,
        // `config/__init__.py.in` l.134 of v1.3.3, bookworm's 1.3.3) puts its own tables in
        // nftables beside calico-node's legacy ones. `FirewallBackend=iptables` (v1.3.3
        // `config/firewalld.conf` l.52–59: "iptables, ip6tables, ebtables and ipset";
        // deprecated upstream, still in 2.5.0) runs `/usr/sbin/iptables`, which the iptables
        // component points at iptables-legacy; its Docker passthrough rules go the same way.
        let backend = (profile.iptables.mode == IptablesMode::Legacy).then_some("iptables");
        if fw.zone.as_str() != FIREWALLD_DEFAULT_ZONE || backend.is_some() {
            ctx.template(
                FIREWALLD_CONF,
                0o644,
                "firewalld.conf",
                context! { zone => fw.zone, backend },
            )?;
        }
        ctx.template(
            &format!("/etc/firewalld/zones/{}.xml", fw.zone),
            0o644,
            "firewalld-zone.xml",
            context! { zone => fw.zone, profile => profile.name, cluster => ctx.plan.cluster, services => names },
        )
    }
}
