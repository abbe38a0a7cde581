//! The resolved cluster: what kiln's checker makes of a spec, and the only input of
//! components, image builders and provisioning renderers.
//!
//! Every value here is typed and was checked once (see [`crate::values`]); derived values
//! (ZooKeeper ensemble, etcd members, quorum, CNI dirs, images) are computed once, as lists,
//! and laid out as strings only where a file needs them. A component that is off is `None`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::values::{
    AbsPath, Backend, BaseFamily, Containerizer, DebPackage, DomainName, FlagName, FlagValue, Fqdn,
    HostAddr, HostName, HostPort, HttpUrl, IfName, ImageRef, IpipMode, Isolator, KsMode, KsTarget,
    MacAddr, MesosFlavour, MirrorUrl, NodeNameMode, PartFs, PasswordHash, RepoPrefix, SelinuxMode,
    Sha256Hex, SshPublicKey, StoreUrl, Tag, Version,
};

/// Every component kiln knows, in render order. One module per component in `builder`
/// implements it; this id is how plans, layers, sources and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentId {
    /// `/etc/hosts` and each host's identity (hostname, identity env).
    Host,
    /// systemd-networkd and each host's network config.
    Network,
    ZooKeeper,
    Etcd,
    Mesos,
    Marathon,
    Docker,
    Calico,
    /// Which iptables the host's programs use (legacy where calico-node needs it).
    Iptables,
    Firewall,
    /// What a bootable image needs: cloud-init's configuration and the state mount point.
    Boot,
}

impl ComponentId {
    /// The lowercase name used in layer labels, file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            ComponentId::Host => "hosts",
            ComponentId::Network => "network",
            ComponentId::ZooKeeper => "zookeeper",
            ComponentId::Etcd => "etcd",
            ComponentId::Mesos => "mesos",
            ComponentId::Marathon => "marathon",
            ComponentId::Docker => "docker",
            ComponentId::Calico => "calico",
            ComponentId::Iptables => "iptables",
            ComponentId::Firewall => "firewall",
            ComponentId::Boot => "boot",
        }
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The roles of a host, as a small set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Roles {
    pub master: bool,
    pub agent: bool,
}

impl Roles {
    /// Role names, masters first.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.master {
            v.push("master");
        }
        if self.agent {
            v.push("agent");
        }
        v
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// One host with its identity.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub name: HostName,
    pub fqdn: Fqdn,
    pub roles: Roles,
    /// Name of the image profile the host boots.
    pub profile: String,
    /// Address and prefix on the cluster network.
    pub address: HostAddr,
    pub mac: MacAddr,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
    /// Interface name inside the host (informational: network config matches by MAC).
    pub interface: IfName,
    /// etcd member name, for hosts that run an etcd member.
    pub etcd_name: Option<HostName>,
    /// ZooKeeper `myid`, for hosts in the ensemble.
    pub zk_id: Option<u32>,
    /// Root's login secrets on this host; delivered only in its own artifacts.
    #[serde(skip_serializing_if = "AccessPlan::is_empty")]
    pub access: AccessPlan,
}

/// Root's login secrets of one host: the spec's `[access]`, with the host's own keys and hash
/// in their place where it sets them. Serialised (in `kiln check --json` and the build
/// report) as key fingerprints and the hash's scheme only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessPlan {
    /// Lines of root's `authorized_keys`.
    pub ssh_authorized_keys: Vec<SshPublicKey>,
    /// Root's password hash; `None`: the password stays locked.
    pub root_password_hash: Option<PasswordHash>,
}

impl AccessPlan {
    /// Whether there is nothing to deliver.
    pub fn is_empty(&self) -> bool {
        self.ssh_authorized_keys.is_empty() && self.root_password_hash.is_none()
    }
}

impl HostPlan {
    /// The host's IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.address.ip()
    }
    /// Prefix length of its subnet.
    pub fn prefix(&self) -> u8 {
        self.address.prefix()
    }
}

