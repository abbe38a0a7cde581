//! Host basics: `/etc/hosts` naming the masters (role tree) and each host's identity:
//! `/etc/hostname` (Calico's node name) and `/etc/kiln/identity.env`, the env file every unit
//! reads.

use kiln_model::plan::ComponentId;
use minijinja::context;

use super::{Component, Ctx, HostCtx, RenderError, KILN_ETC};

/// The host component.
pub(crate) struct Host;

impl Component for Host {
    fn id(&self) -> ComponentId {
        ComponentId::Host
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
            mac => h.mac, profile => h.profile, nodename => ctx.plan.nodename(h),
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
