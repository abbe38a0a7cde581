//! Spec → [`Plan`]: parsing with spans, every semantic check, and the derived values.
//!
//! Checks never stop at the first problem: all errors and warnings of a spec are collected and
//! each points at the key it is about.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use sha2::{Digest, Sha256};

use crate::components;
use crate::diag::{Diagnostic, Severity, SpecSource};
use crate::plan::{
    Derived, EtcdAccess, HostPlan, Libnetwork, Plan, Profile, Proto, Roles, Versions,
};
use crate::spec::{CniLayout, ProxyMode, Role, Source, Spec};
use crate::version::Version;

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

/// Parses and validates a spec. `Ok` carries the plan (with its warnings); `Err` carries every
/// error and warning found, located in the source.
pub fn load(src: &SpecSource) -> Result<Plan, Rejected> {
    let spec = parse(src)?;
    let mut v = Checker { diags: Vec::new() };
    let plan = v.plan(spec, src);
    let mut diags = v.diags;
    src.attach(&mut diags);
    match plan {
        Some(mut plan) if !diags.iter().any(|d| d.severity == Severity::Error) => {
            plan.warnings = diags;
            Ok(plan)
        }
        _ => Err(Rejected { diagnostics: diags }),
    }
}

struct Checker {
    diags: Vec<Diagnostic>,
}

/// Names that RFC 1123 allows as one DNS label.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), returning it lowercase with colons.
fn parse_mac(s: &str) -> Result<String, &'static str> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return Err("a MAC address is six two-digit hex octets, like 52:54:00:12:34:56");
    }
    let mut bytes = [0u8; 6];
    for (b, p) in bytes.iter_mut().zip(&parts) {
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| "a MAC address is six two-digit hex octets, like 52:54:00:12:34:56")?;
    }
    if bytes[0] & 1 == 1 {
        return Err("this is a multicast MAC (lowest bit of the first octet set); a NIC needs a unicast one");
    }
    if bytes == [0; 6] {
        return Err("the all-zero MAC is not a NIC address");
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

/// The host part of a `HOST:PORT` pair and its port.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    Some((h, p.parse().ok().filter(|p: &u16| *p != 0)?))
}

