//! ZooKeeper and Mesos (master and agent).

use std::collections::BTreeMap;

use kiln_model::plan::{
    HostPlan, MesosAgentPlan, MesosMasterPlan, MesosPlan, Origin, SourcePlan, ZooKeeperPlan,
};
use kiln_model::values::{quote, Containerizer, FlagName, FlagValue, Isolator, MesosFlavour};

use super::Checker;
use crate::diag::KeyPath;
use crate::spec::Spec;

/// Flags the typed keys of `[mesos.master]` set: `flags` may not set them again (Mesos
/// refuses a flag loaded twice). These are exactly the flag files kiln writes under
/// `/etc/mesos-master/` (components/mesos.rs).
pub(crate) const MASTER_TYPED_FLAGS: &[(&str, &str)] = &[
    ("cluster", "cluster.name"),
    ("quorum", "mesos.master.quorum"),
    ("work_dir", "mesos.master.work_dir"),
    ("port", "mesos.master.port"),
    ("zk", "the ZooKeeper ensemble (/etc/mesos/zk)"),
    (
        "log_dir",
        "kiln (/var/log/mesos, as the Mesos package's LOGS)",
    ),
];

/// Flags the typed keys of `[mesos.agent]` set.
pub(crate) const AGENT_TYPED_FLAGS: &[(&str, &str)] = &[
    ("containerizers", "mesos.agent.containerizers"),
    ("isolation", "mesos.agent.isolation"),
    ("work_dir", "mesos.agent.work_dir"),
    ("port", "mesos.agent.port"),
    ("master", "the ZooKeeper ensemble (/etc/mesos/zk)"),
    (
        "log_dir",
        "kiln (/var/log/mesos, as the Mesos package's LOGS)",
    ),
    ("network_cni_config_dir", "mesos.agent.cni_config_dir"),
    ("network_cni_plugins_dir", "mesos.agent.cni_plugins_dir"),
    (
        "executor_registration_timeout",
        "kiln (5mins with the Docker containerizer)",
    ),
];

impl Checker {
    pub(super) fn zookeeper(&mut self, spec: &Spec, hosts: &[HostPlan]) -> Option<ZooKeeperPlan> {
        let zk = &spec.zookeeper;
        let version = self.version("zookeeper.version", &zk.version);
        let source = self.source("zookeeper.source", zk.source.as_ref());
        if !zk.enabled {
            return None;
        }
        let masters: Vec<&HostPlan> = hosts.iter().filter(|h| h.roles.master).collect();
        let n = masters.len();
        if n > 255 {
            self.err(
                "hosts",
                format!("{n} masters: a ZooKeeper ensemble this large is not supported"),
                "use at most 255 masters (3 or 5 is usual)",
            );
        } else if n > 1 && n % 2 == 0 {
            self.warn(
                "hosts",
                format!("even ZooKeeper ensemble of {n} masters"),
                format!(
                    "an ensemble of {n} tolerates no more failures than {}; use an odd number of masters",
                    n - 1
                ),
            );
        }
        let help = "use ZooKeeper's defaults: tick_time 2000, init_limit 10, sync_limit 5";
        let tick_time = self.nonzero("zookeeper.tick_time", zk.tick_time, help);
        let init_limit = self.nonzero("zookeeper.init_limit", zk.init_limit, help);
        let sync_limit = self.nonzero("zookeeper.sync_limit", zk.sync_limit, help);
        let data_dir = self.state_dir("zookeeper.data_dir", &zk.data_dir);
        let conf_dir = self.path("zookeeper.conf_dir", &zk.conf_dir);
        let home = self.path("zookeeper.home", &zk.home);
        if let (Some(v), Some(_)) = (&version, zk.admin_port) {
            // The AdminServer came with ZooKeeper 3.5.0 (zookeeperAdmin.md, "AdminServer").
            if !v.at_least(3, 5) {
                self.err(
                    "zookeeper.admin_port",
                    format!("ZooKeeper {v} has no AdminServer (it came in 3.5.0)"),
                    "remove zookeeper.admin_port, or use ZooKeeper 3.5 or later",
                );
            }
        }
        Some(ZooKeeperPlan {
            version: version?,
            source: source.ok()?,
            tick_time,
            init_limit,
            sync_limit,
            data_dir: data_dir?,
            conf_dir: conf_dir?,
            home: home?,
            client_port: zk.client_port,
            peer_port: zk.peer_port,
            election_port: zk.election_port,
            admin_port: zk.admin_port,
            servers: (1..).zip(masters.iter().map(|h| h.ip())).collect(),
        })
    }

