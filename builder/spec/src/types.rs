//! The cluster spec: the TOML file an operator writes. Serde types only; meaning is given by
//! `kiln_pipeline::validate`, which turns a [`Spec`] into a `kiln_model::plan::Plan`.
//!
//! Every table rejects unknown keys, and every field has a default where a sensible one
//! exists, so a small spec stays small. Doc comments here become the JSON Schema's
//! descriptions (`kiln schema`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole cluster: its hosts, the base they are built on and every component step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Cluster-wide names: `name` (required) and `domain`.
    pub cluster: Cluster,
    /// The root filesystem every role image starts from: an image, or a Debian tree built
    /// with mmdebstrap.
    #[serde(default)]
    pub base: Base,
    /// The hosts. Each host gets the image of its role set plus its own identity.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// The ZooKeeper ensemble, one server per master.
    #[serde(default)]
    pub zookeeper: ZooKeeper,
    /// Apache Mesos: masters on the masters, agents on the agents.
    #[serde(default)]
    pub mesos: Mesos,
    /// Marathon, the Mesos framework that runs long-lived tasks, on the masters.
    #[serde(default)]
    pub marathon: Marathon,
    /// etcd, the store of Calico and of Docker's cluster store: members on masters, a local
    /// proxy or gateway on every other host.
    #[serde(default)]
    pub etcd: Etcd,
    /// Docker Engine on the agents (Mesos' Docker containerizer and calico-node run on it).
    #[serde(default)]
    pub docker: Docker,
    /// Calico networking: the CNI plugin, calico-node and (Calico 1.x) calico-libnetwork.
    #[serde(default)]
    pub calico: Calico,
    /// firewalld services and zone opening the ports of the roles each image runs.
    #[serde(default)]
    pub firewall: Firewall,
    /// The cluster's own container registry that hosts may pull component images from.
    #[serde(default)]
    pub registry: Option<Registry>,
    /// Names and tags of the images `kiln build` writes.
    #[serde(default)]
    pub images: Images,
    /// Bootable outputs per role: kernel, initramfs, verified root image and disks.
    #[serde(default)]
    pub boot: Boot,
    /// A kickstart per host (`dist/kickstart/HOST.ks`) for installing CentOS hosts with
    /// Anaconda.
    #[serde(default)]
    pub kickstart: Kickstart,
    /// Root's login secrets for every host (a host's own `ssh_authorized_keys` and
    /// `root_password_hash` replace these). They reach only each host's own artifacts (its
    /// cloud-init seed and kickstart, mode 0600), never an image, a layer or the build report.
    #[serde(default)]
    pub access: Access,
    /// Network provisioning: the URL at which `dist/` is published (`kiln serve` serves it)
    /// and the PXE tree `dist/pxe/` that boots each host diskless from it.
    #[serde(default)]
    pub provision: Provision,
}

/// Network provisioning. With `url` set and bootable outputs on, `kiln build` writes
/// `dist/pxe/`: the role's kernel, initramfs and verified root image by digest, `boot.ipxe`
/// (chains to the host's script by MAC, refuses an unknown MAC), and per MAC an iPXE script,
/// a PXELINUX config and GRUB configs that boot the host diskless with its identity from
/// `cloud-init/HOST/` below `url`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Provision {
    /// Base URL at which the output directory is published, e.g. `http://10.0.0.5:8080/`
    /// (`kiln serve dist --listen 10.0.0.5:8080`, or any static web server). `http://` only:
    /// the initramfs fetches with busybox `wget`, which checks no TLS certificate (integrity
    /// comes from the root hash on the kernel command line).
    pub url: Option<String>,
    /// Write the PXE tree `dist/pxe/`. Default: on when `url` is set and there are bootable
    /// outputs (`[boot]`). With `[kickstart]` on, each host's PXE configs also get an install
    /// entry booting `kickstart.installer_kernel`/`installer_initrd` with its kickstart.
    pub pxe: Option<bool>,
}

