//! The initramfs: a small, deterministic newc cpio (gzip) built from the image's own files —
//! its static busybox, its `veritysetup` with the libraries that program needs and the
//! image's dynamic loader, the kernel modules `/init` loads (decompressed, in dependency
//! order), and `/init`, rendered from `templates/init.sh`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;

use kiln_layers::{Entry, EntryKind, FileTree};
use kiln_model::templates::Templates;
use serde::Serialize;

use super::elf;
use super::modules::{self, ModulesDep};
use super::rootfs_index::RootfsIndex;
use crate::{Error, Result};
use kiln_layers::IoError;

/// The `/init` template.
pub const INIT_TEMPLATE: &str = include_str!("../templates/init.sh");
/// udhcpc's event script (diskless boots).
const UDHCPC_SCRIPT: &str = include_str!("../templates/udhcpc.script");

/// Where busybox may be in the image (Debian `busybox-static`).
const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];
/// Where veritysetup may be (Debian `cryptsetup-bin`).
const VERITYSETUP: &[&str] = &["/usr/sbin/veritysetup", "/sbin/veritysetup"];
/// Directories the dynamic loader searches when there is no `ld.so.cache` (Debian's
/// multiarch layout first).
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// Where the libraries go in the initramfs: the first of the loader's built-in directories.
const INITRAMFS_LIB_DIR: &str = "/lib/x86_64-linux-gnu";

/// The busybox applets `/init` and the udhcpc script use.
pub const APPLETS: &[&str] = &[
    "cat",
    "chmod",
    "dd",
    "echo",
    "findfs",
    "grep",
    "hexdump",
    "insmod",
    "ip",
    "losetup",
    "ls",
    "mkdir",
    "mount",
    "poweroff",
    "rm",
    "seq",
    "sh",
    "sleep",
    "switch_root",
    "tr",
    "udhcpc",
    "umount",
    "uname",
    "wc",
    "wget",
];

/// sha256 over what shapes the initramfs besides the image: the scripts, the applets and the
/// module lists. Part of the boot cache's key, so a changed `/init` is never taken from the
/// cache.
pub fn recipe_digest() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [INIT_TEMPLATE, UDHCPC_SCRIPT] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for list in [
        APPLETS,
        modules::DISK_MODULES,
        modules::OTHER_DISK_MODULES,
        modules::NET_MODULES,
    ] {
        h.update(list.join(",").as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// What went into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsInfo {
    /// Module files in load order (paths under `/lib/modules/VERSION/`, decompressed).
    pub modules: Vec<String>,
    /// Network modules (diskless boot), in load order.
    pub net_modules: Vec<String>,
    /// Libraries copied for veritysetup (sonames), sorted.
    pub libraries: Vec<String>,
    /// Size of the compressed initramfs.
    pub size: u64,
}

#[derive(Serialize)]
struct InitContext<'a> {
    name: &'a str,
    kernel_version: &'a str,
    modules: &'a [String],
    net_modules: &'a [String],
}

/// Renders `/init` for image `name`.
pub fn render_init(
    name: &str,
    kernel_version: &str,
    modules: &[String],
    net_modules: &[String],
) -> Result<String> {
    let t = Templates::new(&[("init.sh", INIT_TEMPLATE)])?;
    Ok(t.render(
        "init.sh",
        InitContext {
            name,
            kernel_version,
            modules,
            net_modules,
        },
    )?)
}

fn missing(image: &str, what: String, package: &'static str) -> Error {
    Error::MissingInRootfs {
        image: image.to_string(),
        what,
        package,
    }
}

/// The first of `candidates` that is a regular file in the image.
fn find_program(
    index: &RootfsIndex,
    image: &str,
    candidates: &[&str],
    package: &'static str,
) -> Result<(String, Vec<u8>)> {
    for c in candidates {
        if index.file(c).is_some() {
            return Ok((c.to_string(), index.read(c)?));
        }
    }
    Err(missing(
        image,
        format!("no {} in the root filesystem", candidates.join(" or ")),
        package,
    ))
}