    pub(super) fn mesos(
        &mut self,
        spec: &Spec,
        masters: usize,
        zk: Option<&ZooKeeperPlan>,
    ) -> Option<MesosPlan> {
        let m = &spec.mesos;
        let version = self.version("mesos.version", &m.version);
        let source = self.source("mesos.source", m.source.as_ref());
        let master = if m.master.enabled {
            self.mesos_master(spec, masters)
        } else {
            None
        };
        let agent = if m.agent.enabled {
            self.mesos_agent(spec)
        } else {
            None
        };
        let source = source.ok()?;
        let (flavour, flavour_from) = self.mesos_flavour(m.flavour.as_deref(), source.as_ref())?;
        Some(MesosPlan {
            version: version?,
            source,
            flavour,
            flavour_from,
            zk: zk.map(|z| z.url("mesos")).unwrap_or_default(),
            master,
            agent,
        })
    }

    /// The packaging of Mesos' source: `mesos.flavour`, else what the source's name says,
    /// else (no source) clusterd's, the packaging of the one build known to be served.
    fn mesos_flavour(
        &mut self,
        set: Option<&str>,
        source: Option<&SourcePlan>,
    ) -> Option<(MesosFlavour, String)> {
        if let Some(f) = set {
            let f = self.val::<MesosFlavour>("mesos.flavour", f)?;
            return Some((f, "set by mesos.flavour".into()));
        }
        let Some(s) = source.filter(|s| !s.is_base()) else {
            return Some((
                MesosFlavour::Clusterd,
                "the default: clusterd's builds are the Mesos packages still served".into(),
            ));
        };
        let (name, flavour) = match &s.origin {
            // An apt package: `aventer-mesos[=VERSION]`, or Mesosphere's `mesos[=VERSION]`.
            Origin::Deb(d) => {
                let d = d.to_string();
                let f = match d.split('=').next() {
                    Some("mesos") => Some(MesosFlavour::Mesosphere),
                    Some(p) => MesosFlavour::from_package_name(p),
                    None => None,
                };
                (d, f)
            }
            Origin::Url(u) => (u.to_string(), MesosFlavour::from_package_name(u.as_ref())),
            Origin::File(f) | Origin::Oci(f) => (f.clone(), MesosFlavour::from_package_name(f)),
            Origin::Base => (String::new(), None),
        };
        match flavour {
            Some(f) => Some((f, format!("read from the source's name {}", quote(&name)))),
            None => {
                self.err(
                    "mesos.source",
                    format!(
                        "the source's name {} does not say how its Mesos is packaged",
                        quote(&name)
                    ),
                    "set mesos.flavour = \"clusterd\" (AVENTER's builds: /etc/mesos-agent/, \
                     mesos-agent.service) or \"mesosphere\" (Mesosphere's packages: \
                     /etc/mesos-slave/, mesos-slave.service)",
                );
                None
            }
        }
    }

