//! GNU tar, gzip, zstd and cpio as independent oracles for our bytes, and GNU tar's output as
//! input for our reader.

use crate::util::*;
use kiln_layers::{
    extract_to_dir, read_layer, write_cpio, write_layer, Compression, EntryKind, FileTree,
    LayerOptions,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn layer_file(dir: &Path, tree: &FileTree, c: Compression) -> std::path::PathBuf {
    let path = dir.join("layer");
    let f = std::fs::File::create(&path).unwrap();
    write_layer(
        tree,
        &LayerOptions {
            source_date_epoch: EPOCH,
            compression: c,
            threads: 2,
        },
        f,
    )
    .unwrap();
    path
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test extracts owners and devices and must run as root"
    );
}

#[test]
fn gnu_tar_lists_our_layer() {
    require_tool("tar", "tar");
    let dir = tempfile::tempdir().unwrap();
    let path = layer_file(dir.path(), &sample_tree(), Compression::None);
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&path));
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let has = |needle: &str| {
        assert!(
            listing.lines().any(|l| squash(l).contains(&squash(needle))),
            "no line with {needle:?} in:\n{listing}"
        )
    };
    has("-rwsr-xr-x 0/0 3000 2023-11-14 22:13 usr/bin/sudo");
    has("-rwxr-sr-x 0/5");
    has("drwxrwxrwt 0/0");
    has("-rw------- 1234/4321");
    has("3000000/2500000");
    has("usr/bin/sudoedit link to usr/bin/sudo");
    has("bin -> usr/bin");
    has(&format!("etc/long-link -> /{}", "t".repeat(150)));
    has(&format!("opt/{}", "n".repeat(180)));
    has("deep-directory-name/file-with-a-long-name");
    has("crw-rw-rw- 0/0 1,3 2023-11-14 22:13 dev/null");
    has("brw-rw---- 0/6 7,0 2023-11-14 22:13 dev/loop0");
    has("prw------- 0/0");
    has("2020-09-13 12:26 etc/zookeeper/zoo.cfg");
}

/// Metadata of every path below `root`, for comparing two extractions.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mut desc = format!("{:o} {}:{}", m.mode(), m.uid(), m.gid());
            if m.file_type().is_symlink() {
                desc += &format!(" -> {}", std::fs::read_link(&p).unwrap().display());
            } else if m.is_file() {
                desc += &format!(" {} bytes nlink {}", m.len(), m.nlink());
                desc += &format!(" {:?}", std::fs::read(&p).unwrap().len());
                let mut names: Vec<_> = rustix_xattrs(&p);
                names.sort();
                desc += &format!(" xattrs {names:?}");
            } else if m.is_dir() {
                stack.push(p.clone());
            } else {
                desc += &format!(" rdev {}", m.rdev());
            }
            desc += &format!(" mtime {}", m.mtime());
            out.insert(rel, desc);
        }
    }
    out
}

fn rustix_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    names[..n]
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let name = String::from_utf8(s.to_vec()).unwrap();
            let mut v = vec![0u8; 4096];
            let k = rustix::fs::lgetxattr(p, name.as_str(), &mut v[..]).unwrap();
            v.truncate(k);
            (name, v)
        })
        .collect()
}

