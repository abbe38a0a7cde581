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

use crate::plan::Plan;
use crate::spec::Source;

/// Marathon release → build hash of its tarball name.
pub const MARATHON_BUILDS: &[(&str, &str)] = &[
    ("1.6.322", "2bf46b341"),
    ("1.6.549", "aabf74302"),
    ("1.7.189", "48bfd6000"),
];

/// The CNI reference plugins shipped beside Calico's (Mesos' CNI isolator needs `loopback`).
pub const CNI_PLUGINS_VERSION: &str = "0.8.7";

fn url(u: String, strip: u32, paths: &[&str], dest: &str, mode: Option<u32>) -> Source {
    Source {
        url: Some(u),
        strip_components: strip,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        dest: Some(dest.into()),
        mode,
        ..Source::default()
    }
}

/// The catalog's sources for `component` of this plan (empty when it has none).
pub fn sources(plan: &Plan, component: &str) -> Vec<Source> {
    let s = &plan.spec;
    match component {
        "etcd" => {
            let v = s.etcd.version.trim_start_matches('v');
            vec![url(
                format!("https://github.com/etcd-io/etcd/releases/download/v{v}/etcd-v{v}-linux-amd64.tar.gz"),
                1,
                &["etcd", "etcdctl"],
                "/usr/bin",
                Some(0o755),
            )]
        }
        "zookeeper" => {
            let v = &s.zookeeper.version;
            let home = s.zookeeper.home.trim_end_matches('/');
            // From 3.5 the binary tarball is apache-zookeeper-V-bin.tar.gz.
            let name = if v.starts_with("3.4.") {
                format!("zookeeper-{v}")
            } else {
                format!("apache-zookeeper-{v}-bin")
            };
            vec![url(
                format!("https://archive.apache.org/dist/zookeeper/zookeeper-{v}/{name}.tar.gz"),
                1,
                &[],
                home,
                None,
            )]
        }
        "marathon" => {
            let v = &s.marathon.version;
            let Some((_, hash)) = MARATHON_BUILDS.iter().find(|(x, _)| x == v) else {
                return Vec::new();
            };
            vec![url(
                format!("https://downloads.mesosphere.io/marathon/builds/{v}-{hash}/marathon-{v}-{hash}.tgz"),
                1,
                &[],
                "/usr/share/marathon",
                None,
            )]
        }
        "mesos" => {
            let v = &s.mesos.version;
            vec![url(
                format!(
                    "http://repos.mesosphere.com/el/7/x86_64/RPMS/mesos-{v}-2.0.1.el7.x86_64.rpm"
                ),
                0,
                &[],
                "/",
                None,
            )]
        }
        "docker" => {
            let v = &s.docker.version;
            vec![url(
                format!("https://download.docker.com/linux/static/stable/x86_64/docker-{v}.tgz"),
                1,
                &[],
                "/usr/bin",
                Some(0o755),
            )]
        }
        "calico-cni" => {
            let v = s.calico.cni.version.trim_start_matches('v');
            let dir = plan.derived.cni_plugins_dir.trim_end_matches('/');
            let mut out: Vec<Source> = ["calico", "calico-ipam"]
                .iter()
                .map(|bin| Source {
                    url: Some(format!(
                        "https://github.com/projectcalico/cni-plugin/releases/download/v{v}/{bin}"
                    )),
                    dest: Some(format!("{dir}/{bin}")),
                    mode: Some(0o755),
                    ..Source::default()
                })
                .collect();
            let c = CNI_PLUGINS_VERSION;
            out.push(url(
                format!("https://github.com/containernetworking/plugins/releases/download/v{c}/cni-plugins-linux-amd64-v{c}.tgz"),
                0,
                &["loopback", "host-local", "portmap"],
                dir,
                Some(0o755),
            ));
            out
        }
        _ => Vec::new(),
    }
}

/// The image a container component runs, as a registry reference (`docker.io/…`).
pub fn image(plan: &Plan, component: &str) -> Option<String> {
    let s = &plan.spec;
    let r = match component {
        "calico-node" => s.calico.node.image.clone().unwrap_or_else(|| {
            format!("calico/node:v{}", s.calico.version.trim_start_matches('v'))
        }),
        "calico-libnetwork" => s
            .calico
            .libnetwork
            .image
            .clone()
            .unwrap_or_else(|| "calico/node-libnetwork:v0.9.0".into()),
        _ => return None,
    };
    Some(r)
}