/// Kickstarts per host: network (matched by MAC), hostname, disk layout, root's password hash
/// and SSH keys, timezone, SELinux, firewall ports and services of the host's role, and the
/// role itself in one of three modes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Kickstart {
    /// Write `dist/kickstart/HOST.ks` for every host.
    pub enabled: bool,
    /// The CentOS release installed: `centos7`, `stream8` or `stream9` (checked with
    /// `ksvalidator -v RHEL7`, `RHEL8`, `RHEL9`).
    pub target: String,
    /// `image`: the role's rootfs tarball (`liveimg`; a RHEL-family base and
    /// `boot.rootfs_tarball`); `bootc`: the role image from the cluster registry
    /// (`ostreecontainer`; Stream 9 and a `base.bootc` base); `packages`: the target's
    /// packages from `install_url` and `repos`, then kiln's files for the role in `%post`.
    pub mode: String,
    /// Time zone (tz database name), e.g. `Europe/Berlin`.
    pub timezone: String,
    /// SELinux: `enforcing`, `permissive` or `disabled`.
    pub selinux: String,
    /// The only disk installed to, e.g. `vda`; unset: every disk (all are cleared).
    pub disk: Option<String>,
    /// Partitions; empty: `autopart`.
    pub partitions: Vec<Partition>,
    /// The installer's kernel for PXE, relative to the PXE tree (`dist/pxe/`, published at
    /// `provision.url` + `/pxe/`), e.g. `images/pxeboot/vmlinuz`, or an `http://` URL on
    /// another server. kiln does not write these files, and each build replaces the output
    /// whole: files copied into `dist/pxe/` must be copied again after a build.
    pub installer_kernel: String,
    /// The installer's initrd for PXE, e.g. `images/pxeboot/initrd.img` (or an `http://` URL).
    pub installer_initrd: String,
    /// `packages` mode: the installation source (BaseOS), e.g.
    /// `http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os`.
    pub install_url: Option<String>,
    /// `packages` mode: further repositories, e.g. AppStream.
    pub repos: Vec<KickstartRepo>,
    /// `packages` mode: packages installed besides the target's minimal set, e.g.
    /// `["etcd", "docker-ce"]`.
    pub packages: Vec<String>,
}

impl Default for Kickstart {
    fn default() -> Self {
        Kickstart {
            enabled: false,
            target: "stream9".into(),
            mode: "image".into(),
            timezone: "UTC".into(),
            selinux: "enforcing".into(),
            disk: None,
            partitions: Vec::new(),
            installer_kernel: "images/pxeboot/vmlinuz".into(),
            installer_initrd: "images/pxeboot/initrd.img".into(),
            install_url: None,
            repos: Vec::new(),
            packages: Vec::new(),
        }
    }
}

/// A partition of a kickstart's disk layout.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Mount point (`/`, `/boot`, `/var`) or `swap`.
    pub mount: String,
    /// Size in MiB (the minimum, with `grow`).
    pub size_mib: u32,
    /// `xfs`, `ext4`, `vfat`, `swap` or `biosboot`.
    #[serde(default = "d::fstype")]
    pub fstype: String,
    /// Grow to fill the rest of the disk.
    #[serde(default)]
    pub grow: bool,
}

/// A package repository.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KickstartRepo {
    /// Repository id, e.g. `appstream`.
    pub name: String,
    /// Base URL, e.g. `http://mirror.example.com/centos/9-stream/AppStream/x86_64/os`.
    pub url: String,
}

/// Root's login secrets. Delivered only per host: in the host's cloud-init seed
/// (`dist/cloud-init/HOST/user-data`) and kickstart (`dist/kickstart/HOST.ks`), both mode
/// 0600, never in a role image or a shared layer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// SSH public keys written to root's `/root/.ssh/authorized_keys`, one `TYPE BASE64
    /// [COMMENT]` line each (no options), e.g. `["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA…
    /// admin@example.com"]`. Types: `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256/384/521`,
    /// `sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    /// Root's password as a crypt(3) hash, the output of `mkpasswd -m sha-512`, e.g.
    /// `$6$salt$…` (`$y$`, `$5$`, `$2b$` and `$1$` are taken too). Never a plaintext password:
    /// that is refused. Unset: root's password stays locked.
    #[serde(default)]
    pub root_password_hash: Option<String>,
}

/// Bootable outputs per role image (`dist/boot/PROFILE/`): the kernel of the image, an
/// initramfs built by kiln, a read-only squashfs root with a dm-verity hash tree, and
/// self-booting disks. Identity comes at boot from each host's cloud-init seed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Boot {
    /// Build the bootable outputs; default: when the base is a Debian base with a kernel
    /// (`base.debian.kernel`). Turning it on adds `busybox-static`, `cryptsetup-bin`,
    /// `systemd-boot-efi`, `cloud-init`, `qemu-guest-agent` and `openssl` to the Debian base's
    /// packages: the initramfs takes busybox and `veritysetup` from the image, the UKI is made
    /// on its EFI stub, cloud-init places each host's identity, the guest agent lets `kiln
    /// boot` check a VM's health, and openssl checks a seed signed for Secure Boot.
    pub enabled: Option<bool>,
    /// Size of the persistent state partition of the disks in MiB (`/etc`, `/var`, `/root`
    /// and `/home` keep their changes there); 0 for none (changes live in RAM).
    pub state_size_mib: u32,
    /// Extra kernel arguments. Docker needs `apparmor=0` on a base without AppArmor's tools.
    pub kernel_args: Vec<String>,
    /// Disk formats to write: `raw`, `qcow2`.
    pub disks: Vec<String>,
    /// Also write the root filesystem as a tarball (`rootfs.tar.gz` or `rootfs.tar.xz`), for
    /// kickstart's `liveimg`: `"tar.gz"`, `"tar.xz"` or `""` for none.
    pub rootfs_tarball: String,
    /// Sign each role's unified kernel image for UEFI Secure Boot with the operator's keys;
    /// absent: unsigned (the disks still boot with Secure Boot off, and on BIOS).
    pub secure_boot: Option<SecureBoot>,
}

