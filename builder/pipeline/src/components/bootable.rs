//! What a bootable role image carries besides its services (only when the plan has
//! [`BootablePlan`](kiln_model::plan::BootablePlan)): cloud-init's configuration, so that each host's
//! NoCloud seed gives it its identity at boot. (The initramfs mounts the state partition
//! below `/run`, so the read-only root needs no mount point of kiln's.)
//!
//! Ordering: kiln's units are `After=kiln-identity.service` ([`IDENTITY_UNIT`]), which
//! applies the identity from the seed early; cloud-init's `write_files` and `set_hostname`
//! later write the same. Debian's `cloud-init.service` is also `Before=sysinit.target`, which with
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

/// The unit that applies the host's identity from its seed early in boot, before networkd and
/// kiln's units: they order after it, not after `cloud-init.service` (which took until about
/// 100 s of a TCG boot; cloud-init still runs and writes the same files, for what else its
/// user-data asks).
pub const IDENTITY_UNIT: &str = "kiln-identity.service";

/// The script it runs.
const APPLY_IDENTITY: &str = "/usr/lib/kiln/apply-identity";

/// The sha256 of the identity tar last applied (on the state partition's `/var`): a reboot
/// with the same seed does not write the files again.
const IDENTITY_STAMP: &str = "/var/lib/kiln/identity.sha256";

/// Where kiln's initramfs puts a network seed (cloud-init's NoCloud seed directory).
const NETWORK_SEED_DIR: &str = "/var/lib/cloud/seed/nocloud";

/// The host's identity as one tar in its seed, which the role image's `kiln-identity.service`
/// unpacks over `/` early in boot, before networkd and kiln's units, so they need not wait
/// for cloud-init: every file of the placed identity tree (with the networkd file, which
/// cloud-init's `network-config` replaces in the user-data), root's `authorized_keys`, and
/// root's password hash under `/run` for `chpasswd -e`. The same files, bytes and modes as the
/// user-data's `write_files` (a test compares them).
pub const IDENTITY_TAR: &str = "kiln-identity.tar";

/// Where the identity tar carries root's password hash (tmpfs; the unit applies and removes it).
pub const PASSWORD_HASH_FILE: &str = "/run/kiln/identity/root-password-hash";

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
        )?;
        // The identity, early and without cloud-init (see [`IDENTITY_UNIT`]).
        ctx.template(
            APPLY_IDENTITY,
            0o755,
            "kiln-apply-identity",
            minijinja::context! {
                network_seed => NETWORK_SEED_DIR, tar => IDENTITY_TAR, hash => PASSWORD_HASH_FILE,
                identity_env => format!("{}/identity.env", super::KILN_ETC),
                stamp => IDENTITY_STAMP,
            },
        )?;
        let unit = format!("/etc/systemd/system/{IDENTITY_UNIT}");
        ctx.template(
            &unit,
            0o644,
            "kiln-identity.service",
            minijinja::context! { script => APPLY_IDENTITY },
        )?;
        ctx.add(
            &format!("/etc/systemd/system/sysinit.target.wants/{IDENTITY_UNIT}"),
            Entry::symlink(unit),
        )
    }
}
