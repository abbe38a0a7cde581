//! Kernel modules for the initramfs: which files, in which order, read from the image's own
//! `/lib/modules/VERSION/modules.dep` (and `modules.builtin`, for what the kernel has built
//! in). busybox `insmod` loads one file and knows nothing of dependencies, so `/init` loads
//! the list this module computes, dependencies first.

use std::collections::{BTreeMap, BTreeSet};

/// The modules `/init` needs to find a virtio disk, open dm-verity, mount squashfs, overlayfs
/// and the ext4 state partition, and attach a loop device (the diskless root). A name may be
/// built into the kernel (listed in `modules.builtin`); otherwise it must be in
/// `modules.dep`. `crc32c_generic` is ext4's soft dependency (`softdep ext4 pre: crc32c`),
/// which busybox insmod does not follow.
pub const DISK_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "dm_mod",
    "dm_verity",
    "squashfs",
    "overlay",
    "crc32c_generic",
    "ext4",
    "loop",
];

/// Other disk controllers (SCSI, SATA, NVMe), loaded when the kernel has them: real machines
/// and other hypervisors do not boot from virtio. `sr_mod` and `isofs` make the seed's `cidata`
/// CD-ROM readable before the root's udev would load them: `kiln-identity.service` waited
/// ~4 s (TCG) for them at coldplug.
pub const OTHER_DISK_MODULES: &[&str] =
    &["virtio_scsi", "sd_mod", "ahci", "nvme", "sr_mod", "isofs"];

/// Modules for a network root (`kiln.root=http://…`): loaded only when the command line asks
/// for one. Optional: a kernel without them still boots from disk.
pub const NET_MODULES: &[&str] = &["af_packet", "virtio_net", "e1000", "e1000e"];

/// A module's name as the kernel compares them: file stem, `-` read as `_`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    stem.replace('-', "_")
}

/// The parsed `modules.dep`: module name → (path relative to the modules dir, dependencies
/// as paths).
#[derive(Debug, Default)]
pub struct ModulesDep {
    modules: BTreeMap<String, (String, Vec<String>)>,
    by_path: BTreeMap<String, Vec<String>>,
    builtin: BTreeSet<String>,
}

/// What [`ModulesDep::load_order`] could not place.
#[derive(Debug, PartialEq, Eq)]
pub struct MissingModules(pub Vec<String>);

impl ModulesDep {
    /// Parses `modules.dep` and `modules.builtin` (one path a line).
    pub fn parse(dep: &str, builtin: &str) -> Self {
        let mut out = ModulesDep::default();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps: Vec<String> = deps.split_whitespace().map(String::from).collect();
            out.modules
                .insert(module_name(path), (path.to_string(), deps.clone()));
            out.by_path.insert(path.to_string(), deps);
        }
        out.builtin = builtin
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(module_name)
            .collect();
        out
    }

    /// Whether `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&name.replace('-', "_"))
    }

    /// The module files (paths as in `modules.dep`) to load for `wanted`, every dependency
    /// before the modules that need it, each once. Built-in names are skipped; names neither
    /// built in nor in `modules.dep` are returned as missing when `required`, else skipped.
    pub fn load_order(
        &self,
        wanted: &[&str],
        required: bool,
    ) -> Result<Vec<String>, MissingModules> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let mut missing = Vec::new();
        for name in wanted {
            let name = name.replace('-', "_");
            match self.modules.get(&name) {
                Some((path, _)) => self.visit(path, &mut seen, &mut order),
                None if self.builtin.contains(&name) => {}
                None if required => missing.push(name),
                None => {}
            }
        }
        if missing.is_empty() {
            Ok(order)
        } else {
            Err(MissingModules(missing))
        }
    }

    /// Depth-first: dependencies (in `modules.dep`'s order) before `path`.
    fn visit(&self, path: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_string()) {
            return;
        }
        // modules.dep lists the whole closure; its last entry is loaded first by modprobe.
        // Visiting each dependency's own line gives a valid order either way.
        for dep in self.by_path.get(path).into_iter().flatten().rev() {
            self.visit(dep, seen, order);
        }
        order.push(path.to_string());
    }
}

/// `path` with a compression suffix dropped (`x.ko.xz` → `x.ko`): the initramfs holds
/// decompressed modules, as busybox insmod may not read compressed ones.
pub fn uncompressed_name(path: &str) -> String {
    for ext in [".xz", ".zst", ".gz"] {
        if let Some(p) = path.strip_suffix(ext) {
            return p.to_string();
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Debian's 6.1 kernel has them (trimmed to the modules the initramfs uses).
    const DEP: &str = "\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko
kernel/lib/reed_solomon/reed_solomon.ko:
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/lib/reed_solomon/reed_solomon.ko kernel/drivers/md/dm-mod.ko
kernel/fs/ext4/ext4.ko.zst: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
";

    #[test]
    fn dependencies_come_first_and_once() {
        let deps = ModulesDep::parse(DEP, "kernel/fs/squashfs/squashfs.ko\n");
        let order = deps
            .load_order(
                &["virtio_pci", "virtio_blk", "dm-verity", "squashfs", "ext4"],
                true,
            )
            .unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci",
                "virtio_blk",
                "dm_mod",
                "reed_solomon",
                "dm_bufio",
                "dm_verity",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4",
            ]
        );
        // Every module after all of its dependencies.
        for (i, p) in order.iter().enumerate() {
            for d in &deps.by_path[p] {
                assert!(order[..i].contains(d), "{d} after {p}");
            }
        }
        assert!(deps.is_builtin("squashfs"));
    }

    #[test]
    fn missing_modules_are_named_unless_optional() {
        let deps = ModulesDep::parse(DEP, "");
        assert_eq!(
            deps.load_order(&["virtio_blk", "erofs", "overlay"], true),
            Err(MissingModules(vec!["erofs".into(), "overlay".into()]))
        );
        let order = deps
            .load_order(&["virtio_net", "virtio_blk"], false)
            .unwrap();
        assert_eq!(
            order.last().unwrap(),
            "kernel/drivers/block/virtio_blk.ko.xz"
        );
    }

    #[test]
    fn names_and_suffixes() {
        assert_eq!(module_name("kernel/drivers/md/dm-mod.ko.xz"), "dm_mod");
        assert_eq!(uncompressed_name("a/b.ko.zst"), "a/b.ko");
        assert_eq!(uncompressed_name("a/b.ko"), "a/b.ko");
    }
}
