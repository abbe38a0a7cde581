//! Spec → [`Plan`]: parsing with spans, checking every value once into its type, and deriving
//! the resolved cluster.
//!
//! Three steps, each in its own place:
//! - **checking** (the topic modules: `hosts`, `sources`, `masters`, `marathon`, `etcd`,
//!   `docker`, `calico`) turns each spec value into its type from [`kiln_model::values`]
//!   or a diagnostic located at its key; all problems of a spec are collected, never only the
//!   first;
//! - **deriving** (`derive`) is pure: from the typed parts it builds profiles and asks the
//!   component registry what each profile runs and masks;
//! - **cross-checks** (`ports`) look at the derived plan (two services on one port).

mod access;
mod bootable;
mod calico;
mod derive;
mod docker;
mod etcd;
mod hosts;
mod kickstart;
mod marathon;
mod masters;
mod paths;
mod ports;
mod provision;
mod sources;

use std::str::FromStr;

use kiln_model::plan::{Installer, Plan, Upstream};
use kiln_model::values::{quote, AbsPath, ValueError, Version};

use crate::diag::{Diagnostic, Severity, SpecSource};
use crate::spec::Spec;

/// Why a spec was refused: every error found (warnings included, for display).
#[derive(Debug)]
pub struct Rejected {
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        let errors = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        write!(f, "spec rejected with {errors} error(s)")
    }
}

impl std::error::Error for Rejected {}

/// A plan and the warnings its spec gave.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<Diagnostic>,
}

/// Parses TOML into a [`Spec`], turning syntax errors and unknown keys into diagnostics.
pub fn parse(src: &SpecSource) -> Result<Spec, Rejected> {
    toml::from_str::<Spec>(&src.text).map_err(|e| {
        // The parser's message may span lines ("invalid table header\nduplicate key …"):
        // the last line is the specific one.
        let message = e
            .message()
            .trim()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let help = if message.starts_with("unknown field") {
            "remove the key or fix its spelling; `kiln schema` lists every key"
        } else if message.starts_with("missing field") {
            "add the key; `kiln init` writes a complete example spec"
        } else if message.starts_with("invalid type") || message.starts_with("unknown variant") {
            "use a value of the kind named; `kiln schema` gives every key's type"
        } else {
            "fix the TOML syntax at this point (see https://toml.io)"
        };
        let mut d = Diagnostic::error("", message).help(help);
        d.location = Some(src.locate(e.span().unwrap_or(0..0)));
        Rejected {
            diagnostics: vec![d],
        }
    })
}

/// How a spec is loaded besides its text.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Upstream components to leave out of the plan (`--leave-out`), with their units and
    /// ports; the plan records each under `left_out`.
    pub leave_out: Vec<Upstream>,
}

/// Parses, checks and derives a spec. `Ok` carries the plan and its warnings; `Err` carries
/// every error and warning found, located in the source.
pub fn load(src: &SpecSource) -> Result<Loaded, Rejected> {
    load_with(src, &LoadOptions::default())
}

/// [`load`] with options.
pub fn load_with(src: &SpecSource, opts: &LoadOptions) -> Result<Loaded, Rejected> {
    let mut spec = parse(src)?;
    let left_out = bootable::leave_out(&mut spec, &opts.leave_out);
    let mut c = Checker { diags: Vec::new() };
    let plan = c.plan(&spec, src).map(|mut p| {
        p.left_out = left_out;
        p
    });
    let mut diags = c.diags;
    src.attach(&mut diags);
    match plan {
        Some(plan) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            plan,
            warnings: diags,
        }),
        _ => Err(Rejected { diagnostics: diags }),
    }
}

/// Collects diagnostics while the topic modules check the spec.
pub(crate) struct Checker {
    diags: Vec<Diagnostic>,
}

impl Checker {
    fn err(&mut self, key: &str, msg: impl Into<String>, help: impl Into<String>) {
        self.push(Diagnostic::error(key, msg).help(help));
    }

    fn warn(&mut self, key: &str, msg: impl Into<String>, help: impl Into<String>) {
        self.push(Diagnostic::warning(key, msg).help(help));
    }