impl Checker {
    fn err(&mut self, key: &str, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::error(key, msg).help(help));
    }
    fn warn(&mut self, key: &str, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::warning(key, msg).help(help));
    }

    fn version(&mut self, key: &str, s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| {
            self.err(
                key,
                format!("invalid version {s:?}"),
                "write it as MAJOR.MINOR[.PATCH], e.g. \"3.4.23\"",
            );
            Version::parse("0.0").expect("literal version parses")
        })
    }

    fn abs_path(&mut self, key: &str, p: &str) {
        if !p.starts_with('/') || p.contains("/../") || p.ends_with("/..") || p.contains('\n') {
            self.err(
                key,
                format!("{p:?} is not an absolute path"),
                "use an absolute path such as \"/var/lib/etcd\"",
            );
        }
    }

    fn source(&mut self, key: &str, s: &Option<Source>) {
        let Some(s) = s else { return };
        let kinds = [&s.url, &s.file, &s.deb, &s.oci]
            .iter()
            .filter(|k| k.is_some())
            .count()
            + usize::from(s.base);
        if kinds != 1 {
            self.err(
                key,
                format!("a source names {kinds} kinds"),
                "set exactly one of url, file, deb, oci, base",
            );
        }
        self.source_extraction(key, s);
        if let Some(url) = &s.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.err(
                    &format!("{key}.url"),
                    format!("{url:?} is not an http(s) URL"),
                    "use http:// or https://, or `file` for local paths",
                );
            }
        }
        if let Some(h) = &s.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.err(
                    &format!("{key}.sha256"),
                    "sha256 must be 64 hex digits",
                    "copy the digest from `sha256sum FILE` or from kiln.lock",
                );
            }
        }
    }

    /// What a source takes from its artifact and where it puts it.
    fn source_extraction(&mut self, key: &str, s: &Source) {
        if let Some(dest) = &s.dest {
            self.abs_path(&format!("{key}.dest"), dest);
        }
        for (i, p) in s.paths.iter().enumerate() {
            if p.is_empty() || p.split('/').any(|c| c == "..") || p.contains('\0') {
                self.err(
                    &format!("{key}.paths[{i}]"),
                    format!("{p:?} is not a path inside the archive"),
                    "write paths relative to the archive root (after strip_components), e.g. \"bin/etcd\" or \"*.so\"",
                );
            }
        }
        if s.strip_components > 32 {
            self.err(
                &format!("{key}.strip_components"),
                format!(
                    "strip_components = {} is more than any archive is deep",
                    s.strip_components
                ),
                "strip the leading directory only, usually 1",
            );
        }
        if let Some(mode) = s.mode {
            if mode > 0o7777 {
                self.err(
                    &format!("{key}.mode"),
                    format!("mode {mode:#o} has bits beyond 0o7777"),
                    "write the mode as a TOML octal such as 0o755",
                );
            }
        }
        let placed =
            s.dest.is_some() || !s.paths.is_empty() || s.strip_components > 0 || s.mode.is_some();
        if placed && (s.oci.is_some() || s.base) {
            self.err(
                key,
                "paths, strip_components, dest and mode apply to files and archives, not to images or the base",
                "remove them, or use a url/file/deb source",
            );
        }
        if s.base && (s.sha256.is_some() || !s.also.is_empty()) {
            self.err(
                key,
                "a base-provided source fetches nothing, so sha256 and also do not apply",
                "remove sha256 and also, or name a url/file/deb source",
            );
        }
        for (i, more) in s.also.iter().enumerate() {
            self.source(&format!("{key}.also[{i}]"), &Some(more.clone()));
        }
    }

    /// The `[base.debian]` mmdebstrap inputs.
    fn debian_base(&mut self, spec: &Spec) {
        let Some(d) = &spec.base.debian else { return };
        if !is_label(&d.suite) {
            self.err(
                "base.debian.suite",
                format!("invalid Debian suite {:?}", d.suite),
                "name a suite such as \"bookworm\" or \"stable\"",
            );
        }
        let variants = [
            "extract",
            "custom",
            "essential",
            "apt",
            "minbase",
            "buildd",
            "required",
            "important",
            "standard",
        ];
        if !variants.contains(&d.variant.as_str()) {
            self.err(
                "base.debian.variant",
                format!("unknown mmdebstrap variant {:?}", d.variant),
                "use \"minbase\" (smallest with apt), \"essential\", \"apt\", \"required\", \"important\" or \"standard\"",
            );
        }
        let is_pkg = |p: &str| {
            let name = p.split_once('=').map_or(p, |(n, _)| n);
            name.len() >= 2
                && name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.:".contains(&b))
        };
        for (i, p) in d.packages.iter().enumerate() {
            if !is_pkg(p) {
                self.err(
                    &format!("base.debian.packages[{i}]"),
                    format!("{p:?} is not a Debian package name"),
                    "use package names such as \"systemd\" or \"etcd-server=3.4.23-4+b1\"",
                );
            }
        }
        if !d.kernel.is_empty() && !is_pkg(&d.kernel) {
            self.err(
                "base.debian.kernel",
                format!("{:?} is not a Debian package name", d.kernel),
                "use \"linux-image-amd64\", or \"\" for no kernel",
            );
        }
        if let Some(m) = &d.mirror {
            if !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file://"))
            {
                self.err(
                    "base.debian.mirror",
                    format!("{m:?} is not a mirror URL"),
                    "use an http(s):// or file:// URL, e.g. \"http://deb.debian.org/debian\"",
                );
            }
        }
        if spec.base.source.is_some() {
            self.warn(
                "base.source",
                "base.debian is set, so base.source is not used",
                "remove one of them",
            );
        }
    }

    fn plan(&mut self, mut spec: Spec, src: &SpecSource) -> Option<Plan> {
        if !is_label(&spec.cluster.name) {
            self.err(
                "cluster.name",
                format!("invalid cluster name {:?}", spec.cluster.name),
                "use lowercase letters, digits and '-' (at most 63), e.g. \"prod-east\"",
            );
        }
        if spec.cluster.domain.is_empty() || !spec.cluster.domain.split('.').all(is_label) {
            self.err(
                "cluster.domain",
                format!("invalid domain {:?}", spec.cluster.domain),
                "use dot-separated lowercase labels, e.g. \"mesos.example.com\"",
            );
        }
        self.source("base.source", &spec.base.source);
        self.debian_base(&spec);
        if spec.base.image.trim().is_empty() {
            self.err(
                "base.image",
                "the base image reference is empty",
                "name the base, e.g. \"debian:bookworm\"",
            );
        }

        let hosts = self.hosts(&spec);
        let masters: Vec<&HostPlan> = hosts.iter().filter(|h| h.roles.master).collect();
        if spec.hosts.is_empty() {
            self.err(
                "hosts",
                "the spec has no hosts",
                "add a [[hosts]] table with name, roles, address and mac",
            );
        } else if masters.is_empty() && hosts.len() == spec.hosts.len() {
            self.err(
                "hosts",
                "no host has the master role",
                "give at least one host roles = [\"master\"] (or [\"master\", \"agent\"])",
            );
        }
        if !hosts.is_empty() && !hosts.iter().any(|h| h.roles.agent) {
            self.warn(
                "hosts",
                "no host has the agent role: nothing will run tasks",
                "give at least one host roles = [\"agent\"]",
            );
        }

        let versions = Versions {
            etcd: self.version("etcd.version", &spec.etcd.version),
            docker: self.version("docker.version", &spec.docker.version),
            calico: self.version("calico.version", &spec.calico.version),
        };
        for (key, v) in [
            ("zookeeper.version", &spec.zookeeper.version),
            ("mesos.version", &spec.mesos.version),
            ("marathon.version", &spec.marathon.version),
            ("calico.cni.version", &spec.calico.cni.version),
        ] {
            self.version(key, v);
        }
        for (key, s) in [
            ("zookeeper.source", &spec.zookeeper.source),
            ("mesos.source", &spec.mesos.source),
            ("marathon.source", &spec.marathon.source),
            ("etcd.source", &spec.etcd.source),
            ("docker.source", &spec.docker.source),
            ("calico.cni.source", &spec.calico.cni.source),
            ("calico.node.source", &spec.calico.node.source),
            ("calico.libnetwork.source", &spec.calico.libnetwork.source),
        ] {
            self.source(key, s);
        }

        self.zookeeper(&spec, masters.len());
        let quorum = self.mesos(&spec, masters.len());
        let members = self.etcd_members(&spec, &hosts);
        let (cni_plugins_dir, cni_config_dir, cni_config_file) = self.cni(&spec);
        let calico_major = versions.calico.major;
        if (spec.calico.node.enabled || spec.calico.cni.enabled)
            && !(1..=2).contains(&calico_major)
            && Version::parse(&spec.calico.version).is_some()
        {
            self.err(
                "calico.version",
                format!("Calico {} is not supported", versions.calico),
                "kiln bakes Calico 1.x and 2.x (the releases with Mesos support); use e.g. \"2.6.12\"",
            );
        }
        let store = self.cluster_store(&spec, &versions);
        let advertise = self.advertise(&spec, store.is_some());
        let v2_clients = store.as_deref() == Some("etcd")
            || ((spec.calico.node.enabled || spec.calico.cni.enabled) && calico_major <= 2);
        let (etcd_v2, access) = self.etcd_api(&spec, &versions, v2_clients);
        let calico_node_image = spec.calico.node.image.clone().unwrap_or_else(|| {
            format!(
                "calico/node:v{}",
                versions.calico.to_string().trim_start_matches('v')
            )
        });
        let libnetwork = if !spec.calico.libnetwork.enabled || !spec.docker.enabled {
            Libnetwork::Off
        } else if calico_major <= 1 {
            Libnetwork::Container(
                spec.calico
                    .libnetwork
                    .image
                    .clone()
                    .unwrap_or_else(|| "calico/node-libnetwork:v0.9.0".into()),
            )
        } else {
            if spec.calico.libnetwork.image.is_some() {
                self.warn(
                    "calico.libnetwork.image",
                    "Calico 2.x runs libnetwork inside calico-node; this image is not used",
                    "remove the key, or set calico.version to a 1.x release",
                );
            }
            Libnetwork::Builtin
        };
        self.calico_node(&spec, &hosts);
        if spec.firewall.enabled && !is_label(&spec.firewall.zone) {
            self.err(
                "firewall.zone",
                format!("invalid firewalld zone {:?}", spec.firewall.zone),
                "use a zone name such as \"public\"",
            );
        }
        if let Some(r) = &spec.registry {
            if split_host_port(&r.address).is_none() {
                self.err(
                    "registry.address",
                    format!("{:?} is not HOST:PORT", r.address),
                    "write the registry as e.g. \"10.0.0.10:5000\"",
                );
            }
        }
        self.images(&spec);
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

        if self.diags.iter().any(|d| d.severity == Severity::Error) {
            return None;
        }

        let zk_hosts = masters
            .iter()
            .map(|h| format!("{}:{}", h.ip, spec.zookeeper.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let member_hosts: Vec<&HostPlan> =
            hosts.iter().filter(|h| members.contains(&h.name)).collect();
        let etcd_initial_cluster = member_hosts
            .iter()
            .map(|h| format!("{}=http://{}:{}", h.name, h.ip, spec.etcd.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let etcd_member_urls = member_hosts
            .iter()
            .map(|h| format!("http://{}:{}", h.ip, spec.etcd.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut baked_images = Vec::new();
        if spec.calico.node.enabled {
            baked_images.push(calico_node_image.clone());
        }
        if let Libnetwork::Container(img) = &libnetwork {
            baked_images.push(img.clone());
        }
        if let Some(r) = &spec.registry {
            let prefix = r.prefix.trim_matches('/');
            for img in &mut baked_images {
                *img = format!("{}/{}/{}", r.address, prefix, img);
            }
        }
        let calico_node_image = baked_images
            .first()
            .filter(|_| spec.calico.node.enabled)
            .cloned()
            .unwrap_or(calico_node_image);
        let libnetwork = match libnetwork {
            Libnetwork::Container(_) => {
                Libnetwork::Container(baked_images.last().cloned().unwrap_or_default())
            }
            other => other,
        };
        let derived = Derived {
            mesos_zk: format!("zk://{zk_hosts}/mesos"),
            marathon_zk: format!("zk://{zk_hosts}/marathon"),
            zk_hosts,
            mesos_quorum: quorum,
            etcd_initial_cluster,
            etcd_member_urls,
            etcd_v2,
            etcd_v2_clients: v2_clients,
            etcd_access: access,
            docker_cluster_store: store,
            docker_cluster_advertise: advertise,
            cni_plugins_dir,
            cni_config_dir,
            cni_config_file,
            calico_node_image,
            libnetwork,
            baked_images,
        };

        // Hosts of one profile boot the same image: group by roles and etcd membership.
        let mut hosts = hosts;
        let mut groups: BTreeMap<(Roles, bool), Vec<String>> = BTreeMap::new();
        for h in &mut hosts {
            let member = members.contains(&h.name);
            if member {
                h.etcd_name = Some(h.name.clone());
            }
            let mut name = h.roles.names().join("-");
            if h.roles.master && !member && spec.etcd.enabled {
                name.push_str("-etcd-proxy");
            }
            h.profile = name;
            groups
                .entry((h.roles, member))
                .or_default()
                .push(h.name.clone());
        }
        let mut profiles: Vec<Profile> = groups
            .into_iter()
            .map(|((roles, member), names)| {
                let name = hosts
                    .iter()
                    .find(|h| h.name == names[0])
                    .map(|h| h.profile.clone())
                    .unwrap_or_default();
                let local = format!("http://127.0.0.1:{}", spec.etcd.client_port);
                let etcd_client_endpoints = if member || access != EtcdAccess::Static {
                    local
                } else if spec.etcd.proxy.endpoints.is_empty() {
                    derived.etcd_member_urls.clone()
                } else {
                    spec.etcd.proxy.endpoints.join(",")
                };
                Profile {
                    name,
                    roles,
                    etcd_member: member,
                    hosts: names,
                    services: Vec::new(),
                    etcd_client_endpoints,
                }
            })
            .collect();
        profiles.sort_by(|a, b| a.name.cmp(&b.name));

        let spec_digest = hex::encode(Sha256::digest(src.text.as_bytes()));
        spec.etcd.members = Some(members);
        let mut plan = Plan {
            cluster: spec.cluster.name.clone(),
            domain: spec.cluster.domain.clone(),
            spec_digest,
            hosts,
            profiles,
            derived,
            warnings: Vec::new(),
            spec,
            versions,
        };
        let services: Vec<_> = plan
            .profiles
            .iter()
            .map(|p| components::services(&plan, p))
            .collect();
        for (p, s) in plan.profiles.iter_mut().zip(services) {
            p.services = s;
        }
        self.ports(&plan, src);
        Some(plan)
    }

    fn images(&mut self, spec: &Spec) {
        let im = &spec.images;
        let ok_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if !im.prefix.split('/').all(ok_component) {
            self.err(
                "images.prefix",
                format!("invalid repository prefix {:?}", im.prefix),
                "use lowercase path components separated by '/', e.g. \"kiln\" or \"ops/mesos\"",
            );
        }
        if im.tags.is_empty() {
            self.err(
                "images.tags",
                "no image tags",
                "give at least one tag, e.g. tags = [\"latest\"]",
            );
        }
        for (i, t) in im.tags.iter().enumerate() {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                self.err(&format!("images.tags[{i}]"), format!("invalid tag {t:?}"), "tags are letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')");
            }
        }
    }

    fn hosts(&mut self, spec: &Spec) -> Vec<HostPlan> {
        let mut out = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut macs: HashMap<String, usize> = HashMap::new();
        for (i, h) in spec.hosts.iter().enumerate() {
            let k = |f: &str| format!("hosts[{i}].{f}");
            let mut ok = true;
            if !is_label(&h.name) {
                self.err(&k("name"), format!("invalid host name {:?}", h.name), "use lowercase letters, digits and '-' (at most 63 characters), e.g. \"agent-1\"");
                ok = false;
            } else if let Some(j) = names.insert(&h.name, i) {
                self.err(
                    &k("name"),
                    format!("duplicate host name {:?} (also hosts[{j}])", h.name),
                    "give every host its own name",
                );
                ok = false;
            }
            let mut roles = Roles::default();
            if h.roles.is_empty() {
                self.err(
                    &k("roles"),
                    format!("host {} has no roles", h.name),
                    "set roles = [\"master\"], [\"agent\"] or both",
                );
                ok = false;
            }
            for (r, role) in h.roles.iter().enumerate() {
                let slot = match role {
                    Role::Master => &mut roles.master,
                    Role::Agent => &mut roles.agent,
                };
                if *slot {
                    self.err(
                        &format!("hosts[{i}].roles[{r}]"),
                        format!("role {} listed twice", role.name()),
                        "list each role once",
                    );
                }
                *slot = true;
            }
            let (ip, prefix) = match h.address.split_once('/') {
                None => {
                    self.err(
                        &k("address"),
                        format!("address {:?} has no prefix length", h.address),
                        format!("write it with its prefix, e.g. \"{}/24\"", h.address),
                    );
                    (None, 0)
                }
                Some((a, p)) => {
                    let ip = a.parse::<Ipv4Addr>().ok();
                    if ip.is_none() {
                        self.err(
                            &k("address"),
                            format!("{a:?} is not an IPv4 address"),
                            "write a dotted quad such as \"10.0.0.11/24\"",
                        );
                    }
                    let prefix = p.parse::<u8>().ok().filter(|p| (1..=32).contains(p));
                    if prefix.is_none() {
                        self.err(
                            &k("address"),
                            format!("invalid prefix length {p:?}"),
                            "use a prefix length from 1 to 32, e.g. /24",
                        );
                    }
                    match ip {
                        Some(ip)
                            if ip.is_unspecified()
                                || ip.is_broadcast()
                                || ip.is_multicast()
                                || ip.is_loopback() =>
                        {
                            self.err(
                                &k("address"),
                                format!("{ip} cannot be a host address"),
                                "use the host's unicast address on the cluster network",
                            );
                            (None, 0)
                        }
                        _ => (ip, prefix.unwrap_or(0)),
                    }
                }
            };
            ok &= ip.is_some() && prefix != 0;
            if let Some(ip) = ip {
                if let Some(j) = ips.insert(ip, i) {
                    self.err(
                        &k("address"),
                        format!("duplicate IP address {ip} (also hosts[{j}])"),
                        "give every host its own address",
                    );
                    ok = false;
                }
            }
            let mac = match parse_mac(&h.mac) {
                Ok(m) => {
                    if let Some(j) = macs.insert(m.clone(), i) {
                        self.err(
                            &k("mac"),
                            format!("duplicate MAC address {m} (also hosts[{j}])"),
                            "every host needs its own MAC: PXE configs are chosen by MAC",
                        );
                        ok = false;
                    }
                    m
                }
                Err(why) => {
                    self.err(&k("mac"), format!("invalid MAC address {:?}", h.mac), why);
                    ok = false;
                    String::new()
                }
            };
            let gateway = h.gateway.as_ref().and_then(|g| match g.parse::<Ipv4Addr>() {
                Err(_) => {
                    self.err(&k("gateway"), format!("{g:?} is not an IPv4 address"), "write the gateway as a dotted quad, e.g. \"10.0.0.1\"");
                    ok = false;
                    None
                }
                Ok(gw) => {
                    if let (Some(ip), true) = (ip, prefix != 0) {
                        let net = ipnet::Ipv4Net::new(ip, prefix).map(|n| n.trunc()).ok();
                        if net.is_some_and(|n| !n.contains(&gw)) {
                            self.err(&k("gateway"), format!("gateway {gw} is outside the host's subnet {}", net.map(|n| n.to_string()).unwrap_or_default()), "use a gateway inside the host's subnet, or fix the prefix length");
                        } else if gw == ip {
                            self.err(&k("gateway"), format!("gateway {gw} is the host's own address"), "use the router's address");
                        }
                    }
                    Some(gw)
                }
            });
            let mut dns = Vec::new();
            for (d, s) in h.dns.iter().enumerate() {
                match s.parse::<IpAddr>() {
                    Ok(a) => dns.push(a),
                    Err(_) => self.err(
                        &format!("hosts[{i}].dns[{d}]"),
                        format!("{s:?} is not an IP address"),
                        "list DNS servers by address, e.g. [\"10.0.0.2\"]",
                    ),
                }
            }
            if h.interface.is_empty()
                || h.interface.len() > 15
                || h.interface.contains(['/', ' ', ':'])
            {
                self.err(
                    &k("interface"),
                    format!("invalid interface name {:?}", h.interface),
                    "use a Linux interface name of at most 15 characters, e.g. \"ens3\"",
                );
            }
            if let (true, Some(ip)) = (ok, ip) {
                out.push(HostPlan {
                    name: h.name.clone(),
                    fqdn: format!("{}.{}", h.name, spec.cluster.domain),
                    roles,
                    profile: String::new(),
                    ip,
                    prefix,
                    mac,
                    gateway,
                    dns,
                    interface: h.interface.clone(),
                    etcd_name: None,
                    zk_id: None,
                });
            }
        }
        if spec.zookeeper.enabled {
            for (id, h) in (1..).zip(out.iter_mut().filter(|h| h.roles.master)) {
                h.zk_id = Some(id);
            }
        }
        out
    }

    fn zookeeper(&mut self, spec: &Spec, masters: usize) {
        let zk = &spec.zookeeper;
        if !zk.enabled {
            return;
        }
        if masters > 255 {
            self.err(
                "hosts",
                format!("{masters} masters: a ZooKeeper ensemble this large is not supported"),
                "use at most 255 masters (3 or 5 is usual)",
            );
        } else if masters > 1 && masters % 2 == 0 {
            self.warn("hosts", format!("even ZooKeeper ensemble of {masters} masters"), format!("an ensemble of {masters} tolerates no more failures than {}; use an odd number of masters", masters - 1));
        }
        for (key, v) in [
            ("zookeeper.tick_time", zk.tick_time),
            ("zookeeper.init_limit", zk.init_limit),
            ("zookeeper.sync_limit", zk.sync_limit),
        ] {
            if v == 0 {
                self.err(
                    key,
                    "must be greater than zero",
                    "use ZooKeeper's defaults: tick_time 2000, init_limit 10, sync_limit 5",
                );
            }
        }
        for (key, p) in [
            ("zookeeper.data_dir", &zk.data_dir),
            ("zookeeper.conf_dir", &zk.conf_dir),
            ("zookeeper.home", &zk.home),
        ] {
            self.abs_path(key, p);
        }
    }

    fn mesos(&mut self, spec: &Spec, masters: usize) -> u32 {
        let m = &spec.mesos;
        let default = (masters / 2 + 1) as u32;
        let quorum = m.master.quorum.unwrap_or(default);
        if m.master.enabled {
            self.abs_path("mesos.master.work_dir", &m.master.work_dir);
            if let Some(q) = m.master.quorum {
                if q == 0 || q as usize > masters {
                    self.err("mesos.master.quorum", format!("quorum {q} cannot be reached with {masters} master(s)"), format!("use a quorum from 1 to {masters}; the safe value is {default} (more than half)"));
                } else if (q as usize) * 2 <= masters {
                    self.err(
                        "mesos.master.quorum",
                        format!(
                            "quorum {q} of {masters} masters lets two halves elect two leaders"
                        ),
                        format!("use more than half of the masters: {default}"),
                    );
                }
            }
            for name in m.master.flags.keys() {
                self.flag_name(&format!("mesos.master.flags.{name}"), name);
            }
        }
        if m.agent.enabled {
            self.abs_path("mesos.agent.work_dir", &m.agent.work_dir);
            for (i, c) in m.agent.containerizers.iter().enumerate() {
                if c != "docker" && c != "mesos" {
                    self.err(
                        &format!("mesos.agent.containerizers[{i}]"),
                        format!("unknown containerizer {c:?}"),
                        "Mesos knows \"docker\" and \"mesos\"",
                    );
                }
            }
            if !m.agent.containerizers.iter().any(|c| c == "docker") {
                self.warn(
                    "mesos.agent.containerizers",
                    "the Docker containerizer is off",
                    "Calico on Mesos expects containerizers = [\"docker\", \"mesos\"]",
                );
            }
            if spec.calico.cni.enabled && !m.agent.isolation.iter().any(|i| i == "network/cni") {
                self.err(
                    "mesos.agent.isolation",
                    "Calico CNI is on but the agent's isolation lacks the CNI isolator",
                    "add \"network/cni\" to mesos.agent.isolation",
                );
            }
            for name in m.agent.flags.keys() {
                self.flag_name(&format!("mesos.agent.flags.{name}"), name);
            }
        }
        quorum
    }

    fn flag_name(&mut self, key: &str, name: &str) {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            self.err(
                key,
                format!("invalid Mesos flag name {name:?}"),
                "write the flag without dashes, e.g. hostname_lookup",
            );
        }
    }

    fn etcd_members(&mut self, spec: &Spec, hosts: &[HostPlan]) -> Vec<String> {
        if !spec.etcd.enabled {
            return Vec::new();
        }
        self.abs_path("etcd.data_dir", &spec.etcd.data_dir);
        let Some(members) = &spec.etcd.members else {
            return hosts
                .iter()
                .filter(|h| h.roles.master)
                .map(|h| h.name.clone())
                .collect();
        };
        if members.is_empty() {
            self.err(
                "etcd.members",
                "etcd has no members",
                "list at least one master, or remove the key to use every master",
            );
        }
        for (i, m) in members.iter().enumerate() {
            match hosts.iter().find(|h| &h.name == m) {
                None if spec.hosts.iter().any(|h| &h.name == m) => {}
                None => self.err(&format!("etcd.members[{i}]"), format!("etcd member {m:?} is not a host of this spec"), "name hosts from [[hosts]]"),
                Some(h) if !h.roles.master => self.err(&format!("etcd.members[{i}]"), format!("etcd member {m:?} is not a master"), format!("etcd members run on masters: add \"master\" to {m}'s roles or remove it here")),
                Some(_) => {}
            }
            if members[..i].contains(m) {
                self.err(
                    &format!("etcd.members[{i}]"),
                    format!("etcd member {m:?} listed twice"),
                    "list each member once",
                );
            }
        }
        if members.len() > 1 && members.len() % 2 == 0 {
            self.warn(
                "etcd.members",
                format!("even etcd cluster of {} members", members.len()),
                "an odd number of members tolerates the same failures with one machine less",
            );
        }
        members.clone()
    }

    fn cni(&mut self, spec: &Spec) -> (String, String, String) {
        let cni = &spec.calico.cni;
        let (plugins, config, file) = match cni.layout {
            CniLayout::Mesos => ("/opt/cni/bin", "/etc/cni/net.d", "calico.conf"),
            CniLayout::Dcos => (
                "/opt/mesosphere/active/cni",
                "/opt/mesosphere/etc/dcos/network/cni",
                "calico.cni",
            ),
        };
        let plugins = cni.plugins_dir.clone().unwrap_or_else(|| plugins.into());
        let config = cni.config_dir.clone().unwrap_or_else(|| config.into());
        self.abs_path("calico.cni.plugins_dir", &plugins);
        self.abs_path("calico.cni.config_dir", &config);
        let agent = &spec.mesos.agent;
        if cni.enabled && agent.enabled {
            for (key, flag, theirs, ours, calico_key) in [
                (
                    "mesos.agent.cni_config_dir",
                    "--network_cni_config_dir",
                    &agent.cni_config_dir,
                    &config,
                    "calico.cni.config_dir",
                ),
                (
                    "mesos.agent.cni_plugins_dir",
                    "--network_cni_plugins_dir",
                    &agent.cni_plugins_dir,
                    &plugins,
                    "calico.cni.plugins_dir",
                ),
            ] {
                if let Some(t) = theirs {
                    if t.trim_end_matches('/') != ours.trim_end_matches('/') {
                        self.err(key, format!("the agent's {flag} is {t} but Calico's CNI files go to {ours}"), format!("remove {key} (it defaults to Calico's dir) or set {calico_key} to the same dir"));
                    }
                }
            }
        }
        if cni.network.is_empty()
            || !cni
                .network
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            self.err(
                "calico.cni.network",
                format!("invalid CNI network name {:?}", cni.network),
                "use letters, digits, '-', '_' or '.'",
            );
        }
        (plugins, config, file.into())
    }

    fn cluster_store(&mut self, spec: &Spec, v: &Versions) -> Option<String> {
        let d = &spec.docker;
        if !d.enabled {
            return None;
        }
        let store = match d.cluster_store.as_str() {
            "off" | "" => return None,
            "etcd" => {
                if !spec.etcd.enabled {
                    self.err("docker.cluster_store", "the Docker cluster store is on etcd but etcd is disabled", "enable etcd, set a store URL such as \"zk://…\", or set cluster_store = \"off\"");
                }
                "etcd".to_string()
            }
            url => {
                let scheme = url.split_once("://").map(|(s, _)| s);
                if !matches!(scheme, Some("etcd" | "zk" | "consul")) {
                    self.err("docker.cluster_store", format!("invalid cluster store {url:?}"), "use \"etcd\", \"off\", or a URL etcd://HOST:PORT, zk://HOST:PORT[,…]/PATH or consul://HOST:PORT");
                }
                url.to_string()
            }
        };
        if v.docker.major >= 23 {
            self.err("docker.cluster_store", format!("Docker {} has no cluster store (deprecated in 20.10, removed in 23.0)", v.docker), "use docker.version = \"20.10.24\" or earlier, or set docker.cluster_store = \"off\"");
        }
        Some(store)
    }

    fn advertise(&mut self, spec: &Spec, store: bool) -> Option<String> {
        if !store {
            return None;
        }
        let a = &spec.docker.cluster_advertise;
        let Some((host, port)) = split_host_port(a) else {
            self.err(
                "docker.cluster_advertise",
                format!("{a:?} is not ADDRESS:PORT"),
                "use \"${IP}:2376\" (the host's address)",
            );
            return None;
        };
        if host == "${IP}" {
            return Some(format!("${{KILN_IP}}:{port}"));
        }
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_err()
        {
            self.err("docker.cluster_advertise", format!("cluster-advertise names the interface {host:?}, not an address"), format!("dockerd refuses to start when that interface does not exist (e.g. ens3, not eth0); use \"${{IP}}:{port}\""));
            return None;
        }
        Some(a.clone())
    }

    fn etcd_api(&mut self, spec: &Spec, v: &Versions, v2_clients: bool) -> (bool, EtcdAccess) {
        let e = &spec.etcd;
        let modern = v.etcd.at_least(3, 4);
        let v2 = match e.enable_v2 {
            Some(on) => on || !modern,
            None => v2_clients || !modern,
        };
        if e.enabled && v2_clients {
            if e.enable_v2 == Some(false) && modern {
                self.err("etcd.enable_v2", format!("etcd {} serves v2 only with --enable-v2, but a v2 client needs it (Docker's cluster store or Calico ≤ 2.x)", v.etcd), "remove etcd.enable_v2 or set it to true");
            }
            if v.etcd.at_least(3, 6) {
                self.err("etcd.version", format!("etcd {} has no v2 API, but a v2 client needs it (Docker's cluster store or Calico ≤ 2.x)", v.etcd), "use etcd 3.5 or earlier (3.5 is the last with v2)");
            }
        }
        let access = match e.proxy.mode {
            ProxyMode::Auto if v.etcd.major <= 2 => EtcdAccess::Proxy,
            ProxyMode::Auto => EtcdAccess::Gateway,
            ProxyMode::Proxy => EtcdAccess::Proxy,
            ProxyMode::Gateway => {
                if v.etcd.major < 3 {
                    self.err(
                        "etcd.proxy.mode",
                        format!("etcd {} has no gateway (added in 3.0)", v.etcd),
                        "use mode = \"proxy\" for etcd 2.x",
                    );
                }
                EtcdAccess::Gateway
            }
            ProxyMode::GrpcProxy => {
                if v2_clients && e.enabled {
                    self.err("etcd.proxy.mode", "etcd grpc-proxy carries only the v3 API, but a v2 client needs v2 (Docker's cluster store or Calico ≤ 2.x)", "use mode = \"gateway\" (TCP, carries v2 and v3)");
                }
                EtcdAccess::GrpcProxy
            }
            ProxyMode::Off => EtcdAccess::Static,
        };
        for (i, ep) in e.proxy.endpoints.iter().enumerate() {
            let ok = ep
                .strip_prefix("http://")
                .or_else(|| ep.strip_prefix("https://"))
                .and_then(split_host_port)
                .is_some();
            if !ok {
                self.err(
                    &format!("etcd.proxy.endpoints[{i}]"),
                    format!("{ep:?} is not an etcd client URL"),
                    "write endpoints as http://HOST:2379",
                );
            }
        }
        if !e.proxy.endpoints.is_empty() && access != EtcdAccess::Static {
            self.warn(
                "etcd.proxy.endpoints",
                "endpoints are used only with mode = \"off\"",
                "remove them, or set etcd.proxy.mode = \"off\"",
            );
        }
        (v2 && e.enabled, access)
    }

    fn calico_node(&mut self, spec: &Spec, hosts: &[HostPlan]) {
        let n = &spec.calico.node;
        if !n.enabled {
            return;
        }
        if !matches!(n.backend.as_str(), "bird" | "gobgp" | "none") {
            self.err(
                "calico.node.backend",
                format!("unknown networking backend {:?}", n.backend),
                "use \"bird\", \"gobgp\" or \"none\"",
            );
        }
        if !matches!(n.ipip.as_str(), "off" | "always" | "cross-subnet") {
            self.err(
                "calico.node.ipip",
                format!("unknown IP-in-IP mode {:?}", n.ipip),
                "use \"off\", \"always\" or \"cross-subnet\"",
            );
        }
        if !matches!(n.nodename.as_str(), "hostname" | "fqdn") {
            self.err(
                "calico.node.nodename",
                format!("unknown node name source {:?}", n.nodename),
                "use \"hostname\" or \"fqdn\"",
            );
        }
        if n.as_number == Some(0) {
            self.err(
                "calico.node.as",
                "AS number 0 is reserved",
                "use a private AS such as 64512",
            );
        }
        for (i, p) in n.ip_pools.iter().enumerate() {
            let key = format!("calico.node.ip_pools[{i}]");
            match p.parse::<ipnet::Ipv4Net>() {
                Err(_) => self.err(
                    &key,
                    format!("{p:?} is not an IPv4 CIDR"),
                    "write pools like \"192.168.0.0/16\"",
                ),
                Ok(net) if net != net.trunc() => self.err(
                    &key,
                    format!("{p} has host bits set"),
                    format!("use the network address: {}", net.trunc()),
                ),
                Ok(net) => {
                    let subnet =
                        |h: &HostPlan| ipnet::Ipv4Net::new(h.ip, h.prefix).ok().map(|n| n.trunc());
                    if let Some(h) = hosts.iter().find(|h| net.contains(&h.ip)) {
                        self.err(
                            &key,
                            format!("IP pool {net} contains host {}'s address {}", h.name, h.ip),
                            "choose a pool outside the hosts' network",
                        );
                    } else if let Some((h, sn)) = hosts
                        .iter()
                        .filter_map(|h| subnet(h).map(|sn| (h, sn)))
                        .find(|(_, sn)| sn.contains(&net.network()) || net.contains(&sn.network()))
                    {
                        self.err(
                            &key,
                            format!("IP pool {net} overlaps host {}'s subnet {sn}", h.name),
                            "choose a pool outside the hosts' network: workload addresses must not collide with host addresses",
                        );
                    }
                }
            }
        }
        if n.ip_pools.len() > 1 {
            self.warn(
                "calico.node.ip_pools",
                "calico-node creates only the first pool at start-up",
                "create further pools with calicoctl",
            );
        }
    }

    /// Two services of one host on the same port.
    fn ports(&mut self, plan: &Plan, src: &SpecSource) {
        let mut reported: HashSet<(String, String)> = HashSet::new();
        for p in &plan.profiles {
            let mut seen: HashMap<(u16, Proto), (&str, &str)> = HashMap::new();
            for s in &p.services {
                for port in s.ports.iter().filter(|x| x.proto != Proto::Ipip) {
                    if port.port == 0 {
                        if reported.insert((port.key.clone(), String::new())) {
                            self.err(
                                &port.key,
                                "port 0 is not a port a service can listen on",
                                "use a port from 1 to 65535",
                            );
                        }
                        continue;
                    }
                    let Some((unit, key)) =
                        seen.insert((port.port, port.proto), (&s.unit, &port.key))
                    else {
                        continue;
                    };
                    if key == port.key {
                        continue;
                    }
                    // Point at the key the spec writes, not at a default it never mentions.
                    let (here, other) = if src.has_key(&port.key) || !src.has_key(key) {
                        (port.key.as_str(), key)
                    } else {
                        (key, port.key.as_str())
                    };
                    if reported.insert((here.to_string(), other.to_string())) {
                        let users = if unit == s.unit {
                            unit.to_string()
                        } else {
                            format!("{unit} and {}", s.unit)
                        };
                        self.err(
                            here,
                            format!(
                                "port {} is used twice on {} hosts: {here} and {other} ({users})",
                                port.port, p.name
                            ),
                            format!("give {here} another port"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("52-54-00-AB-CD-EF").unwrap(), "52:54:00:ab:cd:ef");
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("52:54:00:ab:cd").is_err());
        assert!(parse_mac("52:54:00:ab:cd:eg").is_err());
    }

    #[test]
    fn labels() {
        assert!(is_label("agent-1"));
        assert!(!is_label("Agent"));
        assert!(!is_label("-a"));
        assert!(!is_label(""));
    }
}