/// `[boot.secure_boot]`: the keys the unified kernel images are signed with. Paths are
/// relative to the spec file. The private key is read only by the signing tool at build time:
/// it never enters `dist/`, an image, a seed, a log or the build report, and a key file other
/// users can read is refused. `kiln keys DIR` makes a set for a lab.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecureBoot {
    /// The db signing key (PEM), mode 0600 or stricter, e.g. `keys/db.key`.
    pub key: String,
    /// Its certificate (PEM), the one the firmware's db holds, e.g. `keys/db.crt`.
    pub cert: String,
    /// The platform key's certificate (PEM), for the enrolment files in `dist/secure-boot/`
    /// and `kiln boot --firmware uefi-secure`; unset: the db certificate stands in (labs).
    pub pk_cert: String,
    /// The key exchange key's certificate (PEM); unset: the db certificate stands in.
    pub kek_cert: String,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            enabled: None,
            state_size_mib: 2048,
            kernel_args: vec!["apparmor=0".into()],
            disks: vec!["raw".into(), "qcow2".into()],
            rootfs_tarball: String::new(),
            secure_boot: None,
        }
    }
}

/// How built images are named: `REPOSITORY_PREFIX/CLUSTER-PROFILE:TAG`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Repository prefix of role images (`kiln` gives `kiln/demo-master-agent`).
    pub prefix: String,
    /// Tags given to every built image (first one is the primary tag).
    pub tags: Vec<String>,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            prefix: "kiln".into(),
            tags: vec!["latest".into()],
        }
    }
}

/// Cluster-wide names.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Cluster name: lowercase letters, digits and '-'. Used for the etcd cluster token, the
    /// Mesos cluster name and image names.
    pub name: String,
    /// DNS domain of the hosts; a host's FQDN is `NAME.DOMAIN`.
    #[serde(default = "d::domain")]
    pub domain: String,
}

/// The root filesystem every role image starts from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Image reference of the base (`quay.io/centos/centos:stream9`, `debian:bookworm`).
    #[serde(default = "d::base_image")]
    pub image: String,
    /// Where the base comes from; without it the image reference is pulled (see `kiln lock`).
    #[serde(default)]
    pub source: Option<Source>,
    /// Build the base root filesystem with `mmdebstrap` instead of using an image. Cached by
    /// the digest of its inputs; takes precedence over `image` and `source`.
    #[serde(default)]
    pub debian: Option<DebianBase>,
    /// The base's distribution family, `rhel` or `debian`; default `debian` with
    /// `base.debian`, else unknown. Kickstart's `liveimg` (`kickstart.mode = "image"`) needs a
    /// `rhel` root: Anaconda runs its own tools inside it.
    #[serde(default)]
    pub family: Option<String>,
    /// The base image is a bootc image (e.g. `quay.io/centos-bootc/centos-bootc:stream9`), so
    /// role images built on it install with kickstart's `ostreecontainer`
    /// (`kickstart.mode = "bootc"`). Needs `family = "rhel"`.
    #[serde(default)]
    pub bootc: bool,
    /// Base units kiln masks as idle on an immutable role host that the spec keeps running,
    /// e.g. `["fstrim.timer"]`. kiln masks `apt-daily.timer`, `apt-daily-upgrade.timer`,
    /// `dpkg-db-backup.timer`, `e2scrub_all.timer`, `e2scrub_reap.service`, `fstrim.timer`
    /// and `man-db.timer` (`kiln check` lists them per profile with the other masked units).
    #[serde(default)]
    pub keep_units: Vec<String>,
}

/// A Debian root filesystem built with `mmdebstrap` (root mode) from a suite, a variant and a
/// package list, with `SOURCE_DATE_EPOCH` set so the same inputs give the same tree.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DebianBase {
    /// Debian suite, e.g. `bookworm`.
    #[serde(default = "d::debian_suite")]
    pub suite: String,
    /// mmdebstrap variant: `minbase`, `essential`, `apt`, `required`, `important`, `standard`.
    #[serde(default = "d::debian_variant")]
    pub variant: String,
    /// Packages installed on top of the variant (e.g. `systemd`, `etcd-server`, `docker.io`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Kernel package, installed too (its kernel and modules boot the host); `""` for none.
    #[serde(default = "d::debian_kernel")]
    pub kernel: String,
    /// Debian mirror URL, e.g. `http://mirror.example.com/debian`; default: mmdebstrap's
    /// (`http://deb.debian.org/debian`).
    #[serde(default)]
    pub mirror: Option<String>,
}

