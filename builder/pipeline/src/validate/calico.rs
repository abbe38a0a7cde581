//! Calico: the CNI plugins and config (and the agent flags that must agree with them),
//! calico-node, calico-libnetwork.

use kiln_model::plan::{CalicoPlan, CniPlan, HostPlan, Libnetwork, NodePlan, SourcePlan};
use kiln_model::values::{quote, AbsPath, Backend, IpipMode, NodeNameMode, Version};

use super::Checker;
use crate::sources::catalog::{self, CalicoRelease};
use crate::spec::{CniLayout, Spec};

/// The first calico/node that reads `CALICO_IPV4POOL_CIDR` and `CALICO_IPV4POOL_IPIP`
/// (Calico 2.1.0): calicoctl `v1.1.0` `calico_node/startup/startup.go` `configureIPPools`
/// l.459–474. Before it calico/node is Python (`calico_node/startup.py`, v1.0.2 and v0.23.x)
/// and creates its fixed `DEFAULT_IPV4_POOL = 192.168.0.0/16` (l.27) when no pool exists.
const NODE_READS_POOL_ENV: (u64, u64, u64) = (1, 1, 0);

/// `cniVersion` of the network config unless the spec sets one: what Calico's own Mesos
/// guides write (calico `release-v2.6`, `v2.6/getting-started/mesos/installation/
/// integration.md` l.66), and a version every calico-cni release answers in.
const DEFAULT_CNI_VERSION: &str = "0.1.0";

/// The newest CNI result format (major, minor) Mesos' `network/cni` isolator reads, for every
/// Mesos release: it parses the plugin's result into `NetworkInfo { ip4, ip6, dns }`, the
/// CNI 0.1/0.2 layout (apache/mesos 1.11.0 `src/slave/containerizer/mesos/isolators/network/
/// cni/spec.proto` l.59–67). A 0.3+ result (`ips`) still parses, since unknown keys are
/// skipped (`3rdparty/stout/include/stout/protobuf.hpp` l.706–727), but `has_ip4()` is false
/// and the container gets no IP. The file is unchanged from 1.11.0, the last release, to the
/// retired repository's last commit.
const MESOS_CNI_RESULT_MAX: (u64, u64) = (0, 2);

