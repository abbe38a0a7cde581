//! PXE configs: the `dist/pxe/` tree that boots every host of a cluster **diskless** from an
//! HTTP server (`kiln serve`, or any static web server publishing `dist/`).
//!
//! - `boot.ipxe`: the entry point (DHCP hands it to iPXE). It fetches the host's own script,
//!   `mac/${mac:hexhyp}.ipxe`, and when there is none prints `kiln: no host with MAC … in
//!   cluster …` and stops: an unknown machine never boots a default host.
//! - `mac/MAC.ipxe` per host: `kernel --name vmlinuz … initrd=initrd.img …` and
//!   `initrd --name initrd.img …` (UEFI iPXE hands the initrd over by name; BIOS iPXE does not
//!   mind).
//! - `pxelinux.cfg/01-MAC` per host for BIOS PXELINUX (HTTP URLs: `lpxelinux.0`).
//! - `grub/grub.cfg-01-MAC` and `grub/grub.cfg-MAC` per host (Red Hat's GRUB looks for the
//!   first, Debian's GRUB 2.06 for the second), kernel arguments with `;` single-quoted.
//!
//! Each boots the host's role image: the kernel, initramfs and verified root image by digest
//! (`sha256/HEX`, the files themselves are placed by the build), with the role's disk command
//! line turned diskless ([`diskless_cmdline`]): `kiln.root=URL/pxe/sha256/ROOT` instead of
//! `kiln.root=part:N`, no `kiln.disk=` or `kiln.state=`, and
//! `kiln.seed=URL/cloud-init/HOST/ ds=nocloud` for the identity: `/init` fetches the seed into
//! cloud-init's NoCloud seed directory, read in cloud-init's local stage like a `cidata`
//! disk (why not `ds=nocloud-net;s=URL`: see [`diskless_cmdline`]). With an installer in
//! `[provision]`, each host also gets a kickstart install entry (`inst.ks=URL/kickstart/HOST.ks
//! inst.ks.sendmac`): `mac/MAC-install.ipxe` and a second menu entry in PXELINUX and GRUB.
//!
//! - `dhcp/dhcpd-hosts.conf` (ISC dhcpd `host` declarations) and `dhcp/dnsmasq-hosts.conf`
//!   (`dhcp-host=MAC,IP,NAME`): a DHCP reservation per host, MAC to the spec's address. `kiln
//!   serve` hands a host's seed and kickstart only to that address, so the DHCP server must
//!   give it to the host while it boots.
//!
//! Nothing here is secret: kernel arguments carry digests and URLs, never a seed's contents;
//! the reservations hold names, MACs and addresses (as `hosts.json` does).

use kiln_model::plan::{HostPlan, Installer, ProvisionPlan};
use kiln_model::templates::Templates;
use kiln_model::values::HttpUrl;
use serde::Serialize;

use crate::Result;

const TEMPLATES: &[(&str, &str)] = &[
    ("boot.ipxe", include_str!("../templates/boot.ipxe.j2")),
    ("host.ipxe", include_str!("../templates/host.ipxe.j2")),
    ("install.ipxe", include_str!("../templates/install.ipxe.j2")),
    ("pxelinux.cfg", include_str!("../templates/pxelinux.cfg.j2")),
    ("grub.cfg", include_str!("../templates/grub.cfg.j2")),
    (
        "dhcpd-hosts.conf",
        include_str!("../templates/dhcpd-hosts.conf.j2"),
    ),
    (
        "dnsmasq-hosts.conf",
        include_str!("../templates/dnsmasq-hosts.conf.j2"),
    ),
];

/// The DHCP reservation files below `pxe/`: ISC dhcpd's and dnsmasq's.
pub const DHCP_RESERVATIONS: [&str; 2] = ["dhcp/dhcpd-hosts.conf", "dhcp/dnsmasq-hosts.conf"];

/// A role image's bootable files as the PXE tree references them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeProfile {
    /// Profile name (`master-agent`).
    pub name: String,
    /// The role image's ref (`demo-master-agent`).
    pub image: String,
    /// sha256 (hex) of the kernel, the initramfs and the root image: their names under
    /// `pxe/sha256/`.
    pub kernel_sha256: String,
    pub initramfs_sha256: String,
    pub root_sha256: String,
    /// The kernel command line the role's disks boot with (`boot[].cmdline` of the build
    /// report).
    pub disk_cmdline: String,
    /// The role's network UKI under `pxe/sha256/` (sha256 hex), when the image has the EFI
    /// stub: UEFI iPXE chains it ([`network_uki_cmdline`] is its command line).
    pub uki_sha256: Option<String>,
    /// The network UKI's command line (empty without one).
    pub uki_cmdline: String,
}

/// One file of the PXE tree: its path below `pxe/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeFile {
    pub path: String,
    pub text: String,
}

/// Why a PXE tree could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    #[error("host {host}: no bootable outputs for its profile {profile}")]
    NoProfile { host: String, profile: String },
    #[error("the disk command line {cmdline:?} has no kiln.root= to turn diskless")]
    NoRoot { cmdline: String },
}

