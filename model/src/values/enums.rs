//! Closed sets: Calico backends and modes, Mesos containerizers and isolators, Docker's
//! cluster store kind.

use std::fmt;
use std::str::FromStr;

use super::{quote, string_value, ValueError};

/// A closed set of spec strings: `FromStr` with a help listing the choices, `Display` and
/// `Serialize` as the spec string.
macro_rules! closed_set {
    ($(#[$m:meta])* $t:ident, $what:literal, { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $t { $($(#[$vm])* $v),+ }

        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            /// The spec string.
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                match s {
                    $($s => Ok($t::$v),)+
                    _ => Err(ValueError::new(
                        format!(concat!("unknown ", $what, " {}"), quote(s)),
                        format!("use one of: {}", [$($s),+].join(", ")),
                    )),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

closed_set!(
    /// calico-node's `CALICO_NETWORKING_BACKEND`.
    Backend, "networking backend", { Bird = "bird", Gobgp = "gobgp", None = "none" }
);

closed_set!(
    /// IP-in-IP mode of the default pool.
    IpipMode, "IP-in-IP mode", { Off = "off", Always = "always", CrossSubnet = "cross-subnet" }
);

closed_set!(
    /// Where calico-node's and the CNI plugin's node name comes from.
    NodeNameMode, "node name source", { Hostname = "hostname", Fqdn = "fqdn" }
);

closed_set!(
    /// The CentOS release a kickstart installs (pykickstart's RHEL7, RHEL8, RHEL9 syntax).
    KsTarget, "kickstart target", { Centos7 = "centos7", Stream8 = "stream8", Stream9 = "stream9" }
);

impl KsTarget {
    /// The `ksvalidator -v` version of the target's syntax.
    pub fn syntax(self) -> &'static str {
        match self {
            KsTarget::Centos7 => "RHEL7",
            KsTarget::Stream8 => "RHEL8",
            KsTarget::Stream9 => "RHEL9",
        }
    }
}

closed_set!(
    /// How a kickstart installs the role: the rootfs tarball (`liveimg`), the role image as a
    /// bootc container (`ostreecontainer`), or distribution packages plus kiln's files.
    KsMode, "kickstart mode", { Image = "image", Bootc = "bootc", Packages = "packages" }
);

closed_set!(
    /// SELinux mode of an installed host.
    SelinuxMode, "SELinux mode", { Enforcing = "enforcing", Permissive = "permissive", Disabled = "disabled" }
);

closed_set!(
    /// The distribution family of a base: what Anaconda needs inside a `liveimg` root.
    BaseFamily, "base family", { Debian = "debian", Rhel = "rhel" }
);

closed_set!(
    /// A file system of a kickstart partition.
    PartFs, "file system", { Xfs = "xfs", Ext4 = "ext4", Vfat = "vfat", Swap = "swap", Biosboot = "biosboot" }
);

closed_set!(
    /// The packaging of a Mesos build: which files its init wrapper reads and which units it
    /// ships. `mesosphere`: Mesosphere's packages of the Apache releases (the el7 rpm, the
    /// Debian/Ubuntu debs; gone since 2023): `/etc/mesos-slave/`, `mesos-slave.service`,
    /// daemons in `/usr/sbin`. `clusterd`: AVENTER's clusterd builds of Mesos 1.11
    /// (`aventer-mesos` debs and rpms): `/etc/mesos-agent/`, `mesos-agent.service`, daemons in
    /// `/usr/bin`, and cgroup v2 support.
    MesosFlavour, "Mesos packaging", { Mesosphere = "mesosphere", Clusterd = "clusterd" }
);

impl MesosFlavour {
    /// The agent's name in this packaging: the init wrapper's argument, and the suffix of its
    /// flag directory, default file and unit (mesosphere/mesos-deb-packaging 54ec74a
    /// `mesos-init-wrapper` l.57-60 `function slave`; m3scluster/clusterd 5ce2c80
    /// `support/packaging/common/mesos-init-wrapper.in` `function agent`).
    pub fn agent(self) -> &'static str {
        match self {
            MesosFlavour::Mesosphere => "slave",
            MesosFlavour::Clusterd => "agent",
        }
    }
    /// The agent's systemd unit.
    pub fn agent_unit(self) -> &'static str {
        match self {
            MesosFlavour::Mesosphere => "mesos-slave.service",
            MesosFlavour::Clusterd => "mesos-agent.service",
        }
    }
    /// The directory whose files the wrapper turns into agent flags.
    pub fn agent_flag_dir(self) -> &'static str {
        match self {
            MesosFlavour::Mesosphere => "/etc/mesos-slave",
            MesosFlavour::Clusterd => "/etc/mesos-agent",
        }
    }
    /// The master and agent programs the wrapper execs: `/usr/sbin/mesos-master` and
    /// `/usr/sbin/mesos-slave` (mesos-deb-packaging `mesos-init-wrapper` l.115-158);
    /// `/usr/bin/mesos-master` and `/usr/bin/mesos-agent` (clusterd's wrapper
    /// `exec @RUN_PATH@/bin/mesos-agent`, `RUN_PATH` `/usr`: CMakeLists.txt l.179).
    pub fn daemons(self) -> [&'static str; 2] {
        match self {
            MesosFlavour::Mesosphere => ["/usr/sbin/mesos-master", "/usr/sbin/mesos-slave"],
            MesosFlavour::Clusterd => ["/usr/bin/mesos-master", "/usr/bin/mesos-agent"],
        }
    }
    /// Whether its agent runs on the unified (v2) cgroup hierarchy. No Apache release does
    /// (cgroup v2 is only on apache/mesos' unreleased master, PR #552); clusterd picks its
    /// cgroup v2 isolators when cgroup2 is mounted and the v1 ones otherwise, under the same
    /// `cgroups/*` names (clusterd 5ce2c80 `src/slave/containerizer/mesos/containerizer.cpp`
    /// l.375-389, l.452-462).
    pub fn cgroup_v2(self) -> bool {
        matches!(self, MesosFlavour::Clusterd)
    }
    /// The flavour a package file or URL's last component names, when it names one:
    /// `aventer-mesos_…` (clusterd's CPack file name, CMakeLists.txt l.148) or `clusterd…`;
    /// Mesosphere's `mesos-1.11.0-2.0.1.el7.x86_64.rpm` / `mesos_1.11.0-2.0.1.debian9_amd64.deb`.
    pub fn from_package_name(name: &str) -> Option<MesosFlavour> {
        let n = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        if n.starts_with("aventer-mesos") || n.starts_with("clusterd") {
            return Some(MesosFlavour::Clusterd);
        }
        let rest = n
            .strip_prefix("mesos-")
            .or_else(|| n.strip_prefix("mesos_"))?;
        rest.starts_with(|c: char| c.is_ascii_digit())
            .then_some(MesosFlavour::Mesosphere)
    }
}