/// Where an artifact comes from. Exactly one of `url`, `file`, `deb`, `oci`, `base` is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An http(s) URL of a binary, tarball, `.deb` or `.rpm`, e.g.
    /// `https://github.com/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz`.
    #[serde(default)]
    pub url: Option<String>,
    /// A local file or directory, relative to the spec file, e.g. `vendor/calico`.
    #[serde(default)]
    pub file: Option<String>,
    /// A Debian package as `name` or `name=version`, fetched with `apt-get download`, e.g.
    /// `etcd-server=3.4.23-4+b1`.
    #[serde(default)]
    pub deb: Option<String>,
    /// A container image reference or `oci:DIR:TAG` / `docker-archive:FILE`, e.g.
    /// `oci:images/calico:v2.6.12`.
    #[serde(default)]
    pub oci: Option<String>,
    /// Expected sha256 of the fetched bytes (hex). Recorded in `kiln.lock` when absent.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The base provides it (e.g. a package of a `debian` base): nothing is fetched, and the
    /// presence check still makes sure the binaries are there.
    #[serde(default)]
    pub base: bool,
    /// What to take from an archive (tarball, `.deb`, `.rpm`, directory): paths or globs
    /// (`*`, `?`, `**`) relative to the archive root after `strip_components`, e.g.
    /// `["etcd", "etcdctl"]`. A directory matched takes everything below it. Empty: all.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Leading path components dropped from archive entries (like `tar
    /// --strip-components`), e.g. 1 for `etcd-v3.4.23-linux-amd64/etcd`.
    #[serde(default)]
    pub strip_components: u32,
    /// Where it goes on the host: for a single file its full path (e.g. `/usr/bin/etcd`), for an
    /// archive the directory its entries are placed under (default `/`).
    #[serde(default)]
    pub dest: Option<String>,
    /// Mode of the regular files placed, as a TOML octal such as `0o755`. Default: a single
    /// file gets 0o755, archive entries keep their own.
    #[serde(default)]
    pub mode: Option<u32>,
    /// Further artifacts of the same component (e.g. `calico-ipam` beside `calico`).
    #[serde(default)]
    pub also: Vec<Source>,
}

/// A role a host plays.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// ZooKeeper, etcd member, Mesos master, Marathon.
    Master,
    /// Mesos agent with Docker, Calico CNI and calico-node; etcd proxy.
    Agent,
}

impl Role {
    /// The lowercase name used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Agent => "agent",
        }
    }
}

/// One machine of the cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Short host name (RFC 1123 label).
    pub name: String,
    /// `master`, `agent` or both.
    pub roles: Vec<Role>,
    /// IPv4 address with prefix length, e.g. `10.0.0.11/24`.
    pub address: String,
    /// MAC address of the boot interface, e.g. `52:54:00:12:34:56`.
    pub mac: String,
    /// Default gateway (IPv4); must lie in the host's subnet.
    #[serde(default)]
    pub gateway: Option<String>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Name of the boot interface inside the host (systemd predictable name).
    #[serde(default = "d::interface")]
    pub interface: String,
    /// This host's SSH public keys for root, replacing `access.ssh_authorized_keys` (`[]` for
    /// none), e.g. `["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… admin@example.com"]`.
    #[serde(default)]
    pub ssh_authorized_keys: Option<Vec<String>>,
    /// This host's root password hash (`mkpasswd -m sha-512` output), replacing
    /// `access.root_password_hash`, e.g. `$6$salt$…`.
    #[serde(default)]
    pub root_password_hash: Option<String>,
}

/// ZooKeeper ensemble on the masters.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ZooKeeper {
    /// Run a ZooKeeper server on every master. Mesos and Marathon need it.
    pub enabled: bool,
    /// ZooKeeper release; picks the catalog's tarball when `source` is unset.
    pub version: String,
    /// Where ZooKeeper comes from; unset: the catalog's tarball for `version`.
    pub source: Option<Source>,
    /// Milliseconds per tick.
    pub tick_time: u32,
    /// Ticks a follower may take to connect and sync to the leader.
    pub init_limit: u32,
    /// Ticks a follower may lag behind the leader.
    pub sync_limit: u32,
    /// Data directory; `myid` is written here.
    pub data_dir: String,
    /// Directory of `zoo.cfg`.
    pub conf_dir: String,
    /// ZooKeeper installation directory (holds `bin/zkServer.sh`).
    pub home: String,
    /// Port clients (Mesos, Marathon) connect to (`clientPort`).
    pub client_port: u16,
    /// Port followers connect to the leader on (first port of `server.N`).
    pub peer_port: u16,
    /// Port of leader election (second port of `server.N`).
    pub election_port: u16,
    /// Port of ZooKeeper's AdminServer (3.5+; HTTP commands under `/commands`), opened on the
    /// masters, e.g. `8081`. Unset: the AdminServer is off (`admin.enableServer=false`), since
    /// on its default port 8080 it would take Marathon's port.
    pub admin_port: Option<u16>,
}