/// Builds the initramfs tree from the image `index` for kernel `kernel_version`.
pub fn initramfs_tree(
    index: &RootfsIndex,
    image: &str,
    kernel_version: &str,
) -> Result<(FileTree, InitramfsInfo)> {
    let mut tree = FileTree::new();
    let put = |tree: &mut FileTree, path: &str, entry: Entry| -> Result<()> {
        tree.insert(path, entry)
            .map_err(|e| Error::Layers(kiln_layers::Error::from(e)))
    };
    for d in [
        "/dev", "/proc", "/sys", "/run", "/newroot", "/tmp", "/etc", "/sbin",
    ] {
        put(&mut tree, d, Entry::dir(0o755))?;
    }
    put(
        &mut tree,
        "/dev/console",
        Entry {
            kind: EntryKind::CharDevice(5, 1),
            ..Entry::file(Vec::new(), 0o600)
        },
    )?;

    let (_, busybox) = find_program(index, image, BUSYBOX, "busybox-static")?;
    let bb = elf::parse(&busybox, "busybox")?;
    if bb.interpreter.is_some() || !bb.needed.is_empty() {
        return Err(missing(
            image,
            "busybox is dynamically linked (the initramfs needs the static one)".into(),
            "busybox-static",
        ));
    }
    put(&mut tree, "/bin/busybox", Entry::file(busybox, 0o755))?;
    for applet in APPLETS {
        put(
            &mut tree,
            &format!("/bin/{applet}"),
            Entry::symlink("busybox"),
        )?;
    }

    let (vpath, veritysetup) = find_program(index, image, VERITYSETUP, "cryptsetup-bin")?;
    let dynamic = elf::parse(&veritysetup, &vpath)?;
    put(
        &mut tree,
        "/sbin/veritysetup",
        Entry::file(veritysetup, 0o755),
    )?;
    if let Some(interp) = &dynamic.interpreter {
        let data = index.file(interp).map(|_| index.read(interp)).transpose()?;
        let data = data.ok_or_else(|| {
            missing(
                image,
                format!("{vpath}'s loader {interp} is not in the image"),
                "libc6",
            )
        })?;
        put(&mut tree, interp, Entry::file(data, 0o755))?;
    }
    let libraries = copy_libraries(index, image, &vpath, dynamic.needed, &mut tree)?;

    let (mods, net_mods) = copy_modules(index, image, kernel_version, &mut tree)?;
    let init = render_init(image, kernel_version, &mods, &net_mods)?;
    put(&mut tree, "/init", Entry::file(init, 0o755))?;
    put(
        &mut tree,
        "/etc/udhcpc.script",
        Entry::file(UDHCPC_SCRIPT, 0o755),
    )?;
    Ok((
        tree,
        InitramfsInfo {
            modules: mods,
            net_modules: net_mods,
            libraries,
            size: 0,
        },
    ))
}

/// Copies the libraries `needed` (and theirs, transitively) into the tree; returns the sonames.
fn copy_libraries(
    index: &RootfsIndex,
    image: &str,
    program: &str,
    needed: Vec<String>,
    tree: &mut FileTree,
) -> Result<Vec<String>> {
    let mut done: BTreeMap<String, ()> = BTreeMap::new();
    let mut todo: VecDeque<(String, String)> = needed
        .into_iter()
        .map(|n| (n, program.to_string()))
        .collect();
    while let Some((soname, by)) = todo.pop_front() {
        if done.contains_key(&soname) {
            continue;
        }
        let found = LIB_DIRS
            .iter()
            .map(|d| format!("{d}/{soname}"))
            .find(|p| index.file(p).is_some())
            .ok_or_else(|| {
                missing(
                    image,
                    format!(
                        "{soname} (needed by {by}) is not in {}",
                        LIB_DIRS.join(", ")
                    ),
                    "cryptsetup-bin",
                )
            })?;
        let data = index.read(&found)?;
        let dynamic = elf::parse(&data, &found)?;
        todo.extend(dynamic.needed.into_iter().map(|n| (n, soname.clone())));
        tree.insert(
            &format!("{INITRAMFS_LIB_DIR}/{soname}"),
            Entry::file(data, 0o755),
        )
        .map_err(|e| Error::Layers(e.into()))?;
        done.insert(soname, ());
    }
    Ok(done.into_keys().collect())
}

