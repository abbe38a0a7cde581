//! Cross-check of directory keys: a directory the spec names must not be one kiln writes
//! itself (units, env files, flag dirs), nor lie on or under another component's directory.
//! Without it `zookeeper.conf_dir = "/etc/hosts"` failed while rendering, without a location,
//! and `calico.cni.config_dir = "/etc/mesos-slave"` put `calico.conf` among the agent's flags.

use kiln_model::plan::{MarathonRun, Plan};

use super::Checker;
use crate::diag::SpecSource;

/// Directories kiln renders into on its own account.
const KILN_DIRS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/kiln",
    "/etc/systemd",
    "/etc/mesos",
    "/etc/mesos-master",
    "/etc/mesos-slave",
    "/etc/mesos-agent",
    "/etc/default",
    "/etc/docker",
    "/etc/firewalld",
    "/usr/lib/sysusers.d",
    "/usr/lib/tmpfiles.d",
    "/var/lib/kiln",
    "/root/.ssh",
];

/// `a` is `b` or below it.
fn within(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && (b == "/" || a.as_bytes().get(b.len()) == Some(&b'/')))
}

impl Checker {
    pub(super) fn paths(&mut self, plan: &Plan, src: &SpecSource) {
        let mut dirs: Vec<(&str, String)> = Vec::new();
        if let Some(z) = &plan.zookeeper {
            dirs.push(("zookeeper.data_dir", z.data_dir.to_string()));
            dirs.push(("zookeeper.conf_dir", z.conf_dir.to_string()));
            dirs.push(("zookeeper.home", z.home.to_string()));
        }
        if let Some(e) = &plan.etcd {
            dirs.push(("etcd.data_dir", e.data_dir.to_string()));
        }
        if let Some(m) = &plan.mesos.master {
            dirs.push(("mesos.master.work_dir", m.work_dir.to_string()));
        }
        if let Some(a) = &plan.mesos.agent {
            dirs.push(("mesos.agent.work_dir", a.work_dir.to_string()));
        }
        if let Some(MarathonRun::Tarball { home, .. }) = plan.marathon.as_ref().map(|m| &m.run) {
            dirs.push(("marathon.home", home.to_string()));
        }
        if let Some(c) = &plan.calico.cni {
            dirs.push(("calico.cni.plugins_dir", c.plugins_dir.to_string()));
            dirs.push(("calico.cni.config_dir", c.config_dir.to_string()));
        }
        for (key, dir) in &dirs {
            if dir == "/" {
                continue;
            }
            if let Some(k) = KILN_DIRS.iter().find(|k| within(dir, k)) {
                self.err(
                    key,
                    format!("{key} = {dir} is inside {k}, where kiln writes its own files"),
                    "choose a directory of the component's own, e.g. the default",
                );
            }
        }
        for (i, (key, dir)) in dirs.iter().enumerate() {
            for (other, odir) in &dirs[..i] {
                if dir != "/" && odir != "/" && (within(dir, odir) || within(odir, dir)) {
                    // Point at the key the spec writes, not at a default it never mentions.
                    let ((key, dir), (other, odir)) = if src.has_key(key) || !src.has_key(other) {
                        ((key, dir), (other, odir))
                    } else {
                        ((other, odir), (key, dir))
                    };
                    self.err(
                        key,
                        format!("{key} = {dir} overlaps {other} = {odir}"),
                        format!("give {key} a directory of its own: two components writing one directory overwrite each other's files"),
                    );
                }
            }
        }
    }
}
