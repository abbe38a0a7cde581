//! The built-in catalog: for each component and version, where its upstream artifacts are
//! and what to take from them, so a user with internet only names versions. Digests are not
//! built in: the first fetch records them in `kiln.lock` (and reports it); from then on the
//! lock pins them.
//!
//! Air-gapped sites mirror these URLs (`--mirror URL|DIR` maps `https://HOST/PATH` to
//! `MIRROR/HOST/PATH`) or import the files (`kiln cache import`).
//!
//! A default is listed only where the artifact is still served (checked in December 2026).
//! Where none is known the catalog has a [`Gap`] instead: `kiln check` warns and names the
//! setting to fill with the known options, and `kiln lock`/`fetch`/`build` refuse to start.
//! - **Mesos**: no default ([`gap`]). Mesosphere's package repository
//!   (`repos.mesosphere.com`) went away with D2iQ's DC/OS hosting in 2023.
//! - **Marathon**: its release tarballs were only on `downloads.mesosphere.io`, which D2iQ
//!   turned off with the rest of its DC/OS hosting in 2023, so the catalog has no tarball.
//!   What remains is the release's image on Docker Hub, [`marathon_image`]; a tarball is
//!   used only when the spec names one (`marathon.source`).
//! - Calico: a release's image tags and plugin versions come from [`CALICO_RELEASES`]; a
//!   release it does not list needs `calico.node.image` and `calico.cni.version`.
//! - Images (`calico/node`, `calico/node-libnetwork`, `mesosphere/marathon`) are pulled from
//!   Docker Hub; name an `oci` source (`oci:DIR:TAG`, `docker-archive:FILE`) to use a copy on
//!   disk.

use kiln_model::plan::SourcePlan;
use kiln_model::values::{AbsPath, HttpUrl, Version};

/// An upstream artifact with no source known to be served: the spec key to fill, why, and
/// the options known, each with what it brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The spec key to set, e.g. `mesos.source`.
    pub key: String,
    /// Why there is no default.
    pub why: String,
    /// The known ways to fill it.
    pub options: &'static [KnownSource],
}

/// One known way to fill a [`Gap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSource {
    /// What it is.
    pub name: &'static str,
    /// What to write in the spec.
    pub set: &'static str,
    /// What it brings: layout, cgroup and iptables needs.
    pub brings: &'static str,
}

/// Why Mesos has no default. What is known (December 2026): AVENTER's clusterd builds of Mesos
/// 1.11 are published as `aventer-mesos` packages for Debian 11/12 and Ubuntu 22.04/24.04
/// (m3scluster/clusterd 5ce2c80 CMakeLists.txt l.95-111, l.148) from AVENTER's package
/// repository (`rpm.aventer.biz`, linked from the project's README); their exact URLs and
/// lifetime are promised nowhere kiln can check, so kiln builds none in.
const MESOS_WHY: &str = "no Mesos binary is served at a stable address: Mesosphere's package \
repository (repos.mesosphere.com) is gone since 2023 and Apache publishes only source releases";

/// The known sources of Mesos and what each brings.
const MESOS_OPTIONS: &[KnownSource] = &[
    KnownSource {
        name: "AVENTER's clusterd build of Mesos 1.11 (aventer-mesos .deb for Debian 12)",
        set: "mesos.source = { url = \"https://…/aventer-mesos_1.11.0-…debian12_amd64.deb\", \
sha256 = \"…\" } (or a `file` copy); its flavour, clusterd, is read from the name",
        brings: "/etc/mesos-agent/ and mesos-agent.service; runs on cgroup v2 (the host stays \
on it); its Depends (libapr1, libcurl4-nss-dev, libsvn-dev, libevent-openssl-2.1-7, libevent-pthreads-2.1-7) must be in base.debian.packages, as kiln unpacks a .deb without its dependencies",
    },
    KnownSource {
        name: "a Mesosphere package of Apache Mesos you keep (el7 .rpm or Debian/Ubuntu .deb)",
        set: "mesos.source = { file = \"vendor/mesos-1.11.0-2.0.1.el7.x86_64.rpm\" } (or a \
`url` on your mirror); its flavour, mesosphere, is read from the name",
        brings: "/etc/mesos-slave/ and mesos-slave.service; needs the legacy cgroup hierarchy \
(kiln boots its agents with systemd.unified_cgroup_hierarchy=0)",
    },
    KnownSource {
        name: "your own build of Apache Mesos or clusterd",
        set: "mesos.source = { file = \"DIR\" } holding the installed tree, and \
mesos.flavour = \"clusterd\" or \"mesosphere\" for its init wrapper's layout",
        brings: "what its packaging brings (see mesos.flavour)",
    },
];

/// Why a set that has neither a spec source nor a catalog entry has none: Mesos' known gap,
/// else the generic one (a version the catalog does not list).
pub fn gap(name: &str, version: &Version) -> Gap {
    let key = format!("{}.source", name.replace('-', "."));
    match name {
        "mesos" => Gap {
            key,
            why: MESOS_WHY.into(),
            options: MESOS_OPTIONS,
        },
        _ => Gap {
            why: format!("the catalog has no download of {name} {version}"),
            key,
            options: &[],
        },
    }
}

