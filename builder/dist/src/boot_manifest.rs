//! `boot/manifest.json`: what `kiln boot` starts and what it checks on each host, written by
//! `kiln build` next to the disks. The pipeline derives it from the plan once, at build time,
//! so booting needs no spec: the checks name IPs, ports, paths and units as the built images
//! use them.

use std::net::Ipv4Addr;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Dist;

/// Version of the manifest's shape; bumped when a field changes meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// The bootable disk of one profile, as `kiln build` made it. Paths are relative to the dist
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileBoot {
    /// Profile name (`master`, `agent`, `master-agent`, …).
    pub name: String,
    /// `boot/PROFILE/disk.raw`.
    pub disk_raw: String,
    /// `boot/PROFILE/disk.qcow2`.
    pub disk_qcow2: String,
    /// `boot/PROFILE/kiln.efi`, the unified kernel image the disks also carry for UEFI
    /// firmware; empty when the image has no EFI stub (the disks then boot on BIOS only).
    #[serde(default)]
    pub uki: String,
    /// The UKI is signed for Secure Boot with the db key of `[boot.secure_boot]`.
    #[serde(default)]
    pub signed: bool,
    /// PCR 11 (SHA-256 bank, hex) once systemd's stub has measured the UKI; empty without one.
    #[serde(default)]
    pub pcr11: String,
    /// `pxe/sha256/HEX`: the role's network UKI (diskless, seed by MAC), with the PXE tree.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_uki: String,
    /// PCR 11 (SHA-256 bank, hex) once the stub has measured the network UKI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_pcr11: String,
    /// dm-verity root hash of the read-only root.
    pub root_hash: String,
    /// The kernel command line the disk boots with.
    pub cmdline: String,
}

/// The certificates a Secure Boot firmware must hold to boot the signed UKIs (PEM files,
/// relative to the dist directory, in `secure-boot/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureBootCerts {
    /// The platform key's certificate (the db certificate when the spec names none).
    pub pk: String,
    /// The key exchange key's certificate (likewise).
    pub kek: String,
    /// The db certificate: the UKIs' signatures verify with it.
    pub db: String,
    /// The GUID the certificates are enrolled under (the signature owner).
    pub owner: String,
}

/// `boot/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootManifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    pub cluster: String,
    pub profiles: Vec<ProfileBoot>,
    /// Hosts in spec order (the order VMs start in).
    pub hosts: Vec<HostBoot>,
    /// Set when the UKIs are signed (`[boot.secure_boot]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<SecureBootCerts>,
}

impl BootManifest {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&ProfileBoot> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

/// One host: how to start it and what must be true once it is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBoot {
    pub name: String,
    pub profile: String,
    /// Lowercase, colon-separated: the NIC's MAC (cloud-init's network-config matches on it).
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// `cloud-init/HOST-cidata.iso`, relative to the dist directory.
    pub seed_iso: String,
    pub checks: Vec<Check>,
}

/// One health check, run inside the guest through its QEMU guest agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable within a host: `etcd-version`, `unit:etcd.service`, …
    pub id: String,
    /// What it is about, for people: `etcd /version on 10.0.0.11:2379`.
    pub about: String,
    #[serde(flatten)]
    pub probe: Probe,
}

/// How a check is probed. Serialized with a `probe` tag (`http`, `zk-srvr`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "probe", rename_all = "kebab-case")]
pub enum Probe {
    /// `GET path` over plain HTTP/1.0: the status must be `status` and the body contain
    /// `body_contains` when set.
    Http {
        host: String,
        port: u16,
        path: String,
        status: u16,
        body_contains: Option<String>,
    },
    /// ZooKeeper's `srvr` four-letter word: `Mode: standalone|leader|follower`.
    ZkSrvr { host: String, port: u16 },
    /// `docker info` succeeds and, when set, shows `Cluster Store: <cluster_store>`.
    DockerInfo { cluster_store: Option<String> },
    /// A Docker container runs (`docker inspect`).
    Container { name: String },
    /// An executable file.
    Executable { path: String },
    /// A regular file.
    File { path: String },
    /// A systemd unit is `ActiveState=active` with `NRestarts=0`.
    Unit { unit: String },
    /// Not from the manifest: `kiln boot` brings up the VM's host link (the NIC with `mac`)
    /// with `address` and checks that it holds it. Idempotent, so it is re-run like a check.
    HostLink { mac: String, address: String },
    /// Not from the manifest: with `--firmware uefi-secure`, the firmware's `SecureBoot`
    /// variable is 1 (the guest was booted with Secure Boot enforcing).
    SecureBoot,
    /// Not from the manifest: with a TPM, the guest's PCR `index` (SHA-256 bank) is `sha256`
    /// (hex): what `kiln build` computed from the UKI.
    Pcr { index: u8, sha256: String },
}

/// Why `boot/manifest.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error(
        "reading {path}: {source} (is this the output directory of `kiln build` with boot disks?)"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a manifest of this version's shape.
    #[error("{path} is not a boot manifest kiln understands: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads `DIST/boot/manifest.json`.
pub fn read(dist: &Dist) -> Result<BootManifest, ReadError> {
    let path = dist.boot_manifest();
    let text = std::fs::read(&path).map_err(|source| ReadError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| ReadError::Json { path, source })
}
