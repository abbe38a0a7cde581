//! Stage 7b (with `[provision]` and bootable outputs): the files the PXE tree `pxe/` boots,
//! and `pxe/hosts.json`. The configs are rendered by [`kiln_provision::pxe`] and written, with
//! `hosts.json`, by [`super::provision`].
//!
//! `pxe/sha256/HEX` are **hard links** to each role's `boot/PROFILE/{vmlinuz,initramfs.img,
//! root.img}` in the same staging directory: the root image is hundreds of MB per role and a
//! link costs nothing, both names stay in one output that is published (renamed) as a whole,
//! and nothing in `dist/` is ever written after the build, so the shared inode cannot change
//! under either name. Where the file system refuses a link, the file is copied. (`rsync -H`
//! or `tar` keep the links when `dist/` is published elsewhere; a static server serves both
//! names either way.)
//!
//! **Network UKIs.** Per role whose image has the systemd EFI stub, the build also
//! makes a unified kernel image for diskless UEFI boots, `pxe/sha256/HEX` like the rest: the
//! role's kernel and initramfs with the diskless command line
//! ([`kiln_provision::pxe::network_uki_cmdline`]: the root by digest under `provision.url`,
//! the seeds by MAC), signed with the db key when the spec has `[boot.secure_boot]`. The root
//! hash is inside the signed bytes, so a host that Secure Boot starts from it takes no root
//! hash from the network; one UKI serves every host of the role, each finding its own seed by
//! its MAC.
//!
//! **Loaders** ([`loaders`]): the network boot programs, from the build host's Debian
//! packages, so that `dist/pxe` is a complete TFTP/HTTP root: `ipxe.efi` (UEFI; signed with
//! the db key when the build signs) and `undionly.kpxe` (BIOS) from `ipxe`, `lpxelinux.0`
//! from `pxelinux` with `ldlinux.c32` from `syslinux-common`, and GRUB's UEFI netboot
//! directory `grub/x86_64-efi/` (`core.efi` and the modules it loads) made by `grub-mknetdir`
//! from `grub-efi-amd64-bin`.
//!
//! `pxe/hosts.json` lists each host's MAC and address; `kiln serve` answers the kickstart MAC
//! header from it and serves a host's own paths (seed, kickstart) only to its address. It
//! holds no secret.

use std::fs;
use std::io;
use std::path::Path;

use kiln_layers::IoError;
use kiln_model::plan::{HostPlan, Plan, ProvisionPlan};
use kiln_provision::pxe::{self, PxeProfile};
use sha2::{Digest, Sha256};

use super::{BootableReport, BuildError, Dist};
use crate::components::bootable::SEED_SIGNER_ARG;
use crate::secure_boot::SecureBootFiles;
pub use kiln_dist::pxe_hosts::{PxeHost, PxeHosts};

/// Places each role's kernel, initramfs and root image under `pxe/sha256/` (hard links, see
/// the module documentation), makes its network UKI there, and returns them as the PXE configs
/// reference them; each report gains its network UKI and that UKI's PCR 11. The configs and
/// `hosts.json` are written by [`super::provision`].
pub(super) fn link_boot_files(
    dist: &Dist,
    boot: &mut [BootableReport],
    provision: &ProvisionPlan,
    signer: Option<&SecureBootFiles>,
    source_date_epoch: u64,
) -> Result<Vec<PxeProfile>, BuildError> {
    let by_digest = dist.pxe().join("sha256");
    fs::create_dir_all(&by_digest).map_err(IoError::new("creating pxe/sha256"))?;
    let mut profiles = Vec::new();
    for b in boot.iter_mut() {
        let place = |rel: &str| -> Result<String, BuildError> {
            let src = dist.root().join(rel);
            let hex = sha256_file(&src).map_err(IoError::new(format!("reading {rel}")))?;
            let dst = by_digest.join(&hex);
            if !dst.exists() && fs::hard_link(&src, &dst).is_err() {
                fs::copy(&src, &dst).map_err(IoError::new(format!(
                    "copying {rel} to pxe/{}",
                    pxe::by_digest(&hex)
                )))?;
            }
            Ok(hex)
        };
        let root_sha256 = place(&b.root_image)?;
        let mut profile = PxeProfile {
            name: b.profile.clone(),
            image: b.image.clone(),
            kernel_sha256: place(&b.kernel)?,
            initramfs_sha256: place(&b.initramfs)?,
            disk_cmdline: b.cmdline.clone(),
            uki_sha256: None,
            uki_cmdline: String::new(),
            root_sha256,
        };
        if b.uki.is_some() {
            let extra: Vec<String> = signer
                .map(|sb| format!("{SEED_SIGNER_ARG}={}", sb.db.sha256()))
                .into_iter()
                .collect();
            let cmdline =
                pxe::network_uki_cmdline(&b.cmdline, provision, &profile.root_sha256, &extra)
                    .map_err(kiln_provision::Error::from)?;
            let tmp = by_digest.join(format!(".kiln-tmp-{}.efi", b.profile));
            let dir = dist.root().join(Dist::boot_dir_rel(&b.profile));
            let pcr11 = kiln_bootable::network_uki(
                &dir,
                &cmdline,
                signer.map(|sb| &sb.signing),
                source_date_epoch,
                &tmp,
            )?;
            let hex = sha256_file(&tmp).map_err(IoError::new("reading a network UKI"))?;
            fs::rename(&tmp, by_digest.join(&hex)).map_err(IoError::new(format!(
                "placing pxe/{}",
                pxe::by_digest(&hex)
            )))?;
            b.net_uki = Some(format!("pxe/{}", pxe::by_digest(&hex)));
            b.net_pcr11 = Some(pcr11);
            profile.uki_sha256 = Some(hex);
            profile.uki_cmdline = cmdline;
        }
        profiles.push(profile);
    }
    Ok(profiles)
}

