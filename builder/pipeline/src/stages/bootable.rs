//! Stage 7 (when the plan has [`BootablePlan`]): per role image, its root filesystem flattened
//! into one tar (the base streamed, kiln's layers over it) and turned into bootable outputs
//! under `boot/PROFILE/` by [`kiln_bootable`]: the image's kernel, kiln's initramfs, a
//! squashfs root with its dm-verity hash tree, and self-booting disks; optionally the rootfs
//! as a tarball for kickstart's `liveimg`.
//!
//! The flattened tar is scratch: it is removed once the outputs are written, or compressed
//! into `rootfs.tar.gz`/`rootfs.tar.xz` when the spec asks for it.
//!
//! Boot outputs take minutes (a gigabyte flattened, squashed, hashed, put on disks), and they
//! depend only on the role image and the boot settings, not on host identities: they are
//! cached under `CACHE/boot/KEY/` (KEY from the image's manifest digest, the settings and
//! kiln's version) and copied from there (never hard-linked: the output's disks are written
//! when booted) when an image did not change, e.g. after a change to a host's address. A
//! cache entry is complete or absent (written beside and renamed); a copy that fails falls
//! back to building.
//!
//! Copies keep holes: a reflink (`FICLONE`) where the filesystem has them, else only the
//! data between holes (`SEEK_DATA`/`SEEK_HOLE`, copied with `copy_file_range`), so a raw
//! disk (mostly an empty state partition) costs its data, not its length, in the cache and
//! in `dist/`. An entry keeps only what cannot be made again cheaply: when a build writes
//! both disks, `disk.qcow2` is not stored but converted again from `disk.raw` on a hit
//! (`qemu-img convert`, the same bytes). A hit touches the entry's `boot-report.json`: the
//! "last use" that [`crate::cache_prune`] goes by.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;

use kiln_bootable::{build_bootable, Bootable, BootableInputs};
use kiln_layers::{FileTree, IoError};
use kiln_model::plan::{BootablePlan, Profile};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::role_images::{Base, Ctx, LayerPlan};
use super::{BuildError, Dist, ImageReport};
use crate::sources::BaseSource;

/// One role image's bootable outputs, as the build report lists them (paths under `dist/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootableReport {
    pub profile: String,
    /// The role image they were made from (ref in `oci/`).
    pub image: String,
    pub kernel: String,
    pub kernel_version: String,
    pub initramfs: String,
    /// squashfs root with its dm-verity hash tree appended.
    pub root_image: String,
    /// dm-verity root hash of `root_image` (hex), bound into `cmdline`.
    pub root_hash: String,
    /// The kernel command line the disks boot with.
    pub cmdline: String,
    /// The unified kernel image (kernel, initramfs, `cmdline`, os-release on the systemd EFI
    /// stub), when the image has the stub; the disks carry it for UEFI.
    #[serde(default)]
    pub uki: Option<String>,
    /// The UKI is signed for Secure Boot (`[boot.secure_boot]`).
    #[serde(default)]
    pub signed: bool,
    /// PCR 11 (SHA-256 bank, hex) once systemd's stub measured the UKI.
    #[serde(default)]
    pub pcr11: Option<String>,
    /// The role's network UKI (`pxe/sha256/HEX`), with the PXE tree and the EFI stub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_uki: Option<String>,
    /// PCR 11 (SHA-256 bank, hex) once the stub measured the network UKI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_pcr11: Option<String>,
    #[serde(default)]
    pub disk_raw: Option<String>,
    #[serde(default)]
    pub disk_qcow2: Option<String>,
    #[serde(default)]
    pub rootfs_tarball: Option<String>,
}