impl Gap {
    /// The gap in one paragraph: why, and each option on its own lines.
    pub fn text(&self) -> String {
        let mut s = format!("{}; set {}", self.why, self.key);
        if !self.options.is_empty() {
            s.push_str(". Known options:");
        }
        for o in self.options {
            s.push_str(&format!(
                "\n  - {}: {}\n    brings: {}",
                o.name, o.set, o.brings
            ));
        }
        s
    }
}

/// What one Calico release ships: the versions of the parts kiln installs. Below Calico 2.4
/// the calico/node tag is not the release number (it is calicoctl's: both were built from
/// the calicoctl repository), so image tags and plugin versions come from this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalicoRelease {
    /// The Calico release (`calico.version`), without `v`.
    pub release: &'static str,
    /// Tag of the `calico/node` image.
    pub node: &'static str,
    /// Release of the `calico` and `calico-ipam` CNI plugins (projectcalico/cni-plugin).
    pub cni: &'static str,
    /// Release of libnetwork-plugin: the `calico/node-libnetwork` image of Calico 1.x (in 2.x
    /// it runs inside calico/node).
    pub libnetwork: &'static str,
}

const fn rel(
    release: &'static str,
    node: &'static str,
    cni: &'static str,
    libnetwork: &'static str,
) -> CalicoRelease {
    CalicoRelease {
        release,
        node,
        cni,
        libnetwork,
    }
}

/// Every Calico release with Mesos support that kiln knows, release candidates left out.
/// Source: projectcalico/calico branch `release-v2.6` (461c961a), `_data/versions.yml` for
/// v2.1–v2.6 and the release pages `v2.0/releases/index.md` and `v1.6/releases/index.md`
/// for the older series (gathered in `builder/notes/issue8-upstream.md`, section 7).
pub const CALICO_RELEASES: &[CalicoRelease] = &[
    rel("1.6.0", "v0.23.0", "v1.4.3", "v0.10.0"),
    rel("1.6.1", "v0.23.1", "v1.4.4", "v0.10.0"),
    rel("2.0.0", "v1.0.0", "v1.5.5", "v1.0.0"),
    rel("2.0.1", "v1.0.1", "v1.5.5", "v1.0.0"),
    rel("2.0.2", "v1.0.2", "v1.5.6", "v1.0.0"),
    rel("2.1.0", "v1.1.0", "v1.6.0", "v1.1.0"),
    rel("2.1.1", "v1.1.0", "v1.6.1", "v1.1.0"),
    rel("2.1.2", "v1.1.0", "v1.6.1", "v1.1.0"),
    rel("2.1.3", "v1.1.1", "v1.6.1", "v1.1.0"),
    rel("2.1.4", "v1.1.3", "v1.7.0", "v1.1.0"),
    rel("2.1.5", "v1.1.3", "v1.8.0", "v1.1.0"),
    rel("2.2.0", "v1.2.0", "v1.8.3", "v1.1.0"),
    rel("2.2.1", "v1.2.1", "v1.8.3", "v1.1.0"),
    rel("2.3.0", "v1.3.0", "v1.9.1", "v1.1.0"),
    rel("2.4.0", "v2.4.0", "v1.10.0", "v1.1.0"),
    rel("2.4.1", "v2.4.1", "v1.10.0", "v1.1.0"),
    rel("2.5.0", "v2.5.0", "v1.10.0", "v1.1.0"),
    rel("2.5.1", "v2.5.1", "v1.10.0", "v1.1.0"),
    rel("2.6.0", "v2.6.0", "v1.11.0", "v1.1.0"),
    rel("2.6.1", "v2.6.1", "v1.11.0", "v1.1.0"),
    rel("2.6.2", "v2.6.1", "v1.11.0", "v1.1.0"),
    rel("2.6.3", "v2.6.3", "v1.11.1", "v1.1.1"),
    rel("2.6.4", "v2.6.4", "v1.11.2", "v1.1.2"),
    rel("2.6.5", "v2.6.5", "v1.11.2", "v1.1.2"),
    rel("2.6.6", "v2.6.6", "v1.11.2", "v1.1.2"),
    rel("2.6.7", "v2.6.7", "v1.11.2", "v1.1.2"),
    rel("2.6.8", "v2.6.8", "v1.11.4", "v1.1.2"),
    rel("2.6.9", "v2.6.9", "v1.11.5", "v1.1.2"),
    rel("2.6.10", "v2.6.10", "v1.11.6", "v1.1.3"),
    rel("2.6.11", "v2.6.11", "v1.11.7", "v1.1.3"),
    rel("2.6.12", "v2.6.12", "v1.11.8", "v1.1.3"),
];

/// The components of Calico release `version`, if the table has it.
pub fn calico_release(version: &Version) -> Option<&'static CalicoRelease> {
    CALICO_RELEASES
        .iter()
        .find(|r| Version::parse(r.release).is_some_and(|v| v.cmp(version).is_eq()))
}