closed_set!(
    /// A Mesos containerizer.
    Containerizer, "containerizer", { Docker = "docker", Mesos = "mesos" }
);

closed_set!(
    /// A built-in isolator of the Mesos 1.x agent (`--isolation`), as listed by the Mesos
    /// containerizer's isolator table (`src/slave/containerizer/mesos/containerizer.cpp`).
    Isolator, "Mesos isolator", {
        AppcRuntime = "appc/runtime",
        CgroupsAll = "cgroups/all",
        CgroupsBlkio = "cgroups/blkio",
        CgroupsCpu = "cgroups/cpu",
        CgroupsCpuset = "cgroups/cpuset",
        CgroupsDevices = "cgroups/devices",
        CgroupsHugetlb = "cgroups/hugetlb",
        CgroupsMem = "cgroups/mem",
        CgroupsNetCls = "cgroups/net_cls",
        CgroupsNetPrio = "cgroups/net_prio",
        CgroupsPerfEvent = "cgroups/perf_event",
        CgroupsPids = "cgroups/pids",
        DiskDu = "disk/du",
        DiskXfs = "disk/xfs",
        DockerRuntime = "docker/runtime",
        DockerVolume = "docker/volume",
        EnvironmentSecret = "environment_secret",
        FilesystemLinux = "filesystem/linux",
        FilesystemPosix = "filesystem/posix",
        FilesystemShared = "filesystem/shared",
        GpuNvidia = "gpu/nvidia",
        LinuxCapabilities = "linux/capabilities",
        LinuxDevices = "linux/devices",
        LinuxNnp = "linux/nnp",
        LinuxSeccomp = "linux/seccomp",
        NamespacesIpc = "namespaces/ipc",
        NamespacesPid = "namespaces/pid",
        NetworkCni = "network/cni",
        NetworkPortMapping = "network/port_mapping",
        NetworkPorts = "network/ports",
        PosixCpu = "posix/cpu",
        PosixDisk = "posix/disk",
        PosixMem = "posix/mem",
        PosixRlimits = "posix/rlimits",
        VolumeCsi = "volume/csi",
        VolumeHostPath = "volume/host_path",
        VolumeImage = "volume/image",
        VolumeSandboxPath = "volume/sandbox_path",
        VolumeSecret = "volume/secret",
    }
);

