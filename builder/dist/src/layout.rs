//! The layout of `kiln build`'s output directory, in one place: build, push and the coming
//! boot and serve commands name paths through [`Dist`], never through literals.

use std::path::{Path, PathBuf};

/// The build report; its presence marks a directory as kiln build output that a later build
/// may replace.
pub const REPORT: &str = "build-report.json";

/// An output directory (`dist/`) or its staging copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dist {
    root: PathBuf,
}

impl Dist {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Dist { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `oci/`: one OCI image layout with a ref per image.
    pub fn oci(&self) -> PathBuf {
        self.root.join("oci")
    }
    /// `oci/blobs`: every blob, once.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("oci/blobs")
    }
    /// `archives/`: docker-archives, written only when asked for.
    pub fn archives(&self) -> PathBuf {
        self.root.join("archives")
    }
    /// `archives/REF.tar`.
    pub fn archive(&self, reference: &str) -> PathBuf {
        self.archives().join(format!("{reference}.tar"))
    }
    /// `identity/`: per-host identity trees.
    pub fn identity_dir(&self) -> PathBuf {
        self.root.join("identity")
    }
    /// `identity/HOST.tar`, relative to the root (as listed in the report).
    pub fn identity_rel(host: &str) -> String {
        format!("identity/{host}.tar")
    }
    /// `sbom/`: an SPDX document per role image.
    pub fn sbom_dir(&self) -> PathBuf {
        self.root.join("sbom")
    }
    /// `sbom/REF.spdx.json`, relative to the root (as listed in the report).
    pub fn sbom_rel(reference: &str) -> String {
        format!("sbom/{reference}.spdx.json")
    }
    /// `cloud-init/`: per-host NoCloud seeds.
    pub fn cloud_init(&self) -> PathBuf {
        self.root.join("cloud-init")
    }
    /// `cloud-init/HOST/`: `meta-data`, `user-data` and `network-config` of one host.
    pub fn seed_dir(&self, host: &str) -> PathBuf {
        self.root.join(Self::seed_dir_rel(host))
    }
    /// `cloud-init/HOST`, relative to the root.
    pub fn seed_dir_rel(host: &str) -> String {
        format!("cloud-init/{host}")
    }
    /// `cloud-init/HOST-cidata.iso`: the seed as an ISO 9660 volume labelled `cidata`.
    pub fn seed_iso(&self, host: &str) -> PathBuf {
        self.root.join(Self::seed_iso_rel(host))
    }
    /// `cloud-init/HOST-cidata.iso`, relative to the root.
    pub fn seed_iso_rel(host: &str) -> String {
        format!("cloud-init/{host}-cidata.iso")
    }
    /// `kickstart/`: a kickstart per host.
    pub fn kickstart_dir(&self) -> PathBuf {
        self.root.join("kickstart")
    }
    /// `kickstart/HOST.ks`, relative to the root.
    pub fn kickstart_rel(host: &str) -> String {
        format!("kickstart/{host}.ks")
    }
    /// `boot/`: a bootable disk per profile and the boot manifest.
    pub fn boot(&self) -> PathBuf {
        self.root.join("boot")
    }
    /// `boot/manifest.json`: what `kiln boot` starts and checks (see [`crate::boot_manifest`]).
    pub fn boot_manifest(&self) -> PathBuf {
        self.root.join(Self::boot_manifest_rel())
    }
    /// `boot/manifest.json`, relative to the root.
    pub fn boot_manifest_rel() -> &'static str {
        "boot/manifest.json"
    }
    /// `boot/PROFILE`, relative to the root: a role image's bootable outputs.
    pub fn boot_dir_rel(profile: &str) -> String {
        format!("boot/{profile}")
    }
    /// `boot/PROFILE/`.
    pub fn boot_dir(&self, profile: &str) -> PathBuf {
        self.root.join(Self::boot_dir_rel(profile))
    }
    /// `pxe/`: the PXE tree (iPXE, PXELINUX and GRUB configs per MAC, files by digest).
    pub fn pxe(&self) -> PathBuf {
        self.root.join("pxe")
    }
    /// `pxe/hosts.json`: each host's MAC and profile (what `kiln serve` reads).
    pub fn pxe_hosts(&self) -> PathBuf {
        self.root.join("pxe/hosts.json")
    }
    /// `secure-boot/`: the certificates to enrol and the enrolment guide (never a key).
    pub fn secure_boot(&self) -> PathBuf {
        self.root.join(Self::secure_boot_rel())
    }
    /// `secure-boot`, relative to the root.
    pub fn secure_boot_rel() -> &'static str {
        "secure-boot"
    }
    /// `build-report.json`.
    pub fn report(&self) -> PathBuf {
        self.root.join(REPORT)
    }
    /// `SHA256SUMS`.
    pub fn sha256sums(&self) -> PathBuf {
        self.root.join("SHA256SUMS")
    }
}
