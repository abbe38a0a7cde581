//! Bootable artifacts from a flattened role root filesystem (one uncompressed tar): the
//! image's own kernel, an initramfs made of the image's own busybox, veritysetup and kernel
//! modules, a dm-verity protected squashfs root, a unified kernel image, and raw/qcow2 disks
//! that boot on BIOS and on UEFI.
//!
//! Everything comes from the tarball, never from the build machine (only the tools that
//! *write* formats run here: tar2sqfs, veritysetup, objcopy, mkfs.vfat, mtools, syslinux,
//! mkfs.ext4, qemu-img). Every value that would be random (verity salt and UUID, FAT volume
//! id, disk signature, GPT GUIDs, ext4 UUID and hash seed) is derived from
//! [`BootableInputs::seed`], so equal inputs give equal bytes.
//!
//! The kernel command line ([`Bootable::cmdline`]):
//! `console=ttyS0 kiln.image=NAME kiln.disk=PTUUID kiln.root=part:2 kiln.roothash=HEX
//! kiln.hashoffset=BYTES [kiln.state=part:3] EXTRA…`. For a diskless boot (PXE) replace
//! `kiln.disk`/`kiln.root=part:2`/`kiln.state` with `kiln.root=http://HOST/root.img`; see
//! `templates/init.sh`. Design notes: `docs/design/bootable-artifacts.md`.

pub mod disk;
pub mod elf;
mod error;
pub mod gpt;
pub mod initramfs;
pub mod modules;
pub mod rootfs_index;
pub mod secure_boot;
pub mod tar_filter;
pub mod tools;
pub mod uki;
pub mod verity;

use std::path::{Path, PathBuf};

use kiln_layers::IoError;
use sha2::{Digest, Sha256};

pub use rootfs_index::RootfsIndex;
pub use verity::VerityInfo;

pub use error::{Error, Result};

/// What [`build_bootable`] needs.
#[derive(Debug, Clone)]
pub struct BootableInputs<'a> {
    /// The role image flattened: one uncompressed tar, owners/modes/xattrs as in the image,
    /// no whiteouts.
    pub rootfs_tar: &'a Path,
    /// Image name, for messages (and `kiln.image=`).
    pub name: &'a str,
    /// Seed of every derived value (salt, UUIDs, volume id, disk signature).
    pub seed: [u8; 32],
    /// Timestamps of everything written.
    pub source_date_epoch: u64,
    /// Extra kernel arguments, appended (e.g. `apparmor=0`).
    pub kernel_args: Vec<String>,
    /// Bytes of the ext4 state partition (rounded up to 1 MiB); 0: none (state in RAM).
    pub state_size: u64,
    /// Keep `disk.raw` (with only `qcow2`, the raw disk is made, converted and removed).
    pub raw: bool,
    /// Write `disk.qcow2`.
    pub qcow2: bool,
    /// Sign the unified kernel image for Secure Boot with this key ([`secure_boot::sign`]).
    pub signing: Option<secure_boot::SigningKey>,
    /// Kernel arguments of the UKI only, after the disk's (the seed's signer: only the signed
    /// chain asks for a signed seed).
    pub uki_args: Vec<String>,
}

/// What [`build_bootable`] wrote.
#[derive(Debug, Clone)]
pub struct Bootable {
    /// `vmlinuz`: the image's kernel.
    pub kernel: PathBuf,
    /// The kernel's version (`6.1.0-13-amd64`).
    pub kernel_version: String,
    /// `initramfs.img` (gzip newc cpio).
    pub initramfs: PathBuf,
    /// `root.img`: squashfs + dm-verity hash tree.
    pub root_image: PathBuf,
    /// How to open the root image.
    pub verity: VerityInfo,
    /// `kiln.efi`: the unified kernel image (stub, kernel, initramfs, command line,
    /// os-release; see [`uki`]), when the image has the systemd EFI stub ([`uki::STUB`]).
    pub uki: Option<PathBuf>,
    /// The UKI carries an Authenticode signature made with [`BootableInputs::signing`].
    pub signed: bool,
    /// PCR 11 (SHA-256 bank, hex) after systemd's stub measured the UKI
    /// ([`secure_boot::expected_pcr11`]).
    pub pcr11: Option<String>,
    /// `disk.raw`, when asked for.
    pub disk_raw: Option<PathBuf>,
    /// `disk.qcow2`, when asked for.
    pub disk_qcow2: Option<PathBuf>,
    /// The kernel command line the disk boots with (and a PXE config should use, with
    /// `kiln.root=` changed).
    pub cmdline: String,
    /// The UKI's: [`Bootable::cmdline`] and [`BootableInputs::uki_args`].
    pub uki_cmdline: String,
    /// The disk signature in the protective MBR (`kiln.disk=`), as 8 hex digits.
    pub disk_id: String,
    /// What went into the initramfs.
    pub initramfs_info: initramfs::InitramfsInfo,
    /// Non-fatal remarks of the tools (tar members squashfs cannot hold, …).
    pub warnings: Vec<String>,
}