/// A cluster store URL: `etcd://`, `zk://` or `consul://` then `HOST:PORT[,HOST:PORT…]`
/// and an optional `/PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreUrl(String);
string_value!(StoreUrl);

impl StoreUrl {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<StoreUrl, ValueError> {
        let help = "use a URL etcd://HOST:PORT, zk://HOST:PORT[,…]/PATH or consul://HOST:PORT";
        let bad = || ValueError::new(format!("{} is not a cluster store URL", quote(s)), help);
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "etcd" | "zk" | "consul") {
            return Err(bad());
        }
        let (hosts, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        let hosts_ok = !hosts.is_empty()
            && hosts
                .split(',')
                .all(|hp| super::HostPort::parse(hp).is_ok());
        let path_ok = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        if hosts_ok && path_ok {
            Ok(StoreUrl(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

/// `docker.cluster_store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStore {
    /// `"off"` or `""`.
    Off,
    /// `"etcd"`: derived from each host's etcd endpoints.
    Etcd,
    Url(StoreUrl),
}

impl ClusterStore {
    /// Parses the spec value.
    pub fn parse(s: &str) -> Result<ClusterStore, ValueError> {
        match s {
            "off" | "" => Ok(ClusterStore::Off),
            "etcd" => Ok(ClusterStore::Etcd),
            url => StoreUrl::parse(url).map(ClusterStore::Url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_sets() {
        assert_eq!(
            "cross-subnet".parse::<IpipMode>().unwrap(),
            IpipMode::CrossSubnet
        );
        let e = "bgp".parse::<Backend>().unwrap_err();
        assert!(e.help.contains("bird, gobgp, none"), "{e:?}");
        assert_eq!(Isolator::NetworkCni.to_string(), "network/cni");
        assert!("network/cni\nx".parse::<Isolator>().is_err());
    }

    #[test]
    fn mesos_flavours_from_package_names() {
        let f = MesosFlavour::from_package_name;
        for (name, want) in [
            (
                "https://rpm.aventer.biz/Debian/aventer-mesos_1.11.0-0.9.0.debian12_amd64.deb",
                Some(MesosFlavour::Clusterd),
            ),
            (
                "vendor/clusterd-1.11.0.tar.gz",
                Some(MesosFlavour::Clusterd),
            ),
            (
                "http://repos.mesosphere.com/el/7/x86_64/RPMS/mesos-1.11.0-2.0.1.el7.x86_64.rpm",
                Some(MesosFlavour::Mesosphere),
            ),
            (
                "mesos_1.11.0-2.0.1.debian9_amd64.deb",
                Some(MesosFlavour::Mesosphere),
            ),
            ("mesos=1.11.0-2.0.1", None),
            ("fixture-mesos", None),
            ("mesos-build", None),
        ] {
            assert_eq!(f(name), want, "{name}");
        }
    }

    #[test]
    fn stores() {
        assert!(matches!(
            ClusterStore::parse("zk://10.0.0.1:2181,10.0.0.2:2181/docker").unwrap(),
            ClusterStore::Url(_)
        ));
        assert_eq!(ClusterStore::parse("etcd").unwrap(), ClusterStore::Etcd);
        for bad in ["redis://x:1", "etcd://", "zk://a:1/x y", "etcd://a:1\n"] {
            assert!(ClusterStore::parse(bad).is_err(), "{bad:?}");
        }
    }
}
