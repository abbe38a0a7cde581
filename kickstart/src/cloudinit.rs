//! cloud-init NoCloud seeds: a host's identity delivered at boot.
//!
//! From a [`HostPlan`] and the host's identity tree as placed on its role image
//! ([`IdentityFile`]s) this renders the three files of a NoCloud seed ([`Seed`]):
//!
//! - `meta-data`: `instance-id` derived from the identity digest ([`identity_digest`]), so a
//!   changed identity makes cloud-init run its per-instance modules again and an unchanged one
//!   does not; `local-hostname`.
//! - `user-data`: `#cloud-config` whose `write_files` carry exactly the identity files
//!   (base64, with mode and owner). Nothing is installed (no `packages`, no `runcmd`);
//!   `manage_etc_hosts: false` leaves `/etc/hosts` to kiln's file. `local-hostname` is the
//!   identity's `/etc/hostname` (the Calico node name), and `hostname`, `fqdn` and
//!   `prefer_fqdn_over_hostname` make cloud-init's `set_hostname` and `update_hostname` write
//!   that same name to the kernel and `/etc/hostname` (the role image sets
//!   `preserve_hostname: false`). Without them cloud-init 22.4 splits an FQDN
//!   `local-hostname` and writes the short name: `util.get_hostname_fqdn` takes the first
//!   label as the hostname, and `Distro._select_hostname` returns the FQDN only when
//!   `prefer_fqdn_over_hostname` is true, which Debian's distro class does not default to
//!   (canonical/cloud-init 22.4, `cloudinit/util.py`, `cloudinit/distros/__init__.py`). The
//!   Calico CNI plugin (`os.Hostname()`) and libnetwork then name workloads after the short
//!   name while calico-node runs as the FQDN, and Felix never programs them.
//! - root's login secrets ([`HostPlan::access`]), only here: the SSH keys as a `write_files`
//!   entry for `/root/.ssh/authorized_keys` (0600; the role image has `/root/.ssh` at 0700,
//!   since `write_files` would create it 0755), and the password hash as `users: [{name:
//!   root, hashed_passwd, lock_passwd: false}]` for the `users-groups` module. That module is
//!   what sets the hash of an existing user on cloud-init 22.4 (`hashed_passwd` "is applied
//!   even if the user is pre-existing", through `chpasswd -e`; `passwd` is not, and
//!   `set-passwords`' `chpasswd` would also expire the password unless told not to, and touch
//!   sshd's config). The image's `90-kiln.cfg` enables the module with `users: []`, so the
//!   distro's default user (`debian`) is never created; this `users` list replaces that one.
//!   Secrets count in the instance-id too: a changed key or hash is delivered again.
//! - `network-config`: version 2, the interface matched by its MAC (lowercase, quoted) and
//!   renamed with `set-name`, the static address, a default route
//!   (`to: 0.0.0.0/0`: cloud-init 22.4, Debian 12's, refuses `to: default`) and nameservers.
//!
//! The output is a function of its inputs only: files are ordered by path.

use base64::Engine;
use kiln_model::plan::HostPlan;
use kiln_model::templates::Templates;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One regular file of a host's identity tree, as placed on the role image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFile {
    /// Absolute path on the host.
    pub path: String,
    /// Permission bits (`0o644`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub data: Vec<u8>,
}

/// A host's NoCloud seed: the contents of `meta-data`, `user-data` and `network-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// `meta-data`'s `instance-id`.
    pub instance_id: String,
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
}

impl Seed {
    /// The seed's files, named as on a `cidata` volume, in a fixed order.
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            ("meta-data", &self.meta_data),
            ("network-config", &self.network_config),
            ("user-data", &self.user_data),
        ]
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("meta-data", include_str!("../templates/meta-data.j2")),
    ("user-data", include_str!("../templates/user-data.j2")),
    (
        "network-config",
        include_str!("../templates/network-config.j2"),
    ),
];

/// sha256 (hex) over the identity files: per file, sorted by path, its path, mode, owner,
/// size and bytes. Everything `write_files` carries is covered, nothing else.
pub fn identity_digest(files: &[IdentityFile]) -> String {
    let mut sorted: Vec<&IdentityFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    h.update(b"kiln-identity-1\n");
    for f in sorted {
        h.update(
            format!(
                "{}\0{:o} {}:{} {}\n",
                f.path,
                f.mode & 0o7777,
                f.uid,
                f.gid,
                f.data.len()
            )
            .as_bytes(),
        );
        h.update(&f.data);
    }
    hex::encode(h.finalize())
}