/// An endpoint clients dial: `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub tls: bool,
    /// An IP address or DNS name (IPv6 in brackets).
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// A plain-HTTP endpoint.
    pub fn http(host: impl fmt::Display, port: u16) -> Self {
        Endpoint {
            tls: false,
            host: host.to_string(),
            port,
        }
    }
    /// `HOST:PORT`, the form etcd's gateway and Docker's `etcd://` store take.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A group of hosts that boot the same image: same roles, same services.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// `master`, `agent`, `master-agent`, or with `-etcd-proxy` for masters without a member.
    pub name: String,
    pub roles: Roles,
    pub hosts: Vec<HostName>,
    /// Whether hosts of this profile run an etcd member (else a proxy/gateway or nothing).
    pub etcd_member: bool,
    /// etcd endpoints that local clients (Docker, Calico) use.
    pub etcd_client_endpoints: Vec<Endpoint>,
    /// The units the profile runs, in start order: exactly what will run.
    pub services: Vec<Service>,
    /// Units of the base that are masked in this profile (packaged units kiln replaces or
    /// that belong to components the profile does not run).
    pub masked: Vec<String>,
    /// Kernel command-line arguments the profile's programs need, with the reason (added to
    /// `[boot] kernel_args` on the profile's disks and PXE configs).
    pub kernel_args: Vec<KernelArg>,
    /// Which iptables the profile's programs write their rules with, and why.
    pub iptables: IptablesPlan,
}

/// Which iptables a profile's programs write their packet filter rules with. Two rule sets
/// on one host (the legacy `x_tables` ones and nftables' `iptables-nft` ones), each written
/// by programs unaware of the other, are a known cause of dropped traffic: every program of
/// a profile must use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IptablesMode {
    /// The base's own choice, unchanged (Debian 12: `iptables-nft`, firewalld's nftables
    /// backend).
    Base,
    /// Legacy iptables for every program: the base's `iptables` and `ip6tables`
    /// alternatives point at `iptables-legacy` and firewalld runs its iptables backend.
    Legacy,
}

impl IptablesMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IptablesMode::Base => "base",
            IptablesMode::Legacy => "legacy",
        }
    }
}

impl fmt::Display for IptablesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile's iptables mode, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IptablesPlan {
    pub mode: IptablesMode,
    pub why: String,
}

/// A kernel argument a profile needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelArg {
    pub arg: String,
    pub why: String,
}

impl Profile {
    /// Whether the profile runs `unit`.
    pub fn runs(&self, unit: &str) -> bool {
        self.services.iter().any(|s| s.unit == unit)
    }
    /// The services a component contributes.
    pub fn services_of(&self, c: ComponentId) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(move |s| s.component == c)
    }
    /// `etcd_client_endpoints` as comma-separated URLs.
    pub fn etcd_endpoints_csv(&self) -> String {
        join(&self.etcd_client_endpoints, ",")
    }
}

/// Transport of an opened port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// IP protocol 4 (IP-in-IP), which has no port.
    Ipip,
}

impl Proto {
    /// The IP protocol number of a protocol that has no ports (`Ipip`: 4), `None` for TCP and
    /// UDP. Firewalls get the number, never a name: names come from the host's
    /// `/etc/protocols`, where protocol 4 is `ipencap` on Debian and `ipv4` on RHEL.
    pub fn ip_number(self) -> Option<u8> {
        match self {
            Proto::Tcp | Proto::Udp => None,
            Proto::Ipip => Some(4),
        }
    }
}

/// A port a service listens on, or a range of them (`last`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub port: u16,
    /// The last port of a range that starts at `port`; `None` for one port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u16>,
    pub proto: Proto,
    /// Only on loopback: no firewall opening needed.
    pub local: bool,
    /// The spec key that sets it, for conflict messages.
    #[serde(skip)]
    pub key: String,
}

impl Port {
    /// A TCP port reachable from other hosts.
    pub fn tcp(port: u16, key: &str) -> Self {
        Port {
            port,
            last: None,
            proto: Proto::Tcp,
            local: false,
            key: key.into(),
        }
    }
    /// The TCP ports `first` to `last` reachable from other hosts.
    pub fn tcp_range(first: u16, last: u16, key: &str) -> Self {
        Port {
            last: (last != first).then_some(last),
            ..Port::tcp(first, key)
        }
    }
    /// The last port it covers.
    pub fn end(&self) -> u16 {
        self.last.unwrap_or(self.port)
    }
    /// `5051`, or `31000-32000` for a range (the syntax of firewalld and Anaconda).
    pub fn number(&self) -> String {
        match self.last {
            Some(l) => format!("{}-{l}", self.port),
            None => self.port.to_string(),
        }
    }
    /// A TCP port bound to loopback only.
    pub fn local_tcp(port: u16, key: &str) -> Self {
        Port {
            local: true,
            ..Port::tcp(port, key)
        }
    }
}