/// Copies the modules `/init` loads (disk set, other disk controllers, network set),
/// decompressed; returns (disk modules, network modules) in load order.
fn copy_modules(
    index: &RootfsIndex,
    image: &str,
    version: &str,
    tree: &mut FileTree,
) -> Result<(Vec<String>, Vec<String>)> {
    let dir = format!("/lib/modules/{version}");
    let dep = index.file(&format!("{dir}/modules.dep")).ok_or_else(|| {
        missing(
            image,
            format!("no {dir}/modules.dep for the kernel in /boot"),
            "linux-image-amd64",
        )
    })?;
    let dep = String::from_utf8_lossy(&index.read(&dep.0)?).into_owned();
    let builtin = match index.file(&format!("{dir}/modules.builtin")) {
        Some((p, ..)) => String::from_utf8_lossy(&index.read(&p)?).into_owned(),
        None => String::new(),
    };
    let deps = ModulesDep::parse(&dep, &builtin);
    let disk = deps.load_order(modules::DISK_MODULES, true).map_err(|m| {
        missing(
            image,
            format!(
                "kernel {version} has neither built in nor in modules.dep: {}",
                m.0.join(", ")
            ),
            "linux-image-amd64",
        )
    })?;
    let mut disk_all = disk;
    for m in deps
        .load_order(modules::OTHER_DISK_MODULES, false)
        .unwrap_or_default()
    {
        if !disk_all.contains(&m) {
            disk_all.push(m);
        }
    }
    let net: Vec<String> = deps
        .load_order(modules::NET_MODULES, false)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !disk_all.contains(m))
        .collect();
    let mut copy = |list: Vec<String>| -> Result<Vec<String>> {
        let mut out = Vec::new();
        for rel in list {
            let raw = index.read(&format!("{dir}/{rel}"))?;
            let data = kiln_layers::decompress_all(&raw)?.into_owned();
            let name = modules::uncompressed_name(&rel);
            tree.insert(&format!("{dir}/{name}"), Entry::file(data, 0o644))
                .map_err(|e| Error::Layers(e.into()))?;
            out.push(name);
        }
        Ok(out)
    };
    let disk = copy(disk_all)?;
    let net = copy(net)?;
    Ok((disk, net))
}

/// Writes `tree` as a gzip-compressed newc cpio to `out`; returns its size. gzip is written
/// with no name and mtime 0, so equal trees give equal bytes.
pub fn write_initramfs(tree: &FileTree, source_date_epoch: u64, out: &Path) -> Result<u64> {
    let file = std::fs::File::create(out).map_err(IoError::at("creating initramfs", out))?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(std::io::BufWriter::new(file), flate2::Compression::best());
    kiln_layers::write_cpio(tree, source_date_epoch, &mut gz)?;
    let mut w = gz
        .finish()
        .map_err(IoError::at("compressing initramfs", out))?;
    w.flush().map_err(IoError::at("writing initramfs", out))?;
    drop(w);
    Ok(std::fs::metadata(out)
        .map_err(IoError::at("reading size of", out))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered `/init` for a fixed input, compared with its snapshot
    /// (`src/testdata/init.golden`; `KILN_BLESS=1` rewrites it after an intended change), and
    /// parsed by busybox sh.
    #[test]
    fn init_script_matches_its_snapshot_and_busybox_parses_it() {
        let mods = vec![
            "kernel/drivers/virtio/virtio.ko".to_string(),
            "kernel/drivers/block/virtio_blk.ko".to_string(),
        ];
        let net = vec!["kernel/drivers/net/virtio_net.ko".to_string()];
        let got = render_init("demo-master-agent", "6.1.0-99-amd64", &mods, &net).unwrap();
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/init.golden");
        kiln_test_support::snapshot::assert_file(&golden, &got);
        // Syntax: busybox sh parses it.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("init");
        std::fs::write(&script, &got).unwrap();
        let out = std::process::Command::new(kiln_test_support::busybox_path())
            .args(["sh", "-n"])
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