/// One file of the PXE tree that is not rendered: a loader's bytes and its path below `pxe/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A loader copied from the build host: its path below `pxe/`, where Debian installs it, the
/// package, and whether the firmware loads it (signed when the build signs).
const COPIED: [(&str, &str, &str, bool); 4] = [
    ("ipxe.efi", "/usr/lib/ipxe/ipxe.efi", "ipxe", true),
    (
        "undionly.kpxe",
        "/usr/lib/ipxe/undionly.kpxe",
        "ipxe",
        false,
    ),
    (
        "lpxelinux.0",
        "/usr/lib/PXELINUX/lpxelinux.0",
        "pxelinux",
        false,
    ),
    (
        "ldlinux.c32",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "syslinux-common",
        false,
    ),
];

/// GRUB's x86_64-efi modules (Debian package `grub-efi-amd64-bin`).
const GRUB_EFI_MODULES: &str = "/usr/lib/grub/x86_64-efi";
/// The modules the netboot `core.efi` has built in and installs beside it: enough to read the
/// host's config over TFTP and load a kernel and initrd over HTTP.
const GRUB_NET_MODULES: &str = "normal configfile linux http tftp efinet net echo test sleep";

/// The error for a loader the build host lacks.
fn missing(what: &str, package: &str) -> BuildError {
    BuildError::Source(format!(
        "the PXE tree needs {what} from the build host (Debian package `{package}`): \
         apt-get install {package}, or turn the PXE tree off with [provision] pxe = false"
    ))
}

/// Checks, before any work, that the build host has every loader [`loaders`] copies and the
/// program that makes GRUB's directory.
pub fn require_loaders() -> Result<(), BuildError> {
    for (_, from, package, _) in COPIED {
        if !Path::new(from).is_file() {
            return Err(missing(from, package));
        }
    }
    if !Path::new(GRUB_EFI_MODULES).join("linux.mod").is_file() {
        return Err(missing(GRUB_EFI_MODULES, "grub-efi-amd64-bin"));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("grub-mknetdir").is_file()))
        .unwrap_or(false);
    if !on_path {
        return Err(missing("grub-mknetdir", "grub-common"));
    }
    Ok(())
}

/// The loaders of the PXE tree (see the module documentation), read from the build host;
/// `ipxe.efi` signed with `signer`'s db key. A missing one is an error naming its package.
pub fn loaders(
    signer: Option<&SecureBootFiles>,
    source_date_epoch: u64,
    scratch: &Path,
) -> Result<Vec<LoaderFile>, BuildError> {
    require_loaders()?;
    let mut out = Vec::new();
    fs::create_dir_all(scratch).map_err(IoError::new("creating the loaders' scratch dir"))?;
    for (path, from, package, firmware_loads) in COPIED {
        let mut bytes = fs::read(from).map_err(|_| missing(from, package))?;
        if let (true, Some(sb)) = (firmware_loads, signer) {
            let f = scratch.join(path);
            fs::write(&f, &bytes).map_err(IoError::new(format!("writing {}", f.display())))?;
            kiln_bootable::secure_boot::sign(&f, &sb.signing, source_date_epoch)?;
            bytes = fs::read(&f).map_err(IoError::new(format!("reading {}", f.display())))?;
        }
        out.push(LoaderFile {
            path: path.into(),
            bytes,
        });
    }
    if !Path::new(GRUB_EFI_MODULES).join("linux.mod").is_file() {
        return Err(missing(GRUB_EFI_MODULES, "grub-efi-amd64-bin"));
    }
    let net = scratch.join("grub-net");
    let run = std::process::Command::new("grub-mknetdir")
        .arg(format!("--net-directory={}", net.display()))
        .arg("--subdir=grub")
        .arg("-d")
        .arg(GRUB_EFI_MODULES)
        .arg(format!("--install-modules={GRUB_NET_MODULES}"))
        .arg(format!("--modules={GRUB_NET_MODULES}"))
        .args(["--locales=", "--fonts=", "--themes="])
        .env("LC_ALL", "C")
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|_| missing("grub-mknetdir", "grub-common"))?;
    if !run.status.success() {
        return Err(BuildError::Source(format!(
            "grub-mknetdir failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr).trim()
        )));
    }
    let platform = net.join("grub/x86_64-efi");
    let mut names: Vec<String> = fs::read_dir(&platform)
        .map_err(IoError::new("listing grub-mknetdir's output"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let bytes = fs::read(platform.join(&name))
            .map_err(IoError::new(format!("reading grub-mknetdir's {name}")))?;
        out.push(LoaderFile {
            path: format!("grub/x86_64-efi/{name}"),
            bytes,
        });
    }
    let _ = fs::remove_dir_all(scratch);
    Ok(out)
}

/// The text of `pxe/hosts.json` for the PXE tree's `hosts`.
pub(super) fn hosts_json(
    plan: &Plan,
    provision: &ProvisionPlan,
    hosts: &[HostPlan],
) -> Result<String, BuildError> {
    let index = PxeHosts {
        cluster: plan.cluster.to_string(),
        url: provision.url.to_string(),
        hosts: hosts
            .iter()
            .map(|h| PxeHost {
                name: h.name.to_string(),
                mac: h.mac.to_string(),
                address: Some(h.address.ip()),
                profile: h.profile.clone(),
                ipxe: format!("mac/{}.ipxe", h.mac.hyphenated()),
            })
            .collect(),
    };
    let mut json =
        serde_json::to_string_pretty(&index).map_err(|e| BuildError::Source(e.to_string()))?;
    json.push('\n');
    Ok(json)
}

/// sha256 (hex) of a file's bytes.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}