/// Below `pxe/`: the digest-named file `hex`.
pub fn by_digest(hex: &str) -> String {
    format!("sha256/{hex}")
}

/// The role's disk command line `disk`, diskless: `kiln.root=` set to `root_url`,
/// `kiln.disk=` and `kiln.state=` dropped (the host has no disk; its state lives in RAM),
/// `kiln.seed=seed_url` (ending in `/`) for `/init`, which fetches the seed into cloud-init's
/// NoCloud seed directory, and `ds=nocloud`.
///
/// Not `ds=nocloud-net;s=URL`: with it, cloud-init 22.4 (Debian 12) takes the seed in its
/// network stage only (the local stage's NoCloud refuses an http seedfrom), after the
/// fallback DHCP config has brought the NIC up, so the seed's `set-name` rename fails
/// ("\[busy\] Error renaming") and 22.4 then crashes in `network_state` (KeyError on the old
/// name): no identity. Over HTTP it also never fetches `network-config` (`read_seeded` reads
/// meta-data, user-data and vendor-data). Measured booting px1 of the PXE test.
pub fn diskless_cmdline(disk: &str, root_url: &str, seed_url: &str) -> Result<String, PxeError> {
    diskless(disk, root_url, format!("kiln.seed={seed_url}"))
}

/// Below the provisioning URL: the seeds by MAC (`cloud-init/mac/52-54-00-0b-00-01/`), for
/// hosts booted from a role's network UKI, whose one command line serves every host.
pub const SEEDS_BY_MAC: &str = "cloud-init/mac";

/// The command line of a role's **network UKI**: the disk's made diskless as by
/// [`diskless_cmdline`], but with `kiln.seed-by-mac=URL/cloud-init/mac/` for the seed (one
/// UKI serves every host of the role: `/init` appends the MAC of the NIC that got its DHCP
/// lease), then `extra` (the seed signer's fingerprint when the build signs). The root is
/// named by digest under `provision`'s URL and checked against the root hash inside the UKI.
pub fn network_uki_cmdline(
    disk: &str,
    provision: &ProvisionPlan,
    root_sha256: &str,
    extra: &[String],
) -> Result<String, PxeError> {
    let root = provision.join(&format!("pxe/{}", by_digest(root_sha256)));
    let seeds = format!("{}/", provision.join(SEEDS_BY_MAC));
    let mut line = diskless(disk, &root, format!("kiln.seed-by-mac={seeds}"))?;
    for a in extra {
        line.push(' ');
        line.push_str(a);
    }
    Ok(line)
}

fn diskless(disk: &str, root_url: &str, seed_arg: String) -> Result<String, PxeError> {
    let mut out = Vec::new();
    let mut root = false;
    for arg in disk.split_whitespace() {
        if arg.starts_with("kiln.disk=") || arg.starts_with("kiln.state=") {
            continue;
        }
        if arg.starts_with("kiln.root=") {
            out.push(format!("kiln.root={root_url}"));
            root = true;
        } else if !arg.starts_with("ds=")
            && !arg.starts_with("kiln.seed=")
            && !arg.starts_with("kiln.seed-by-mac=")
        {
            out.push(arg.to_string());
        }
    }
    if !root {
        return Err(PxeError::NoRoot {
            cmdline: disk.to_string(),
        });
    }
    out.push(seed_arg);
    out.push("ds=nocloud".into());
    Ok(out.join(" "))
}

/// The command line of a kickstart install of `host`.
fn install_cmdline(p: &ProvisionPlan, host: &HostPlan) -> String {
    format!(
        "inst.ks={} inst.ks.sendmac console=ttyS0",
        p.join(&format!("kickstart/{}.ks", host.name))
    )
}

/// GRUB's spelling of an HTTP URL: `(http,HOST:PORT)/PATH`.
fn grub_url(url: &str) -> String {
    match HttpUrl::parse(url) {
        Ok(u) => format!("(http,{}){}", grub_server(&u), u.path()),
        Err(_) => url.to_string(),
    }
}

fn grub_server(u: &HttpUrl) -> String {
    match u.port() {
        Some(p) => format!("{}:{p}", u.host()),
        None => u.host().to_string(),
    }
}

/// Arguments holding `;` single-quoted for GRUB (`;` ends a GRUB command).
fn grub_quote(cmdline: &str) -> String {
    cmdline
        .split(' ')
        .map(|a| {
            if a.contains([';', '$', '\'', '"', '{', '}', '|', '&', '<', '>']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Serialize)]
struct BootCtx<'a> {
    cluster: &'a str,
    base: &'a str,
}

#[derive(Serialize)]
struct DhcpCtx<'a> {
    cluster: &'a str,
    hosts: Vec<DhcpHost<'a>>,
}

#[derive(Serialize)]
struct DhcpHost<'a> {
    name: &'a str,
    /// Lowercase, colon-separated (both servers take this spelling).
    mac: String,
    address: String,
}

