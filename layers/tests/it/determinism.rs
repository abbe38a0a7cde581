//! Same tree, same bytes: across runs, thread counts and compressions; golden digests.

use crate::util::*;
use kiln_layers::{
    compress_layers_parallel, write_cpio, write_layer, write_tar, Compression, Entry, FileTree,
    LayerOptions,
};

fn blob(
    tree: &FileTree,
    compression: Compression,
    threads: usize,
) -> (Vec<u8>, kiln_layers::Digest) {
    let mut out = Vec::new();
    let info = write_layer(
        tree,
        &LayerOptions {
            source_date_epoch: EPOCH,
            compression,
            threads,
        },
        &mut out,
    )
    .unwrap();
    (out, info.digest)
}

/// A few MB of mixed text and binary-ish data, so several gzip blocks are involved.
fn bigger_tree() -> FileTree {
    let mut t = sample_tree();
    let mut x: u64 = 7;
    for i in 0..40 {
        let len = 50_000 + i * 7_919;
        let data: Vec<u8> = (0..len)
            .map(|j| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 2 == 0 {
                    b"server.1=m1:2888:3888\n"[j % 22]
                } else {
                    (x % 40) as u8
                }
            })
            .collect();
        t.insert(&format!("/data/f{i:03}"), Entry::file(data, 0o644))
            .unwrap();
    }
    t
}

#[test]
fn same_tree_gives_same_bytes() {
    for c in [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        assert_eq!(
            blob(&sample_tree(), c, 2),
            blob(&sample_tree(), c, 2),
            "{c:?}"
        );
    }
    let cpio = |t: &FileTree| {
        let mut v = Vec::new();
        write_cpio(t, EPOCH, &mut v).unwrap();
        v
    };
    assert_eq!(cpio(&sample_tree()), cpio(&sample_tree()));
}

#[test]
fn gzip_bytes_do_not_depend_on_thread_count() {
    let t = bigger_tree();
    let (one, d1) = blob(&t, Compression::default(), 1);
    assert!(
        one.len() > 4 * 128 * 1024 / 4,
        "tree should span several blocks"
    );
    // Regression: workers used to reuse one deflate state per thread; zlib-rs keeps stale
    // window bytes across `reset`, so the bytes depended on which worker got which block.
    // Repeat, since scheduling decides the assignment.
    for threads in [0, 2, 3, 8, 2, 3, 8, 8, 8] {
        let (other, d) = blob(&t, Compression::default(), threads);
        if other != one {
            let pos = one.iter().zip(&other).position(|(a, b)| a != b);
            panic!(
                "{threads} threads changed the bytes: first difference at {pos:?} of {} / {}",
                one.len(),
                other.len()
            );
        }
        assert_eq!(d, d1);
    }
}

#[test]
fn mtimes_are_clamped_to_the_epoch() {
    let mut a = FileTree::new();
    a.insert("/f", with_mtime(Entry::file("x", 0o644), EPOCH + 1000))
        .unwrap();
    let mut b = FileTree::new();
    b.insert("/f", Entry::file("x", 0o644)).unwrap();
    let tar = |t: &FileTree| {
        let mut v = Vec::new();
        write_tar(t, EPOCH, &mut v).unwrap();
        v
    };
    assert_eq!(tar(&a), tar(&b));
}

/// Pins the bytes of a small layer. If this fails, the tar writer or the compression backend
/// changed and every published digest would drift: treat that as a breaking change.
#[test]
fn golden_digests_of_a_small_layer() {
    let mut t = FileTree::new();
    t.insert(
        "/etc/zookeeper/zoo.cfg",
        Entry::file("tickTime=2000\nclientPort=2181\n", 0o644),
    )
    .unwrap();
    t.insert("/usr/bin/tool", Entry::file(vec![b'k'; 200_000], 0o4755))
        .unwrap();
    t.insert("/bin", Entry::symlink("usr/bin")).unwrap();
    let mut out = Vec::new();
    let info = write_layer(
        &t,
        &LayerOptions {
            source_date_epoch: EPOCH,
            compression: Compression::Gzip { level: 6 },
            threads: 2,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        (
            info.diff_id.to_string().as_str(),
            info.digest.to_string().as_str(),
            info.uncompressed_size,
            info.size
        ),
        (
            GOLDEN_DIFF_ID,
            GOLDEN_DIGEST,
            GOLDEN_TAR_SIZE,
            GOLDEN_BLOB_SIZE
        )
    );
}

const GOLDEN_DIFF_ID: &str =
    "sha256:93bb2cdce3d04dc1cfb02220115bd6f5dd469b81706749108d03845be7d95e3f";
const GOLDEN_DIGEST: &str =
    "sha256:b24a83dcc74ec9c38b68ebfede74e2e7bcb026c329829676b351304354d3edba";
const GOLDEN_TAR_SIZE: u64 = 205_312;
const GOLDEN_BLOB_SIZE: u64 = 472;

#[test]
fn parallel_layers_match_one_at_a_time() {
    let a = sample_tree();
    let b = bigger_tree();
    let mut c = FileTree::new();
    c.insert("/only", Entry::file("one", 0o644)).unwrap();
    let opts = LayerOptions {
        source_date_epoch: EPOCH,
        compression: Compression::default(),
        threads: 2,
    };
    let dir = tempfile::tempdir().unwrap();
    let got = compress_layers_parallel(&[&a, &b, &c], &opts, dir.path()).unwrap();
    for (tree, info) in [&a, &b, &c].into_iter().zip(&got) {
        let mut v = Vec::new();
        assert_eq!(&write_layer(tree, &opts, &mut v).unwrap(), info);
        let stored =
            std::fs::read(dir.path().join("blobs/sha256").join(info.digest.hex())).unwrap();
        assert!(stored == v);
    }
}