/// Writes the bootable outputs of every role image.
pub(super) fn write_all(
    ctx: &mut Ctx,
    boot: &BootablePlan,
    base: &Base,
    lp: &LayerPlan,
    images: &[ImageReport],
) -> Result<Vec<BootableReport>, BuildError> {
    let mut reports = Vec::new();
    for (profile, seq) in ctx.plan.profiles.iter().zip(&lp.per_profile) {
        let Some(image) = images
            .iter()
            .find(|i| i.kind == "role" && i.of == profile.name)
        else {
            continue;
        };
        let mut upper = FileTree::new();
        for &i in seq {
            upper
                .overlay(lp.unique[i].1)
                .map_err(|e| BuildError::Source(e.to_string()))?;
        }
        let rel_dir = Dist::boot_dir_rel(&profile.name);
        let dir = ctx.dist.root().join(&rel_dir);
        fs::create_dir_all(&dir).map_err(IoError::new(format!("creating {rel_dir}")))?;
        let seed = seed(
            &image.manifest_digest.to_string(),
            &profile.name,
            boot,
            &kernel_args(boot, profile),
        );
        let signing = ctx.opts.secure_boot.as_ref();
        // Signed outputs are cached under their own key: the certificates' fingerprints (never
        // the key) added to the seed, which itself stays the same signed or not.
        let entry = match signing {
            Some(sb) => hex::encode(Sha256::digest(format!(
                "{}\nsigned {}",
                hex::encode(seed),
                sb.fingerprint()
            ))),
            None => hex::encode(seed),
        };
        let cached = ctx
            .opts
            .layer_cache
            .as_ref()
            .and_then(|l| l.parent())
            .map(|c| c.join("boot").join(entry));
        if let Some(hit) = cached.as_deref().and_then(|c| from_cache(c, &dir)) {
            (ctx.progress)(&format!("boot {}: unchanged (boot cache)", profile.name));
            reports.push(hit);
            continue;
        }
        let tar = dir.join("rootfs.tar");
        (ctx.progress)(&format!(
            "boot {}: flattening the root filesystem",
            profile.name
        ));
        flatten(ctx, base, lp, &upper, &tar)?;
        (ctx.progress)(&format!(
            "boot {}: kernel, initramfs, verified root and disks",
            profile.name
        ));
        let inputs = BootableInputs {
            rootfs_tar: &tar,
            name: &image.reference,
            seed,
            source_date_epoch: ctx.opts.source_date_epoch,
            kernel_args: kernel_args(boot, profile),
            state_size: u64::from(boot.state_size_mib) << 20,
            raw: boot.raw,
            qcow2: boot.qcow2,
            signing: signing.map(|sb| sb.signing.clone()),
            uki_args: signing
                .map(|sb| {
                    vec![format!(
                        "{}={}",
                        crate::components::bootable::SEED_SIGNER_ARG,
                        sb.db.sha256()
                    )]
                })
                .unwrap_or_default(),
        };
        let art = build_bootable(&inputs, &dir)?;
        let rootfs_tarball = match &boot.rootfs_tarball {
            Some(ext) => {
                let name = format!("rootfs.{ext}");
                (ctx.progress)(&format!("boot {}: {name}", profile.name));
                compress(&tar, &dir.join(&name), ext, ctx.opts.threads)?;
                Some(format!("{rel_dir}/{name}"))
            }
            None => None,
        };
        fs::remove_file(&tar).map_err(IoError::new(format!("removing {rel_dir}/rootfs.tar")))?;
        let r = report(
            &rel_dir,
            &profile.name,
            &image.reference,
            &art,
            rootfs_tarball,
        );
        if let Some(c) = &cached {
            if let Err(e) = to_cache(c, &dir, &r) {
                tracing::warn!("boot cache: not storing {}: {e}", c.display());
            }
        }
        reports.push(r);
    }
    Ok(reports)
}

/// `boot/manifest.json`: what `kiln boot` starts and checks ([`super::boot_manifest`]).
pub(super) fn write_manifest(
    plan: &kiln_model::plan::Plan,
    boot: &[BootableReport],
    secure_boot: Option<kiln_dist::boot_manifest::SecureBootCerts>,
    dist: &Dist,
) -> Result<(), BuildError> {
    let profiles = boot
        .iter()
        .map(|b| kiln_dist::boot_manifest::ProfileBoot {
            name: b.profile.clone(),
            disk_raw: b.disk_raw.clone().unwrap_or_default(),
            disk_qcow2: b.disk_qcow2.clone().unwrap_or_default(),
            uki: b.uki.clone().unwrap_or_default(),
            signed: b.signed,
            pcr11: b.pcr11.clone().unwrap_or_default(),
            net_uki: b.net_uki.clone().unwrap_or_default(),
            net_pcr11: b.net_pcr11.clone().unwrap_or_default(),
            root_hash: b.root_hash.clone(),
            cmdline: b.cmdline.clone(),
        })
        .collect();
    let mut m = super::boot_manifest::manifest(plan, profiles);
    m.secure_boot = secure_boot;
    let mut json =
        serde_json::to_string_pretty(&m).map_err(|e| BuildError::Source(e.to_string()))?;
    json.push('\n');
    fs::write(dist.boot_manifest(), json).map_err(IoError::new(format!(
        "writing {}",
        Dist::boot_manifest_rel()
    )))?;
    Ok(())
}

