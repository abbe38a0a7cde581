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
//! file); kiln replaces the unit with one without that ordering. It also replaces
//! `cloud-init-local.service` (Debian's is `Before=sysinit.target`, so the whole boot waited
//! for it) and runs cloud-init's four stages at idle CPU and I/O priority
//! ([`CLOUD_INIT_IDLE`]): they run beside kiln's units, with what CPU those leave.

use kiln_model::plan::ComponentId;
use kiln_model::values::NodeNameMode;

use kiln_layers::Entry;

use super::{Component, Ctx, RenderError};

/// cloud-init's drop-in: `cloud.cfg.d` files are read in order, so `90-` wins over Debian's.
pub(crate) const CLOUD_CFG: &str = "/etc/cloud/cloud.cfg.d/90-kiln.cfg";

/// kiln's replacements of Debian's units (see the module doc).
pub(crate) const CLOUD_INIT_UNITS: [&str; 2] = ["cloud-init-local.service", "cloud-init.service"];

/// Debian's later cloud-init stages, which kiln keeps and slows down with a drop-in.
const CLOUD_INIT_LATER: [&str; 2] = ["cloud-config.service", "cloud-final.service"];

/// cloud-init's stages get only the CPU and disk time nothing else wants: under TCG they
/// were ~65 s of Python (init-local 13 s, init 13 s, config 34 s, final 8 s on the demo's one
/// vCPU), all spent beside the services the host is for. With `SCHED_IDLE` they still finish,
/// after the boot's real work.
pub(crate) const CLOUD_INIT_IDLE: &str =
    "# Only the CPU and disk time the host's services leave (kiln: off the boot's critical path).
CPUSchedulingPolicy=idle
IOSchedulingClass=idle";

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

/// With `[boot.secure_boot]`: the identity tar's signature (`openssl dgst -sha256 -sign`, with
/// the db key, RSA PKCS #1 v1.5) beside it in the seed, and the certificate to check it with
/// ([`SEED_SIGNER_CRT`]). The UKI's command line (inside the signed image) names the
/// certificate's sha256 ([`SEED_SIGNER_ARG`]); `kiln-identity.service` then applies the tar only
/// when the certificate is that one and the signature verifies, and never runs cloud-init (its
/// user-data is not signed).
pub const IDENTITY_SIG: &str = "kiln-identity.tar.sig";
/// The certificate of [`IDENTITY_SIG`] in the seed (PEM).
pub const SEED_SIGNER_CRT: &str = "kiln-seed-signer.crt";
/// The UKI's kernel argument that turns on the seed check: `kiln.seed-signer=SHA256` (of the
/// certificate's DER bytes).
pub const SEED_SIGNER_ARG: &str = "kiln.seed-signer";
/// The script that checks a seed's signature (`verify-seed SEED_DIR SHA256`).
pub const VERIFY_SEED: &str = "/usr/lib/kiln/verify-seed";

/// Where the identity tar carries root's password hash (tmpfs; the unit applies and removes it).
pub const PASSWORD_HASH_FILE: &str = "/run/kiln/identity/root-password-hash";

/// Where the identity tar carries the sha256 of the seed's `user-data` as kiln wrote it
/// (hex, one line). `kiln-identity.service` compares the seed's `user-data` with it: when they
/// match, cloud-init would only write what the unit has just applied (its modules in the image
/// are write-files, set_hostname, update_hostname and users-groups), so the unit leaves the
/// flag [`CLOUD_INIT_SKIP`] and cloud-init's four stages do not start.
pub const USER_DATA_SHA_FILE: &str = "/run/kiln/identity/user-data.sha256";

/// The flag that skips cloud-init's stages on this boot (tmpfs; see [`USER_DATA_SHA_FILE`]).
pub(crate) const CLOUD_INIT_SKIP: &str = "/run/kiln/cloud-init-not-needed";

/// The kernel argument that runs cloud-init even when the seed is kiln's own
/// (`kiln.cloud-init=always`; `auto`, the default, skips it then). cloud-init's own
/// `cloud-init=disabled` still turns it off altogether.
pub const CLOUD_INIT_ARG: &str = "kiln.cloud-init";

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
        for unit in CLOUD_INIT_UNITS {
            ctx.template(
                &format!("/etc/systemd/system/{unit}"),
                0o644,
                unit,
                minijinja::context! { idle => CLOUD_INIT_IDLE, skip => CLOUD_INIT_SKIP },
            )?;
        }
        for unit in CLOUD_INIT_LATER {
            ctx.add(
                &format!("/etc/systemd/system/{unit}.d/kiln.conf"),
                Entry::file(
                    format!(
                        "# kiln: Debian's {unit}, at idle priority and skipped when the seed's \
                         user-data is kiln's own (see cloud-init.service).\n\
                         [Unit]\nConditionPathExists=!{CLOUD_INIT_SKIP}\n\n\
                         [Service]\n{CLOUD_INIT_IDLE}\n"
                    ),
                    0o644,
                ),
            )?;
        }
        // The identity, early and without cloud-init (see [`IDENTITY_UNIT`]).
        ctx.template(
            APPLY_IDENTITY,
            0o755,
            "kiln-apply-identity",
            minijinja::context! {
                network_seed => NETWORK_SEED_DIR, tar => IDENTITY_TAR, hash => PASSWORD_HASH_FILE,
                ud_member => USER_DATA_SHA_FILE.trim_start_matches('/'), skip => CLOUD_INIT_SKIP,
                arg => CLOUD_INIT_ARG,
                identity_env => format!("{}/identity.env", super::KILN_ETC),
                stamp => IDENTITY_STAMP,
                signer_arg => SEED_SIGNER_ARG, verify => VERIFY_SEED,
                sig => IDENTITY_SIG, crt => SEED_SIGNER_CRT,
                env_member => format!("{}/identity.env", super::KILN_ETC).trim_start_matches('/').to_string(),
                link_dir => "/run/systemd/network", link_file => "10-kiln-identity.link",
            },
        )?;
        ctx.template(
            VERIFY_SEED,
            0o755,
            "kiln-verify-seed",
            minijinja::context! { tar => IDENTITY_TAR, sig => IDENTITY_SIG, crt => SEED_SIGNER_CRT },
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
