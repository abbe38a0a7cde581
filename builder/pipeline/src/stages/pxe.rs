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
pub use kiln_dist::pxe_hosts::{PxeHost, PxeHosts};

/// Places each role's kernel, initramfs and root image under `pxe/sha256/` (hard links, see
/// the module documentation) and returns them as the PXE configs reference them. The configs
/// and `hosts.json` are written by [`super::provision`].
pub(super) fn link_boot_files(
    dist: &Dist,
    boot: &[BootableReport],
) -> Result<Vec<PxeProfile>, BuildError> {
    let by_digest = dist.pxe().join("sha256");
    fs::create_dir_all(&by_digest).map_err(IoError::new("creating pxe/sha256"))?;
    let mut profiles = Vec::new();
    for b in boot {
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
        profiles.push(PxeProfile {
            name: b.profile.clone(),
            image: b.image.clone(),
            kernel_sha256: place(&b.kernel)?,
            initramfs_sha256: place(&b.initramfs)?,
            root_sha256: place(&b.root_image)?,
            disk_cmdline: b.cmdline.clone(),
        });
    }
    Ok(profiles)
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
