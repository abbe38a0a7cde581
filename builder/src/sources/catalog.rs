//! The built-in catalog: for each component and version, where its upstream artifacts are
//! and what to take from them, so a user with internet only names versions. Digests are not
//! built in: the first fetch records them in `kiln.lock` (and reports it); from then on the
//! lock pins them.
//!
//! Air-gapped sites mirror these URLs (`--mirror URL|DIR` maps `https://HOST/PATH` to
//! `MIRROR/HOST/PATH`) or import the files (`kiln cache import`).
//!
//! Known gaps, said plainly:
//! - **Mesos**: Mesosphere's package repository (`repos.mesosphere.com`) is gone; the entry
//!   keeps its historical URL so a mirror holding a copy at that path works. Otherwise name a
//!   `mesos.source` (an `.rpm`/`.deb`/tarball you host).
//! - **Marathon**: the build hash in its download URL is known only for the versions listed
//!   in [`MARATHON_BUILDS`]; other versions need `marathon.source`.
//! - Images (`calico/node`, `calico/node-libnetwork`) are pulled from Docker Hub; name an
//!   `oci` source (`oci:DIR:TAG`, `docker-archive:FILE`) to use a copy on disk.

use kiln_model::plan::SourcePlan;
use kiln_model::values::{AbsPath, HttpUrl, Version};

/// Marathon release → build hash of its tarball name.
pub const MARATHON_BUILDS: &[(&str, &str)] = &[
    ("1.6.322", "2bf46b341"),
    ("1.6.549", "aabf74302"),
    ("1.7.189", "48bfd6000"),
];

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

/// Marathon's tarball under `/usr/share/marathon`, for the versions in [`MARATHON_BUILDS`].
pub fn marathon(version: &Version) -> Vec<SourcePlan> {
    let v = bare(version);
    let Some((_, hash)) = MARATHON_BUILDS.iter().find(|(x, _)| *x == v) else {
        return Vec::new();
    };
    url(
        "marathon",
        version,
        format!(
            "https://downloads.mesosphere.io/marathon/builds/{v}-{hash}/marathon-{v}-{hash}.tgz"
        ),
        1,
        &[],
        "/usr/share/marathon",
        None,
    )
    .into_iter()
    .collect()
}

/// Mesosphere's historical EL7 rpm.
pub fn mesos(version: &Version) -> Vec<SourcePlan> {
    let v = bare(version);
    url(
        "mesos",
        version,
        format!("http://repos.mesosphere.com/el/7/x86_64/RPMS/mesos-{v}-2.0.1.el7.x86_64.rpm"),
        0,
        &[],
        "/",
        None,
    )
    .into_iter()
    .collect()
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
