//! `[boot]`: the bootable outputs of every role image, and `--leave-out`.

use kiln_model::plan::{BootablePlan, LeftOut, SecureBootPlan, Upstream, BOOT_PACKAGES};
use kiln_model::values::{quote, DebPackage, FlagValue};

use super::Checker;
use crate::spec::Spec;

impl Checker {
    /// The boot plan: `Some(None)` when boot outputs are off, `None` on errors.
    pub(super) fn boot(&mut self, spec: &Spec) -> Option<Option<BootablePlan>> {
        let b = &spec.boot;
        let has_kernel = spec
            .base
            .debian
            .as_ref()
            .is_some_and(|d| !d.kernel.is_empty());
        if !b.enabled.unwrap_or(has_kernel) {
            return Some(None);
        }
        if spec
            .base
            .debian
            .as_ref()
            .is_some_and(|d| d.kernel.is_empty())
        {
            self.err(
                "base.debian.kernel",
                "no kernel package, and boot outputs (boot.enabled) need the image's kernel",
                "set base.debian.kernel = \"linux-image-amd64\", or boot.enabled = false",
            );
        }
        let mut ok = true;
        let mut kernel_args = Vec::new();
        for (i, a) in b.kernel_args.iter().enumerate() {
            let key = format!("boot.kernel_args[{i}]");
            let Some(v) = self.val::<FlagValue>(&key, a) else {
                ok = false;
                continue;
            };
            if a.contains(char::is_whitespace) || a.contains('"') {
                self.err(
                    &key,
                    format!("kernel argument {} holds a space or a quote", quote(a)),
                    "give one argument per list item, without quotes",
                );
                ok = false;
            } else if a.starts_with("kiln.") || a.starts_with("root=") || a.starts_with("init=") {
                self.err(
                    &key,
                    format!("kernel argument {} is kiln's own", quote(a)),
                    "remove it: kiln sets root, init and kiln.* from the verified root image",
                );
                ok = false;
            } else {
                kernel_args.push(v);
            }
        }
        let (mut raw, mut qcow2) = (false, false);
        for (i, d) in b.disks.iter().enumerate() {
            match d.as_str() {
                "raw" => raw = true,
                "qcow2" => qcow2 = true,
                other => {
                    self.err(
                        &format!("boot.disks[{i}]"),
                        format!("unknown disk format {}", quote(other)),
                        "use \"raw\" or \"qcow2\"",
                    );
                    ok = false;
                }
            }
        }
        let rootfs_tarball = match b.rootfs_tarball.as_str() {
            "" => None,
            t @ ("tar.gz" | "tar.xz") => Some(t.to_string()),
            other => {
                self.err(
                    "boot.rootfs_tarball",
                    format!("unknown tarball format {}", quote(other)),
                    "use \"tar.gz\" or \"tar.xz\" (names Anaconda's liveimg accepts), or \"\" for none",
                );
                ok = false;
                None
            }
        };
        let secure_boot = b.secure_boot.as_ref().and_then(|sb| {
            let mut file = |key: &str, value: &str, required: bool| {
                let value = value.trim();
                if value.is_empty() {
                    if required {
                        self.err(
                            &format!("boot.secure_boot.{key}"),
                            format!("boot.secure_boot needs {key}"),
                            "name the PEM file, relative to the spec (`kiln keys DIR` makes a set)",
                        );
                    }
                    return None;
                }
                Some(value.to_string())
            };
            let key = file("key", &sb.key, true);
            let cert = file("cert", &sb.cert, true);
            let pk_cert = file("pk_cert", &sb.pk_cert, false);
            let kek_cert = file("kek_cert", &sb.kek_cert, false);
            Some(SecureBootPlan {
                key: key?,
                cert: cert?,
                pk_cert,
                kek_cert,
            })
        });
        if b.secure_boot.is_some() && secure_boot.is_none() {
            ok = false;
        }
        ok.then_some(Some(BootablePlan {
            state_size_mib: b.state_size_mib,
            kernel_args,
            raw,
            qcow2,
            rootfs_tarball,
            secure_boot,
        }))
    }
}

/// The packages [`BOOT_PACKAGES`] added to a Debian base's list (once each).
pub(super) fn with_boot_packages(mut packages: Vec<DebPackage>) -> Vec<DebPackage> {
    for p in BOOT_PACKAGES {
        let p: DebPackage = p.parse().expect("BOOT_PACKAGES are valid package names");
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    packages
}

/// `passwd` added to a Debian base's list (once) when a host sets root's password: cloud-init
/// sets it with `chpasswd -e`, which is in `passwd` (priority required, not essential: a
/// minbase has it only when something such as `adduser` pulls it in).
pub(super) fn with_password_tools(packages: Vec<DebPackage>) -> Vec<DebPackage> {
    with_package(packages, "passwd")
}

/// `name` added to a Debian base's list (once).
pub(super) fn with_package(mut packages: Vec<DebPackage>, name: &str) -> Vec<DebPackage> {
    let p: DebPackage = name.parse().expect("a valid package name");
    if !packages.contains(&p) {
        packages.push(p);
    }
    packages
}

/// Turns off the components `leave_out` names, before the spec is checked, and says so.
pub(super) fn leave_out(spec: &mut Spec, leave_out: &[Upstream]) -> Vec<LeftOut> {
    let mut out = Vec::new();
    let mut names: Vec<Upstream> = leave_out.to_vec();
    names.sort();
    names.dedup();
    for u in names {
        match u {
            Upstream::Mesos => {
                spec.mesos.master.enabled = false;
                spec.mesos.agent.enabled = false;
            }
            Upstream::Marathon => spec.marathon.enabled = false,
            Upstream::Calico => {
                spec.calico.cni.enabled = false;
                spec.calico.node.enabled = false;
                spec.calico.libnetwork.enabled = false;
            }
        }
        out.push(LeftOut {
            component: u,
            what: u.what(),
            reason: "left out with --leave-out: its upstream release is not packaged by Debian \
                     and kiln never replaces it with a stand-in"
                .into(),
        });
    }
    // Marathon needs the Mesos master: leaving Mesos out leaves Marathon out too.
    if leave_out.contains(&Upstream::Mesos) && !leave_out.contains(&Upstream::Marathon) {
        spec.marathon.enabled = false;
        out.push(LeftOut {
            component: Upstream::Marathon,
            what: Upstream::Marathon.what(),
            reason: "left out with Mesos, which it needs".into(),
        });
    }
    out
}