/// Apache Mesos masters and agents, through their package's init wrapper.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Mesos {
    /// Mesos release, e.g. `1.11.0`.
    pub version: String,
    /// Where Mesos comes from: a package (`.deb`, `.rpm`), tarball or directory. No public
    /// binary of Mesos has a stable address in 2026 (Mesosphere's repository is gone), so the
    /// catalog has no default: name one, e.g. AVENTER's clusterd `.deb` for Debian 12
    /// (`{ url = "https://…/aventer-mesos_1.11.0-0.9.0.debian12_amd64.deb", sha256 = "…" }`),
    /// or a copy of a Mesosphere package you keep.
    pub source: Option<Source>,
    /// The packaging of `source`: `clusterd` (AVENTER's builds: `/etc/mesos-agent/`,
    /// `mesos-agent.service`, cgroup v2) or `mesosphere` (Mesosphere's packages of the Apache
    /// releases: `/etc/mesos-slave/`, `mesos-slave.service`, legacy cgroups only). Unset: read
    /// from the source's file name (`aventer-mesos_…`, `mesos-1.11.0-2.0.1.el7…`), else
    /// `clusterd` when there is no source; a source whose name tells nothing needs it.
    pub flavour: Option<String>,
    /// The Mesos master on every master.
    pub master: MesosMaster,
    /// The Mesos agent on every agent.
    pub agent: MesosAgent,
}

/// Mesos master settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MesosMaster {
    /// Run a Mesos master on every master.
    pub enabled: bool,
    /// Replicated-log quorum; defaults to floor(masters/2)+1, e.g. `2` for three masters.
    pub quorum: Option<u32>,
    /// The master's `--work_dir` (replicated log and state).
    pub work_dir: String,
    /// Port the master listens on (`--port`).
    pub port: u16,
    /// Further flags, written as files under `/etc/mesos-master/` (name = flag, content = value),
    /// e.g. `{ max_completed_frameworks = "50" }`.
    pub flags: BTreeMap<String, String>,
}

/// Mesos agent settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MesosAgent {
    /// Run a Mesos agent on every agent.
    pub enabled: bool,
    /// The agent's `--work_dir` (sandboxes and checkpoints).
    pub work_dir: String,
    /// Port the agent listens on (`--port`).
    pub port: u16,
    /// Containerizers; Calico on Mesos needs `docker,mesos`.
    pub containerizers: Vec<String>,
    /// Isolators (`--isolation`); must include `network/cni` for Calico CNI networking, and
    /// cgroups cpu and memory isolation (`cgroups/cpu` and `cgroups/mem`, or `cgroups/all`)
    /// unless `allow_unlimited_tasks` is set. The default adds them to what Calico needs, as
    /// DC/OS did.
    pub isolation: Vec<String>,
    /// Accept an `isolation` list without cgroups cpu and memory isolation: the Mesos
    /// containerizer's tasks then run with no cpu or memory limit (`posix/cpu` and
    /// `posix/mem` only account usage).
    pub allow_unlimited_tasks: bool,
    /// The port ranges the agent offers to tasks (its `ports` resource, `--resources`), e.g.
    /// `["31000-32000", "40000"]`. Marathon's host-networked tasks and their health checks use
    /// them; the agent's firewall opens them. Mesos' own default is `31000-32000`.
    pub ports: Vec<String>,
    /// `--network_cni_config_dir`; defaults to Calico's CNI config dir, e.g. `/etc/cni/net.d`.
    pub cni_config_dir: Option<String>,
    /// `--network_cni_plugins_dir`; defaults to Calico's CNI plugins dir, e.g. `/opt/cni/bin`.
    pub cni_plugins_dir: Option<String>,
    /// Further flags, written as files under the agent's flag directory (`/etc/mesos-agent/`
    /// or `/etc/mesos-slave/`, by `flavour`), e.g. `{ docker_stop_timeout = "20secs" }`.
    pub flags: BTreeMap<String, String>,
}

