//! The presence check: every binary a profile's units start exists in the role's root
//! filesystem (base + layers) and is executable. Symlinks are followed inside the tree
//! (`/bin` → `usr/bin` on merged-/usr Debian), never outside it.

use std::fmt;

use kiln_layers::{EntryKind, FileTree};

use kiln_model::plan::{ComponentId, Plan, Profile};

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

/// The spec key that gives a unit's binary and a version to name: by component, and for the
/// units that run the Docker CLI, Docker's; `None` when the base must provide it.
pub fn source_key(
    plan: &Plan,
    component: ComponentId,
    exec: &str,
) -> Option<(&'static str, String)> {
    let id = if exec == crate::components::DOCKER_CLI {
        ComponentId::Docker
    } else {
        component
    };
    crate::components::component(id).and_then(|c| c.program_source(plan))
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
    check_programs(plan, profile, rootfs, None)
}

/// Like [`check_presence`], and also every other program the profile's unit files in `units`
/// run (`ExecStartPre=`, `ExecStop=`, `ExecReload=`, …).
pub fn check_presence_of_units(
    plan: &Plan,
    profile: &Profile,
    rootfs: &FileTree,
    units: &FileTree,
) -> Result<(), PresenceError> {
    check_programs(plan, profile, rootfs, Some(units))
}

/// The absolute programs the `Exec*=` lines of a unit run (prefixes `-@+!:` stripped).
pub fn unit_programs(unit: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in unit.lines().filter(|l| l.starts_with("Exec")) {
        let Some((_, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim_start_matches(['-', '@', '+', '!', ':']);
        if let Some(prog) = v.split_whitespace().next().filter(|p| p.starts_with('/')) {
            if !out.iter().any(|p| p == prog) {
                out.push(prog.to_string());
            }
        }
    }
    out
}

fn check_programs(
    plan: &Plan,
    profile: &Profile,
    rootfs: &FileTree,
    units: Option<&FileTree>,
) -> Result<(), PresenceError> {
    let mut absent = Vec::new();
    for s in &profile.services {
        let mut programs = vec![s.exec.to_string()];
        let unit_file = units.and_then(|u| u.get(&format!("/etc/systemd/system/{}", s.unit)));
        for p in unit_file
            .and_then(|e| e.data())
            .map(|d| unit_programs(&String::from_utf8_lossy(d)))
            .unwrap_or_default()
        {
            if !programs.contains(&p) {
                programs.push(p);
            }
        }
        for exec in &programs {
            let problem = match resolve_path(rootfs, exec) {
                Err(why) => Some(why),
                Ok(real) => {
                    let e = rootfs.get(&real);
                    match e.map(|e| (&e.kind, e.mode)) {
                        Some((EntryKind::File(_), mode)) if mode & 0o111 != 0 => None,
                        Some((EntryKind::Hardlink(t), _)) => match rootfs.get(t) {
                            Some(e)
                                if matches!(e.kind, EntryKind::File(_)) && e.mode & 0o111 != 0 =>
                            {
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
                        if real != *exec {
                            format!("{p} (via {real})")
                        } else {
                            p
                        }
                    })
                }
            };
            if let Some(problem) = problem {
                let help = match source_key(plan, s.component, exec) {
                    Some((key, version)) if exec == s.exec.as_str() => format!(
                        "add a {key} that places {exec}{version} (url/file/deb with dest), or a base package that ships it"
                    ),
                    _ => format!("{exec} comes from the base: add the package that ships it to base.debian.packages, or use a base image that has it"),
                };
                absent.push(Absent {
                    unit: s.unit.clone(),
                    component: s.component.to_string(),
                    path: exec.clone(),
                    problem,
                    help,
                });
            }
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
    fn unit_programs_are_every_exec_line() {
        let unit = "[Service]\nExecStartPre=-/usr/bin/docker rm -f x\nExecStart=/usr/bin/docker run x\n\
                    ExecReload=/bin/kill -s HUP $MAINPID\nExecStop=@/bin/true true\nEnvironment=A=/x\n";
        assert_eq!(
            unit_programs(unit),
            ["/usr/bin/docker", "/bin/kill", "/bin/true"]
        );
    }

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