    fn mesos_master(&mut self, spec: &Spec, masters: usize) -> Option<MesosMasterPlan> {
        let m = &spec.mesos.master;
        let default = (masters / 2 + 1) as u32;
        let work_dir = self.state_dir("mesos.master.work_dir", &m.work_dir);
        if let Some(q) = m.quorum {
            if q == 0 || q as usize > masters {
                self.err(
                    "mesos.master.quorum",
                    format!("quorum {q} cannot be reached with {masters} master(s)"),
                    format!("use a quorum from 1 to {masters}; the safe value is {default} (more than half)"),
                );
            } else if (q as usize) * 2 <= masters {
                self.err(
                    "mesos.master.quorum",
                    format!("quorum {q} of {masters} masters lets two halves elect two leaders"),
                    format!("use more than half of the masters: {default}"),
                );
            }
        }
        let flags = self.flags("mesos.master.flags", &m.flags, MASTER_TYPED_FLAGS);
        Some(MesosMasterPlan {
            quorum: m.quorum.unwrap_or(default),
            work_dir: work_dir?,
            port: m.port,
            flags: flags?,
        })
    }

    fn mesos_agent(&mut self, spec: &Spec) -> Option<MesosAgentPlan> {
        let a = &spec.mesos.agent;
        let work_dir = self.state_dir("mesos.agent.work_dir", &a.work_dir);
        let containerizers =
            self.vals::<Containerizer>("mesos.agent.containerizers", &a.containerizers);
        let isolation = self.vals::<Isolator>("mesos.agent.isolation", &a.isolation);
        if let Some(c) = &containerizers {
            if !c.contains(&Containerizer::Docker) {
                self.warn(
                    "mesos.agent.containerizers",
                    "the Docker containerizer is off",
                    "Calico on Mesos expects containerizers = [\"docker\", \"mesos\"]",
                );
            }
        }
        if let Some(i) = &isolation {
            if spec.calico.cni.enabled && !i.contains(&Isolator::NetworkCni) {
                self.err(
                    "mesos.agent.isolation",
                    "Calico CNI is on but the agent's isolation lacks the CNI isolator",
                    "add \"network/cni\" to mesos.agent.isolation",
                );
            }
            self.cpu_mem_isolation(i, a.allow_unlimited_tasks);
        }
        let ports = self.task_ports(&a.ports);
        let flags = self.flags("mesos.agent.flags", &a.flags, AGENT_TYPED_FLAGS);
        let flags = flags.and_then(|f| self.resources_flag(f));
        // The CNI dirs are filled in by `calico` (they must agree with Calico's).
        Some(MesosAgentPlan {
            work_dir: work_dir?,
            port: a.port,
            containerizers: containerizers?,
            isolation: isolation?,
            ports: ports?,
            cni_dirs: None,
            flags: flags?,
        })
    }

    /// Without cgroups cpu and memory isolators, the Mesos containerizer's tasks run with no
    /// limits: `--isolation` replaces the agent's default `posix/cpu,posix/mem` (apache/mesos
    /// 1.11.0 `src/slave/flags.cpp`), and the posix isolators only account usage. Every
    /// Mesos 1.x has `cgroups/cpu` and `cgroups/mem` (`src/slave/containerizer/mesos/
    /// containerizer.cpp`, 1.0.0 to 1.11.0); `cgroups/all` loads every enabled subsystem.
    fn cpu_mem_isolation(&mut self, isolation: &[Isolator], allowed: bool) {
        let all = isolation.contains(&Isolator::CgroupsAll);
        let missing: Vec<&str> = [
            (Isolator::CgroupsCpu, "cpu"),
            (Isolator::CgroupsMem, "memory"),
        ]
        .into_iter()
        .filter(|(i, _)| !all && !isolation.contains(i))
        .map(|(_, what)| what)
        .collect();
        if missing.is_empty() || allowed {
            return;
        }
        self.err(
            "mesos.agent.isolation",
            format!(
                "the agent's isolation has no cgroups {} isolation: the Mesos containerizer's tasks would run without {} limits",
                missing.join(" or "),
                missing.join(" or ")
            ),
            "add \"cgroups/cpu\" and \"cgroups/mem\" to mesos.agent.isolation, or set mesos.agent.allow_unlimited_tasks = true",
        );
    }

