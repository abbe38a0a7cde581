//! The fixture workspace of the build tests: `fixtures/specs/build.toml` copied into a
//! temporary directory beside the two small images it names, written by the test (a base of
//! busybox plus scripts named as FIXTURES standing in for Mesos, Marathon, etcd, … and a
//! calico/node image), and `kiln build` run on it offline.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_layers::{Entry, FileTree, LayerOptions};
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::{BlobStore, ImageSpec};
use kiln_test_support::{busybox, require_tool};

use super::{fixture, kiln_code};

/// Programs the units of the fixture spec start; the base carries fixture scripts for them.
pub const STAND_INS: &[&str] = &[
    "/usr/share/zookeeper/bin/zkServer.sh",
    "/usr/bin/etcd",
    "/usr/bin/mesos-init-wrapper",
    "/usr/bin/mesos-master",
    "/usr/bin/mesos-agent",
    "/usr/share/marathon/bin/marathon",
    "/usr/bin/dockerd",
    "/usr/bin/docker",
    "/opt/cni/bin/calico",
    "/opt/cni/bin/calico-ipam",
    "/lib/systemd/systemd-networkd",
];

pub fn busybox_tree() -> FileTree {
    let mut t = FileTree::new();
    t.insert("/bin/busybox", Entry::file(busybox(), 0o755))
        .unwrap();
    for applet in ["sh", "echo", "cat", "ls"] {
        t.insert(&format!("/bin/{applet}"), Entry::symlink("busybox"))
            .unwrap();
    }
    t.insert("/tmp", Entry::dir(0o1777)).unwrap();
    t
}

/// Debian's iptables layout, as FIXTURES: `xtables-legacy-multi` and `xtables-nft-multi` are
/// scripts named as fixtures, `/usr/sbin/{ip,ip6}tables-{legacy,nft}[-save|-restore]` link to
/// them, and `/usr/sbin/{ip,ip6}tables[-save|-restore]` go through `/etc/alternatives` to the
/// nft variants, Debian 12's default (the real packages are in the Debian-base slow tests).
pub fn debian_iptables(base: &mut FileTree) {
    for v in ["legacy", "nft"] {
        let script = format!("#!/bin/sh\n# kiln test fixture standing in for xtables-{v}-multi\n");
        base.insert(
            &format!("/usr/sbin/xtables-{v}-multi"),
            Entry::file(script, 0o755),
        )
        .unwrap();
    }
    for g in ["iptables", "ip6tables"] {
        for s in ["", "-save", "-restore"] {
            for v in ["legacy", "nft"] {
                base.insert(
                    &format!("/usr/sbin/{g}-{v}{s}"),
                    Entry::symlink(format!("xtables-{v}-multi")),
                )
                .unwrap();
            }
            base.insert(
                &format!("/usr/sbin/{g}{s}"),
                Entry::symlink(format!("/etc/alternatives/{g}{s}")),
            )
            .unwrap();
            base.insert(
                &format!("/etc/alternatives/{g}{s}"),
                Entry::symlink(format!("/usr/sbin/{g}-nft{s}")),
            )
            .unwrap();
        }
    }
}

/// Writes a one-layer OCI layout `dir` with ref `reference`.
pub fn write_fixture_image(dir: &Path, reference: &str, tree: &FileTree, cmd: Option<Vec<String>>) {
    write_fixture_image_with(dir, reference, tree, |spec| spec.cmd = cmd);
}

/// [`write_fixture_image`] with the image's config (entry point, working directory, …) set by
/// `config`.
pub fn write_fixture_image_with(
    dir: &Path,
    reference: &str,
    tree: &FileTree,
    config: impl FnOnce(&mut ImageSpec),
) {
    let opts = LayerOptions {
        source_date_epoch: 1_600_000_000,
        ..LayerOptions::default()
    };
    let blob = kiln_layers::write_layer_to_dir(tree, &opts, dir).unwrap();
    let mut layout = LayoutWriter::create(dir).unwrap();
    let store = BlobStore::open(dir.join("blobs")).unwrap();
    let layer = kiln_oci::Layer {
        digest: blob.digest,
        diff_id: blob.diff_id,
        size: blob.size,
        media_type: blob.media_type.into(),
    };
    let mut spec = ImageSpec::new(
        &format!("kiln-fixture/{reference}"),
        "1",
        vec![layer],
        1_600_000_000,
    );
    config(&mut spec);
    layout.add_image(&spec, &store, Some(reference)).unwrap();
    layout.finish().unwrap();
}

/// A temp dir holding the fixture spec and its two fixture images.
pub fn fixture_workspace() -> (tempfile::TempDir, PathBuf) {
    fixture_workspace_with(|_| {})
}

/// [`fixture_workspace`] with `extra` files in the base.
pub fn fixture_workspace_with(extra: impl FnOnce(&mut FileTree)) -> (tempfile::TempDir, PathBuf) {
    require_tool("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    fs::copy(fixture("specs/build.toml"), &spec).unwrap();
    let mut base = busybox_tree();
    for prog in STAND_INS {
        let script =
            format!("#!/bin/sh\n# kiln test fixture standing in for {prog}\necho fixture {prog}\n");
        base.insert(prog, Entry::file(script, 0o755)).unwrap();
    }
    base.insert("/usr/bin/fixture-suid", Entry::file("#!/bin/sh\n", 0o4755))
        .unwrap();
    // Debian keeps ZooKeeper's config behind an alternatives symlink.
    base.insert("/etc/zookeeper/conf", Entry::symlink("conf_example"))
        .unwrap();
    let env = Entry::file("# fixture: Debian's zkEnv settings\n", 0o644);
    base.insert("/etc/zookeeper/conf_example/environment", env)
        .unwrap();
    debian_iptables(&mut base);
    extra(&mut base);
    write_fixture_image(&tmp.path().join("base-oci"), "base", &base, None);
    let mut node = busybox_tree();
    node.insert(
        "/etc/calico/fixture",
        Entry::file("kiln test fixture for calico/node\n", 0o644),
    )
    .unwrap();
    write_fixture_image(
        &tmp.path().join("calico-node-oci"),
        "calico-node",
        &node,
        Some(vec!["/bin/sh".into()]),
    );
    (tmp, spec)
}

pub fn report(dist: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dist.join("build-report.json")).unwrap()).unwrap()
}