/// Marathon on the masters.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Marathon {
    /// Run Marathon on every master (needs `mesos.master.enabled`).
    pub enabled: bool,
    /// Marathon release, e.g. `1.6.322`; the container form's default image is its tag on
    /// Docker Hub, `mesosphere/marathon:v1.6.322`.
    pub version: String,
    /// The container form's image (Marathon's launcher, a JDK and libmesos inside; needs
    /// `docker.enabled`, and Docker then runs on the masters too); default
    /// `mesosphere/marathon:vVERSION`, e.g.
    /// `registry.example.com/mesosphere/marathon:v1.6.322`.
    pub image: Option<String>,
    /// Where Marathon comes from, which chooses how it runs. Unset: `image` from its
    /// registry; an `oci` source (`oci:DIR:TAG`, `docker-archive:FILE`): the image from disk;
    /// both run it as a container. A `url`, `file`, `deb` or `base` source: the tarball
    /// form, `bin/marathon` under `home` run directly (the host then needs a JDK 8 and
    /// libmesos), e.g. `{ url = "https://mirror.example.com/marathon-1.6.322-2bf46b341.tgz",
    /// strip_components = 1, dest = "/usr/share/marathon" }`.
    pub source: Option<Source>,
    /// The tarball form's installation directory, holding the release tarball's contents
    /// (`bin/marathon`, `lib/`); default `/usr/share/marathon`, where Marathon's own packages
    /// put it, e.g. `/opt/mesosphere/marathon`. The container form does not use it.
    pub home: Option<String>,
    /// Port of Marathon's HTTP API and UI (`--http_port`).
    pub port: u16,
    /// Port of Marathon's Mesos scheduler driver (`LIBPROCESS_PORT`), opened on the masters:
    /// the leading Mesos master connects back to it. Default 15101, as DC/OS sets it.
    pub libprocess_port: u16,
}

/// etcd: a static cluster on the masters, a proxy or gateway on the agents.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Etcd {
    /// Run etcd (members and proxies). Calico and Docker's `etcd` cluster store need it.
    pub enabled: bool,
    /// etcd release: 2.x runs `etcd --proxy on` on hosts without a member, 3.x `etcd gateway`;
    /// it also decides whether the v2 API can be turned on.
    pub version: String,
    /// Where etcd comes from; unset: the catalog's release tarball for `version`.
    pub source: Option<Source>,
    /// Data directory of a member.
    pub data_dir: String,
    /// Port clients connect to, on members and on the local proxy.
    pub client_port: u16,
    /// Port members talk to each other on.
    pub peer_port: u16,
    /// etcd's v2 API. Unset: on whenever a v2 client (Docker cluster store, Calico 2.x and
    /// earlier) needs it. Before etcd 3.4 v2 is always on.
    pub enable_v2: Option<bool>,
    /// Hosts that run an etcd member, e.g. `["m1", "m2", "m3"]`; defaults to every master.
    /// Each must be a master.
    pub members: Option<Vec<String>>,
    /// How hosts without a member reach etcd.
    pub proxy: EtcdProxy,
}

/// How hosts without a member reach etcd.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdProxy {
    /// `auto` (v2 proxy for etcd 2.x, `gateway` for 3.x), `proxy`, `gateway`, `grpc-proxy`
    /// (v3 only), or `off` (clients use `endpoints`).
    pub mode: ProxyMode,
    /// With `mode = "off"`: the endpoints clients use, e.g. `["http://10.0.0.11:2379"]`;
    /// defaults to the members' client URLs.
    pub endpoints: Vec<String>,
}

/// The local etcd proxy kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    Auto,
    Proxy,
    Gateway,
    GrpcProxy,
    Off,
}

/// Docker Engine and its cluster store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Docker {
    /// Run Docker Engine on the agents; calico-node and calico-libnetwork need it.
    pub enabled: bool,
    /// Docker release; ≥ 23 has no cluster store (`cluster_store` must then be `off`).
    pub version: String,
    /// Where Docker comes from; unset: Docker's static binaries for `version`.
    pub source: Option<Source>,
    /// `etcd` (derived from the etcd endpoints), `off`, or a URL such as
    /// `zk://m1:2181,m2:2181/docker` or `etcd://10.0.0.1:2379`. Docker ≤ 20.10 only.
    pub cluster_store: String,
    /// Address dockerd advertises: `${IP}:PORT` (the host's address) or a literal `IP:PORT`.
    /// Interface names are refused: dockerd does not start when the interface is missing.
    pub cluster_advertise: String,
    /// Path of `dockerd` in the image (`/usr/sbin/dockerd` for Debian's docker.io,
    /// `/usr/bin/dockerd` for Docker's static binaries).
    pub dockerd: String,
}