    /// The agent's task port ranges: `FIRST-LAST` or one port, none overlapping.
    fn task_ports(&mut self, ports: &[String]) -> Option<Vec<(u16, u16)>> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        let mut ok = true;
        for (i, p) in ports.iter().enumerate() {
            let key = format!("mesos.agent.ports[{i}]");
            let parse = |s: &str| s.trim().parse::<u16>().ok().filter(|n| *n > 0);
            let range = match p.split_once('-') {
                Some((a, b)) => parse(a).zip(parse(b)),
                None => parse(p).map(|n| (n, n)),
            };
            let Some((first, last)) = range.filter(|(a, b)| a <= b) else {
                self.err(
                    &key,
                    format!("{} is not a port range", quote(p)),
                    "write a range as \"FIRST-LAST\" (e.g. \"31000-32000\") or one port, from 1 to 65535",
                );
                ok = false;
                continue;
            };
            if let Some((a, b)) = out.iter().find(|(a, b)| *a <= last && first <= *b) {
                self.err(
                    &key,
                    format!("{} overlaps {a}-{b}, listed before", quote(p)),
                    "list each port once",
                );
                ok = false;
                continue;
            }
            // Linux's default ephemeral range (net.ipv4.ip_local_port_range, 32768–60999):
            // an outgoing connection can hold a port the agent offers, and the task that
            // gets it cannot bind. Mesos' own default stays below it.
            if first <= 60999 && last >= 32768 {
                self.warn(
                    &key,
                    format!("{} overlaps Linux's ephemeral ports 32768-60999", quote(p)),
                    "offer ports below 32768 (Mesos' default is 31000-32000), or narrow net.ipv4.ip_local_port_range",
                );
            }
            out.push((first, last));
        }
        if out.is_empty() && ok {
            self.err(
                "mesos.agent.ports",
                "the agent offers no ports to tasks",
                "list at least one range, e.g. [\"31000-32000\"] (Mesos' default)",
            );
            return None;
        }
        ok.then_some(out)
    }

    /// `flags.resources` may not name `ports`: `mesos.agent.ports` sets them, and kiln adds
    /// them to this flag. JSON resources are refused: kiln appends to the text form.
    fn resources_flag(
        &mut self,
        flags: BTreeMap<FlagName, FlagValue>,
    ) -> Option<BTreeMap<FlagName, FlagValue>> {
        let Some((_, v)) = flags.iter().find(|(n, _)| n.as_str() == "resources") else {
            return Some(flags);
        };
        let text = v.as_str().trim();
        let key = "mesos.agent.flags.resources";
        if text.starts_with('[') || text.starts_with('{') {
            self.err(
                key,
                "resources in JSON: kiln adds the agent's ports to the text form",
                "write them as text, e.g. \"cpus:4;mem:8192\"",
            );
            return None;
        }
        let names_ports = text.split(';').any(|r| {
            let name = r.split(':').next().unwrap_or("");
            name.split('(').next().unwrap_or("").trim() == "ports"
        });
        if names_ports {
            self.err(
                key,
                "the ports resource is set by mesos.agent.ports",
                "remove ports from flags.resources and set mesos.agent.ports, which the firewall opens too",
            );
            return None;
        }
        Some(flags)
    }

    /// Free-form Mesos flags: names and values checked, typed flags not overridden.
    fn flags(
        &mut self,
        key: &str,
        flags: &BTreeMap<String, String>,
        typed: &[(&str, &str)],
    ) -> Option<BTreeMap<FlagName, FlagValue>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, value) in flags {
            let k = format!("{key}.{}", KeyPath::key(name));
            if let Some((_, owner)) = typed.iter().find(|(f, _)| f == name) {
                self.err(
                    &k,
                    format!("flag {} is set by {owner}", quote(name)),
                    format!("remove it from {key}: Mesos refuses a flag given twice; set {owner} instead"),
                );
                ok = false;
                continue;
            }
            let n: Option<FlagName> = self.val(&k, name);
            let v: Option<FlagValue> = self.val(&k, value);
            match (n, v) {
                (Some(n), Some(v)) => {
                    out.insert(n, v);
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}