impl Checker {
    pub(super) fn calico(&mut self, spec: &Spec, hosts: &[HostPlan]) -> Option<CalicoPlan> {
        let c = &spec.calico;
        let version = self.version("calico.version", &c.version)?;
        let unsupported = (c.node.enabled || c.cni.enabled) && !(1..=2).contains(&version.major);
        if unsupported {
            self.err(
                "calico.version",
                format!("Calico {version} is not supported"),
                "kiln bakes Calico 1.x and 2.x (the releases with Mesos support); use e.g. \"2.6.12\"",
            );
        }
        let lib_container = c.libnetwork.enabled && spec.docker.enabled && version.major <= 1;
        // Image tags and plugin versions by release: below 2.4 they do not follow it.
        let release = catalog::calico_release(&version);
        if release.is_none() && !unsupported {
            let need: Vec<&str> = [
                (
                    c.node.enabled && c.node.image.is_none(),
                    "calico.node.image",
                ),
                (
                    c.cni.enabled && c.cni.version.is_none(),
                    "calico.cni.version",
                ),
                (
                    lib_container && c.libnetwork.image.is_none(),
                    "calico.libnetwork.image",
                ),
            ]
            .into_iter()
            .filter_map(|(missing, key)| missing.then_some(key))
            .collect();
            if !need.is_empty() {
                let known = catalog::CALICO_RELEASES;
                self.err(
                    "calico.version",
                    format!(
                        "Calico {version} is not a release kiln knows the components of ({} to {}, without release candidates)",
                        known[0].release,
                        known[known.len() - 1].release
                    ),
                    format!("use a known release, or set {}", need.join(", ")),
                );
            }
        }
        if c.cni.enabled && !c.node.enabled {
            // The CNI plugins only wire a container to its host: calico-ipam assigns from IP
            // pools that calico-node creates (calico.node.ip_pools), and routes to workloads
            // on other hosts are advertised by BIRD and programmed by Felix, both inside
            // calico-node. Calico's Mesos guide (calico `release-v2.6`, `v2.6/getting-started/
            // mesos/installation/integration.md` l.12, steps 3–5): "Calico runs as a Docker
            // container on each host", launched before the CNI plugin is installed.
            self.warn(
                "calico.node.enabled",
                "the Calico CNI plugins without calico-node cannot network workloads: no IP pool for calico-ipam is created and no routes to other hosts' workloads are advertised",
                "enable calico.node (it runs on every agent), or run calico-node on every agent yourself",
            );
        }
        let cni = self.cni(spec, release);
        let node_source = self.source("calico.node.source", c.node.source.as_ref());
        let lib_source = self.source("calico.libnetwork.source", c.libnetwork.source.as_ref());
        let node = if c.node.enabled {
            self.node(spec, release, hosts, node_source.ok()?)
        } else {
            None
        };
        let libnetwork = if !c.libnetwork.enabled || !spec.docker.enabled {
            Libnetwork::Off
        } else if lib_container {
            let image = match (&c.libnetwork.image, release) {
                (Some(i), _) => i.clone(),
                (None, Some(r)) => format!("calico/node-libnetwork:{}", r.libnetwork),
                (None, None) => return None,
            };
            Libnetwork::Container(Box::new(self.baked(
                spec,
                "calico-libnetwork",
                "calico.libnetwork",
                &image,
                lib_source.ok()?,
            )?))
        } else {
            if c.libnetwork.image.is_some() {
                self.warn(
                    "calico.libnetwork.image",
                    "Calico 2.x runs libnetwork inside calico-node; this image is not used",
                    "remove the key, or set calico.version to a 1.x release",
                );
            }
            Libnetwork::Builtin
        };
        Some(CalicoPlan {
            version,
            cni: cni?,
            node,
            libnetwork,
        })
    }

    /// Layout dirs, overridden by `plugins_dir`/`config_dir`, and the config file name.
    fn cni_layout(&mut self, spec: &Spec) -> Option<(AbsPath, AbsPath, &'static str)> {
        let cni = &spec.calico.cni;
        let (plugins, config, file) = match cni.layout {
            CniLayout::Mesos => ("/opt/cni/bin", "/etc/cni/net.d", "calico.conf"),
            CniLayout::Dcos => (
                "/opt/mesosphere/active/cni",
                "/opt/mesosphere/etc/dcos/network/cni",
                "calico.cni",
            ),
        };
        let plugins = self.path(
            "calico.cni.plugins_dir",
            cni.plugins_dir.as_deref().unwrap_or(plugins),
        );
        let config = self.path(
            "calico.cni.config_dir",
            cni.config_dir.as_deref().unwrap_or(config),
        );
        Some((plugins?, config?, file))
    }

    /// `Some(None)`: CNI off; `None`: an error was reported.
    fn cni(&mut self, spec: &Spec, release: Option<&CalicoRelease>) -> Option<Option<CniPlan>> {
        let cni = &spec.calico.cni;
        let version = match (&cni.version, release) {
            (Some(v), _) => self.version("calico.cni.version", v),
            (None, Some(r)) => Version::parse(r.cni.trim_start_matches('v')),
            (None, None) => None,
        };
        let source = self.source("calico.cni.source", cni.source.as_ref());
        if !cni.enabled {
            return Some(None);
        }
        let layout = self.cni_layout(spec);
        let cni_version = self.version(
            "calico.cni.cni_version",
            cni.cni_version.as_deref().unwrap_or(DEFAULT_CNI_VERSION),
        );
        // The Calico plugin answers in the version the config asks for (cni-plugin v1.11.8
        // `calico.go` l.67/315: `types.PrintResult(result, conf.CNIVersion)`).
        let mesos = Version::parse(&spec.mesos.version).filter(|_| spec.mesos.agent.enabled);
        if let (Some(v), Some(m)) = (&cni_version, mesos) {
            if (v.major, v.minor) > MESOS_CNI_RESULT_MAX {
                self.err(
                    "calico.cni.cni_version",
                    format!("Mesos {m} reads only CNI 0.1/0.2 results (ip4/ip6): with cniVersion {v} the Calico plugin answers with `ips` and Mesos reports no container IP"),
                    format!("remove the key (default {DEFAULT_CNI_VERSION}, as in Calico's Mesos guides) or set \"0.2.0\""),
                );
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
                format!("invalid CNI network name {}", quote(&cni.network)),
                "use letters, digits, '-', '_' or '.'",
            );
        }
        let (plugins_dir, config_dir, config_file) = layout?;
        Some(Some(CniPlan {
            version: version?,
            source: source.ok()?,
            plugins_dir,
            config_dir,
            config_file,
            cni_version: cni_version?,
            network: cni.network.clone(),
        }))
    }

