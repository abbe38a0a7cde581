//! Kickstarts per host (`dist/kickstart/HOST.ks`) for Anaconda on CentOS 7, Stream 8 and
//! Stream 9, from the plan's [`KickstartPlan`], the host and its profile.
//!
//! Every mode sets the network from the spec matched by MAC (`network --device=MAC
//! --bootproto=static …`), the hostname (the node name, as in the seed), root's password (`rootpw --iscrypted`
//! from the spec's hash only, else `rootpw --lock`), root's SSH keys (`sshkey` on 8 and 9; a
//! `%post` writing `authorized_keys` on 7, whose Anaconda has no `sshkey`), the time zone,
//! SELinux, `firewall --port=` for exactly the ports the host's profile opens, `services
//! --enabled=` for its units, the disk layout (`autopart` unless the spec names partitions),
//! the bootloader and a reboot. The role itself comes by [`KsMode`]:
//!
//! - `image`: `liveimg --url=… --checksum=SHA256` of the role's rootfs tarball (a name that
//!   Anaconda takes: [`LIVEIMG_SUFFIXES`]);
//! - `bootc`: `ostreecontainer --url=REF` (Stream 9 only; the spec checks the base is bootc);
//! - `packages`: `url`/`repo` and `%packages`, then `%post` writes the role's files as kiln
//!   rendered them (directories, files base64, symlinks, with modes and owners).
//!
//! Every mode's `%post` writes the host's identity files. kiln checks what `ksvalidator`
//! does not: port syntax, tarball suffixes, checksum and hash format, and that nothing put on
//! a kickstart line can end it or add an argument.

use base64::Engine;
use kiln_model::plan::{HostPlan, KickstartPlan, Profile, Proto};
use kiln_model::templates::Templates;
use kiln_model::values::{KsMode, KsTarget, PartFs};
use serde::Serialize;

use crate::cloudinit::{IdentityFile, AUTHORIZED_KEYS};
use crate::{Error, Result};

/// Tarball names Anaconda's `liveimg` unpacks (anything else is taken for a disk image).
pub const LIVEIMG_SUFFIXES: &[&str] = &[
    ".tar", ".tgz", ".tar.gz", ".txz", ".tar.xz", ".tbz", ".tar.bz2",
];

/// The rootfs tarball an `image` kickstart installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveImage {
    /// Its path under the published dist (`boot/agent/rootfs.tar.gz`).
    pub path: String,
    /// sha256 of the tarball (hex).
    pub sha256: String,
}

/// One entry of the role's tree, written by a `packages` kickstart's `%post`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostEntry {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File(IdentityFile),
    Symlink {
        path: String,
        target: String,
    },
}

/// What a host's kickstart is made from.
#[derive(Debug, Clone, Copy)]
pub struct KickstartInputs<'a> {
    pub settings: &'a KickstartPlan,
    pub host: &'a HostPlan,
    pub profile: &'a Profile,
    /// The host's identity files, written in every mode.
    pub identity: &'a [IdentityFile],
    /// The role's tree: used in `packages` mode.
    pub role: &'a [PostEntry],
    /// `image` mode: the role's rootfs tarball.
    pub liveimg: Option<&'a LiveImage>,
    /// `bootc` mode: the role image's reference in the cluster registry.
    pub bootc_ref: Option<&'a str>,
}

/// A rendered kickstart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kickstart {
    pub text: String,
    /// It sets root's password hash or SSH keys: write it mode 0600.
    pub secrets: bool,
}

const TEMPLATES: &[(&str, &str)] = &[("kickstart", include_str!("../templates/kickstart.ks.j2"))];

/// Whether Anaconda's `liveimg` takes a tarball of this name.
pub fn liveimg_name_ok(name: &str) -> bool {
    LIVEIMG_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `s` as one shell word in single quotes; refused when it holds a quote or a control
/// character (nothing kiln renders has one).
fn sh(s: &str, what: &str) -> Result<String> {
    if s.is_empty() || s.chars().any(|c| c == '\'' || c.is_control()) {
        return Err(Error::Unsafe {
            what: what.into(),
            value: s.escape_debug().to_string(),
        });
    }
    Ok(format!("'{s}'"))
}

/// A value that goes on a kickstart line as it is: no spaces, quotes, `#` or control
/// characters (any of them would end the value or start a comment).
fn word(s: &str, what: &str) -> Result<String> {
    let bad = s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '#' | '\\'));
    if bad {
        return Err(Error::Unsafe {
            what: what.into(),
            value: s.escape_debug().to_string(),
        });
    }
    Ok(s.to_string())
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    std::net::Ipv4Addr::from(bits)
}

