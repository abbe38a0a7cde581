//! The disks and the unified kernel image `kiln build` writes (issue 21, item 1), read by
//! independent tools: util-linux's `sfdisk` for the GPT, binutils' `objdump` and `objcopy` for
//! the UKI, mtools' `mdir` for the EFI system partition. (The slow tier boots such a disk on
//! SeaBIOS and on OVMF.)

use std::fs;
use std::process::Command;

use crate::common::kiln_code;
use crate::common::workspace::{
    bootable_workspace, build, build_args, report, uki_section, FIXTURE_OS_RELEASE,
};
use kiln_test_support::{require_tool, run};

/// One disk for both firmwares: a GPT whose first partition is the EFI system partition,
/// marked legacy BIOS bootable, holding syslinux (BIOS) and the UKI at the path UEFI firmware
/// starts; the UKI carries the disk's command line (root hash included), the image's kernel,
/// kiln's initramfs and the image's os-release, and the boot manifest names it.
#[test]
fn one_disk_boots_bios_and_uefi_and_the_uki_carries_the_command_line() {
    for (tool, package) in [
        ("sfdisk", "fdisk"),
        ("objdump", "binutils"),
        ("mdir", "mtools"),
    ] {
        require_tool(tool, package);
    }
    let (tmp, spec) = bootable_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let rep = report(&dist);
    let boot = rep["boot"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["profile"] == "agent")
        .unwrap();
    assert_eq!(boot["uki"], "boot/agent/kiln.efi", "{boot}");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dist.join("boot/manifest.json")).unwrap())
            .unwrap();
    assert!(
        manifest["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "agent" && p["uki"] == "boot/agent/kiln.efi"),
        "{manifest}"
    );

    let uki = dist.join("boot/agent/kiln.efi");
    // Built again a second later with an empty cache: the same bytes (objcopy stamps the
    // time it runs into the PE header; kiln sets it back).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = tmp.path().join("again");
    let other_cache = tmp.path().join("other-cache");
    kiln_code(&build_args(&spec, &again, other_cache.to_str().unwrap()), 0);
    for f in ["kiln.efi", "disk.raw"] {
        assert!(
            fs::read(dist.join("boot/agent").join(f)).unwrap()
                == fs::read(again.join("boot/agent").join(f)).unwrap(),
            "{f} differs between two builds"
        );
    }
    let h = run(Command::new("objdump").arg("-h").arg(&uki));
    for s in [".osrel", ".cmdline", ".linux", ".initrd", ".sbat"] {
        assert!(h.contains(&format!(" {s} ")), "{s} missing:\n{h}");
    }
    let cmdline = boot["cmdline"].as_str().unwrap();
    assert!(cmdline.contains(&format!(
        "kiln.roothash={}",
        boot["root_hash"].as_str().unwrap()
    )));
    assert_eq!(
        uki_section(&uki, ".cmdline"),
        format!("{cmdline}\0").into_bytes()
    );
    assert_eq!(uki_section(&uki, ".osrel"), FIXTURE_OS_RELEASE.as_bytes());
    assert_eq!(
        uki_section(&uki, ".linux"),
        fs::read(dist.join("boot/agent/vmlinuz")).unwrap()
    );
    assert_eq!(
        uki_section(&uki, ".initrd"),
        fs::read(dist.join("boot/agent/initramfs.img")).unwrap()
    );

    let disk = dist.join("boot/agent/disk.raw");
    let verify = Command::new("sfdisk")
        .arg("--verify")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let t: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(&disk))).unwrap();
    let pt = &t["partitiontable"];
    assert_eq!(pt["label"], "gpt", "{t}");
    let parts = pt["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{t}");
    assert_eq!(
        parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "{t}"
    );
    assert_eq!(parts[0]["attrs"], "LegacyBIOSBootable", "{t}");
    for p in &parts[1..] {
        assert_eq!(p["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "{t}");
    }
    // The protective MBR has the disk signature kiln's initramfs finds its disk by.
    let sector0 = &fs::read(&disk).unwrap()[..512];
    let sig = u32::from_le_bytes(sector0[440..444].try_into().unwrap());
    assert!(
        cmdline.contains(&format!("kiln.disk={sig:08x}")),
        "{cmdline}"
    );
    // The EFI system partition, as mtools reads it at its offset.
    let start = parts[0]["start"].as_u64().unwrap() * 512;
    let esp = format!("{}@@{start}", disk.display());
    let listing = run(Command::new("mdir").env("MTOOLS_SKIP_CHECK", "1").args([
        "-b",
        "-i",
        &esp,
        "::/EFI/BOOT",
    ]));
    assert!(listing.contains("BOOTX64.EFI"), "{listing}");
    let copy = tmp.path().join("BOOTX64.EFI");
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &esp, "::/EFI/BOOT/BOOTX64.EFI"])
        .arg(&copy));
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&uki).unwrap());
    // -a: syslinux's own files are hidden.
    let root = run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-a", "-b", "-i", &esp, "::/"]));
    for f in ["SYSLINUX.CFG", "LDLINUX.SYS", "VMLINUZ", "INITRD.IMG"] {
        assert!(root.to_uppercase().contains(f), "{f} missing:\n{root}");
    }
}