/// `kiln build SPEC -o DIST --offline` with a cache beside the spec: nothing leaves the machine.
pub fn build_args<'a>(spec: &'a Path, dist: &'a Path, cache: &'a str) -> Vec<&'a str> {
    let (spec, dist) = (spec.to_str().unwrap(), dist.to_str().unwrap());
    vec!["build", spec, "-o", dist, "--offline", "--cache", cache]
}

pub fn build(spec: &Path, dist: &Path, extra: &[&str]) {
    let cache = spec.with_file_name("cache");
    let mut args = build_args(spec, dist, cache.to_str().unwrap());
    args.extend(extra);
    kiln_code(&args, 0);
}

/// The build machine's systemd EFI stub (Debian `systemd-boot-efi`).
pub fn efi_stub() -> PathBuf {
    let stub = PathBuf::from(kiln_bootable::uki::STUB);
    if !stub.is_file() {
        panic!(
            "{} is missing: install it with `apt-get install {}` (./dev test does)",
            stub.display(),
            kiln_bootable::uki::STUB_PACKAGE
        );
    }
    stub
}

/// The bytes of section `name` of the PE file `uki`, as binutils' `objcopy` cuts them out.
pub fn uki_section(uki: &Path, name: &str) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().unwrap();
    kiln_test_support::run(
        std::process::Command::new("objcopy")
            .args(["-O", "binary", &format!("--only-section={name}")])
            .arg(uki)
            .arg(out.path()),
    );
    fs::read(out.path()).unwrap()
}

/// The os-release of [`bootable_workspace`]'s base.
pub const FIXTURE_OS_RELEASE: &str = "PRETTY_NAME=\"kiln test fixture\"\nID=kiln-fixture\n";

/// The fixture kernel's version in [`bootable_workspace`]'s base.
pub const FIXTURE_KERNEL: &str = "6.1.0-99-fixture";

/// [`fixture_workspace`] with bootable outputs: the base also holds what `kiln_bootable`
/// takes from an image — a "kernel" (`/boot/vmlinuz-VERSION`, a text file named as a
/// fixture: nothing boots it), a `modules.builtin` naming every module `/init` loads (so none
/// is copied), busybox standing in for `veritysetup` (a static ELF, as the initramfs needs)
/// and a cloud-init stand-in — and the spec asks for a raw disk with a small state partition
/// and a PXE tree (`[provision]`). The disks, root images and their root hashes are real:
/// made by tar2sqfs, veritysetup, mkfs.vfat, syslinux, objcopy and mkfs.ext4 as for any image.
pub fn bootable_workspace() -> (tempfile::TempDir, PathBuf) {
    for (tool, package) in [
        ("tar2sqfs", "squashfs-tools-ng"),
        ("veritysetup", "cryptsetup-bin"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("syslinux", "syslinux"),
        ("mkfs.ext4", "e2fsprogs"),
    ] {
        require_tool(tool, package);
    }
    let (tmp, spec) = fixture_workspace_with(|base| {
        let file = |data: &[u8], mode| Entry::file(data.to_vec(), mode);
        base.insert(
            &format!("/boot/vmlinuz-{FIXTURE_KERNEL}"),
            file(b"kiln test fixture standing in for a kernel\n", 0o644),
        )
        .unwrap();
        let modules = format!("/lib/modules/{FIXTURE_KERNEL}");
        base.insert(&format!("{modules}/modules.dep"), file(b"", 0o644))
            .unwrap();
        let builtin: String = [
            "virtio/virtio_pci",
            "block/virtio_blk",
            "md/dm-mod",
            "md/dm-verity",
            "fs/squashfs/squashfs",
            "fs/overlayfs/overlay",
            "crypto/crc32c_generic",
            "fs/ext4/ext4",
            "block/loop",
        ]
        .iter()
        .map(|m| format!("kernel/{m}.ko\n"))
        .collect();
        base.insert(
            &format!("{modules}/modules.builtin"),
            file(builtin.as_bytes(), 0o644),
        )
        .unwrap();
        base.insert("/usr/sbin/veritysetup", file(&busybox(), 0o755))
            .unwrap();
        base.insert(
            "/usr/lib/os-release",
            file(FIXTURE_OS_RELEASE.as_bytes(), 0o644),
        )
        .unwrap();
        // The build machine's systemd EFI stub, as a Debian image has it: the unified kernel
        // image is made on it.
        base.insert(
            kiln_bootable::uki::STUB,
            file(&fs::read(efi_stub()).unwrap(), 0o644),
        )
        .unwrap();
        let script = "#!/bin/sh\n# kiln test fixture standing in for cloud-init\n";
        base.insert("/usr/bin/cloud-init", file(script.as_bytes(), 0o755))
            .unwrap();
    });
    let text = fs::read_to_string(&spec).unwrap();
    let text = format!(
        "{text}\n[boot]\nenabled = true\nstate_size_mib = 64\ndisks = [\"raw\"]\n\n\
         [provision]\nurl = \"http://10.9.0.5:8080/\"\n"
    );
    fs::write(&spec, text).unwrap();
    (tmp, spec)
}