/// The root partition number on the disk.
pub const ROOT_PARTITION: u32 = 2;
/// The state partition number on the disk.
pub const STATE_PARTITION: u32 = 3;

/// 32 bytes derived from `seed` for `purpose`: sha256(seed ‖ purpose).
pub fn derive(seed: &[u8; 32], purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(purpose.as_bytes());
    h.finalize().into()
}

/// A UUID (RFC 4122 layout, version 4 and variant bits set) derived from `seed`.
pub fn derive_uuid(seed: &[u8; 32], purpose: &str) -> String {
    let mut b = derive(seed, purpose);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A non-zero 32-bit value derived from `seed`.
pub fn derive_u32(seed: &[u8; 32], purpose: &str) -> u32 {
    let b = derive(seed, purpose);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]).max(1)
}

/// The image's kernel: the one `/boot/vmlinuz-VERSION` (path, version).
pub fn find_kernel(index: &RootfsIndex, image: &str) -> Result<(String, String)> {
    let kernels: Vec<(String, String)> = index
        .under("boot")
        .filter_map(|(p, _)| {
            let version = p.strip_prefix("boot/vmlinuz-")?;
            (!version.contains('/') && index.file(p).is_some())
                .then(|| (p.to_string(), version.to_string()))
        })
        .collect();
    match kernels.len() {
        1 => Ok(kernels.into_iter().next().unwrap_or_default()),
        0 => Err(Error::MissingInRootfs {
            image: image.to_string(),
            what: "no kernel /boot/vmlinuz-* in the root filesystem".into(),
            package: "linux-image-amd64",
        }),
        _ => Err(Error::invalid(
            format!("image {image}"),
            format!(
                "{} kernels in /boot ({}): keep exactly one kernel package",
                kernels.len(),
                kernels
                    .iter()
                    .map(|(p, _)| format!("/{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The kernel command line for the disk.
pub fn cmdline(
    name: &str,
    disk_id: &str,
    verity: &VerityInfo,
    state: bool,
    extra: &[String],
) -> String {
    let mut args = vec![
        "console=ttyS0".to_string(),
        format!("kiln.image={name}"),
        format!("kiln.disk={disk_id}"),
        format!("kiln.root=part:{ROOT_PARTITION}"),
        format!("kiln.roothash={}", verity.root_hash),
        format!("kiln.hashoffset={}", verity.hash_offset),
    ];
    if state {
        args.push(format!("kiln.state=part:{STATE_PARTITION}"));
    }
    args.extend(extra.iter().cloned());
    args.join(" ")
}

/// Checks every external tool the requested outputs need, before any work.
fn check_tools(inputs: &BootableInputs) -> Result<()> {
    use tools::*;
    let mut needed = vec![TAR2SQFS, VERITYSETUP, OBJCOPY];
    if inputs.raw || inputs.qcow2 {
        needed.extend([MKFS_VFAT, MCOPY, MMD, SYSLINUX]);
        if inputs.state_size > 0 {
            needed.push(MKFS_EXT4);
        }
        if !Path::new(SYSLINUX_MBR).is_file() {
            return Err(Error::MissingTool {
                tool: "syslinux mbr.bin",
                package: SYSLINUX_MBR_PACKAGE,
            });
        }
    }
    if inputs.qcow2 {
        needed.push(QEMU_IMG);
    }
    if let Some(k) = &inputs.signing {
        needed.extend([SBSIGN, SBVERIFY, FAKETIME]);
        secure_boot::check_private(&k.key)?;
    }
    for t in needed {
        find(t)?;
    }
    Ok(())
}

/// Builds kernel, initramfs, root image and (when asked) disks into `out_dir`: `vmlinuz`,
/// `initramfs.img`, `root.img`, `disk.raw`, `disk.qcow2` (and scratch files it removes).
pub fn build_bootable(inputs: &BootableInputs, out_dir: &Path) -> Result<Bootable> {
    check_tools(inputs)?;
    std::fs::create_dir_all(out_dir).map_err(IoError::at("creating", out_dir))?;
    let name = inputs.name;
    let epoch = inputs.source_date_epoch;
    let index = RootfsIndex::open(inputs.rootfs_tar)?;
    let (kernel_path, kernel_version) = find_kernel(&index, name)?;

    let kernel = out_dir.join("vmlinuz");
    std::fs::write(&kernel, index.read(&kernel_path)?).map_err(IoError::at("writing", &kernel))?;

    let (tree, mut info) = initramfs::initramfs_tree(&index, name, &kernel_version)?;
    let initramfs = out_dir.join("initramfs.img");
    info.size = initramfs::write_initramfs(&tree, epoch, &initramfs)?;
    drop(tree);

    let config = index
        .file(&format!("/boot/config-{kernel_version}"))
        .map(|(p, ..)| index.read(&p))
        .transpose()?
        .map(|c| String::from_utf8_lossy(&c).into_owned());
    let compressor = verity::compressor_for(config.as_deref());
    let root_image = out_dir.join("root.img");
    let mut warnings = Vec::new();
    let verity = verity::build_root_image(
        inputs.rootfs_tar,
        &root_image,
        compressor,
        &hex::encode(derive(&inputs.seed, "verity-salt")),
        &derive_uuid(&inputs.seed, "verity-uuid"),
        epoch,
        &mut warnings,
    )?;

    let signature = derive_u32(&inputs.seed, "mbr-signature");
    let disk_id = format!("{signature:08x}");
    let cmdline = cmdline(
        name,
        &disk_id,
        &verity,
        inputs.state_size > 0,
        &inputs.kernel_args,
    );
    let uki_cmdline = std::iter::once(cmdline.clone())
        .chain(inputs.uki_args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut pcr11 = None;
    let uki = match index.file(uki::STUB) {
        Some((stub, ..)) => {
            let os_release = ["/usr/lib/os-release", "/etc/os-release"]
                .into_iter()
                .find(|p| index.file(p).is_some())
                .map(|p| index.read(p))
                .transpose()?
                .unwrap_or_default();
            let out = out_dir.join("kiln.efi");
            let stub = index.read(&stub)?;
            // Kept beside the UKI: the network UKIs of the PXE tree are made from it
            // ([`network_uki`]), with a command line that names the provisioning server.
            let kept = out_dir.join(uki::STUB_FILE);
            std::fs::write(&kept, &stub).map_err(IoError::at("writing", &kept))?;
            uki::build_uki(
                &stub,
                &os_release,
                &uki_cmdline,
                &kernel,
                &initramfs,
                &out_dir.join("uki.scratch"),
                &out,
            )?;
            if let Some(key) = &inputs.signing {
                secure_boot::sign(&out, key, epoch)?;
            }
            let pe = std::fs::read(&out).map_err(IoError::at("reading", &out))?;
            pcr11 = Some(secure_boot::expected_pcr11(&pe)?);
            Some(out)
        }
        None if inputs.signing.is_some() => {
            return Err(Error::MissingInRootfs {
                image: name.to_string(),
                what: format!(
                    "Secure Boot signs the unified kernel image, and there is no systemd EFI \
                     stub at {} to make it from",
                    uki::STUB
                ),
                package: uki::STUB_PACKAGE,
            });
        }
        None => {
            warnings.push(format!(
                "{name}: no systemd EFI stub at {} (Debian package {}): no unified kernel \
                 image, and the disks boot on BIOS only",
                uki::STUB,
                uki::STUB_PACKAGE
            ));
            None
        }
    };
    let (mut disk_raw, mut disk_qcow2) = (None, None);
    if inputs.raw || inputs.qcow2 {
        let raw = out_dir.join("disk.raw");
        build_disk(
            inputs,
            out_dir,
            &raw,
            signature,
            &cmdline,
            &BootFiles {
                kernel: &kernel,
                initramfs: &initramfs,
                uki: uki.as_deref(),
            },
            &root_image,
        )?;
        if inputs.qcow2 {
            let q = out_dir.join("disk.qcow2");
            disk::to_qcow2(&raw, &q)?;
            disk_qcow2 = Some(q);
        }
        if inputs.raw {
            disk_raw = Some(raw);
        } else {
            std::fs::remove_file(&raw).map_err(IoError::at("removing", &raw))?;
        }
    }
    Ok(Bootable {
        kernel,
        kernel_version,
        initramfs,
        root_image,
        verity,
        signed: uki.is_some() && inputs.signing.is_some(),
        pcr11,
        uki,
        disk_raw,
        disk_qcow2,
        cmdline,
        uki_cmdline,
        disk_id,
        initramfs_info: info,
        warnings,
    })
}

/// A network UKI: the stub ([`uki::STUB_FILE`]), kernel, initramfs and os-release of the
/// bootable outputs in `dir` (as [`build_bootable`] wrote them) with the diskless command line
/// `cmdline`, written to `out` and signed with `signing` when given. Returns its PCR 11
/// ([`secure_boot::expected_pcr11`]). Same inputs, same bytes.
pub fn network_uki(
    dir: &Path,
    cmdline: &str,
    signing: Option<&secure_boot::SigningKey>,
    source_date_epoch: u64,
    out: &Path,
) -> Result<String> {
    let stub_path = dir.join(uki::STUB_FILE);
    let stub = std::fs::read(&stub_path).map_err(IoError::at("reading", &stub_path))?;
    let disk_uki = dir.join("kiln.efi");
    let pe = std::fs::read(&disk_uki).map_err(IoError::at("reading", &disk_uki))?;
    let os_release = uki::section_bytes(&pe, ".osrel")?.unwrap_or_default();
    let scratch = out.with_extension("scratch");
    uki::build_uki(
        &stub,
        &os_release,
        cmdline,
        &dir.join("vmlinuz"),
        &dir.join("initramfs.img"),
        &scratch,
        out,
    )?;
    if let Some(key) = signing {
        secure_boot::sign(out, key, source_date_epoch)?;
    }
    let pe = std::fs::read(out).map_err(IoError::at("reading", out))?;
    secure_boot::expected_pcr11(&pe)
}

/// The syslinux configuration: boot `vmlinuz` with `cmdline` at once, on the serial console
/// too.
pub fn syslinux_cfg(cmdline: &str) -> String {
    format!(
        "SERIAL 0 115200\nDEFAULT kiln\nPROMPT 0\nTIMEOUT 0\nLABEL kiln\n  LINUX /vmlinuz\n  \
         INITRD /initrd.img\n  APPEND {cmdline}\n"
    )
}

/// What the boot partition holds besides syslinux.
struct BootFiles<'a> {
    kernel: &'a Path,
    initramfs: &'a Path,
    uki: Option<&'a Path>,
}

/// Where UEFI firmware looks for the boot program on a disk it has no boot entry for.
pub const EFI_BOOT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

/// The disk (see [`disk`]): a GPT with a protective MBR whose boot code is syslinux's
/// `gptmbr.bin`; partition 1 the EFI system partition, marked legacy BIOS bootable, with
/// syslinux (BIOS) and the UKI as `\EFI\BOOT\BOOTX64.EFI` (UEFI); 2 the root image; 3 the
/// state filesystem.
fn build_disk(
    inputs: &BootableInputs,
    out_dir: &Path,
    raw: &Path,
    signature: u32,
    cmdline: &str,
    boot: &BootFiles,
    root_image: &Path,
) -> Result<()> {
    use disk::{round_up, ALIGN, SECTOR};
    use gpt::{GptPartition, ESP_TYPE, LEGACY_BIOS_BOOTABLE, LINUX_DATA_TYPE};
    let epoch = inputs.source_date_epoch;
    let size_of = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(IoError::at("reading size of", p))
    };
    let cfg = out_dir.join("syslinux.cfg");
    std::fs::write(&cfg, syslinux_cfg(cmdline)).map_err(IoError::at("writing", &cfg))?;
    let mut files = vec![
        ("vmlinuz", boot.kernel),
        ("initrd.img", boot.initramfs),
        ("syslinux.cfg", cfg.as_path()),
    ];
    if let Some(uki) = boot.uki {
        files.push((EFI_BOOT_PATH, uki));
    }
    let mut payload = 0;
    for (_, f) in &files {
        payload += size_of(f)?;
    }
    let fat_size = round_up(payload + payload / 4 + (4 << 20), ALIGN).max(32 << 20);
    let boot_start = ALIGN;
    let fat = out_dir.join("boot.vfat");
    disk::build_fat(
        &fat,
        fat_size,
        derive_u32(&inputs.seed, "fat-volume-id"),
        boot_start / SECTOR,
        &files,
        epoch,
    )?;
    let root_start = boot_start + fat_size;
    let root_size = round_up(size_of(root_image)?, ALIGN);
    let part = |n: &str, kind: &str, start: u64, size: u64, attributes| GptPartition {
        type_guid: kind.into(),
        guid: derive_uuid(&inputs.seed, &format!("gpt-partition-{n}")),
        start: start / SECTOR,
        sectors: size / SECTOR,
        attributes,
        name: n.into(),
    };
    let mut parts = vec![
        part(
            "kiln-boot",
            ESP_TYPE,
            boot_start,
            fat_size,
            LEGACY_BIOS_BOOTABLE,
        ),
        part("kiln-root", LINUX_DATA_TYPE, root_start, root_size, 0),
    ];
    let mut images: Vec<(&Path, u64)> = vec![(&fat, boot_start), (root_image, root_start)];
    let mut end = root_start + root_size;
    let ext4 = out_dir.join("state.ext4");
    if inputs.state_size > 0 {
        let state_size = round_up(inputs.state_size, ALIGN);
        disk::build_ext4(
            &ext4,
            state_size,
            &derive_uuid(&inputs.seed, "state-uuid"),
            &derive_uuid(&inputs.seed, "state-hash-seed"),
            epoch,
        )?;
        parts.push(part("kiln-state", LINUX_DATA_TYPE, end, state_size, 0));
        images.push((&ext4, end));
        end += state_size;
    }
    // The backup table in the last sectors, in a 1 MiB of its own.
    let size = end + ALIGN;
    let code =
        std::fs::read(tools::SYSLINUX_MBR).map_err(IoError::at("reading", tools::SYSLINUX_MBR))?;
    let table = gpt::gpt(
        &code,
        signature,
        &derive_uuid(&inputs.seed, "gpt-disk"),
        &parts,
        size / SECTOR,
    )?;
    disk::assemble(
        raw,
        size,
        &[
            (&table.head, 0),
            (&table.tail, size - gpt::BACKUP_SECTORS * SECTOR),
        ],
        &images,
    )?;
    for scratch in [&fat, &ext4, &cfg] {
        let _ = std::fs::remove_file(scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_are_stable_and_distinct() {
        let seed = [7u8; 32];
        let u = derive_uuid(&seed, "verity-uuid");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u, derive_uuid(&seed, "verity-uuid"));
        assert_ne!(u, derive_uuid(&seed, "state-uuid"));
        assert_ne!(u, derive_uuid(&[8u8; 32], "verity-uuid"));
        assert_ne!(derive_u32(&seed, "mbr-signature"), 0);
    }

    #[test]
    fn cmdline_format() {
        let v = VerityInfo {
            root_hash: "ab".repeat(32),
            salt: String::new(),
            data_size: 4096,
            hash_offset: 4096,
            uuid: String::new(),
            data_block_size: 4096,
            hash_block_size: 4096,
            image_size: 8192,
            compressor: "zstd".into(),
        };
        assert_eq!(
            cmdline("demo", "1a2b3c4d", &v, true, &["apparmor=0".into()]),
            format!(
                "console=ttyS0 kiln.image=demo kiln.disk=1a2b3c4d kiln.root=part:2 \
                 kiln.roothash={} kiln.hashoffset=4096 kiln.state=part:3 apparmor=0",
                "ab".repeat(32)
            )
        );
    }
}
