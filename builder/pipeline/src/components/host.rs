//! Host basics: `/etc/hosts` naming the masters (role tree) and each host's identity:
//! `/etc/hostname` (Calico's node name) and `/etc/kiln/identity.env`, the env file every unit
//! reads; and the base's units an immutable role host never needs, masked.

use kiln_model::plan::{ComponentId, Plan, Profile};
use minijinja::context;

use super::{Component, Ctx, HostCtx, RenderError, KILN_ETC};

/// The host component.
pub(crate) struct Host;

/// Units a Debian base enables (measured in kiln's bookworm base: `timers.target.wants`,
/// `multi-user.target.wants`) or its packages start from timers, that a role host booted from a
/// read-only verified image never needs, with why. Masked on every profile unless the spec
/// keeps one (`base.keep_units`). Each costs boot time under TCG and some reach the network.
pub const IDLE_UNITS: &[(&str, &str)] = &[
    (
        "apt-daily.timer",
        "downloads package lists: packages never change on an image",
    ),
    (
        "apt-daily-upgrade.timer",
        "installs upgrades: /usr is read-only; a new build replaces the image",
    ),
    (
        "dpkg-db-backup.timer",
        "backs up a package database that never changes",
    ),
    (
        "e2scrub_all.timer",
        "checks ext4 LVM volumes: the root is a verified squashfs",
    ),
    (
        "e2scrub_reap.service",
        "removes e2scrub snapshots, which are never made",
    ),
    (
        "fstrim.timer",
        "trims file systems weekly: the root is read-only, the state disk is small",
    ),
    (
        "man-db.timer",
        "rebuilds the manual page index of a read-only /usr",
    ),
];

impl Component for Host {
    fn id(&self) -> ComponentId {
        ComponentId::Host
    }

    fn masks(&self, plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        IDLE_UNITS
            .iter()
            .map(|(u, _)| *u)
            .filter(|u| !plan.base.keep_units.iter().any(|k| k == u))
            .collect()
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let hosts: Vec<_> = ctx
            .plan
            .masters()
            .map(|h| context! { ip => h.ip().to_string(), fqdn => h.fqdn, name => h.name })
            .collect();
        ctx.template(
            "/etc/hosts",
            0o644,
            "hosts",
            context! { cluster => ctx.plan.cluster, hosts },
        )
    }

    fn identity_files(&self, ctx: &mut HostCtx) -> Result<(), RenderError> {
        let h = ctx.host;
        let env = context! {
            name => h.name, fqdn => h.fqdn, ip => h.ip().to_string(), prefix => h.prefix(),
            mac => h.mac, interface => h.interface, profile => h.profile,
            nodename => ctx.plan.nodename(h),
            etcd_name => h.etcd_name, zk_id => h.zk_id,
        };
        ctx.template(&format!("{KILN_ETC}/identity.env"), "identity.env", env)?;
        // The kernel hostname is Calico's node name: the CNI plugins take their node name from
        // it (`os.Hostname()`) unless their config names one, and a per-host value cannot go
        // into the role tree's config. The config keys for it depend on the plugin release
        // (projectcalico/cni-plugin: `calico` reads `nodename` from v1.6.1, only `hostname`
        // before; `calico-ipam` reads `nodename` only from v1.11.0), the kernel hostname
        // works with all of them. calico-node gets the same value as NODENAME.
        ctx.file("/etc/hostname", format!("{}\n", ctx.plan.nodename(h)))
    }
}