#[test]
fn gnu_tar_extracts_what_we_extract() {
    require_tool("tar", "tar");
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree();
    let path = layer_file(dir.path(), &tree, Compression::Gzip { level: 6 });
    let by_tar = dir.path().join("by-tar");
    std::fs::create_dir(&by_tar).unwrap();
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"])
        .arg(&path)
        .arg("-C")
        .arg(&by_tar));
    let by_us = dir.path().join("by-us");
    extract_to_dir(&as_read_back(&tree, EPOCH), &by_us).unwrap();

    let theirs = snapshot(&by_tar);
    assert_eq!(snapshot(&by_us), theirs);
    // And what GNU tar made is what the tree says.
    let sudo = std::fs::metadata(by_tar.join("usr/bin/sudo")).unwrap();
    assert_eq!(sudo.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        sudo.ino(),
        std::fs::metadata(by_tar.join("usr/bin/sudoedit"))
            .unwrap()
            .ino()
    );
    let myid = std::fs::metadata(by_tar.join("etc/zookeeper/myid")).unwrap();
    assert_eq!((myid.uid(), myid.gid()), (1234, 4321));
    let ping = rustix_xattrs(&by_tar.join("usr/bin/ping"));
    assert_eq!(ping[0].0, "security.capability");
    let readme = rustix_xattrs(&by_tar.join("usr/share/doc/readme"));
    assert_eq!(
        readme,
        [(
            "user.kiln.note".to_string(),
            b"a value with = and \n".to_vec()
        )]
    );
    assert_eq!(
        std::fs::read_link(by_tar.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
}

#[test]
fn our_reader_reads_gnu_tar_pax_output() {
    require_tool("tar", "tar");
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tree = as_read_back(&sample_tree(), EPOCH);
    let src = dir.path().join("src");
    extract_to_dir(&tree, &src).unwrap();
    let tar_path = dir.path().join("gnu.tar");
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--format=posix",
            "--sort=name",
            "--numeric-owner",
            "-cf",
        ])
        .arg(&tar_path)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let back = read_layer(std::fs::File::open(&tar_path).unwrap()).unwrap();
    let strip = |t: &FileTree| {
        t.iter()
            .map(|(p, e)| {
                let mut e = e.clone();
                // GNU tar picks its own leader for hard links and records real mtimes.
                if let EntryKind::Hardlink(_) = e.kind {
                    e.kind = EntryKind::Hardlink(String::new());
                }
                if e.data().is_none() {
                    e.xattrs.clear();
                }
                (p.to_string(), e)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (mine, theirs) = (strip(&tree), strip(&back));
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (p, e) in &mine {
        let o = &theirs[p];
        assert_eq!(
            (&e.kind, e.mode, e.uid, e.gid, &e.xattrs),
            (&o.kind, o.mode, o.uid, o.gid, &o.xattrs),
            "{p}"
        );
        assert_eq!(e.mtime, o.mtime, "{p}");
    }
}

#[test]
fn gzip_and_zstd_accept_our_blobs() {
    require_tool("gzip", "gzip");
    require_tool("zstd", "zstd");
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree();
    let gz = layer_file(dir.path(), &tree, Compression::default());
    run(Command::new("gzip").arg("-t").arg(&gz));
    let listing = run(Command::new("tar").arg("-tzf").arg(&gz));
    assert!(listing.contains("usr/bin/sudo\n"));
    let zst = layer_file(dir.path(), &tree, Compression::Zstd { level: 3 });
    run(Command::new("zstd").arg("-q").arg("-t").arg(&zst));
}

#[test]
fn cpio_extracts_our_archive() {
    require_tool("cpio", "cpio");
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree();
    let archive = dir.path().join("initramfs.cpio");
    write_cpio(&tree, EPOCH, std::fs::File::create(&archive).unwrap()).unwrap();
    let listing = run(Command::new("sh").arg("-c").arg(format!(
        "cpio -itv --numeric-uid-gid < {}",
        archive.display()
    )));
    assert!(
        listing.contains("-rwsr-xr-x   2 0        0            3000 Nov 14  2023 usr/bin/sudo"),
        "{listing}"
    );
    assert!(listing.contains("bin -> usr/bin"), "{listing}");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("sh").current_dir(&out).arg("-c").arg(format!(
        "cpio -idm --no-absolute-filenames --quiet < {}",
        archive.display()
    )));
    assert_eq!(
        std::fs::read(out.join("usr/bin/sudo")).unwrap(),
        vec![0x7f; 3000]
    );
    assert_eq!(
        std::fs::read(out.join("usr/bin/sudoedit")).unwrap(),
        vec![0x7f; 3000]
    );
    assert_eq!(
        std::fs::metadata(out.join("usr/bin/sudo")).unwrap().ino(),
        std::fs::metadata(out.join("usr/bin/sudoedit"))
            .unwrap()
            .ino()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("etc/zookeeper/zoo.cfg")).unwrap(),
        "tickTime=2000\nclientPort=2181\n"
    );
}

#[test]
fn gnu_tar_reads_every_name_length_and_split() {
    require_tool("tar", "tar");
    // Names around the ustar limits: 100-byte name field, 155-byte prefix, split points
    // everywhere, multi-byte characters near the cuts.
    let mut tree = FileTree::new();
    let mut x: u64 = 1;
    for total in (90..300).step_by(3) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cut = 1 + (x >> 33) as usize % (total - 2);
        let first: String = "é".repeat(cut / 8) + &"a".repeat(cut - (cut / 8) * 2);
        let second = "b".repeat(total - cut - 1);
        tree.insert(
            &format!("/{first}/{second}"),
            kiln_layers::Entry::file("x", 0o644),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = layer_file(dir.path(), &tree, Compression::None);
    let listing = run(Command::new("tar").arg("-tf").arg(&path));
    let expected: Vec<String> = tree
        .iter()
        .map(|(p, e)| {
            let mut s = p[1..].to_string();
            if e.kind == EntryKind::Dir {
                s.push('/');
            }
            s
        })
        .collect();
    assert_eq!(listing.lines().collect::<Vec<_>>(), expected);
}
