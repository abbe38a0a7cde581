//! What `kiln check` prints: the resolved plan per profile and host, as text or JSON.

use std::fmt::Write as _;

use kiln_layers::{EntryKind, FileTree};
use serde::Serialize;

use crate::components::{self, Artifact, Rendered};
use crate::diag::Diagnostic;
use kiln_model::plan::{
    HostPlan, MarathonPlan, MarathonRun, Origin, Plan, Proto, Service, SourcePlan,
};
use kiln_model::values::HostName;

/// One entry of a rendered tree, for the report.
#[derive(Debug, Serialize)]
pub struct FileLine {
    pub path: String,
    pub kind: &'static str,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn files(tree: &FileTree) -> Vec<FileLine> {
    tree.iter()
        .filter(|(_, e)| e.kind != EntryKind::Dir)
        .map(|(p, e)| FileLine {
            path: p.into(),
            kind: e.kind.name(),
            mode: format!("{:04o}", e.mode),
            uid: e.uid,
            gid: e.gid,
            target: match &e.kind {
                EntryKind::Symlink(t) => Some(t.clone()),
                _ => None,
            },
        })
        .collect()
}

/// A profile in the report.
#[derive(Debug, Serialize)]
pub struct ProfileReport<'a> {
    pub name: &'a str,
    pub roles: Vec<&'static str>,
    pub hosts: &'a [HostName],
    pub etcd_member: bool,
    pub etcd_client_endpoints: String,
    pub services: &'a [Service],
    /// Base units masked in the image: they never run.
    pub masked: &'a [String],
    /// Kernel arguments its programs need, and why.
    pub kernel_args: &'a [kiln_model::plan::KernelArg],
    /// Which iptables its programs write their rules with, and why.
    pub iptables: &'a kiln_model::plan::IptablesPlan,
    pub files: Vec<FileLine>,
    /// Files sources must provide (binaries, images).
    pub artifacts: Vec<Artifact>,
}

/// A host in the report.
#[derive(Debug, Serialize)]
pub struct HostReport<'a> {
    #[serde(flatten)]
    pub host: &'a HostPlan,
    pub roles_list: Vec<&'static str>,
    pub identity_files: Vec<FileLine>,
}

/// Where one upstream artifact comes from.
#[derive(Debug, Serialize)]
pub struct SourceLine {
    /// The component's source name (`mesos`, `calico-cni`) or `image NAME`.
    pub name: String,
    /// The component's version; empty for an image (its reference says it).
    pub version: String,
    /// `spec` (the spec names it), `base` (in the base), `catalog` (kiln's default) or
    /// `missing` (nothing to fetch: `fill` says what to set).
    pub from: &'static str,
    /// The spec's or the catalog's location(s); empty when missing or in the base.
    pub location: Vec<String>,
    /// For a missing one: the spec key to fill, why, and the known options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<String>,
}

/// Every upstream artifact of the plan and where it comes from.
pub fn sources(plan: &Plan) -> Vec<SourceLine> {
    let origin = |s: &SourcePlan| match &s.origin {
        Origin::Url(u) => u.to_string(),
        Origin::File(f) => format!("file {f}"),
        Origin::Deb(d) => format!("deb {d}"),
        Origin::Oci(o) => o.clone(),
        Origin::Base => "base".into(),
    };
    let mut out = Vec::new();
    for set in components::source_sets(plan) {
        let (from, location, fill) = match (set.source, set.gap()) {
            (Some(s), _) if s.is_base() => ("base", Vec::new(), None),
            (Some(s), _) => ("spec", s.flatten().into_iter().map(origin).collect(), None),
            (None, Some(g)) => ("missing", Vec::new(), Some(g.text())),
            (None, None) => ("catalog", set.catalog.iter().map(origin).collect(), None),
        };
        out.push(SourceLine {
            name: set.name.into(),
            version: set.version.to_string(),
            from,
            location,
            fill,
        });
    }
    for img in components::images(plan) {
        let (from, location) = match &img.source {
            Some(s) if s.is_base() => ("base", Vec::new()),
            Some(s) => ("spec", vec![origin(s)]),
            None => ("catalog", vec![img.upstream.to_string()]),
        };
        out.push(SourceLine {
            name: format!("image {}", img.name),
            version: String::new(),
            from,
            location,
            fill: None,
        });
    }
    out
}

/// The whole `kiln check --json` document.
#[derive(Debug, Serialize)]
pub struct CheckReport<'a> {
    pub cluster: &'a str,
    pub domain: &'a str,
    pub spec_sha256: &'a str,
    pub hosts: Vec<HostReport<'a>>,
    pub profiles: Vec<ProfileReport<'a>>,
    /// Every upstream artifact and where it comes from.
    pub sources: Vec<SourceLine>,
    /// The resolved plan (every component's typed settings).
    pub plan: &'a Plan,
    pub warnings: &'a [Diagnostic],
}

