//! Bootable artifacts from a real Debian bookworm root filesystem (`kiln_bootable`),
//! proven by booting them in QEMU (TCG, no `-kernel`): the disk reaches systemd through
//! SeaBIOS and syslinux, and through OVMF and the unified kernel image; a test unit in the
//! image reports on the console that `/usr` is read-only while `/etc` is writable, that state
//! survives reboots, and which firmware booted it; a flipped byte in the root image and a wrong
//! root hash stop the boot with a message naming the image and the hash. (The fast tier's
//! `disk_layout` reads the GPT and the UKI with `sfdisk`, mtools and binutils.)
//!
//! The base (mmdebstrap minbase + systemd, systemd-sysv, linux-image-amd64, busybox-static,
//! cryptsetup-bin, systemd-boot-efi) is built once through kiln's own Debian helper and cached under
//! `test-bases/` of the machine's test cache (`kiln_test_support::machine_cache`), keyed by its
//! inputs (or in `$KILN_BOOT_BASE_CACHE`).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_bootable::secure_boot::SigningKey;
use kiln_bootable::{self as boot, Bootable, BootableInputs};
use kiln_pipeline::spec::DebianBase;
use kiln_test_support::require_tool;

const EPOCH: u64 = 1_700_000_000;
const NAME: &str = "boot-test-agent";
const SEED: [u8; 32] = *b"kiln boot integration test seed!";