#[derive(Serialize)]
struct HostCtx<'a> {
    cluster: &'a str,
    base: String,
    host: &'a str,
    mac: String,
    hexhyp: String,
    profile: &'a str,
    image: &'a str,
    kernel_url: String,
    initrd_url: String,
    cmdline: String,
    /// The role's network UKI (by digest) and its command line, for UEFI iPXE.
    uki_url: Option<String>,
    uki_cmdline: &'a str,
    installer: Option<&'a Installer>,
    install_cmdline: String,
    grub_server: String,
    kernel_path: String,
    initrd_path: String,
    grub_cmdline: String,
    grub_installer_kernel: String,
    grub_installer_initrd: String,
    grub_install_cmdline: String,
}

/// Every file of the PXE tree of `cluster` (paths below `pxe/`, sorted): `boot.ipxe`, the
/// DHCP reservations of `hosts` and, per host, its iPXE script, PXELINUX config and two GRUB
/// configs (and install entries when `provision` names an installer).
pub fn render(
    cluster: &str,
    provision: &ProvisionPlan,
    profiles: &[PxeProfile],
    hosts: &[HostPlan],
) -> Result<Vec<PxeFile>, crate::Error> {
    let t = Templates::new(TEMPLATES)?;
    let base = provision.join("pxe");
    let mut files = vec![PxeFile {
        path: "boot.ipxe".into(),
        text: t.render(
            "boot.ipxe",
            BootCtx {
                cluster,
                base: &base,
            },
        )?,
    }];
    let dhcp = DhcpCtx {
        cluster,
        hosts: hosts
            .iter()
            .map(|h| DhcpHost {
                name: h.name.as_str(),
                mac: h.mac.to_string(),
                address: h.address.ip().to_string(),
            })
            .collect(),
    };
    for (path, template) in DHCP_RESERVATIONS
        .iter()
        .zip(["dhcpd-hosts.conf", "dnsmasq-hosts.conf"])
    {
        files.push(PxeFile {
            path: path.to_string(),
            text: t.render(template, &dhcp)?,
        });
    }
    let server = grub_server(&provision.url);
    let url_path = provision.url.path().trim_end_matches('/').to_string();
    for h in hosts {
        let p = profiles
            .iter()
            .find(|p| p.name == h.profile)
            .ok_or_else(|| PxeError::NoProfile {
                host: h.name.to_string(),
                profile: h.profile.clone(),
            })?;
        let rel = |hex: &str| format!("pxe/{}", by_digest(hex));
        let cmdline = diskless_cmdline(
            &p.disk_cmdline,
            &provision.join(&rel(&p.root_sha256)),
            &format!("{}/", provision.join(&format!("cloud-init/{}", h.name))),
        )?;
        let hexhyp = h.mac.hyphenated();
        let install = install_cmdline(provision, h);
        let ctx = HostCtx {
            cluster,
            base: base.clone(),
            host: h.name.as_str(),
            mac: h.mac.to_string(),
            hexhyp: hexhyp.clone(),
            profile: &p.name,
            image: &p.image,
            kernel_url: provision.join(&rel(&p.kernel_sha256)),
            initrd_url: provision.join(&rel(&p.initramfs_sha256)),
            grub_cmdline: grub_quote(&cmdline),
            cmdline,
            uki_url: p.uki_sha256.as_deref().map(|hex| provision.join(&rel(hex))),
            uki_cmdline: &p.uki_cmdline,
            installer: provision.installer.as_ref(),
            grub_server: server.clone(),
            kernel_path: format!("{url_path}/{}", rel(&p.kernel_sha256)),
            initrd_path: format!("{url_path}/{}", rel(&p.initramfs_sha256)),
            grub_installer_kernel: provision
                .installer
                .as_ref()
                .map(|i| grub_url(&i.kernel))
                .unwrap_or_default(),
            grub_installer_initrd: provision
                .installer
                .as_ref()
                .map(|i| grub_url(&i.initrd))
                .unwrap_or_default(),
            grub_install_cmdline: grub_quote(&install),
            install_cmdline: install,
        };
        files.push(PxeFile {
            path: format!("mac/{hexhyp}.ipxe"),
            text: t.render("host.ipxe", &ctx)?,
        });
        if provision.installer.is_some() {
            files.push(PxeFile {
                path: format!("mac/{hexhyp}-install.ipxe"),
                text: t.render("install.ipxe", &ctx)?,
            });
        }
        files.push(PxeFile {
            path: format!("pxelinux.cfg/01-{hexhyp}"),
            text: t.render("pxelinux.cfg", &ctx)?,
        });
        let grub = t.render("grub.cfg", &ctx)?;
        files.push(PxeFile {
            path: format!("grub/grub.cfg-01-{hexhyp}"),
            text: grub.clone(),
        });
        files.push(PxeFile {
            path: format!("grub/grub.cfg-{hexhyp}"),
            text: grub,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
#[path = "pxe_tests.rs"]
mod tests;