/// A systemd unit a component runs.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Unit name (`etcd.service`).
    pub unit: String,
    /// Component that contributes it.
    pub component: ComponentId,
    /// What it is, for firewalld service descriptions and listings.
    pub about: &'static str,
    /// The binary the unit starts, checked for presence in the image.
    pub exec: AbsPath,
    pub ports: Vec<Port>,
}

impl Service {
    /// The unit name without `.service`.
    pub fn stem(&self) -> &str {
        self.unit.strip_suffix(".service").unwrap_or(&self.unit)
    }
}

/// Where an artifact comes from (a checked `source` table of the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePlan {
    /// The spec key of this source (`etcd.source`, `calico.cni.source.also[0]`) or, for the
    /// catalog, a description (`catalog etcd 3.4.23[0]`).
    pub key: String,
    pub origin: Origin,
    pub sha256: Option<Sha256Hex>,
    /// Paths or globs taken from an archive (relative, no `..`).
    pub paths: Vec<String>,
    pub strip_components: u32,
    pub dest: Option<AbsPath>,
    pub mode: Option<u32>,
    pub also: Vec<SourcePlan>,
}

/// The kind of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "from")]
pub enum Origin {
    Url(HttpUrl),
    /// A local file or directory, relative to the spec file.
    File(String),
    Deb(DebPackage),
    /// A registry reference, `oci:DIR[:TAG]` or `docker-archive:FILE[:TAG]`.
    Oci(String),
    /// Provided by the base: nothing is fetched.
    Base,
}

impl SourcePlan {
    /// A URL source of the catalog.
    pub fn url(key: String, url: HttpUrl) -> Self {
        SourcePlan {
            key,
            origin: Origin::Url(url),
            sha256: None,
            paths: Vec::new(),
            strip_components: 0,
            dest: None,
            mode: None,
            also: Vec::new(),
        }
    }
    /// Whether the base provides it.
    pub fn is_base(&self) -> bool {
        self.origin == Origin::Base
    }
    /// This source and its `also` sources, depth first.
    pub fn flatten(&self) -> Vec<&SourcePlan> {
        let mut out = vec![self];
        for a in &self.also {
            out.extend(a.flatten());
        }
        out
    }
}

/// The `[base.debian]` mmdebstrap inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebianPlan {
    pub suite: HostName,
    pub variant: String,
    pub packages: Vec<DebPackage>,
    pub kernel: Option<DebPackage>,
    pub mirror: Option<MirrorUrl>,
}

/// The root filesystem every role image starts from.
#[derive(Debug, Clone, Serialize)]
pub struct BasePlan {
    pub image: ImageRef,
    pub source: Option<SourcePlan>,
    pub debian: Option<DebianPlan>,
    /// Its distribution family, when known (declared, or `debian` for a Debian base).
    pub family: Option<BaseFamily>,
    /// Declared a bootc image (kickstart's `ostreecontainer` can install roles built on it).
    pub bootc: bool,
    /// Idle base units the spec keeps (not masked).
    pub keep_units: Vec<String>,
}

/// ZooKeeper on the masters.
#[derive(Debug, Clone, Serialize)]
pub struct ZooKeeperPlan {
    pub version: Version,
    pub source: Option<SourcePlan>,
    pub tick_time: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: AbsPath,
    pub conf_dir: AbsPath,
    pub home: AbsPath,
    pub client_port: u16,
    pub peer_port: u16,
    pub election_port: u16,
    /// Port of the AdminServer (ZooKeeper 3.5+); `None`: it is off (`admin.enableServer=false`),
    /// since it would take 8080 by default, Marathon's port.
    pub admin_port: Option<u16>,
    /// The ensemble: `myid` and address of every master, in spec order.
    pub servers: Vec<(u32, Ipv4Addr)>,
}

