//! Host basics: `/etc/hosts` naming the masters (role tree) and each host's identity:
//! `/etc/hostname` and `/etc/kiln/identity.env`, the env file every unit reads.

use kiln_layers::FileTree;
use minijinja::context;

use super::{identity_file, Ctx, RenderError, KILN_ETC};
use crate::plan::{HostPlan, Plan};
use crate::templates::Templates;

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let hosts: Vec<_> = ctx
        .plan
        .masters()
        .map(|h| context! { ip => h.ip.to_string(), fqdn => h.fqdn, name => h.name })
        .collect();
    ctx.template(
        "/etc/hosts",
        0o644,
        "hosts",
        context! { cluster => ctx.plan.cluster, hosts },
    )
}

pub(super) fn identity_files(
    plan: &Plan,
    h: &HostPlan,
    templates: &Templates,
    tree: &mut FileTree,
) -> Result<(), RenderError> {
    let nodename = if plan.spec.calico.node.nodename == "fqdn" {
        &h.fqdn
    } else {
        &h.name
    };
    let env = templates.render(
        "identity.env",
        context! {
            name => h.name, fqdn => h.fqdn, ip => h.ip.to_string(), prefix => h.prefix, mac => h.mac,
            profile => h.profile, nodename, etcd_name => h.etcd_name, zk_id => h.zk_id,
        },
    )?;
    identity_file(tree, h, &format!("{KILN_ETC}/identity.env"), env)?;
    identity_file(tree, h, "/etc/hostname", format!("{}\n", h.name))
}