    /// The agent's `--network_cni_*` dirs: Calico's unless the agent names its own, which
    /// must then be the same. `Some(None)` when the agent gets no CNI flags.
    pub(super) fn agent_cni_dirs(&mut self, spec: &Spec) -> Option<Option<(AbsPath, AbsPath)>> {
        let agent = &spec.mesos.agent;
        let cni = &spec.calico.cni;
        if !agent.enabled || !(cni.enabled || agent.cni_config_dir.is_some()) {
            return Some(None);
        }
        let (plugins, config, _) = self.cni_layout(spec)?;
        let mut pick = |key: &str,
                        flag: &str,
                        theirs: &Option<String>,
                        ours: AbsPath,
                        calico_key: &str| {
            let Some(t) = theirs else { return Some(ours) };
            let t: AbsPath = self.val(key, t)?;
            if cni.enabled && t != ours {
                self.err(key, format!("the agent's {flag} is {t} but Calico's CNI files go to {ours}"), format!("remove {key} (it defaults to Calico's dir) or set {calico_key} to the same dir"));
                return None;
            }
            Some(t)
        };
        let config = pick(
            "mesos.agent.cni_config_dir",
            "--network_cni_config_dir",
            &agent.cni_config_dir,
            config,
            "calico.cni.config_dir",
        );
        let plugins = pick(
            "mesos.agent.cni_plugins_dir",
            "--network_cni_plugins_dir",
            &agent.cni_plugins_dir,
            plugins,
            "calico.cni.plugins_dir",
        );
        Some(Some((config?, plugins?)))
    }