impl ZooKeeperPlan {
    /// `zk://IP:PORT,…/PATH`.
    pub fn url(&self, path: &str) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|(_, ip)| format!("{ip}:{}", self.client_port))
            .collect();
        format!("zk://{}/{path}", hosts.join(","))
    }
}

/// How hosts without an etcd member reach etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdAccess {
    /// etcd 2.x `--proxy on`.
    Proxy,
    /// `etcd gateway start` (TCP; carries v2 and v3).
    Gateway,
    /// `etcd grpc-proxy start` (v3 only).
    GrpcProxy,
    /// No local proxy; clients use static endpoints.
    Static,
}

/// An etcd member.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdMember {
    pub name: HostName,
    pub ip: Ipv4Addr,
}

/// etcd: a static cluster on the members, local access elsewhere.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdPlan {
    pub version: Version,
    pub source: Option<SourcePlan>,
    pub data_dir: AbsPath,
    pub client_port: u16,
    pub peer_port: u16,
    /// Whether etcd's v2 API is on.
    pub v2: bool,
    /// Whether any v2 client (Docker's cluster store on etcd, Calico ≤ 2.x) is configured.
    pub v2_clients: bool,
    pub access: EtcdAccess,
    pub members: Vec<EtcdMember>,
    /// With `access = static`: what clients use (default: the members' client URLs).
    pub static_endpoints: Vec<Endpoint>,
}

impl EtcdPlan {
    /// Client URLs of every member.
    pub fn member_endpoints(&self) -> Vec<Endpoint> {
        self.members
            .iter()
            .map(|m| Endpoint::http(m.ip, self.client_port))
            .collect()
    }
    /// `name=http://ip:2380,…` for `--initial-cluster`.
    pub fn initial_cluster(&self) -> String {
        let v: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, Endpoint::http(m.ip, self.peer_port)))
            .collect();
        v.join(",")
    }
    /// Whether `host` runs a member.
    pub fn is_member(&self, host: &HostName) -> bool {
        self.members.iter().any(|m| &m.name == host)
    }
}

/// Mesos (both daemons come from one package).
#[derive(Debug, Clone, Serialize)]
pub struct MesosPlan {
    pub version: Version,
    pub source: Option<SourcePlan>,
    /// The packaging of the source: flag directories, units, daemons, cgroup support.
    pub flavour: MesosFlavour,
    /// Where the flavour came from (`mesos.flavour`, the source's name, the default).
    pub flavour_from: String,
    /// `zk://…/mesos`.
    pub zk: String,
    pub master: Option<MesosMasterPlan>,
    pub agent: Option<MesosAgentPlan>,
}

/// The Mesos master's flags.
#[derive(Debug, Clone, Serialize)]
pub struct MesosMasterPlan {
    pub quorum: u32,
    pub work_dir: AbsPath,
    pub port: u16,
    /// Further flags; none of them sets a flag a typed key sets.
    pub flags: BTreeMap<FlagName, FlagValue>,
}

/// The Mesos agent's flags.
#[derive(Debug, Clone, Serialize)]
pub struct MesosAgentPlan {
    pub work_dir: AbsPath,
    pub port: u16,
    pub containerizers: Vec<Containerizer>,
    pub isolation: Vec<Isolator>,
    /// The port ranges offered to tasks (first, last), in spec order: the `ports` resource.
    pub ports: Vec<(u16, u16)>,
    /// `--network_cni_config_dir` and `--network_cni_plugins_dir`, when CNI is used.
    pub cni_dirs: Option<(AbsPath, AbsPath)>,
    pub flags: BTreeMap<FlagName, FlagValue>,
}

/// Marathon on the masters.
#[derive(Debug, Clone, Serialize)]
pub struct MarathonPlan {
    pub version: Version,
    /// How it runs: its image in Docker, or a tarball's `bin/marathon`.
    pub run: MarathonRun,
    /// `--http_port`.
    pub port: u16,
    /// `LIBPROCESS_PORT`: where the scheduler driver listens for the Mesos master.
    pub libprocess_port: u16,
    /// `zk://…/mesos` and `zk://…/marathon`.
    pub master_zk: String,
    pub zk: String,
}

