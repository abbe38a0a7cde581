//! The host's network: systemd-networkd (Debian's systemd ships it; it runs without dbus)
//! enabled in every role tree, and per host a `.network` matched by MAC with the spec's
//! address, gateway and DNS, plus `/etc/resolv.conf` when the spec names DNS servers.
//!
//! Matching by MAC, not by name, keeps one identity valid whatever the interface is called on
//! the machine (`ens3` under QEMU's PCI layout, `enp0s3` elsewhere). See systemd.network(5),
//! `[Match] MACAddress=`.

use kiln_model::plan::{ComponentId, Plan, Profile, Service};
use minijinja::context;

use super::{abs, Component, Ctx, HostCtx, RenderError};

/// networkd's daemon in Debian's systemd (`/lib` is `/usr/lib` on merged-/usr bookworm).
const NETWORKD: &str = "/lib/systemd/systemd-networkd";
/// Where per-host network configs go; `10-` sorts before distribution defaults.
pub(crate) const NETWORK_FILE: &str = "/etc/systemd/network/10-kiln.network";

/// The network component.
pub(crate) struct Network;

impl Component for Network {
    fn id(&self) -> ComponentId {
        ComponentId::Network
    }

    /// networkd runs on every profile: without it the host has no address and
    /// `network-online.target` is reached with nothing behind it.
    fn services(&self, _plan: &Plan, _profile: &Profile) -> Vec<Service> {
        vec![Service {
            unit: "systemd-networkd.service".into(),
            component: ComponentId::Network,
            about: "systemd-networkd: the host's address from its identity",
            exec: abs(NETWORKD),
            ports: Vec::new(),
        }]
    }

    /// Enables the base's networkd units as `systemctl enable systemd-networkd` would
    /// (its `[Install]`: `WantedBy=multi-user.target`, `Also=systemd-networkd.socket
    /// systemd-networkd-wait-online.service`).
    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        ctx.enable_base_unit("systemd-networkd.service", "multi-user.target")?;
        ctx.enable_base_unit("systemd-networkd.socket", "sockets.target")?;
        ctx.enable_base_unit(
            "systemd-networkd-wait-online.service",
            "network-online.target",
        )
    }

    fn identity_files(&self, ctx: &mut HostCtx) -> Result<(), RenderError> {
        let h = ctx.host;
        let dns: Vec<String> = h.dns.iter().map(ToString::to_string).collect();
        let data = context! {
            name => h.name, mac => h.mac, address => h.address,
            gateway => h.gateway.map(|g| g.to_string()), dns, domain => ctx.plan.domain,
        };
        ctx.template(NETWORK_FILE, "kiln.network", &data)?;
        if !h.dns.is_empty() {
            ctx.template("/etc/resolv.conf", "resolv.conf", &data)?;
        }
        Ok(())
    }
}