/// `secure-boot/`: the certificates and the enrolment guide, with each signed UKI's PCR 11.
pub(super) fn write_secure_boot(
    files: &crate::secure_boot::SecureBootFiles,
    boot: &[BootableReport],
    dist: &Dist,
) -> Result<kiln_dist::boot_manifest::SecureBootCerts, BuildError> {
    let roles: Vec<_> = boot
        .iter()
        .filter(|b| b.signed)
        .map(|b| crate::secure_boot::SignedRole {
            profile: b.profile.clone(),
            uki: b.uki.clone().unwrap_or_default(),
            pcr11: b.pcr11.clone().unwrap_or_default(),
            net: b.net_uki.clone().zip(b.net_pcr11.clone()),
        })
        .collect();
    Ok(crate::secure_boot::write_enrolment(files, &roles, dist)?)
}

const CACHED_REPORT: &str = "boot-report.json";

/// The outputs of a cache entry copied into `dir`, and their report; `None` (and `dir`
/// emptied) when there is no complete entry.
fn from_cache(entry: &Path, dir: &Path) -> Option<BootableReport> {
    let marker = entry.join(CACHED_REPORT);
    let report: BootableReport = serde_json::from_str(&fs::read_to_string(&marker).ok()?).ok()?;
    // The entry's last use, stamped before it is read so that pruning beside this build
    // leaves it alone ([`crate::cache_prune::GRACE`]); failing to stamp it costs nothing now.
    let _ = fs::File::options()
        .write(true)
        .open(&marker)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    let copied = (|| -> io::Result<()> {
        for f in fs::read_dir(entry)? {
            let f = f?;
            if f.file_name() != CACHED_REPORT {
                copy_keeping_holes(&f.path(), &dir.join(f.file_name()))?;
            }
        }
        // A qcow2 disk stored as its raw disk only is made from it again.
        if report.disk_qcow2.is_some() && !dir.join(QCOW2).is_file() {
            kiln_bootable::disk::to_qcow2(&dir.join(RAW), &dir.join(QCOW2))
                .map_err(io::Error::other)?;
        }
        Ok(())
    })();
    if copied.is_err() {
        let _ = fs::remove_dir_all(dir).and_then(|()| fs::create_dir_all(dir));
        return None;
    }
    Some(report)
}

const RAW: &str = "disk.raw";
const QCOW2: &str = "disk.qcow2";

/// Stores the outputs in `dir` as the cache entry `entry` (complete or not at all): every
/// file but a qcow2 disk whose raw disk is beside it ([`from_cache`] converts it again).
fn to_cache(entry: &Path, dir: &Path, report: &BootableReport) -> io::Result<()> {
    let parent = entry.parent().unwrap_or(entry);
    fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(parent)?;
    let has_raw = dir.join(RAW).is_file();
    for f in fs::read_dir(dir)? {
        let f = f?;
        if has_raw && f.file_name() == QCOW2 {
            continue;
        }
        copy_keeping_holes(&f.path(), &tmp.path().join(f.file_name()))?;
    }
    let json = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    fs::write(tmp.path().join(CACHED_REPORT), json)?;
    let tmp = tmp.keep();
    match fs::rename(&tmp, entry) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            // Another build stored the same entry first.
            if entry.join(CACHED_REPORT).is_file() {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Copies `src` to a new file `dst` (replaced if there) keeping its holes: a reflink where
/// the filesystem can (`FICLONE`: extents shared copy-on-write, its own inode), else each
/// data range between holes (`SEEK_DATA`/`SEEK_HOLE`) with `copy_file_range`, and plain
/// reads and writes where that is refused. A file system that reports no holes is copied
/// whole, as before.
pub fn copy_keeping_holes(src: &Path, dst: &Path) -> io::Result<()> {
    use rustix::fs::SeekFrom;
    use std::io::{Seek, Write};
    let input = fs::File::open(src)?;
    let meta = input.metadata()?;
    let len = meta.len();
    let _ = fs::remove_file(dst);
    let mut out = fs::File::options().write(true).create_new(true).open(dst)?;
    out.set_permissions(meta.permissions())?;
    if rustix::fs::ioctl_ficlone(&out, &input).is_ok() {
        return Ok(());
    }
    let mut pos = 0u64;
    while pos < len {
        let (start, end) = match rustix::fs::seek(&input, SeekFrom::Data(pos)) {
            Ok(start) => {
                let hole = rustix::fs::seek(&input, SeekFrom::Hole(start)).unwrap_or(len);
                (start, hole.min(len))
            }
            // No data after `pos`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA here: the rest is data.
            Err(_) => (pos, len),
        };
        let (mut from, mut to) = (start, start);
        while from < end {
            let want = usize::try_from(end - from).unwrap_or(usize::MAX);
            match rustix::fs::copy_file_range(&input, Some(&mut from), &out, Some(&mut to), want) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    // No copy_file_range here (another file system, an old kernel): by hand.
                    let mut r = &input;
                    r.seek(io::SeekFrom::Start(from))?;
                    out.seek(io::SeekFrom::Start(from))?;
                    io::copy(&mut r.take(end - from), &mut out)?;
                    from = end;
                }
            }
        }
        if from < end {
            return Err(io::Error::other(format!(
                "{} shrank while it was copied",
                src.display()
            )));
        }
        pos = end;
    }
    out.set_len(len)?;
    out.flush()
}