/// Calico networking.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Calico {
    /// Calico release; 1.x runs libnetwork as its own container, 2.x inside calico-node. It
    /// picks the default calico/node and calico/node-libnetwork tags and calico-cni version
    /// from kiln's release table (1.6.0 to 2.6.12): below 2.4 they are not the release number
    /// (Calico 2.0.2 ships calico/node v1.0.2).
    pub version: String,
    /// The `calico` and `calico-ipam` CNI plugins Mesos' `network/cni` isolator calls.
    pub cni: CalicoCni,
    /// The calico-node container (Felix, BIRD, IP pools) on every agent.
    pub node: CalicoNode,
    /// The Docker network plugin (its own container with Calico 1.x).
    pub libnetwork: CalicoLibnetwork,
}

/// Where CNI files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CniLayout {
    /// Plain Mesos: `/opt/cni/bin` and `/etc/cni/net.d`.
    Mesos,
    /// DC/OS: `/opt/mesosphere/active/cni` and `/opt/mesosphere/etc/dcos/network/cni`.
    Dcos,
}

/// The `calico` and `calico-ipam` CNI plugins and their network config.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CalicoCni {
    /// Install the CNI plugins and network config on the agents.
    pub enabled: bool,
    /// Version of the calico-cni plugin binaries, e.g. `1.11.8`; default: the one the Calico
    /// release ships.
    pub version: Option<String>,
    /// Where the plugins come from; unset: the catalog's `calico`, `calico-ipam` and CNI
    /// reference plugins for `version`.
    pub source: Option<Source>,
    /// `mesos` (`/opt/cni/bin`, `/etc/cni/net.d/calico.conf`) or `dcos`
    /// (`/opt/mesosphere/active/cni/`, `/opt/mesosphere/etc/dcos/network/cni/calico.cni`).
    pub layout: CniLayout,
    /// Overrides the layout's plugins dir, e.g. `/opt/cni/bin`.
    pub plugins_dir: Option<String>,
    /// Overrides the layout's config dir, e.g. `/etc/cni/net.d`.
    pub config_dir: Option<String>,
    /// `cniVersion` of the network config, e.g. `0.2.0`; default `0.1.0`. Mesos' CNI isolator
    /// reads only CNI 0.1/0.2 results, so 0.3 and later are refused while the Mesos agent
    /// runs.
    pub cni_version: Option<String>,
    /// Network name (`name` in the config; what Mesos tasks ask for).
    pub network: String,
}

/// The calico-node container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CalicoNode {
    /// Run calico-node on every agent.
    pub enabled: bool,
    /// Image; defaults to the calico/node the Calico release ships (`calico/node:v1.0.2` for
    /// Calico 2.0.2, `calico/node:v2.6.12` for 2.6.12), e.g.
    /// `registry.example.com/calico/node:v2.6.12`.
    pub image: Option<String>,
    /// Where the image comes from (an `oci` source); unset: `image` from its registry.
    pub source: Option<Source>,
    /// `bird`, `gobgp` or `none`.
    pub backend: String,
    /// BGP AS number, e.g. `64513`; unset uses Calico's global default (64512).
    #[serde(rename = "as")]
    pub as_number: Option<u32>,
    /// IPv4 pools created by calico-node (the first is `CALICO_IPV4POOL_CIDR`). Empty means
    /// no default pools (`NO_DEFAULT_POOLS=true`). calico/node reads the pool variables from
    /// v1.1.0 (Calico 2.1.0) on; with an older one `kiln check` warns.
    pub ip_pools: Vec<String>,
    /// IP-in-IP for the pool: `off`, `always` or `cross-subnet`.
    pub ipip: String,
    /// Node name source: `hostname` or `fqdn`.
    pub nodename: String,
}

/// calico-libnetwork, the Docker network plugin.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CalicoLibnetwork {
    /// Provide Calico's Docker network plugin (needs `docker.enabled`).
    pub enabled: bool,
    /// Image for Calico 1.x; defaults to the one the Calico release ships
    /// (`calico/node-libnetwork:v0.10.0` for 1.6.x), e.g.
    /// `registry.example.com/calico/node-libnetwork:v0.10.0`.
    pub image: Option<String>,
    /// Where the Calico 1.x image comes from (an `oci` source); unset: `image` from its
    /// registry.
    pub source: Option<Source>,
}

/// Host firewall.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Firewall {
    /// Write firewalld services and the zone; `false` writes no firewall files.
    pub enabled: bool,
    /// firewalld zone the services are added to.
    pub zone: String,
}

/// The cluster's own registry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// `HOST:PORT` of the registry, e.g. `10.0.0.5:5000`.
    pub address: String,
    /// Repository prefix under which kiln pushes component images.
    #[serde(default = "d::registry_prefix")]
    pub prefix: String,
    /// Plain HTTP / untrusted TLS (added to Docker's `insecure-registries`).
    #[serde(default)]
    pub insecure: bool,
}

