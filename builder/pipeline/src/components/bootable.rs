//! What a bootable role image carries besides its services (only when the plan has
//! [`BootablePlan`](kiln_model::plan::BootablePlan)): cloud-init's configuration, so that each host's
//! NoCloud seed gives it its identity at boot. (The initramfs mounts the state partition
//! below `/run`, so the read-only root needs no mount point of kiln's.)
//!
//! Ordering: kiln's units are `After=cloud-init.service` (which runs `write_files` and
//! `set_hostname`). Debian's `cloud-init.service` is also `Before=sysinit.target`, which with
//! firewalld in the image is an ordering cycle that systemd breaks by dropping cloud-init
//! (seen booting the demo: no identity, etcd restart-looping on its missing environment
//! file); kiln replaces the unit with one without that ordering.

use kiln_model::plan::ComponentId;
use kiln_model::values::NodeNameMode;

use kiln_layers::Entry;

use super::{Component, Ctx, RenderError};

/// cloud-init's drop-in: `cloud.cfg.d` files are read in order, so `90-` wins over Debian's.
pub(crate) const CLOUD_CFG: &str = "/etc/cloud/cloud.cfg.d/90-kiln.cfg";

/// kiln's replacement of Debian's unit (see the module doc).
pub(crate) const CLOUD_INIT_UNIT: &str = "/etc/systemd/system/cloud-init.service";

/// The boot component.
pub(crate) struct Boot;

impl Component for Boot {
    fn id(&self) -> ComponentId {
        ComponentId::Boot
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        if ctx.plan.boot.is_none() {
            return Ok(());
        }
        // cloud-init sets the hostname first in its local stage, from the seed's meta-data
        // and this file alone (user-data is read later), and records it; the later stages
        // see no change and keep it. Without `prefer_fqdn_over_hostname` there, an FQDN
        // `local-hostname` becomes its first label (cloud-init 22.4 `cmd/main.py`
        // `_maybe_set_hostname`, `util.get_hostname_fqdn`, `Distro._select_hostname`), so
        // the node name mode must be said here, in the role image: it is cluster-wide.
        let prefer_fqdn = ctx
            .plan
            .calico
            .node
            .as_ref()
            .is_some_and(|n| n.nodename == NodeNameMode::Fqdn);
        ctx.template(
            CLOUD_CFG,
            0o644,
            "cloud.cfg",
            minijinja::context! { prefer_fqdn },
        )?;
        // A seed's write_files would create /root/.ssh 0755 for root's authorized_keys
        // (cloud-init 22.4 makes missing parents with the default mode); sshd wants it
        // private. /root is written too, or the layer would give it the parents' 0755.
        ctx.add("/root", Entry::dir(0o700))?;
        ctx.add("/root/.ssh", Entry::dir(0o700))?;
        ctx.template(
            CLOUD_INIT_UNIT,
            0o644,
            "cloud-init.service",
            minijinja::context! {},
        )
    }
}