    fn node(
        &mut self,
        spec: &Spec,
        release: Option<&CalicoRelease>,
        hosts: &[HostPlan],
        source: Option<SourcePlan>,
    ) -> Option<NodePlan> {
        let n = &spec.calico.node;
        let backend = self.val::<Backend>("calico.node.backend", &n.backend);
        let ipip = self.val::<IpipMode>("calico.node.ipip", &n.ipip);
        let nodename = self.val::<NodeNameMode>("calico.node.nodename", &n.nodename);
        if n.as_number == Some(0) {
            self.err(
                "calico.node.as",
                "AS number 0 is reserved",
                "use a private AS such as 64512",
            );
        }
        if nodename == Some(NodeNameMode::Fqdn) {
            // The node name is the kernel hostname (see the host component), which holds at
            // most 64 characters (hostname(5), systemd 252: "up to 64 7-bit ASCII lower-case
            // alphanumeric characters or hyphens forming a valid DNS domain name").
            for h in hosts.iter().filter(|h| h.fqdn.as_str().len() > 64) {
                self.err(
                    "calico.node.nodename",
                    format!(
                        "host {}'s FQDN {} has {} characters; the node name is the kernel hostname, which holds at most 64",
                        h.name,
                        h.fqdn,
                        h.fqdn.as_str().len()
                    ),
                    "use nodename = \"hostname\", or a shorter cluster.domain",
                );
            }
        }
        // The GoBGP backend programs no IP-in-IP tunnels: calico/node's `CALICO_NETWORKING_
        // BACKEND` is `bird`, `gobgp` ("no ipip") or `none` (projectcalico/calico v2.6.12
        // `v2.6/usage/configuration/as-service.md`). kiln refuses the pair rather than turn
        // the user's ipip off behind their back.
        if backend == Some(Backend::Gobgp)
            && ipip.is_some_and(|i| i != IpipMode::Off)
            && !n.ip_pools.is_empty()
        {
            self.err(
                "calico.node.ipip",
                format!(
                    "the GoBGP backend does not do IP-in-IP, but ipip is {}",
                    quote(&n.ipip)
                ),
                "set calico.node.ipip = \"off\", or use backend = \"bird\" for IP-in-IP",
            );
        }
        let pools = self.pools(spec, hosts);
        let image = match (&n.image, release) {
            (Some(i), _) => i.clone(),
            (None, Some(r)) => format!("calico/node:{}", r.node),
            // Reported by `calico`: an unknown release needs calico.node.image.
            (None, None) => return None,
        };
        let image = self.baked(spec, "calico-node", "calico.node", &image, source)?;
        // What runs is the image's tag when it is a version, else the release's calico/node.
        let node_version = image
            .upstream
            .tag()
            .and_then(Version::parse)
            .or_else(|| release.and_then(|r| Version::parse(r.node)));
        if let (Some(v), false) = (&node_version, n.ip_pools.is_empty()) {
            let (a, b, c) = NODE_READS_POOL_ENV;
            if (v.major, v.minor, v.patch) < (a, b, c) {
                self.warn(
                    "calico.node.ip_pools",
                    format!("calico/node {v} ignores CALICO_IPV4POOL_CIDR and CALICO_IPV4POOL_IPIP (read from calico/node v1.1.0, Calico 2.1.0): where no pool exists it creates its built-in pool 192.168.0.0/16"),
                    "create the pool with calicoctl before calico-node first starts, or use Calico 2.1.0 or later",
                );
            }
        }
        Some(NodePlan {
            image,
            version: node_version,
            backend: backend?,
            as_number: n.as_number.filter(|a| *a != 0),
            ip_pools: pools?,
            ipip: ipip?,
            nodename: nodename?,
        })
    }

    fn pools(&mut self, spec: &Spec, hosts: &[HostPlan]) -> Option<Vec<ipnet::Ipv4Net>> {
        let n = &spec.calico.node;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, p) in n.ip_pools.iter().enumerate() {
            let key = format!("calico.node.ip_pools[{i}]");
            let net = match p.parse::<ipnet::Ipv4Net>() {
                Err(_) => {
                    self.err(
                        &key,
                        format!("{} is not an IPv4 CIDR", quote(p)),
                        "write pools like \"192.168.0.0/16\"",
                    );
                    ok = false;
                    continue;
                }
                Ok(net) => net,
            };
            if net != net.trunc() {
                self.err(
                    &key,
                    format!("{p} has host bits set"),
                    format!("use the network address: {}", net.trunc()),
                );
                ok = false;
            } else if let Some(h) = hosts.iter().find(|h| net.contains(&h.ip())) {
                self.err(
                    &key,
                    format!(
                        "IP pool {net} contains host {}'s address {}",
                        h.name,
                        h.ip()
                    ),
                    "choose a pool outside the hosts' network",
                );
                ok = false;
            } else if let Some(h) = hosts.iter().find(|h| {
                let sn = h.address.network();
                sn.contains(&net.network()) || net.contains(&sn.network())
            }) {
                self.err(
                    &key,
                    format!(
                        "IP pool {net} overlaps host {}'s subnet {}",
                        h.name,
                        h.address.network()
                    ),
                    "choose a pool outside the hosts' network: workload addresses must not collide with host addresses",
                );
                ok = false;
            }
            out.push(net);
        }
        if n.ip_pools.len() > 1 {
            self.warn(
                "calico.node.ip_pools",
                "calico-node creates only the first pool at start-up",
                "create further pools with calicoctl",
            );
        }
        ok.then_some(out)
    }
}