/// The Debian base, built once and cached.
fn base_tarball() -> PathBuf {
    let d = DebianBase {
        suite: "bookworm".into(),
        variant: "minbase".into(),
        packages: [
            "systemd",
            "systemd-sysv",
            "busybox-static",
            "cryptsetup-bin",
            "systemd-boot-efi",
        ]
        .map(String::from)
        .to_vec(),
        kernel: "linux-image-amd64".into(),
        mirror: None,
    };
    let dir = std::env::var_os("KILN_BOOT_BASE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| kiln_test_support::machine_cache().join("test-bases"));
    fs::create_dir_all(&dir).unwrap();
    let tar = dir.join(format!(
        "{}.tar",
        kiln_pipeline::sources::debian::inputs_digest(&d, EPOCH)
    ));
    if !tar.is_file() {
        require_tool("mmdebstrap", "mmdebstrap");
        let started = Instant::now();
        let partial = dir.join(".partial.tar");
        kiln_pipeline::sources::debian::build(&d, EPOCH, &partial).unwrap();
        fs::rename(&partial, &tar).unwrap();
        eprintln!("mmdebstrap base: {:.1?}", started.elapsed());
    }
    tar
}

/// The script the test unit runs: what the booted system can and cannot write, where its
/// root and state come from; one `KILN-CHECK` line on the console, then power off.
const CHECK_SCRIPT: &str = r#"#!/bin/sh
r=""
if touch /usr/kiln-probe 2>/dev/null; then r="$r usr=writable"; else r="$r usr=readonly"; fi
if echo ok > /etc/kiln-probe; then r="$r etc=writable"; else r="$r etc=readonly"; fi
n=$(cat /var/lib/kiln-boots 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > /var/lib/kiln-boots
r="$r boots=$n"
r="$r root=$(awk '$2 == "/" { print $1 ":" $3 }' /proc/mounts | tail -n 1)"
r="$r state=$(awk '$2 == "/run/kiln/state" { print $3 }' /proc/mounts)"
r="$r docker=$(awk '$2 == "/var/lib/docker" { print $3 }' /proc/mounts)"
if [ -d /sys/firmware/efi ]; then
  sb=$(tail -c 1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | od -An -tu1 | tr -d ' ')
  r="$r firmware=uefi secureboot=${sb:-none}"
else
  r="$r firmware=bios"
fi
if [ -r /sys/class/tpm/tpm0/pcr-sha256/11 ]; then r="$r pcr11=$(cat /sys/class/tpm/tpm0/pcr-sha256/11)"; fi
echo "KILN-CHECK$r" > /dev/console
systemctl poweroff --no-block
"#;

const CHECK_UNIT: &str = "[Unit]
Description=kiln boot test probe
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kiln-boot-check

[Install]
WantedBy=multi-user.target
";

/// The role image: the base with the test unit appended (the base's bytes, then new members).
fn role_tarball(base: &Path, out: &Path) {
    // Where the base's members end (its end-of-archive blocks start).
    let mut archive = tar::Archive::new(File::open(base).unwrap());
    let mut end = 0;
    for e in archive.entries_with_seek().unwrap() {
        let e = e.unwrap();
        end = e.raw_file_position() + e.size().div_ceil(512) * 512;
    }
    let mut w = File::create(out).unwrap();
    std::io::copy(&mut File::open(base).unwrap().take(end), &mut w).unwrap();
    let mut b = tar::Builder::new(w);
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(EPOCH);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Symlink {
            b.append_link(&mut h, path, link).unwrap();
        } else {
            b.append_data(&mut h, path, data).unwrap();
        }
    };
    add(
        "./usr/local/sbin/kiln-boot-check",
        tar::EntryType::Regular,
        0o755,
        CHECK_SCRIPT.as_bytes(),
        "",
    );
    add(
        "./etc/systemd/system/kiln-boot-check.service",
        tar::EntryType::Regular,
        0o644,
        CHECK_UNIT.as_bytes(),
        "",
    );
    add(
        "./etc/systemd/system/multi-user.target.wants/kiln-boot-check.service",
        tar::EntryType::Symlink,
        0o777,
        b"",
        "/etc/systemd/system/kiln-boot-check.service",
    );
    b.into_inner().unwrap().flush().unwrap();
}

fn build(rootfs: &Path, out: &Path, signing: &SigningKey) -> Bootable {
    let started = Instant::now();
    let a = boot::build_bootable(
        &BootableInputs {
            rootfs_tar: rootfs,
            name: NAME,
            seed: SEED,
            source_date_epoch: EPOCH,
            kernel_args: vec!["apparmor=0".into()],
            state_size: 256 << 20,
            raw: true,
            qcow2: true,
            signing: Some(signing.clone()),
            uki_args: Vec::new(),
        },
        out,
    )
    .unwrap();
    eprintln!("build_bootable: {:.1?}", started.elapsed());
    a
}

/// How a QEMU run ended.
struct Run {
    console: String,
    exited: bool,
    took: Duration,
}

/// Boots `extra` QEMU arguments with the serial console in a file; stops when QEMU exits
/// (the guest powered off) or after `timeout`.
fn qemu(dir: &Path, label: &str, extra: &[&str], timeout: Duration) -> Run {
    qemu_until(dir, label, extra, timeout, None)
}

/// [`qemu`], also stopped once the console shows `until`.
fn qemu_until(
    dir: &Path,
    label: &str,
    extra: &[&str],
    timeout: Duration,
    until: Option<&str>,
) -> Run {
    let log = dir.join(format!("{label}.console"));
    let _vm = crate::common::vm::vm_lock();
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine", "q35", "-m", "2048", "-smp", "1", "-accel", "tcg",
        ])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        let seen = until.is_some_and(|u| {
            String::from_utf8_lossy(&fs::read(&log).unwrap_or_default()).contains(u)
        });
        if seen || started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            if seen {
                eprintln!("qemu {label}: the console showed {:?}", until.unwrap_or(""));
            }
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut console = String::from_utf8_lossy(&fs::read(&log).unwrap_or_default()).into_owned();
    // QEMU's own complaints (a refused option, a locked image), after the console.
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    if !qemu_err.trim().is_empty() {
        console.push_str(&format!("\n[qemu stderr] {}", qemu_err.trim()));
    }
    let took = started.elapsed();
    eprintln!(
        "qemu {label}: {:.1?}, {}",
        took,
        if exited { "powered off" } else { "timed out" }
    );
    Run {
        console,
        exited,
        took,
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The `KILN-CHECK` line of a console log.
fn check_line(run: &Run) -> &str {
    run.console
        .lines()
        .find(|l| l.starts_with("KILN-CHECK"))
        .unwrap_or_else(|| panic!("no KILN-CHECK line:\n{}", tail(&run.console)))
}

/// Byte offset of partition `n` (1-based) of a GPT disk (its entry's first LBA).
fn partition_offset(disk: &Path, n: u64) -> u64 {
    let mut f = File::open(disk).unwrap();
    let mut lba = [0u8; 8];
    f.seek(SeekFrom::Start(2 * 512 + (n - 1) * 128 + 32))
        .unwrap();
    f.read_exact(&mut lba).unwrap();
    u64::from_le_bytes(lba) * 512
}

/// QEMU arguments that boot `disk` with OVMF (a copy of its variable store in `dir`).
fn uefi_args(dir: &Path, disk: &Path) -> Vec<String> {
    ovmf_args(
        disk,
        kiln_vm::qemu::OVMF_CODE,
        Path::new(kiln_vm::qemu::OVMF_VARS),
        &dir.join("OVMF_VARS.fd"),
        true,
    )
}

/// QEMU arguments that boot `disk` with OVMF's `code` and a copy at `vars` of the variable
/// store `template`; the disk is the first boot entry when `first`.
fn ovmf_args(disk: &Path, code: &str, template: &Path, vars: &Path, first: bool) -> Vec<String> {
    fs::copy(template, vars).unwrap();
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-drive".into(),
        format!("if=none,id=d0,format=raw,file={}", disk.display()),
        "-device".into(),
        format!(
            "virtio-blk-pci,drive=d0{}",
            if first { ",bootindex=0" } else { "" }
        ),
    ]
}