impl MarathonPlan {
    /// The image of the container form.
    pub fn image(&self) -> Option<&BakedImage> {
        match &self.run {
            MarathonRun::Container(image) => Some(image),
            MarathonRun::Tarball { .. } => None,
        }
    }
}

/// How Marathon runs on the masters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "form")]
pub enum MarathonRun {
    /// Its release image (`mesosphere/marathon:vVERSION`, JDK and libmesos inside), run by
    /// Docker on the host's network.
    Container(Box<BakedImage>),
    /// `bin/marathon` under `home`, from a tarball, directory or package source, or the base.
    Tarball {
        /// Installation directory, holding the release tarball's contents (`bin/marathon`,
        /// `lib/`).
        home: AbsPath,
        source: SourcePlan,
    },
}

/// Docker's cluster store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "url")]
pub enum StorePlan {
    /// On etcd, through the profile's etcd endpoints.
    Etcd,
    /// A URL given in the spec.
    Url(StoreUrl),
}

/// What dockerd advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Advertise {
    /// The host's own address, from its identity.
    HostIp { port: u16 },
    /// A literal `IP:PORT`.
    Literal(HostPort),
}

impl Advertise {
    /// The port advertised.
    pub fn port(&self) -> u16 {
        match self {
            Advertise::HostIp { port } => *port,
            Advertise::Literal(hp) => hp.port(),
        }
    }
    /// The value given to `--cluster-advertise`, `${KILN_IP}` standing for the host address.
    pub fn flag_value(&self) -> String {
        match self {
            Advertise::HostIp { port } => format!("${{KILN_IP}}:{port}"),
            Advertise::Literal(hp) => hp.to_string(),
        }
    }
}

/// Docker Engine.
#[derive(Debug, Clone, Serialize)]
pub struct DockerPlan {
    pub version: Version,
    pub source: Option<SourcePlan>,
    pub dockerd: AbsPath,
    pub cluster_store: Option<StorePlan>,
    pub advertise: Option<Advertise>,
}

/// The Calico CNI plugins and network config.
#[derive(Debug, Clone, Serialize)]
pub struct CniPlan {
    pub version: Version,
    pub source: Option<SourcePlan>,
    pub plugins_dir: AbsPath,
    pub config_dir: AbsPath,
    /// File name of the network config in `config_dir`.
    pub config_file: &'static str,
    pub cni_version: Version,
    pub network: String,
}

/// A container image a unit runs: the name it runs as on the host (with the cluster
/// registry's prefix when there is one) and where kiln gets it.
#[derive(Debug, Clone, Serialize)]
pub struct BakedImage {
    /// `calico-node`, `calico-libnetwork`, `marathon`: the container's name.
    pub name: &'static str,
    pub runs_as: ImageRef,
    pub upstream: ImageRef,
    pub source: Option<SourcePlan>,
    /// The spec key of the image or source, for messages.
    pub key: String,
}

/// The calico-node container.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub image: BakedImage,
    /// calico/node's own version: the image's tag when it is one, else what the Calico
    /// release ships. Below Calico 2.4 it is not the release number.
    pub version: Option<Version>,
    pub backend: Backend,
    pub as_number: Option<u32>,
    pub ip_pools: Vec<ipnet::Ipv4Net>,
    pub ipip: IpipMode,
    pub nodename: NodeNameMode,
}

/// How calico-libnetwork runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "image")]
pub enum Libnetwork {
    Off,
    /// Calico 2.x: inside calico-node (`CALICO_LIBNETWORK_ENABLED=true`).
    Builtin,
    /// Calico 1.x: its own container.
    Container(Box<BakedImage>),
}

/// Calico networking.
#[derive(Debug, Clone, Serialize)]
pub struct CalicoPlan {
    pub version: Version,
    pub cni: Option<CniPlan>,
    pub node: Option<NodePlan>,
    pub libnetwork: Libnetwork,
}

impl CalicoPlan {
    /// Container images the units run, loaded from local disk at boot.
    pub fn baked_images(&self) -> Vec<&BakedImage> {
        let mut v: Vec<&BakedImage> = self.node.iter().map(|n| &n.image).collect();
        if let Libnetwork::Container(img) = &self.libnetwork {
            v.push(img);
        }
        v
    }
}