/// `HOST-` and the first 16 hex digits of the identity digest — with the host's secrets,
/// when it has any, hashed in too (so a rotated key or password makes cloud-init run its
/// per-instance modules again; a digest reveals neither).
pub fn instance_id(host: &HostPlan, files: &[IdentityFile]) -> String {
    let mut digest = identity_digest(files);
    let access = &host.access;
    if !access.is_empty() {
        let mut h = Sha256::new();
        h.update(b"kiln-seed-1\n");
        h.update(digest.as_bytes());
        for k in &access.ssh_authorized_keys {
            h.update(b"\nkey ");
            h.update(k.line().as_bytes());
        }
        if let Some(p) = &access.root_password_hash {
            h.update(b"\nhash ");
            h.update(p.expose().as_bytes());
        }
        digest = hex::encode(h.finalize());
    }
    format!("{}-{}", host.name, &digest[..16])
}

/// Where root's SSH keys go.
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";

/// The host's node name: its identity's `/etc/hostname` (the short name or the FQDN, as
/// `calico.node.nodename` says), else its short name. Seeds and kickstarts set this one name
/// as the hostname.
pub fn node_name(host: &HostPlan, files: &[IdentityFile]) -> String {
    files
        .iter()
        .find(|f| f.path == "/etc/hostname")
        .map(|f| String::from_utf8_lossy(&f.data).trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| host.name.to_string())
}

/// Renders the seed of `host` carrying `files`.
pub fn render(host: &HostPlan, files: &[IdentityFile]) -> Result<Seed> {
    let templates = Templates::new(TEMPLATES)?;
    let instance_id = instance_id(host, files);
    let hostname = node_name(host, files);
    let meta_data = templates.render(
        "meta-data",
        MetaData {
            instance_id: &instance_id,
            hostname: &hostname,
        },
    )?;

    let mut sorted: Vec<&IdentityFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let b64 = base64::engine::general_purpose::STANDARD;
    let files = sorted
        .into_iter()
        .map(|f| {
            if f.uid != 0 || f.gid != 0 {
                return Err(Error::Owner {
                    path: f.path.clone(),
                    uid: f.uid,
                    gid: f.gid,
                });
            }
            Ok(WriteFile {
                path: quote(&f.path),
                content: b64.encode(&f.data),
                permissions: quote(&format!("{:04o}", f.mode & 0o7777)),
                owner: quote("root:root"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let keys = &host.access.ssh_authorized_keys;
    let authorized_keys = (!keys.is_empty()).then(|| WriteFile {
        path: quote(AUTHORIZED_KEYS),
        content: quote(&keys.iter().map(|k| k.line() + "\n").collect::<String>()),
        permissions: quote("0600"),
        owner: quote("root:root"),
    });
    // The name cloud-init must leave in the kernel and /etc/hostname: the node name. In
    // `fqdn` mode that is the FQDN, which cloud-init keeps only when told to prefer it.
    let prefer_fqdn = hostname == host.fqdn.as_str();
    let user_data = templates.render(
        "user-data",
        UserData {
            host: host.name.as_str(),
            hostname: quote(host.name.as_str()),
            fqdn: quote(host.fqdn.as_str()),
            prefer_fqdn,
            files,
            authorized_keys,
            root_password_hash: host
                .access
                .root_password_hash
                .as_ref()
                .map(|h| quote(h.expose())),
        },
    )?;

    let network_config = templates.render(
        "network-config",
        NetworkConfig {
            host: host.name.as_str(),
            id: quote(host.interface.as_str()),
            mac: quote(&host.mac.to_string()),
            ifname: quote(host.interface.as_str()),
            address: quote(&host.address.to_string()),
            gateway: host.gateway.map(|g| quote(&g.to_string())),
            dns: host.dns.iter().map(|d| quote(&d.to_string())).collect(),
        },
    )?;
    Ok(Seed {
        instance_id,
        meta_data,
        user_data,
        network_config,
    })
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[derive(Serialize)]
struct MetaData<'a> {
    instance_id: &'a str,
    hostname: &'a str,
}

#[derive(Serialize)]
struct UserData<'a> {
    host: &'a str,
    /// The short name and the FQDN for `set_hostname`/`update_hostname`, quoted.
    hostname: String,
    fqdn: String,
    /// Whether the node name is the FQDN (`prefer_fqdn_over_hostname`).
    prefer_fqdn: bool,
    /// The identity files, base64.
    files: Vec<WriteFile>,
    /// Root's `authorized_keys`, plain text (one quoted YAML string).
    authorized_keys: Option<WriteFile>,
    root_password_hash: Option<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: String,
    content: String,
    permissions: String,
    owner: String,
}

#[derive(Serialize)]
struct NetworkConfig<'a> {
    host: &'a str,
    id: String,
    mac: String,
    ifname: String,
    address: String,
    gateway: Option<String>,
    dns: Vec<String>,
}

#[cfg(test)]
#[path = "cloudinit_tests.rs"]
mod tests;