    /// Adds `d` unless the same problem at the same key was reported already: a value two
    /// checks read (the CNI dirs: Calico's and the agent's flags) is reported once.
    fn push(&mut self, d: Diagnostic) {
        let dup = self
            .diags
            .iter()
            .any(|o| o.severity == d.severity && o.key == d.key && o.message == d.message);
        if !dup {
            self.diags.push(d);
        }
    }

    fn failed(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }

    /// `s` parsed as `T`, or an error at `key`.
    fn val<T: FromStr<Err = ValueError>>(&mut self, key: &str, s: &str) -> Option<T> {
        match s.parse() {
            Ok(v) => Some(v),
            Err(ValueError { problem, help }) => {
                self.err(key, problem, help);
                None
            }
        }
    }

    /// Every item of `items` parsed as `T` (errors at `key[i]`); `None` if any failed.
    fn vals<T: FromStr<Err = ValueError>>(
        &mut self,
        key: &str,
        items: &[String],
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, s) in items.iter().enumerate() {
            match self.val(&format!("{key}[{i}]"), s) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Like [`Checker::val`], the message naming what the value is (`invalid cluster name
    /// "X": …`).
    fn named<T: FromStr<Err = ValueError>>(&mut self, key: &str, what: &str, s: &str) -> Option<T> {
        match s.parse() {
            Ok(v) => Some(v),
            Err(ValueError { help, .. }) => {
                self.err(key, format!("invalid {what} {}", quote(s)), help);
                None
            }
        }
    }

    fn path(&mut self, key: &str, s: &str) -> Option<AbsPath> {
        self.val(key, s)
    }

    /// A directory a service owns: a path, and not a system directory (systemd-tmpfiles would
    /// change its owner and mode).
    fn state_dir(&mut self, key: &str, s: &str) -> Option<AbsPath> {
        let dir = self.path(key, s)?;
        if dir.is_system_dir() {
            self.err(
                key,
                format!("{} is a system directory, not a data directory", quote(s)),
                "use a directory of its own, e.g. \"/var/lib/NAME\": kiln creates it at boot with systemd-tmpfiles, which would change its owner and mode",
            );
            return None;
        }
        Some(dir)
    }

    fn version(&mut self, key: &str, s: &str) -> Option<Version> {
        match Version::parse_checked(s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    key,
                    format!("invalid version {}: {}", quote(s), e.problem),
                    e.help,
                );
                None
            }
        }
    }

    /// A number that must not be zero.
    fn nonzero(&mut self, key: &str, v: u32, help: &str) -> u32 {
        if v == 0 {
            self.err(key, "must be greater than zero", help);
        }
        v
    }

    /// Checks every part of the spec, then derives the plan when nothing failed.
    fn plan(&mut self, spec: &Spec, src: &SpecSource) -> Option<Plan> {
        let cluster = self.named("cluster.name", "cluster name", &spec.cluster.name);
        let domain = self.val("cluster.domain", &spec.cluster.domain);
        let boot = self.boot(spec);
        let mut base = self.base(spec);
        if let (Some(Some(_)), Some(d)) = (&boot, base.as_mut().and_then(|b| b.debian.as_mut())) {
            d.packages = bootable::with_boot_packages(std::mem::take(&mut d.packages));
        }
        let access = self.cluster_access(&spec.access);
        let hosts = match &domain {
            Some(d) => self.hosts(spec, d, &access),
            None => Vec::new(),
        };
        let sets_password = hosts.iter().any(|h| h.access.root_password_hash.is_some());
        if let (Some(Some(_)), Some(d), true) = (
            &boot,
            base.as_mut().and_then(|b| b.debian.as_mut()),
            sets_password,
        ) {
            d.packages = bootable::with_password_tools(std::mem::take(&mut d.packages));
        }
        let masters = hosts.iter().filter(|h| h.roles.master).count();
        let calico = self.calico(spec, &hosts);
        let zookeeper = self.zookeeper(spec, &hosts);
        let mut mesos = self.mesos(spec, masters, zookeeper.as_ref());
        let agent_cni = self.agent_cni_dirs(spec);
        if let (Some(a), Some(dirs)) = (mesos.as_mut().and_then(|m| m.agent.as_mut()), agent_cni) {
            a.cni_dirs = dirs;
        }
        let marathon = self.marathon(spec, zookeeper.as_ref());
        let docker = self.docker(spec);
        let etcd = self.etcd(spec, &hosts, calico.as_ref(), docker.as_ref());
        let firewall = self.firewall(spec);
        let registry = self.registry(spec);
        let images = self.images(spec);
        let mut provision = self.provision(spec, boot.as_ref());
        let kickstart = self.kickstart(
            spec,
            base.as_ref(),
            boot.as_ref(),
            registry.is_some(),
            provision.as_ref(),
        );
        if let (Some(Some(p)), Some(Some(k))) = (provision.as_mut(), kickstart.as_ref()) {
            p.installer = Some(Installer::of(p, k));
        }
        let secure = matches!(&boot, Some(Some(b)) if b.secure_boot.is_some());
        if secure && matches!(&provision, Some(Some(p)) if p.pxe) {
            self.warn(
                "provision.pxe",
                "boot.secure_boot signs the boot images, and the PXE tree also offers paths \
                 outside the signed chain: BIOS iPXE, PXELINUX and GRUB hand a host the root hash \
                 over plain HTTP/TFTP, so a host booted through them is not protected by Secure \
                 Boot (only UEFI with Secure Boot on, booting pxe/ipxe.efi or by HTTP boot, runs \
                 the signed network UKI and ignores what the scripts say)",
                "make Secure Boot firmware boot pxe/ipxe.efi (DHCP filename or HTTP boot URL) \
                 and keep the other loaders off that network, or set provision.pxe = false; on \
                 BIOS no path can carry a signed root hash",
            );
        }
        self.dependencies(spec);
        if self.failed() {
            return None;
        }
        let plan = derive::plan(Plan {
            cluster: cluster?,
            domain: domain?,
            spec_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(src.text.as_bytes())),
            hosts,
            base: base?,
            zookeeper,
            etcd,
            mesos: mesos?,
            marathon,
            docker,
            calico: calico?,
            firewall,
            registry,
            images: images?,
            profiles: Vec::new(),
            boot: boot?,
            kickstart: kickstart?,
            left_out: Vec::new(),
            provision: provision?,
        });
        self.ports(&plan, src);
        self.paths(&plan, src);
        self.gaps(&plan);
        self.kickstart_iptables(&plan);
        Some(plan)
    }

    /// Upstream artifacts with no source to fetch: a warning here (the plan renders), and
    /// `kiln lock`/`fetch`/`build` refuse to start (`sources::Error::NoSource`).
    fn gaps(&mut self, plan: &Plan) {
        for set in crate::components::source_sets(plan) {
            if let Some(g) = set.gap() {
                let help = if g.options.is_empty() {
                    format!("set {} to a copy you have (url or file)", g.key)
                } else {
                    format!(
                        "set {}; the `source {}` line of kiln check's plan lists the {} known options",
                        g.key,
                        set.name,
                        g.options.len()
                    )
                };
                self.warn(
                    &g.key,
                    format!(
                        "{} {} has no source to fetch: {}",
                        set.name, set.version, g.why
                    ),
                    help,
                );
            }
        }
    }

    /// Components that need another one.
    fn dependencies(&mut self, spec: &Spec) {
        if spec.marathon.enabled && !spec.mesos.master.enabled {
            self.err(
                "marathon.enabled",
                "Marathon needs the Mesos master",
                "enable mesos.master or disable marathon",
            );
        }
        if (spec.mesos.master.enabled || spec.mesos.agent.enabled || spec.marathon.enabled)
            && !spec.zookeeper.enabled
        {
            self.err(
                "zookeeper.enabled",
                "Mesos and Marathon find their leader through ZooKeeper",
                "enable zookeeper, or disable mesos and marathon",
            );
        }
        if spec.calico.node.enabled && !spec.docker.enabled {
            self.err(
                "calico.node.enabled",
                "calico-node runs as a Docker container",
                "enable docker or disable calico.node",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_by_two_checks_is_reported_once() {
        let text = crate::DEMO_SPEC.replace(
            "layout = \"mesos\"",
            "layout = \"mesos\"\nplugins_dir = \"/opt/cni bin\"",
        );
        let src = SpecSource {
            name: "c.toml".into(),
            text,
        };
        let diags = load(&src).expect_err("a space in a path").diagnostics;
        let hits: Vec<_> = diags
            .iter()
            .filter(|d| d.key == "calico.cni.plugins_dir")
            .collect();
        assert_eq!(hits.len(), 1, "{diags:#?}");
    }
}