/// firewalld.
#[derive(Debug, Clone, Serialize)]
pub struct FirewallPlan {
    pub zone: HostName,
}

/// The cluster's own registry.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryPlan {
    pub address: HostPort,
    pub prefix: RepoPrefix,
    pub insecure: bool,
}

/// How built images are named.
#[derive(Debug, Clone, Serialize)]
pub struct ImagesPlan {
    pub prefix: RepoPrefix,
    pub tags: Vec<Tag>,
}

/// Bootable outputs of every role image.
#[derive(Debug, Clone, Serialize)]
pub struct BootablePlan {
    /// MiB of the disks' persistent state partition; 0: none (changes live in RAM).
    pub state_size_mib: u32,
    /// Kernel arguments added to kiln's own.
    pub kernel_args: Vec<FlagValue>,
    pub raw: bool,
    pub qcow2: bool,
    /// `tar.gz` or `tar.xz`: also write the root filesystem as `rootfs.<ext>`.
    pub rootfs_tarball: Option<String>,
    /// Sign the unified kernel images (`[boot.secure_boot]`).
    pub secure_boot: Option<SecureBootPlan>,
}

/// `[boot.secure_boot]`: files as the spec names them, relative to the spec's directory (the
/// build opens and checks them: see `kiln_pipeline::secure_boot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecureBootPlan {
    /// The db signing key.
    pub key: String,
    /// The db certificate.
    pub cert: String,
    /// The platform key's certificate, if given.
    pub pk_cert: Option<String>,
    /// The key exchange key's certificate, if given.
    pub kek_cert: Option<String>,
}

/// A partition of a kickstart's disk layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    /// A mount point, or `swap`.
    pub mount: String,
    pub size_mib: u32,
    pub fstype: PartFs,
    /// Grow to fill the disk.
    pub grow: bool,
}

/// A package repository of a `packages` kickstart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoPlan {
    pub name: HostName,
    pub url: HttpUrl,
}

/// Kickstarts per host (`dist/kickstart/HOST.ks`).
#[derive(Debug, Clone, Serialize)]
pub struct KickstartPlan {
    pub target: KsTarget,
    pub mode: KsMode,
    /// Where `kiln serve` (or a web server) publishes the dist, without a trailing `/`.
    pub url: HttpUrl,
    /// A tz database name (`UTC`, `Europe/Berlin`).
    pub timezone: String,
    pub selinux: SelinuxMode,
    /// The only disk used (`vda`), or every disk.
    pub disk: Option<String>,
    /// Empty: `autopart`.
    pub partitions: Vec<PartitionPlan>,
    /// Installer kernel and initrd, relative to the PXE tree (`images/pxeboot/vmlinuz`).
    pub installer_kernel: String,
    pub installer_initrd: String,
    /// `packages` mode: the installation source (`url --url=`) and further repositories.
    pub install_url: Option<HttpUrl>,
    pub repos: Vec<RepoPlan>,
    /// `packages` mode: `%packages` besides the target's minimal set.
    pub packages: Vec<String>,
}

/// Network provisioning (`[provision]`): where `dist/` is published and whether the PXE tree
/// is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionPlan {
    /// Base URL of the published `dist/`, without a trailing `/` (`http://10.0.0.5:8080`).
    pub url: HttpUrl,
    /// Write `dist/pxe/` (needs bootable outputs).
    pub pxe: bool,
    /// A kickstart install entry's kernel and initrd, as absolute URLs.
    pub installer: Option<Installer>,
}

impl ProvisionPlan {
    /// `url` joined with the path `rel` (no leading `/`).
    pub fn join(&self, rel: &str) -> String {
        format!("{}/{}", self.url, rel.trim_start_matches('/'))
    }
}

/// The installer (Anaconda) a kickstart install entry boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installer {
    pub kernel: String,
    pub initrd: String,
}

impl Installer {
    /// The kickstart's installer files: `http://` URLs as they are, other names relative to
    /// the PXE tree (`dist/pxe/`).
    pub fn of(provision: &ProvisionPlan, kickstart: &KickstartPlan) -> Installer {
        Installer {
            kernel: Self::file_url(provision, &kickstart.installer_kernel),
            initrd: Self::file_url(provision, &kickstart.installer_initrd),
        }
    }