fn flip_byte(file: &Path, at: u64) {
    let mut f = File::options().read(true).write(true).open(file).unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x01]).unwrap();
}

#[test]
fn disk_boots_a_verified_read_only_root_with_persistent_state() {
    for (tool, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("tar2sqfs", "squashfs-tools-ng"),
        ("veritysetup", "cryptsetup-bin"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("syslinux", "syslinux"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ] {
        if kiln_bootable::tools::find(kiln_bootable::tools::Tool {
            name: tool,
            package,
        })
        .is_err()
        {
            require_tool(tool, package);
        }
    }
    let tmp = kiln_test_support::tempdir();
    let base = base_tarball();
    let role = tmp.path().join("role.tar");
    role_tarball(&base, &role);

    // The Secure Boot keys (openssl, as `kiln keys` makes them): the UKI is signed.
    let keys = tmp.path().join("keys");
    kiln_pipeline::secure_boot::make_keys(&keys, "kiln boot test").unwrap();
    let signing = SigningKey {
        key: keys.join("db.key"),
        cert: keys.join("db.crt"),
    };
    let out = tmp.path().join("out");
    let a = build(&role, &out, &signing);
    kiln_bootable::secure_boot::verify(a.uki.as_ref().unwrap(), &signing.cert).unwrap();
    assert!(a.signed);
    assert_eq!(
        a.verity.compressor, "zstd",
        "Debian's 6.1 kernel reads zstd squashfs"
    );
    assert!(a
        .cmdline
        .contains(&format!("kiln.roothash={}", a.verity.root_hash)));
    assert!(
        a.warnings.iter().all(|w| w.contains("posix_acl")),
        "{:?}",
        a.warnings
    );
    kiln_bootable::verity::verify(&a.root_image, &a.verity).unwrap();

    // Determinism: a second build gives the same bytes for every artifact.
    let again = build(&role, &tmp.path().join("again"), &signing);
    for (x, y) in [
        (&a.kernel, &again.kernel),
        (&a.initramfs, &again.initramfs),
        (&a.root_image, &again.root_image),
        (a.uki.as_ref().unwrap(), again.uki.as_ref().unwrap()),
        (
            a.disk_raw.as_ref().unwrap(),
            again.disk_raw.as_ref().unwrap(),
        ),
        (
            a.disk_qcow2.as_ref().unwrap(),
            again.disk_qcow2.as_ref().unwrap(),
        ),
    ] {
        assert!(
            fs::read(x).unwrap() == fs::read(y).unwrap(),
            "{} differs between two builds",
            x.display()
        );
    }
    assert_eq!(a.verity, again.verity);
    drop(again);
    fs::remove_dir_all(tmp.path().join("again")).unwrap();

    let disk = a.disk_raw.clone().unwrap();
    let drive = format!("file={},format=raw,if=virtio", disk.display());
    let limit = Duration::from_secs(180);

    // 1. The disk boots through syslinux, the initramfs and systemd to the probe.
    let run = qemu(tmp.path(), "boot1", &["-drive", &drive], limit);
    for line in [
        "kiln-initramfs: root verified and mounted read-only",
        "kiln-initramfs: state on /dev/vda3",
        "kiln-initramfs: switching to the image's /sbin/init",
    ] {
        assert!(
            run.console.contains(line),
            "{line:?} missing:\n{}",
            tail(&run.console)
        );
    }
    let check = check_line(&run);
    assert_eq!(
        check,
        "KILN-CHECK usr=readonly etc=writable boots=1 root=/dev/mapper/kiln-root:squashfs \
         state=ext4 docker=ext4 firmware=bios",
        "{}",
        tail(&run.console)
    );
    assert!(run.exited, "the probe powers the guest off");
    eprintln!("boot to probe: {:.1?}", run.took);

    // 2. State on the ext4 partition survives a reboot.
    let run = qemu(tmp.path(), "boot2", &["-drive", &drive], limit);
    assert!(
        check_line(&run).contains(" boots=2 "),
        "{}",
        check_line(&run)
    );

    // 2b. The same disk boots on UEFI (OVMF): the firmware starts the unified kernel image
    // from the EFI system partition, with the same root and state.
    let args = uefi_args(tmp.path(), &disk);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = qemu(tmp.path(), "uefi", &args, Duration::from_secs(300));
    assert!(
        check_line(&run).contains(" boots=3 ") && check_line(&run).contains(" firmware=uefi "),
        "{}\n{}",
        check_line(&run),
        tail(&run.console)
    );
    assert!(
        run.console
            .contains("kiln-initramfs: root verified and mounted read-only"),
        "{}",
        tail(&run.console)
    );
    eprintln!("UEFI boot to probe: {:.1?}", run.took);

    // 3. One flipped byte of the squashfs (its superblock, read at mount) stops the boot.
    let root_at = partition_offset(&disk, 2);
    flip_byte(&disk, root_at + 20);
    let run = qemu(tmp.path(), "corrupt", &["-drive", &drive], limit);
    flip_byte(&disk, root_at + 20);
    stopped_with_message(&run, &a.verity.root_hash, "failed verification");

    // 4. A root hash that is not the image's is refused (same initramfs, other command line).
    let wrong = "0".repeat(64);
    let cmdline = a.cmdline.replace(&a.verity.root_hash, &wrong);
    let (kernel, initrd) = (
        a.kernel.display().to_string(),
        a.initramfs.display().to_string(),
    );
    let run = qemu(
        tmp.path(),
        "wronghash",
        &[
            "-kernel", &kernel, "-initrd", &initrd, "-append", &cmdline, "-drive", &drive,
        ],
        limit,
    );
    stopped_with_message(&run, &wrong, "");

    secure_boot(tmp.path(), &a, &keys, &disk);
}

/// The signed UKI under OVMF enforcing Secure Boot with the test keys enrolled: the disk boots
/// with a TPM whose PCR 11 is the value the build computed; a UKI with a flipped byte and an
/// unsigned one are refused by the firmware; a rewritten root image with its new hash in the
/// disk's syslinux.cfg, or on a command line handed to the UKI, is refused by the initramfs
/// (the UKI's own command line wins).
fn secure_boot(dir: &Path, a: &Bootable, keys: &Path, disk: &Path) {
    let vars = dir.join("enrolled.fd");
    let owner = "5ee0b007-0000-4000-8000-6b696c6e0001";
    kiln_vm::qemu::enrolled_vars(
        &vars,
        owner,
        &keys.join("PK.crt"),
        &keys.join("KEK.crt"),
        &keys.join("db.crt"),
    )
    .unwrap();
    let secure = |label: &str, extra: &[&str], until: Option<&str>| {
        let mut args: Vec<String> = [
            "-machine",
            "smm=on",
            "-global",
            "driver=cfi.pflash01,property=secure,value=on",
        ]
        .map(String::from)
        .to_vec();
        // With -kernel, QEMU's own loader is the first boot entry.
        args.extend(ovmf_args(
            disk,
            kiln_vm::qemu::OVMF_CODE_SECURE,
            &vars,
            &dir.join(format!("{label}.vars.fd")),
            !extra.contains(&"-kernel"),
        ));
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        qemu_until(dir, label, &args, Duration::from_secs(300), until)
    };

    // 1. Boots to the probe, Secure Boot on, PCR 11 as built.
    let sock = kiln_vm::qemu::start_swtpm(dir, "secure").unwrap();
    let chardev = format!("socket,id=tpm0chr,path={}", sock.display());
    let run = secure(
        "secure",
        &[
            "-chardev",
            &chardev,
            "-tpmdev",
            "emulator,id=tpm0,chardev=tpm0chr",
            "-device",
            "tpm-tis,tpmdev=tpm0",
        ],
        None,
    );
    let line = check_line(&run).to_string();
    assert!(
        line.contains(" boots=4 ") && line.contains(" firmware=uefi secureboot=1"),
        "{line}\n{}",
        tail(&run.console)
    );
    let pcr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pcr11="))
        .unwrap_or_else(|| panic!("no TPM in the guest: {line}"));
    assert_eq!(
        pcr.to_ascii_lowercase(),
        a.pcr11.clone().unwrap(),
        "PCR 11 in the guest is not the value the build computed"
    );
    eprintln!("Secure Boot + TPM boot to probe: {:.1?}", run.took);

    // 2. The firmware refuses a UKI with one byte changed, and an unsigned one.
    let esp = format!("{}@@{}", disk.display(), partition_offset(disk, 1));
    let uki = a.uki.clone().unwrap();
    let flipped = dir.join("flipped.efi");
    fs::copy(&uki, &flipped).unwrap();
    flip_byte(&flipped, fs::metadata(&uki).unwrap().len() / 2);
    let unsigned = dir.join("unsigned.efi");
    fs::copy(&uki, &unsigned).unwrap();
    let st = Command::new("sbattach")
        .arg("--remove")
        .arg(&unsigned)
        .status()
        .unwrap();
    assert!(st.success(), "sbattach --remove");
    for (label, efi) in [("flipped-uki", &flipped), ("unsigned-uki", &unsigned)] {
        mcopy_to(&esp, efi, boot::EFI_BOOT_PATH);
        let run = secure(label, &[], Some("No bootable option or device was found"));
        refused_by_firmware(&run);
    }
    mcopy_to(&esp, &uki, boot::EFI_BOOT_PATH);

    // 3. An attacker rewrites the root image, makes its hash tree again and writes the new
    // root hash into the disk's syslinux.cfg and onto the command line the UKI is given.
    let evil = dir.join("evil-root.img");
    fs::copy(&a.root_image, &evil).unwrap();
    flip_byte(&evil, a.verity.data_size / 2);
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(format!("--data-blocks={}", a.verity.data_size / 4096))
        .arg(format!("--hash-offset={}", a.verity.hash_offset))
        .arg(format!("--salt={}", a.verity.salt))
        .arg(format!("--uuid={}", a.verity.uuid))
        .arg(&evil)
        .arg(&evil)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let evil_hash = text
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .unwrap();
    assert_ne!(evil_hash, a.verity.root_hash);
    let root_at = partition_offset(disk, 2);
    let mut f = File::options().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(root_at)).unwrap();
    f.write_all(&fs::read(&evil).unwrap()).unwrap();
    drop(f);
    let evil_cmdline = a.cmdline.replace(&a.verity.root_hash, &evil_hash);
    let cfg = dir.join("evil-syslinux.cfg");
    fs::write(&cfg, boot::syslinux_cfg(&evil_cmdline)).unwrap();
    mcopy_to(&esp, &cfg, "syslinux.cfg");
    let run = secure("rewritten-root", &[], None);
    stopped_with_message(&run, &a.verity.root_hash, "");
    let uki_arg = uki.display().to_string();
    let run = secure(
        "rewritten-root-cmdline",
        &["-kernel", &uki_arg, "-append", &evil_cmdline],
        None,
    );
    stopped_with_message(&run, &a.verity.root_hash, "");
}

/// Copies `file` into the FAT filesystem `image` (mtools' `FILE@@OFFSET`) as `to`.
fn mcopy_to(image: &str, file: &Path, to: &str) {
    let st = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i", image])
        .arg(file)
        .arg(format!("::/{to}"))
        .status()
        .unwrap();
    assert!(st.success(), "mcopy {} to {to}", file.display());
}

/// The firmware refused the boot program: no kernel ran.
fn refused_by_firmware(run: &Run) {
    let text = &run.console;
    assert!(
        text.contains("Access Denied") || text.contains("Security Violation"),
        "no refusal on the console:\n{}",
        tail(text)
    );
    for never in ["Linux version", "EFI stub", "kiln-initramfs"] {
        assert!(!text.contains(never), "{never:?} ran:\n{}", tail(text));
    }
}

/// The boot stopped in the initramfs: the FATAL lines name the image and the expected hash,
/// systemd never ran, and the guest powered off.
fn stopped_with_message(run: &Run, hash: &str, reason: &str) {
    let text = &run.console;
    assert!(
        text.contains(&format!(
            "kiln-initramfs: FATAL: image {NAME} cannot boot; expected root hash {hash}"
        )),
        "no verity failure message:\n{}",
        tail(text)
    );
    assert!(text.contains(reason), "{reason:?} missing:\n{}", tail(text));
    assert!(!text.contains("switching to the image's"), "{}", tail(text));
    assert!(!text.contains("systemd[1]"), "systemd ran:\n{}", tail(text));
    assert!(run.exited, "the guest did not power off:\n{}", tail(text));
}