/// The cache key of a role image's boot outputs (`CACHE/boot/KEY/`).
pub(crate) fn cache_key(manifest_digest: &str, profile: &Profile, boot: &BootablePlan) -> String {
    hex::encode(seed(
        manifest_digest,
        &profile.name,
        boot,
        &kernel_args(boot, profile),
    ))
}

fn report(
    rel_dir: &str,
    profile: &str,
    image: &str,
    art: &Bootable,
    rootfs_tarball: Option<String>,
) -> BootableReport {
    let rel = |p: &Path| {
        format!(
            "{rel_dir}/{}",
            p.file_name().unwrap_or_default().to_string_lossy()
        )
    };
    BootableReport {
        profile: profile.into(),
        image: image.into(),
        kernel: rel(&art.kernel),
        kernel_version: art.kernel_version.clone(),
        initramfs: rel(&art.initramfs),
        root_image: rel(&art.root_image),
        root_hash: art.verity.root_hash.clone(),
        cmdline: art.cmdline.clone(),
        uki: art.uki.as_deref().map(rel),
        signed: art.signed,
        pcr11: art.pcr11.clone(),
        net_uki: None,
        net_pcr11: None,
        disk_raw: art.disk_raw.as_deref().map(rel),
        disk_qcow2: art.disk_qcow2.as_deref().map(rel),
        rootfs_tarball,
    }
}