/// The CNI reference plugins shipped beside Calico's (Mesos' CNI isolator needs `loopback`).
pub const CNI_PLUGINS_VERSION: &str = "0.8.7";

/// A catalog source: `url` unpacked with `strip` leading components, taking `paths`, under
/// `dest`. Catalog URLs are built from checked versions; one that does not parse is left
/// out (the component then has no catalog entry and the build names its missing source).
fn url(
    component: &str,
    version: &Version,
    u: String,
    strip: u32,
    paths: &[&str],
    dest: &str,
    mode: Option<u32>,
) -> Option<SourcePlan> {
    let mut s = SourcePlan::url(
        format!("catalog {component} {version}"),
        HttpUrl::parse(&u).ok()?,
    );
    s.strip_components = strip;
    s.paths = paths.iter().map(|p| p.to_string()).collect();
    s.dest = Some(AbsPath::parse(dest).ok()?);
    s.mode = mode;
    Some(s)
}

/// The version without a leading `v`.
fn bare(v: &Version) -> String {
    v.to_string().trim_start_matches('v').to_string()
}

/// etcd's release tarball: `etcd` and `etcdctl` into `/usr/bin`.
pub fn etcd(version: &Version) -> Vec<SourcePlan> {
    let v = bare(version);
    url(
        "etcd",
        version,
        format!(
            "https://github.com/etcd-io/etcd/releases/download/v{v}/etcd-v{v}-linux-amd64.tar.gz"
        ),
        1,
        &["etcd", "etcdctl"],
        "/usr/bin",
        Some(0o755),
    )
    .into_iter()
    .collect()
}

/// ZooKeeper's binary tarball under `home`.
pub fn zookeeper(version: &Version, home: &AbsPath) -> Vec<SourcePlan> {
    let v = bare(version);
    // From 3.5 the binary tarball is apache-zookeeper-V-bin.tar.gz.
    let name = if v.starts_with("3.4.") {
        format!("zookeeper-{v}")
    } else {
        format!("apache-zookeeper-{v}-bin")
    };
    url(
        "zookeeper",
        version,
        format!("https://archive.apache.org/dist/zookeeper/zookeeper-{v}/{name}.tar.gz"),
        1,
        &[],
        home.as_str(),
        None,
    )
    .into_iter()
    .collect()
}

/// Marathon's release image on Docker Hub: `mesosphere/marathon:vVERSION`. sbt-native-packager
/// builds it (`dockerRepository := Some("mesosphere")`) and tags it with `./version docker`,
/// `v` + the release (mesosphere/marathon v1.6.322 build.sbt l.174-179, `version` l.22-26).
pub fn marathon_image(version: &Version) -> String {
    format!("mesosphere/marathon:v{}", bare(version))
}

/// Docker's static binaries into `/usr/bin`.
pub fn docker(version: &Version) -> Vec<SourcePlan> {
    let v = bare(version);
    url(
        "docker",
        version,
        format!("https://download.docker.com/linux/static/stable/x86_64/docker-{v}.tgz"),
        1,
        &[],
        "/usr/bin",
        Some(0o755),
    )
    .into_iter()
    .collect()
}

/// The `calico` and `calico-ipam` plugins and the reference plugins, into `dir`.
pub fn calico_cni(version: &Version, dir: &AbsPath) -> Vec<SourcePlan> {
    let v = bare(version);
    let mut out: Vec<SourcePlan> = ["calico", "calico-ipam"]
        .iter()
        .filter_map(|bin| {
            url(
                "calico-cni",
                version,
                format!("https://github.com/projectcalico/cni-plugin/releases/download/v{v}/{bin}"),
                0,
                &[],
                &dir.child(bin),
                Some(0o755),
            )
        })
        .collect();
    let c = CNI_PLUGINS_VERSION;
    out.extend(url(
        "calico-cni",
        version,
        format!("https://github.com/containernetworking/plugins/releases/download/v{c}/cni-plugins-linux-amd64-v{c}.tgz"),
        0,
        &["loopback", "host-local", "portmap"],
        dir.as_str(),
        Some(0o755),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_releases_map_to_their_component_versions() {
        let v = |s: &str| Version::parse(s).unwrap();
        // Below 2.4 the calico/node tag is calicoctl's, not the release's.
        let r = calico_release(&v("2.0.2")).unwrap();
        assert_eq!(
            (r.node, r.cni, r.libnetwork),
            ("v1.0.2", "v1.5.6", "v1.0.0")
        );
        let r = calico_release(&v("1.6.1")).unwrap();
        assert_eq!(
            (r.node, r.cni, r.libnetwork),
            ("v0.23.1", "v1.4.4", "v0.10.0")
        );
        let r = calico_release(&v("v2.6.12")).unwrap();
        assert_eq!((r.node, r.cni), ("v2.6.12", "v1.11.8"));
        assert!(calico_release(&v("2.6.13")).is_none());
        for r in CALICO_RELEASES {
            for x in [r.release, r.node, r.cni, r.libnetwork] {
                assert!(Version::parse(x).is_some(), "{x}");
            }
        }
    }
}
