//! The presence check: every binary a profile's units start exists in the role's root
//! filesystem (base + layers) and is executable. Symlinks are followed inside the tree
//! (`/bin` → `usr/bin` on merged-/usr Debian), never outside it.

use std::fmt;

use kiln_layers::{EntryKind, FileTree};

use crate::plan::{Plan, Profile};

/// One unit whose binary is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    pub unit: String,
    pub component: String,
    pub path: String,
    /// What is wrong (`missing`, `not executable`, `a directory`, `dangling symlink …`).
    pub problem: String,
    /// Which source to add.
    pub help: String,
}

/// The profile's image would not start its services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceError {
    pub profile: String,
    pub absent: Vec<Absent>,
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the {} image would not start {} unit(s):",
            self.profile,
            self.absent.len()
        )?;
        for a in &self.absent {
            writeln!(f, "  - {}: {} is {}", a.unit, a.path, a.problem)?;
            writeln!(f, "    help: {}", a.help)?;
        }
        Ok(())
    }
}

impl std::error::Error for PresenceError {}

/// The spec key that gives a unit's binary: by component, and by path for the units that
/// run the Docker CLI or a shell.
pub fn source_key(component: &str, exec: &str) -> &'static str {
    if exec == crate::components::DOCKER_CLI {
        return "docker.source";
    }
    match component {
        "zookeeper" => "zookeeper.source",
        "etcd" => "etcd.source",
        "mesos" | "mesos-master" | "mesos-agent" => "mesos.source",
        "marathon" => "marathon.source",
        "docker" => "docker.source",
        "calico" | "calico-cni" => "calico.cni.source",
        _ => "base.debian.packages",
    }
}

/// Follows `path` inside `tree` (symlinks in any component, at most 40 hops). Returns the
/// final path or why it cannot be followed.
pub fn resolve_path(tree: &FileTree, path: &str) -> Result<String, String> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(part);
        let here = format!("/{}", cur.join("/"));
        match tree.get(&here).map(|e| &e.kind) {
            Some(EntryKind::Symlink(target)) => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("a symlink loop at {here}"));
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for p in target.split('/').filter(|p| !p.is_empty()).rev() {
                    todo.push(p.to_string());
                }
            }
            Some(_) => {}
            None => {
                return Err(if here == path {
                    "missing".into()
                } else {
                    format!("missing (no {here} after following links)")
                })
            }
        }
    }
    Ok(format!("/{}", cur.join("/")))
}

/// Checks that every `Service.exec` of `profile` exists in `rootfs` and is executable.
pub fn check_presence(
    plan: &Plan,
    profile: &Profile,
    rootfs: &FileTree,
) -> Result<(), PresenceError> {
    let mut absent = Vec::new();
    for s in &profile.services {
        let problem = match resolve_path(rootfs, &s.exec) {
            Err(why) => Some(why),
            Ok(real) => {
                let e = rootfs.get(&real);
                match e.map(|e| (&e.kind, e.mode)) {
                    Some((EntryKind::File(_), mode)) if mode & 0o111 != 0 => None,
                    Some((EntryKind::Hardlink(t), _)) => match rootfs.get(t) {
                        Some(e) if matches!(e.kind, EntryKind::File(_)) && e.mode & 0o111 != 0 => {
                            None
                        }
                        _ => Some(format!(
                            "a hard link to {t}, which is not an executable file"
                        )),
                    },
                    Some((EntryKind::File(_), mode)) => {
                        Some(format!("not executable (mode {mode:04o})"))
                    }
                    Some((k, _)) => Some(format!("a {}, not a file", k.name())),
                    None => Some("missing".into()),
                }
                .map(|p| {
                    if real != s.exec {
                        format!("{p} (via {real})")
                    } else {
                        p
                    }
                })
            }
        };
        if let Some(problem) = problem {
            let key = source_key(s.component, &s.exec);
            let help = if key == "base.debian.packages" {
                format!("{} comes from the base: add the package that ships it to base.debian.packages, or use a base image that has it", s.exec)
            } else {
                let version = match s.component {
                    "etcd" => format!(" (etcd {})", plan.spec.etcd.version),
                    "docker" => format!(" (Docker {})", plan.spec.docker.version),
                    _ => String::new(),
                };
                format!(
                    "add a {key} that places {}{version} (url/file/deb with dest), or a base package that ships it",
                    s.exec
                )
            };
            absent.push(Absent {
                unit: s.unit.clone(),
                component: s.component.to_string(),
                path: s.exec.clone(),
                problem,
                help,
            });
        }
    }
    if absent.is_empty() {
        Ok(())
    } else {
        Err(PresenceError {
            profile: profile.name.clone(),
            absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_layers::Entry;

    #[test]
    fn follows_merged_usr_links() {
        let mut t = FileTree::new();
        t.insert("/bin", Entry::symlink("usr/bin")).unwrap();
        t.insert("/usr/bin/sh", Entry::symlink("dash")).unwrap();
        t.insert("/usr/bin/dash", Entry::file("x", 0o755)).unwrap();
        t.insert("/loop", Entry::symlink("/loop")).unwrap();
        assert_eq!(resolve_path(&t, "/bin/sh").unwrap(), "/usr/bin/dash");
        assert!(resolve_path(&t, "/loop").unwrap_err().contains("loop"));
        assert!(resolve_path(&t, "/bin/nope").is_err());
    }
}