    /// One installer file's URL: `file` itself when it is an `http://` URL, else below
    /// `provision.url`'s `pxe/`.
    pub fn file_url(provision: &ProvisionPlan, file: &str) -> String {
        if file.starts_with("http://") {
            file.to_string()
        } else {
            provision.join(&format!("pxe/{file}"))
        }
    }
}

/// Debian packages a bootable role image needs besides the kernel: the initramfs takes
/// `busybox` and `veritysetup` from the image, the unified kernel image is made on the
/// image's systemd EFI stub, cloud-init places the host's identity, the guest agent answers
/// `kiln boot`'s health checks, and `openssl` checks a seed signed for Secure Boot
/// (`kiln-verify-seed`).
pub const BOOT_PACKAGES: [&str; 6] = [
    "busybox-static",
    "cryptsetup-bin",
    "systemd-boot-efi",
    "cloud-init",
    "qemu-guest-agent",
    "openssl",
];

/// An upstream component left out of the plan on request (`--leave-out`), e.g. because its
/// release cannot be fetched on this machine. Nothing stands in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    Mesos,
    Marathon,
    Calico,
}

impl Upstream {
    pub const ALL: [Upstream; 3] = [Upstream::Mesos, Upstream::Marathon, Upstream::Calico];
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Mesos => "mesos",
            Upstream::Marathon => "marathon",
            Upstream::Calico => "calico",
        }
    }
    /// What leaving it out takes away.
    pub fn what(self) -> &'static str {
        match self {
            Upstream::Mesos => "the Mesos master and agent (units, ports, flags)",
            Upstream::Marathon => "Marathon (unit, ports, image)",
            Upstream::Calico => "calico-node, calico-libnetwork and the calico CNI plugins",
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component the plan leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub component: Upstream,
    pub what: &'static str,
    pub reason: String,
}

/// A validated, resolved cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: HostName,
    pub domain: DomainName,
    /// sha256 of the spec text.
    pub spec_sha256: String,
    pub hosts: Vec<HostPlan>,
    pub profiles: Vec<Profile>,
    pub base: BasePlan,
    pub zookeeper: Option<ZooKeeperPlan>,
    pub etcd: Option<EtcdPlan>,
    pub mesos: MesosPlan,
    pub marathon: Option<MarathonPlan>,
    pub docker: Option<DockerPlan>,
    pub calico: CalicoPlan,
    pub firewall: Option<FirewallPlan>,
    pub registry: Option<RegistryPlan>,
    pub images: ImagesPlan,
    /// Bootable outputs; `None`: only images.
    pub boot: Option<BootablePlan>,
    /// Kickstarts per host; `None`: none.
    pub kickstart: Option<KickstartPlan>,
    /// Upstream components left out on request; empty for a whole cluster.
    pub left_out: Vec<LeftOut>,
    /// Network provisioning; `None` without `provision.url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provision: Option<ProvisionPlan>,
}

impl Plan {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
    /// Hosts that are masters, in spec order.
    pub fn masters(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| h.roles.master)
    }
    /// The name calico-node and the CNI plugin use for `host`: calico-node's `NODENAME` and
    /// the host's kernel hostname (`/etc/hostname`), which the CNI plugins default to.
    pub fn nodename<'a>(&self, host: &'a HostPlan) -> &'a str {
        match self.calico.node.as_ref().map(|n| n.nodename) {
            Some(NodeNameMode::Fqdn) => host.fqdn.as_str(),
            _ => host.name.as_str(),
        }
    }
}

/// Joins displayable items with `sep`.
pub fn join<T: fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installer_files_are_below_the_pxe_tree_unless_they_are_urls() {
        let provision = ProvisionPlan {
            url: "http://10.0.0.5:8080".parse().unwrap(),
            pxe: true,
            installer: None,
        };
        assert_eq!(
            Installer::file_url(&provision, "images/pxeboot/vmlinuz"),
            "http://10.0.0.5:8080/pxe/images/pxeboot/vmlinuz"
        );
        assert_eq!(
            Installer::file_url(&provision, "http://m.example/os/initrd.img"),
            "http://m.example/os/initrd.img"
        );
    }
}