/// Builds the report of a plan and its rendering.
pub fn build<'a>(
    plan: &'a Plan,
    warnings: &'a [Diagnostic],
    rendered: &Rendered,
) -> CheckReport<'a> {
    CheckReport {
        cluster: plan.cluster.as_str(),
        domain: plan.domain.as_str(),
        spec_sha256: &plan.spec_sha256,
        hosts: plan
            .hosts
            .iter()
            .map(|h| HostReport {
                host: h,
                roles_list: h.roles.names(),
                identity_files: rendered
                    .hosts
                    .get(h.name.as_str())
                    .map(files)
                    .unwrap_or_default(),
            })
            .collect(),
        profiles: plan
            .profiles
            .iter()
            .map(|p| ProfileReport {
                name: &p.name,
                roles: p.roles.names(),
                hosts: &p.hosts,
                etcd_member: p.etcd_member,
                etcd_client_endpoints: p.etcd_endpoints_csv(),
                services: &p.services,
                masked: &p.masked,
                kernel_args: &p.kernel_args,
                iptables: &p.iptables,
                files: rendered
                    .profiles
                    .get(&p.name)
                    .map(files)
                    .unwrap_or_default(),
                artifacts: components::artifacts(plan, p),
            })
            .collect(),
        sources: sources(plan),
        plan,
        warnings,
    }
}

