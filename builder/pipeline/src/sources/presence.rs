//! The presence check: every binary a profile's units start exists in the role's root
//! filesystem (base + layers) and is executable. Symlinks are followed inside the tree
//! (`/bin` → `usr/bin` on merged-/usr Debian), never outside it.

use std::fmt;

use kiln_layers::{EntryKind, FileTree};

use kiln_model::plan::{ComponentId, IptablesMode, Plan, Profile};

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
        let mut units: Vec<&str> = self.absent.iter().map(|a| a.unit.as_str()).collect();
        units.sort_unstable();
        units.dedup();
        writeln!(
            f,
            "the {} image would not start {} unit(s):",
            self.profile,
            units.len()
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

/// What is wrong with `exec` in `rootfs`, if anything: missing, not an executable file.
fn program_problem(rootfs: &FileTree, exec: &str) -> Option<String> {
    match resolve_path(rootfs, exec) {
        Err(why) => Some(why),
        Ok(real) => {
            let e = rootfs.get(&real);
            match e.map(|e| (&e.kind, e.mode)) {
                Some((EntryKind::File(_), mode)) if mode & 0o111 != 0 => None,
                Some((EntryKind::Hardlink(t), _)) => match rootfs.get(t) {
                    Some(e) if matches!(e.kind, EntryKind::File(_)) && e.mode & 0o111 != 0 => None,
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
                if real != exec {
                    format!("{p} (via {real})")
                } else {
                    p
                }
            })
        }
    }
}

/// iptables' nf_tables multi-call binary (iptables 1.8+ `iptables/Makefile.am`:
/// `sbin_PROGRAMS = xtables-legacy-multi`, `+= xtables-nft-multi` with nftables; before 1.8
/// the legacy one was `xtables-multi`, as on CentOS 7). RHEL 8 renames its
/// `iptables-nft` links to `iptables` (its `iptables.spec`: "drop all legacy tools", "rename
/// nft versions to standard name"), RHEL 9 points the `iptables` alternative at it.
const NFT_MULTI: &str = "xtables-nft-multi";

/// A legacy-mode profile's iptables programs (`/usr/sbin/iptables`, `ip6tables` and their
/// `-save`/`-restore`) in `rootfs`, with kiln's alternatives links over the base: each must
/// be an executable and not iptables' nf_tables variant.
fn legacy_iptables_absent(plan: &Plan, rootfs: &FileTree) -> Vec<Absent> {
    let debian = crate::components::iptables::debian_layout(plan.base.family);
    let calico = &plan.calico.version;
    crate::components::iptables::programs()
        .into_iter()
        .filter_map(|exec| {
            let problem = program_problem(rootfs, &exec).or_else(|| {
                let real = resolve_path(rootfs, &exec).ok()?;
                real.ends_with(&format!("/{NFT_MULTI}"))
                    .then(|| format!("iptables' nf_tables variant (via {real})"))
            })?;
            let help = if debian {
                format!("calico-node of Calico {calico} writes legacy iptables rules, so kiln points {exec} at its -legacy variant: the base needs Debian's iptables package (add iptables to base.debian.packages; docker.io depends on it)")
            } else {
                format!("calico-node of Calico {calico} writes legacy iptables rules and this RHEL-family base's iptables is not legacy (RHEL 8 and 9 ship no legacy iptables): use a Debian base or CentOS 7, or run no calico-node on this profile")
            };
            Some(Absent {
                unit: "calico-node.service".into(),
                component: ComponentId::Iptables.to_string(),
                path: exec,
                problem,
                help,
            })
        })
        .collect()
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
            let problem = program_problem(rootfs, exec);
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
    if profile.iptables.mode == IptablesMode::Legacy {
        absent.extend(legacy_iptables_absent(plan, rootfs));
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