/// Default values, in one place so `kiln init` and `Default` agree.
mod d {
    pub fn domain() -> String {
        "cluster.local".into()
    }
    pub fn base_image() -> String {
        "debian:bookworm".into()
    }
    pub fn interface() -> String {
        "ens3".into()
    }
    pub fn registry_prefix() -> String {
        "kiln".into()
    }
    pub fn debian_suite() -> String {
        "bookworm".into()
    }
    pub fn debian_variant() -> String {
        "minbase".into()
    }
    pub fn fstype() -> String {
        "xfs".into()
    }
    pub fn debian_kernel() -> String {
        "linux-image-amd64".into()
    }
}

impl Default for Base {
    fn default() -> Self {
        Base {
            image: d::base_image(),
            source: None,
            debian: None,
            family: None,
            bootc: false,
            keep_units: Vec::new(),
        }
    }
}

impl Default for ZooKeeper {
    fn default() -> Self {
        ZooKeeper {
            enabled: true,
            version: "3.8.0".into(),
            source: None,
            tick_time: 2000,
            init_limit: 10,
            sync_limit: 5,
            data_dir: "/var/lib/zookeeper".into(),
            conf_dir: "/etc/zookeeper/conf".into(),
            home: "/usr/share/zookeeper".into(),
            client_port: 2181,
            peer_port: 2888,
            election_port: 3888,
            admin_port: None,
        }
    }
}

impl Default for Mesos {
    fn default() -> Self {
        Mesos {
            version: "1.11.0".into(),
            source: None,
            flavour: None,
            master: MesosMaster::default(),
            agent: MesosAgent::default(),
        }
    }
}

impl Default for MesosMaster {
    fn default() -> Self {
        MesosMaster {
            enabled: true,
            quorum: None,
            work_dir: "/var/lib/mesos/master".into(),
            port: 5050,
            flags: BTreeMap::new(),
        }
    }
}

impl Default for MesosAgent {
    fn default() -> Self {
        MesosAgent {
            enabled: true,
            work_dir: "/var/lib/mesos/agent".into(),
            port: 5051,
            containerizers: vec!["docker".into(), "mesos".into()],
            isolation: vec![
                "cgroups/cpu".into(),
                "cgroups/mem".into(),
                "filesystem/linux".into(),
                "docker/runtime".into(),
                "network/cni".into(),
            ],
            allow_unlimited_tasks: false,
            ports: vec!["31000-32000".into()],
            cni_config_dir: None,
            cni_plugins_dir: None,
            flags: BTreeMap::new(),
        }
    }
}

impl Default for Marathon {
    fn default() -> Self {
        Marathon {
            enabled: true,
            version: "1.6.322".into(),
            image: None,
            source: None,
            home: None,
            port: 8080,
            libprocess_port: 15101,
        }
    }
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd {
            enabled: true,
            version: "3.4.23".into(),
            source: None,
            data_dir: "/var/lib/etcd".into(),
            client_port: 2379,
            peer_port: 2380,
            enable_v2: None,
            members: None,
            proxy: EtcdProxy::default(),
        }
    }
}

impl Default for EtcdProxy {
    fn default() -> Self {
        EtcdProxy {
            mode: ProxyMode::Auto,
            endpoints: Vec::new(),
        }
    }
}

impl Default for Docker {
    fn default() -> Self {
        Docker {
            enabled: true,
            version: "20.10.24".into(),
            source: None,
            cluster_store: "etcd".into(),
            cluster_advertise: "${IP}:2376".into(),
            dockerd: "/usr/bin/dockerd".into(),
        }
    }
}

impl Default for Calico {
    fn default() -> Self {
        Calico {
            version: "2.6.12".into(),
            cni: CalicoCni::default(),
            node: CalicoNode::default(),
            libnetwork: CalicoLibnetwork::default(),
        }
    }
}

impl Default for CalicoCni {
    fn default() -> Self {
        CalicoCni {
            enabled: true,
            version: None,
            source: None,
            layout: CniLayout::Mesos,
            plugins_dir: None,
            config_dir: None,
            cni_version: None,
            network: "calico".into(),
        }
    }
}

impl Default for CalicoNode {
    fn default() -> Self {
        CalicoNode {
            enabled: true,
            image: None,
            source: None,
            backend: "bird".into(),
            as_number: None,
            ip_pools: vec!["192.168.0.0/16".into()],
            ipip: "always".into(),
            nodename: "hostname".into(),
        }
    }
}

impl Default for CalicoLibnetwork {
    fn default() -> Self {
        CalicoLibnetwork {
            enabled: true,
            image: None,
            source: None,
        }
    }
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            enabled: true,
            zone: "public".into(),
        }
    }
}