fn ports(s: &Service) -> String {
    let v: Vec<String> = s
        .ports
        .iter()
        .map(|p| match p.proto {
            Proto::Ipip => "ipip".to_string(),
            Proto::Tcp if p.local => format!("127.0.0.1:{}/tcp", p.number()),
            Proto::Tcp => format!("{}/tcp", p.number()),
            Proto::Udp => format!("{}/udp", p.number()),
        })
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// How Marathon runs, and from what.
fn marathon_form(m: &MarathonPlan) -> String {
    match &m.run {
        MarathonRun::Container(img) => format!(
            "container form: {} run by Docker on the host's network, image from {}",
            img.runs_as,
            match img.source.as_ref().map(|s| &s.origin) {
                Some(Origin::Oci(o)) => o.as_str(),
                _ => img.upstream.as_str(),
            }
        ),
        MarathonRun::Tarball { home, source } => format!(
            "tarball form: {home}/bin/marathon from {}",
            match &source.origin {
                Origin::Url(u) => u.to_string(),
                Origin::File(f) => format!("file {f}"),
                Origin::Deb(d) => format!("deb {d}"),
                Origin::Oci(o) => o.clone(),
                Origin::Base => "the base".into(),
            }
        ),
    }
}

/// Human-readable plan: per host its role, profile, identity and files; per profile its
/// units, ports and files.
pub fn text(r: &CheckReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cluster {} ({}): {} host(s), {} image profile(s)",
        r.cluster,
        r.domain,
        r.hosts.len(),
        r.profiles.len()
    );
    let plan = r.plan;
    let zk = plan.zookeeper.as_ref().map(|z| {
        let v: Vec<String> = z
            .servers
            .iter()
            .map(|(_, ip)| format!("{ip}:{}", z.client_port))
            .collect();
        v.join(",")
    });
    let _ = writeln!(o, "  zookeeper  {}", zk.as_deref().unwrap_or("-"));
    if let Some(m) = &plan.mesos.master {
        let _ = writeln!(o, "  mesos      {} (quorum {})", plan.mesos.zk, m.quorum);
    }
    if let Some(m) = &plan.marathon {
        let _ = writeln!(o, "  marathon   {}", marathon_form(m));
    }
    if let Some(e) = &plan.etcd {
        let _ = writeln!(
            o,
            "  etcd       {} (v2 API {})",
            e.initial_cluster(),
            if e.v2 { "on" } else { "off" }
        );
    }
    if let Some(b) = &plan.boot {
        let mut disks: Vec<&str> = Vec::new();
        if b.raw {
            disks.push("raw");
        }
        if b.qcow2 {
            disks.push("qcow2");
        }
        let _ = writeln!(
            o,
            "  boot       kernel, initramfs, verified root, {}{}{}; state {} MiB",
            // A Debian base gets the EFI stub (BOOT_PACKAGES); another base only if it has it.
            if plan.base.debian.is_some() {
                "UKI"
            } else {
                "UKI if the image has systemd's EFI stub"
            },
            if disks.is_empty() {
                String::new()
            } else if plan.base.debian.is_some() {
                format!(", {} disks (BIOS and UEFI)", disks.join("+"))
            } else {
                format!(", {} disks (BIOS; UEFI with the UKI)", disks.join("+"))
            },
            b.rootfs_tarball
                .as_ref()
                .map(|t| format!(", rootfs.{t}"))
                .unwrap_or_default(),
            b.state_size_mib
        );
    }
    if let Some(k) = &plan.kickstart {
        let _ = writeln!(
            o,
            "  kickstart  {} mode {} from {} (kickstart/HOST.ks)",
            k.target, k.mode, k.url
        );
    }
    if plan.mesos.master.is_some() || plan.mesos.agent.is_some() {
        let legacy = if plan.mesos.flavour.cgroup_v2() {
            "its agents stay on cgroup v2"
        } else {
            "its agents boot the legacy cgroup hierarchy"
        };
        let _ = writeln!(
            o,
            "  mesos pkg  {} packaging ({}): {}/, {}; {legacy}",
            plan.mesos.flavour,
            plan.mesos.flavour_from,
            plan.mesos.flavour.agent_flag_dir(),
            plan.mesos.flavour.agent_unit()
        );
    }
    for l in &plan.left_out {
        let _ = writeln!(o, "  left out   {}: {} ({})", l.component, l.what, l.reason);
    }
    for src in &r.sources {
        let at = match (src.from, &src.fill) {
            (_, Some(fill)) => format!("NO SOURCE: {}", fill.replace('\n', "\n               ")),
            ("base", _) => "in the base".into(),
            (from, _) => format!("{from} {}", src.location.join(" ")),
        };
        let version = if src.version.is_empty() {
            String::new()
        } else {
            format!(" {}", src.version)
        };
        let _ = writeln!(o, "  source     {}{version}: {at}", src.name);
    }
    for h in &r.hosts {
        let _ = writeln!(o, "\nhost {} ({})", h.host.name, h.host.fqdn);
        let _ = writeln!(o, "  roles      {}", h.roles_list.join(", "));
        let _ = writeln!(o, "  profile    {}", h.host.profile);
        let _ = writeln!(
            o,
            "  address    {} mac {} iface {}",
            h.host.address, h.host.mac, h.host.interface
        );
        if let Some(n) = &h.host.etcd_name {
            let _ = writeln!(o, "  etcd name  {n}");
        }
        if let Some(id) = h.host.zk_id {
            let _ = writeln!(o, "  zk myid    {id}");
        }
        // Fingerprints and the hash's scheme only (their Display); the secrets themselves
        // are only in the host's seed and kickstart.
        let a = &h.host.access;
        for k in &a.ssh_authorized_keys {
            let _ = writeln!(o, "  ssh key    {k}");
        }
        if let Some(p) = &a.root_password_hash {
            let _ = writeln!(
                o,
                "  root pw    {p} (only in the host's seed and kickstart)"
            );
        }
        if let Some(p) = r.profiles.iter().find(|p| p.name == h.host.profile) {
            let units: Vec<&str> = p.services.iter().map(|s| s.unit.as_str()).collect();
            let _ = writeln!(o, "  units      {}", units.join(" "));
            let all: Vec<String> = p
                .services
                .iter()
                .filter(|s| !s.ports.is_empty())
                .map(ports)
                .collect();
            let _ = writeln!(o, "  ports      {}", all.join(" "));
            let _ = writeln!(
                o,
                "  files      {} from profile {} + identity:",
                p.files.len(),
                p.name
            );
        }
        for f in &h.identity_files {
            let _ = writeln!(o, "    {} {}:{} {}", f.mode, f.uid, f.gid, f.path);
        }
    }
    for p in &r.profiles {
        let _ = writeln!(
            o,
            "\nprofile {} (roles {}; hosts {})",
            p.name,
            p.roles.join(", "),
            kiln_model::plan::join(p.hosts, ", ")
        );
        let _ = writeln!(o, "  etcd clients use {}", p.etcd_client_endpoints);
        let _ = writeln!(o, "  units:");
        for s in p.services {
            let _ = writeln!(
                o,
                "    {:<28} {:<18} {:<40} {}",
                s.unit,
                s.component.name(),
                s.exec.as_str(),
                ports(s)
            );
        }
        if !p.masked.is_empty() {
            let _ = writeln!(o, "  masked (never run): {}", p.masked.join(" "));
        }
        for k in p.kernel_args {
            let _ = writeln!(o, "  kernel: {} ({})", k.arg, k.why);
        }
        let _ = writeln!(o, "  iptables: {} ({})", p.iptables.mode, p.iptables.why);
        let _ = writeln!(o, "  files:");
        for f in &p.files {
            let target = f
                .target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            let _ = writeln!(o, "    {} {}:{} {}{}", f.mode, f.uid, f.gid, f.path, target);
        }
        if !p.artifacts.is_empty() {
            let _ = writeln!(o, "  from sources (not rendered):");
            for a in &p.artifacts {
                let _ = writeln!(o, "    {} ({})", a.path, a.what);
            }
        }
    }
    o
}

/// "What runs where": a Markdown table of each profile's hosts, units (with component and
/// ports) and masked base units, generated from the plan (the README carries the demo's).
pub fn what_runs_where(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| profile | hosts | unit | component | ports |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for p in &plan.profiles {
        let hosts = kiln_model::plan::join(&p.hosts, ", ");
        for (i, s) in p.services.iter().enumerate() {
            let (name, hosts) = if i == 0 {
                (p.name.as_str(), hosts.as_str())
            } else {
                ("", "")
            };
            let _ = writeln!(
                o,
                "| {name} | {hosts} | `{}` | {} | {} |",
                s.unit,
                s.component,
                ports(s)
            );
        }
        if !p.masked.is_empty() {
            let masked: Vec<String> = p.masked.iter().map(|u| format!("`{u}`")).collect();
            let _ = writeln!(o, "| | | masked (never runs): {} | | |", masked.join(" "));
        }
    }
    o
}