/// Renders the kickstart of `inputs.host`.
pub fn render(inputs: &KickstartInputs) -> Result<Kickstart> {
    let KickstartInputs {
        settings: k,
        host,
        profile,
        ..
    } = *inputs;
    let templates = Templates::new(TEMPLATES)?;
    let mode_needs = |what: &'static str| Error::ModeInput {
        mode: k.mode.as_str(),
        what,
    };
    if k.mode == KsMode::Bootc && k.target != KsTarget::Stream9 {
        return Err(Error::BootcTarget {
            target: k.target.as_str(),
        });
    }

    let mut network = format!(
        "--device={} --bootproto=static --ip={} --netmask={}",
        host.mac,
        host.ip(),
        netmask(host.prefix())
    );
    if let Some(g) = host.gateway {
        network.push_str(&format!(" --gateway={g}"));
    }
    if !host.dns.is_empty() {
        let dns: Vec<String> = host.dns.iter().map(ToString::to_string).collect();
        network.push_str(&format!(" --nameserver={}", dns.join(",")));
    }
    // The node name, as the seed sets it: the host's `/etc/hostname`, which %post writes too.
    network.push_str(&format!(
        " --hostname={} --activate",
        crate::cloudinit::node_name(host, inputs.identity)
    ));

    // Exactly the ports the profile opens to other hosts; IP-in-IP has no port (the role's
    // firewalld zone opens protocol 4).
    let mut ports: Vec<String> = Vec::new();
    for s in &profile.services {
        for p in s.ports.iter().filter(|p| !p.local) {
            let proto = match p.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
                Proto::Ipip => continue,
            };
            if p.port == 0 {
                return Err(Error::Port {
                    unit: s.unit.clone(),
                });
            }
            // `PORT-PORT:proto` for a range: firewall-offline-cmd(1), which Anaconda runs
            // with these entries, takes `--port=<port>[-<port>]:<protocol>`.
            let entry = format!("{}:{proto}", p.number());
            if !ports.contains(&entry) {
                ports.push(entry);
            }
        }
    }
    let firewall = if ports.is_empty() {
        "--enabled".to_string()
    } else {
        format!("--enabled --port={}", ports.join(","))
    };
    let services: Vec<String> = profile
        .services
        .iter()
        .map(|s| word(&s.unit, "unit name"))
        .collect::<Result<_>>()?;

    let disk = k.disk.as_deref().map(|d| word(d, "disk")).transpose()?;
    let clearpart = match &disk {
        Some(d) => format!("--all --initlabel --drives={d}"),
        None => "--all --initlabel".to_string(),
    };
    let mut bootloader = match &disk {
        Some(d) => format!("--location=mbr --boot-drive={d}"),
        None => "--location=mbr".to_string(),
    };
    // What the profile's programs need on the kernel command line (the Mesos agent's legacy
    // cgroup hierarchy), as on kiln's own disks and PXE configs.
    if !profile.kernel_args.is_empty() {
        let args: Vec<String> = profile
            .kernel_args
            .iter()
            .map(|k| word(&k.arg, "kernel argument"))
            .collect::<Result<_>>()?;
        bootloader.push_str(&format!(" --append=\"{}\"", args.join(" ")));
    }
    let partitions: Vec<String> = k
        .partitions
        .iter()
        .map(|p| {
            let mut s = format!(
                "{} --fstype={} --size={}",
                word(&p.mount, "mount point")?,
                p.fstype,
                p.size_mib
            );
            if p.grow {
                s.push_str(" --grow");
            }
            if p.fstype == PartFs::Swap && p.mount != "swap" {
                return Err(Error::Unsafe {
                    what: "swap mount point".into(),
                    value: p.mount.clone(),
                });
            }
            Ok(s)
        })
        .collect::<Result<_>>()?;

    let access = &host.access;
    // crypt(3)'s alphabet (checked by the type) has nothing that ends a kickstart word.
    let rootpw = access
        .root_password_hash
        .as_ref()
        .map(|h| h.expose().to_string());
    let key_lines: Vec<String> = access
        .ssh_authorized_keys
        .iter()
        .map(|k| {
            let l = k.line();
            if l.contains(['"', '\\']) {
                Err(Error::Unsafe {
                    what: "SSH key (a quote in its comment)".into(),
                    value: k.to_string(),
                })
            } else {
                Ok(l)
            }
        })
        .collect::<Result<_>>()?;
    // RHEL 7's Anaconda has no `sshkey`: %post writes the file there.
    let (sshkeys, keys_in_post) = if k.target == KsTarget::Centos7 {
        (Vec::new(), !key_lines.is_empty())
    } else {
        (key_lines.clone(), false)
    };

    let liveimg = match k.mode {
        KsMode::Image => {
            let l = inputs
                .liveimg
                .ok_or_else(|| mode_needs("the rootfs tarball"))?;
            if !liveimg_name_ok(&l.path) {
                return Err(Error::LiveimgName {
                    name: l.path.clone(),
                });
            }
            if l.sha256.len() != 64 || !l.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Checksum {
                    value: l.sha256.clone(),
                });
            }
            Some(LiveimgData {
                url: word(&format!("{}/{}", k.url, l.path), "liveimg URL")?,
                sha256: l.sha256.to_ascii_lowercase(),
            })
        }
        _ => None,
    };
    let bootc = match k.mode {
        KsMode::Bootc => Some(word(
            inputs
                .bootc_ref
                .ok_or_else(|| mode_needs("the role image's registry reference"))?,
            "image reference",
        )?),
        _ => None,
    };
    let (install_url, repos, packages) = match k.mode {
        KsMode::Packages => {
            let url = k
                .install_url
                .as_ref()
                .ok_or_else(|| mode_needs("install_url"))?;
            let repos = k
                .repos
                .iter()
                .map(|r| Repo {
                    name: r.name.to_string(),
                    url: r.url.to_string(),
                })
                .collect();
            let packages = k
                .packages
                .iter()
                .map(|p| word(p, "package"))
                .collect::<Result<Vec<_>>>()?;
            (Some(url.to_string()), repos, Some(packages))
        }
        _ => (None, Vec::new(), None),
    };

    let mut post = Vec::new();
    if k.mode == KsMode::Packages {
        post.push(PostSection {
            about: format!(
                "The files of profile {} as kiln rendered them.",
                profile.name
            ),
            entries: post_entries(inputs.role)?,
        });
    }
    let identity: Vec<PostEntry> = inputs
        .identity
        .iter()
        .cloned()
        .map(PostEntry::File)
        .collect();
    post.push(PostSection {
        about: format!("The identity of host {}.", host.name),
        entries: post_entries(&identity)?,
    });
    if keys_in_post {
        let keys = PostEntry::File(IdentityFile {
            path: AUTHORIZED_KEYS.into(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            data: key_lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into_bytes(),
        });
        post.push(PostSection {
            about: "Root's SSH keys (CentOS 7's Anaconda has no sshkey command).".into(),
            entries: post_entries(&[
                PostEntry::Dir {
                    path: "/root/.ssh".into(),
                    mode: 0o700,
                    uid: 0,
                    gid: 0,
                },
                keys,
            ])?,
        });
    }

    let secrets = !access.is_empty();
    let text = templates.render(
        "kickstart",
        KsData {
            host: host.name.as_str(),
            profile: &profile.name,
            target: k.target.as_str(),
            mode: k.mode.as_str(),
            secrets,
            timezone: word(&k.timezone, "time zone")?,
            network,
            rootpw,
            sshkeys,
            selinux: k.selinux.as_str(),
            firewall,
            services: services.join(","),
            clearpart,
            disk,
            partitions,
            bootloader,
            liveimg,
            bootc,
            install_url,
            repos,
            packages,
            post,
        },
    )?;
    Ok(Kickstart { text, secrets })
}

