//! `[kickstart]`: target, mode and what each mode needs from the rest of the spec (a
//! RHEL-family base and a rootfs tarball for `image`, Stream 9, a bootc base and the cluster
//! registry for `bootc`, an installation source for `packages`), and every value a kickstart
//! line takes (time zone, disk, partitions, installer file names, repositories, packages).

use kiln_model::plan::{
    BasePlan, BootablePlan, IptablesMode, KickstartPlan, PartitionPlan, Plan, ProvisionPlan,
    RepoPlan,
};
use kiln_model::values::{quote, BaseFamily, HttpUrl, KsMode, KsTarget, PartFs};

use super::Checker;
use crate::spec::Spec;

/// A tz database name: `UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`.
fn is_timezone(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'))
        })
}

/// A disk name as Anaconda takes it: `sda`, `vda`, `nvme0n1`, `disk/by-id/…`.
fn is_disk(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':'))
}

/// A relative path in the PXE tree: `images/pxeboot/vmlinuz`.
fn is_rel_path(s: &str) -> bool {
    is_disk(s) && !s.starts_with('/')
}

/// An RPM package or group name (`etcd`, `@core`, `-firewalld`, `python3-*`).
fn is_package(s: &str) -> bool {
    let name = s.strip_prefix(['@', '-']).unwrap_or(s);
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'*' | b'^')
        })
}

impl Checker {
    pub(super) fn kickstart(
        &mut self,
        spec: &Spec,
        base: Option<&BasePlan>,
        boot: Option<&Option<BootablePlan>>,
        has_registry: bool,
        provision: Option<&Option<ProvisionPlan>>,
    ) -> Option<Option<KickstartPlan>> {
        let k = &spec.kickstart;
        if !k.enabled {
            return Some(None);
        }
        let target = self.val::<KsTarget>("kickstart.target", &k.target);
        let mode = self.val::<KsMode>("kickstart.mode", &k.mode);
        let selinux = self.val("kickstart.selinux", &k.selinux);
        let url = match provision {
            Some(Some(p)) => Some(p.url.clone()),
            Some(None) => {
                self.err(
                    "kickstart",
                    "kickstarts need provision.url, which is not set",
                    "set provision.url to where the dist is published (`kiln serve`), e.g. \"http://10.0.0.5:8080\": the kickstarts fetch the role from there",
                );
                None
            }
            None => None,
        };
        if !is_timezone(&k.timezone) {
            self.err(
                "kickstart.timezone",
                format!("{} is not a time zone name", quote(&k.timezone)),
                "use a tz database name, e.g. \"UTC\" or \"Europe/Berlin\"",
            );
        }
        if let Some(d) = &k.disk {
            if !is_disk(d) {
                self.err(
                    "kickstart.disk",
                    format!("{} is not a disk name", quote(d)),
                    "name the disk as Anaconda does, e.g. \"vda\", \"sda\" or \"nvme0n1\"",
                );
            }
        }
        for (key, v) in [
            ("kickstart.installer_kernel", &k.installer_kernel),
            ("kickstart.installer_initrd", &k.installer_initrd),
        ] {
            if v.starts_with("http://") {
                let _: Option<HttpUrl> = self.val(key, v);
            } else if !is_rel_path(v) {
                self.err(
                    key,
                    format!("{} is not a relative path in the PXE tree or an http:// URL", quote(v)),
                    "give the installer's file relative to the PXE tree, e.g. \"images/pxeboot/vmlinuz\", or its http:// URL on another server",
                );
            }
        }
        let partitions = self.partitions(spec);
        let install_url = match &k.install_url {
            Some(u) => self.val::<HttpUrl>("kickstart.install_url", u),
            None => None,
        };
        let mut repos = Vec::new();
        for (i, r) in k.repos.iter().enumerate() {
            let name = self.named(
                &format!("kickstart.repos[{i}].name"),
                "repository id",
                &r.name,
            );
            let url = self.val(&format!("kickstart.repos[{i}].url"), &r.url);
            if let (Some(name), Some(url)) = (name, url) {
                repos.push(RepoPlan { name, url });
            }
        }
        for (i, p) in k.packages.iter().enumerate() {
            if !is_package(p) {
                self.err(
                    &format!("kickstart.packages[{i}]"),
                    format!("{} is not a package or group name", quote(p)),
                    "use RPM names such as \"etcd\" or groups such as \"@core\"",
                );
            }
        }
        if let (Some(t), Some(m)) = (target, mode) {
            self.kickstart_mode(spec, t, m, base, boot, has_registry);
        }
        Some(Some(KickstartPlan {
            target: target?,
            mode: mode?,
            url: url?,
            timezone: k.timezone.clone(),
            selinux: selinux?,
            disk: k.disk.clone(),
            partitions: partitions?,
            installer_kernel: k.installer_kernel.clone(),
            installer_initrd: k.installer_initrd.clone(),
            install_url,
            repos,
            packages: k.packages.clone(),
        }))
    }

