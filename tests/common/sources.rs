//! A spec of one host with every component off but those a test sets, and the library's source
//! resolution on it (`kiln_pipeline::sources::resolve`) with a cache of its own: the sources
//! tests of both tiers start here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_layers::{Entry, FileTree};
use kiln_pipeline::plan::Plan;
use kiln_pipeline::sources::{self, Error, SourceOptions};

/// The spec's head: one master-agent host; ZooKeeper, Mesos, Marathon and Calico's node and
/// libnetwork off. A test appends the sources of etcd, Docker and the CNI plugins.
pub const HEAD: &str = r#"
[cluster]
name = "t"

[base]
source = { base = true }

[[hosts]]
name = "n1"
roles = ["master", "agent"]
address = "10.0.0.11/24"
mac = "52:54:00:00:00:01"

[zookeeper]
enabled = false
[mesos.master]
enabled = false
[mesos.agent]
enabled = false
[marathon]
enabled = false
[calico.node]
enabled = false
[calico.libnetwork]
enabled = false
"#;

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub spec_path: PathBuf,
    pub opts: SourceOptions,
}

pub fn setup(spec: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cluster.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let mut opts = SourceOptions::new(dir.path());
    opts.cache_dir = dir.path().join("cache");
    opts.http.attempts = 3;
    opts.http.initial_backoff = Duration::from_millis(10);
    opts.http.read_timeout = Duration::from_secs(10);
    Setup {
        dir,
        spec_path,
        opts,
    }
}

pub fn plan_of(path: &Path) -> Plan {
    let src = kiln_pipeline::read_spec(Some(path)).unwrap();
    kiln_pipeline::validate::load(&src)
        .unwrap_or_else(|e| panic!("{e}"))
        .plan
}

impl Setup {
    pub fn resolve(&self) -> Result<sources::Resolved, Error> {
        sources::resolve(&plan_of(&self.spec_path), self.dir.path(), &self.opts)
    }
    pub fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.opts.cache_dir.join("blobs/sha256"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

pub fn file<'a>(t: &'a FileTree, p: &str) -> &'a Entry {
    t.get(p).unwrap_or_else(|| {
        panic!(
            "{p} missing; tree has {:?}",
            t.iter().map(|(p, _)| p).collect::<Vec<_>>()
        )
    })
}