/// The entries as the template writes them: paths quoted, modes octal, file data base64 in
/// lines of 76, a file's parent directory made first when no entry makes it.
fn post_entries(entries: &[PostEntry]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            PostEntry::Dir { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    for e in entries {
        match e {
            PostEntry::Dir {
                path,
                mode,
                uid,
                gid,
            } => out.push(Entry {
                kind: "dir",
                path: sh(path, "directory")?,
                mode: format!("{:04o}", mode & 0o7777),
                uid: *uid,
                gid: *gid,
                data: Vec::new(),
                target: String::new(),
            }),
            PostEntry::File(f) => {
                let parent = match f.path.rfind('/') {
                    Some(0) | None => None,
                    Some(i) => Some(f.path[..i].to_string()),
                };
                if let Some(p) = parent.filter(|p| !dirs.contains(p)) {
                    out.push(Entry {
                        kind: "dir",
                        path: sh(&p, "directory")?,
                        mode: "0755".into(),
                        uid: 0,
                        gid: 0,
                        data: Vec::new(),
                        target: String::new(),
                    });
                    dirs.push(p);
                }
                let enc = b64.encode(&f.data);
                out.push(Entry {
                    kind: "file",
                    path: sh(&f.path, "file")?,
                    mode: format!("{:04o}", f.mode & 0o7777),
                    uid: f.uid,
                    gid: f.gid,
                    data: enc
                        .as_bytes()
                        .chunks(76)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect(),
                    target: String::new(),
                });
            }
            PostEntry::Symlink { path, target } => out.push(Entry {
                kind: "symlink",
                path: sh(path, "symlink")?,
                mode: String::new(),
                uid: 0,
                gid: 0,
                data: Vec::new(),
                target: sh(target, "symlink target")?,
            }),
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct LiveimgData {
    url: String,
    sha256: String,
}

#[derive(Serialize)]
struct Repo {
    name: String,
    url: String,
}

#[derive(Serialize)]
struct Entry {
    kind: &'static str,
    path: String,
    mode: String,
    uid: u32,
    gid: u32,
    data: Vec<String>,
    target: String,
}

#[derive(Serialize)]
struct PostSection {
    about: String,
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct KsData<'a> {
    host: &'a str,
    profile: &'a str,
    target: &'static str,
    mode: &'static str,
    secrets: bool,
    timezone: String,
    network: String,
    rootpw: Option<String>,
    sshkeys: Vec<String>,
    selinux: &'static str,
    firewall: String,
    services: String,
    clearpart: String,
    disk: Option<String>,
    partitions: Vec<String>,
    bootloader: String,
    liveimg: Option<LiveimgData>,
    bootc: Option<String>,
    install_url: Option<String>,
    repos: Vec<Repo>,
    packages: Option<Vec<String>>,
    post: Vec<PostSection>,
}

#[cfg(test)]
#[path = "kickstart_tests.rs"]
mod tests;