    fn partitions(&mut self, spec: &Spec) -> Option<Vec<PartitionPlan>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, p) in spec.kickstart.partitions.iter().enumerate() {
            let k = |f: &str| format!("kickstart.partitions[{i}].{f}");
            let fstype = self.val::<PartFs>(&k("fstype"), &p.fstype);
            let mount_ok = match fstype {
                Some(PartFs::Swap) => p.mount == "swap",
                Some(PartFs::Biosboot) => p.mount == "biosboot",
                _ => p.mount.parse::<kiln_model::values::AbsPath>().is_ok(),
            };
            if !mount_ok {
                self.err(
                    &k("mount"),
                    format!("{} is not a mount point for {}", quote(&p.mount), p.fstype),
                    "use an absolute path such as \"/\" or \"/var\" (\"swap\" with fstype swap, \"biosboot\" with biosboot)",
                );
                ok = false;
            }
            if p.size_mib == 0 {
                self.err(
                    &k("size_mib"),
                    "a partition of 0 MiB",
                    "give its size in MiB (the minimum, with grow = true)",
                );
                ok = false;
            }
            if let Some(f) = fstype {
                out.push(PartitionPlan {
                    mount: p.mount.clone(),
                    size_mib: p.size_mib,
                    fstype: f,
                    grow: p.grow,
                });
            } else {
                ok = false;
            }
        }
        if ok && !out.is_empty() && !out.iter().any(|p| p.mount == "/") {
            self.err(
                "kickstart.partitions",
                "the partitions have no root (\"/\")",
                "add a partition with mount = \"/\", or remove partitions for autopart",
            );
            ok = false;
        }
        ok.then_some(out)
    }

    /// What the mode needs from the rest of the spec.
    fn kickstart_mode(
        &mut self,
        spec: &Spec,
        target: KsTarget,
        mode: KsMode,
        base: Option<&BasePlan>,
        boot: Option<&Option<BootablePlan>>,
        has_registry: bool,
    ) {
        match mode {
            KsMode::Image => {
                if let Some(b) = base {
                    if b.family != Some(BaseFamily::Rhel) {
                        let what = match b.family {
                            Some(BaseFamily::Debian) => "the base is a Debian root",
                            _ => "the base is not declared RHEL-family (base.family)",
                        };
                        self.err(
                            "kickstart.mode",
                            format!("kickstart mode \"image\" installs the role's root with liveimg, which needs a RHEL-family root (Anaconda runs its own tools, such as its bootloader and SELinux setup, inside it); {what}"),
                            "use mode = \"packages\", or a RHEL-family base image with base.family = \"rhel\" (e.g. quay.io/centos/centos:stream9)",
                        );
                    }
                }
                if let Some(b) = boot {
                    if b.as_ref().and_then(|b| b.rootfs_tarball.as_ref()).is_none() {
                        self.err(
                            "kickstart.mode",
                            "kickstart mode \"image\" needs the role's rootfs tarball, which the build does not write",
                            "set boot.rootfs_tarball = \"tar.gz\" (and boot.enabled = true): liveimg installs it",
                        );
                    }
                }
            }
            KsMode::Bootc => {
                if target != KsTarget::Stream9 {
                    self.err(
                        "kickstart.target",
                        format!("kickstart mode \"bootc\" needs CentOS Stream 9: {target} has no ostreecontainer command (it exists from RHEL 9's Anaconda)"),
                        "set target = \"stream9\", or use mode = \"image\" or \"packages\"",
                    );
                }
                if base.is_some_and(|b| !b.bootc) {
                    self.err(
                        "kickstart.mode",
                        "kickstart mode \"bootc\" installs the role image as a bootc container, but the base is not declared a bootc image",
                        "start from a bootc base (e.g. quay.io/centos-bootc/centos-bootc:stream9) and set base.bootc = true, or use mode = \"packages\"",
                    );
                }
                if !has_registry {
                    self.err(
                        "kickstart.mode",
                        "kickstart mode \"bootc\" pulls the role image from the cluster registry, and [registry] is not set",
                        "add [registry] with address (and push the images there with `kiln push`)",
                    );
                }
            }
            KsMode::Packages => {
                if spec.kickstart.install_url.is_none() {
                    self.err(
                        "kickstart.mode",
                        "kickstart mode \"packages\" needs an installation source",
                        "set kickstart.install_url to the target's BaseOS tree, e.g. \"http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os\"",
                    );
                }
            }
        }
    }

    /// A kickstart target whose OS has no legacy iptables cannot install a host whose
    /// profile needs legacy iptables (calico-node before Calico 3.17): RHEL 8's iptables
    /// package drops every legacy tool and ships only the nf_tables variants under the plain
    /// names (its `iptables.spec` 1.8.4: "drop all legacy tools", "rename nft versions to
    /// standard name"), and RHEL 9 ships only `iptables-nft` (its legacy tools are EPEL's,
    /// not the distribution's); CentOS 7's iptables 1.4.21 is legacy only. Its rules and
    /// the host's nf_tables ones (firewalld's nftables backend, Docker and the CNI plugins
    /// through `iptables-nft`) would be two rule sets, each unaware of the other.
    pub(super) fn kickstart_iptables(&mut self, plan: &Plan) {
        let Some(k) = &plan.kickstart else {
            return;
        };
        let os = match k.target {
            KsTarget::Centos7 => return,
            KsTarget::Stream8 => "CentOS Stream 8 has no legacy iptables (RHEL 8's iptables package ships only the nf_tables variants)",
            KsTarget::Stream9 => "CentOS Stream 9 has no legacy iptables (RHEL 9 ships only iptables-nft)",
        };
        let legacy: Vec<&str> = plan
            .profiles
            .iter()
            .filter(|p| p.iptables.mode == IptablesMode::Legacy)
            .map(|p| p.name.as_str())
            .collect();
        if legacy.is_empty() {
            return;
        }
        self.err(
            "kickstart.target",
            format!(
                "{os}, and calico-node of Calico {} on the {} hosts it installs writes legacy iptables rules (Felix follows the host's mode only from Calico 3.17): its rules and the host's nf_tables ones would be two rule sets, each unaware of the other",
                plan.calico.version,
                legacy.join(", ")
            ),
            "install these hosts with target = \"centos7\" (legacy iptables only), or disable calico.node",
        );
    }
}