/// What the salt, UUIDs and disk signature derive from: the image (its manifest digest covers
/// every byte of it) and the boot settings.
fn seed(manifest_digest: &str, profile: &str, boot: &BootablePlan, args: &[String]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kiln_bootable::initramfs::recipe_digest());
    // 5: the outputs keep the EFI stub (network UKIs are made from it).
    for part in [
        "kiln-boot-5",
        env!("CARGO_PKG_VERSION"),
        manifest_digest,
        profile,
        // Without the keys: signing changes the UKI's signature, not the disk's values.
        &format!(
            "{:?}",
            BootablePlan {
                secure_boot: None,
                ..boot.clone()
            }
        ),
        &args.join(" "),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// The kernel arguments of a profile's disks and PXE configs: the spec's `[boot]
/// kernel_args`, then what the profile's programs need (the Mesos agent's cgroup hierarchy).
fn kernel_args(boot: &BootablePlan, profile: &Profile) -> Vec<String> {
    boot.kernel_args
        .iter()
        .map(ToString::to_string)
        .chain(profile.kernel_args.iter().map(|k| k.arg.clone()))
        .collect()
}

/// The role image's root filesystem as one tar at `out`: the base streamed (a tarball, the
/// single layer of a base image, or nothing when the base is a tree and so in `upper`), with
/// `upper` over it.
fn flatten(
    ctx: &Ctx,
    base: &Base,
    lp: &LayerPlan,
    upper: &FileTree,
    out: &Path,
) -> Result<(), BuildError> {
    let stream: Box<dyn Read> = match &ctx.resolved.base {
        Some(BaseSource::Tarball { path, .. }) => {
            Box::new(fs::File::open(path).map_err(IoError::at("reading", path))?)
        }
        Some(BaseSource::Image(img)) => match img.image.layers.as_slice() {
            [one] => Box::new(ctx.store.open_blob(&one.digest)?),
            more => {
                return Err(BuildError::Source(format!(
                    "boot outputs: the base image {} has {} layers; kiln flattens single-layer \
                     bases only (use base.debian, a rootfs tarball, or squash the image first)",
                    img.reference,
                    more.len()
                )))
            }
        },
        Some(BaseSource::Tree(_)) => {
            // The tree base is one of the upper layers already.
            debug_assert!(lp.base_index.is_some() || base.own.is_none());
            Box::new(empty_tar())
        }
        None => {
            return Err(BuildError::Source(
                "boot outputs need a base with a kernel (base.debian with base.debian.kernel)"
                    .into(),
            ))
        }
    };
    let file = fs::File::create(out).map_err(IoError::at("creating", out))?;
    let mut w = BufWriter::new(file);
    kiln_layers::flatten_tar(
        BufReader::new(stream),
        upper,
        ctx.opts.source_date_epoch,
        &mut w,
    )?;
    let f = w
        .into_inner()
        .map_err(|e| IoError::at("writing", out)(e.into_error()))?;
    f.sync_all().map_err(IoError::at("writing", out))?;
    Ok(())
}

fn empty_tar() -> io::Cursor<Vec<u8>> {
    io::Cursor::new(vec![0u8; 1024])
}

/// `tar` compressed to `out`: gzip with kiln's deterministic parallel encoder, or xz (`xz`
/// from Debian's `xz-utils`, which gives the same bytes for the same input and options).
fn compress(tar: &Path, out: &Path, ext: &str, threads: usize) -> Result<(), BuildError> {
    let err = || IoError::at("writing", out);
    let mut input = fs::File::open(tar).map_err(err())?;
    match ext {
        "tar.gz" => {
            let f = fs::File::create(out).map_err(err())?;
            let mut enc =
                kiln_layers::compress::ParallelGzEncoder::new(BufWriter::new(f), 6, threads);
            io::copy(&mut input, &mut enc).map_err(err())?;
            io::Write::flush(&mut enc.finish().map_err(err())?).map_err(err())?;
        }
        _ => {
            let f = fs::File::create(out).map_err(err())?;
            let status = std::process::Command::new("xz")
                .args(["-T1", "-6", "-c"])
                .stdin(input)
                .stdout(f)
                .status()
                .map_err(|_| BuildError::Tool {
                    tool: "xz",
                    package: "xz-utils",
                    why: "it compresses rootfs.tar.xz (boot.rootfs_tarball = \"tar.xz\")",
                })?;
            if !status.success() {
                return Err(BuildError::Source(format!(
                    "xz failed writing {} ({status})",
                    out.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    /// A 64 MiB file with data at its start, in its middle and at its very end, holes
    /// between: the copy has the same bytes and (where the file system makes holes) no more
    /// blocks than the original.
    #[test]
    fn copies_keep_bytes_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("disk.raw");
        let mut f = fs::File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        for (at, byte) in [(0u64, 1u8), (20 << 20, 2), ((64 << 20) - 4096, 3)] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&vec![byte; 4096]).unwrap();
        }
        f.sync_all().unwrap();
        let dst = dir.path().join("copy");
        fs::write(&dst, b"an older file in the way").unwrap();
        copy_keeping_holes(&src, &dst).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        let (a, b) = (fs::metadata(&src).unwrap(), fs::metadata(&dst).unwrap());
        assert_eq!(a.len(), b.len());
        if a.blocks() * 512 < a.len() / 2 {
            assert!(
                b.blocks() <= a.blocks() + 64,
                "{} blocks copied of {}",
                b.blocks(),
                a.blocks()
            );
        }
        // A file that ends in a hole keeps its length.
        let tail = dir.path().join("tail");
        let f = fs::File::create(&tail).unwrap();
        f.set_len(1 << 20).unwrap();
        copy_keeping_holes(&tail, &dst).unwrap();
        assert_eq!(fs::metadata(&dst).unwrap().len(), 1 << 20);
        assert!(fs::read(&dst).unwrap().iter().all(|&b| b == 0));
    }
}
