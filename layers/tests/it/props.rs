//! Property tests: any tree the model allows survives the writers and the reader.

use crate::util::*;
use kiln_layers::{read_layer, write_layer, write_tar, Compression, Entry, FileTree, LayerOptions};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[a-zA-Z0-9._-]{1,40}",
        // Long enough to need the ustar prefix or PAX.
        "[a-z]{90,130}",
        // Non-ASCII names are written as UTF-8 bytes.
        "[a-zé€]{1,12}",
    ]
    .prop_filter("no whiteouts, no dot names", |n| {
        !n.starts_with(".wh.") && n != "." && n != ".."
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    let meta = (
        0u32..0o10000,
        0u32..5_000_000,
        0u32..70_000,
        proptest::option::of(0u64..20_000_000_000),
    );
    let kind = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|d| Entry::file(d, 0)),
        Just(Entry::dir(0)),
        "[a-z/.]{1,200}".prop_map(Entry::symlink),
    ];
    let xattrs = proptest::collection::btree_map(
        "user\\.[a-z]{1,10}",
        proptest::collection::vec(any::<u8>(), 0..64),
        0..3,
    );
    (kind, meta, xattrs).prop_map(|(mut e, (mode, uid, gid, mtime), xattrs)| {
        e.mode = mode;
        if matches!(e.kind, kiln_layers::EntryKind::Symlink(_)) {
            e.mode = 0o777;
        }
        e.uid = uid;
        e.gid = gid;
        e.mtime = mtime;
        e.xattrs = xattrs;
        e
    })
}

fn tree() -> impl Strategy<Value = FileTree> {
    proptest::collection::vec((proptest::collection::vec(name(), 1..4), entry()), 0..25).prop_map(
        |items| {
            let mut t = FileTree::new();
            for (parts, e) in items {
                // Conflicts (a file where a directory is needed) are simply skipped.
                let _ = t.insert(&format!("/{}", parts.join("/")), e);
            }
            t
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tar_round_trips(t in tree(), epoch in 0u64..20_000_000_000) {
        let mut tar = Vec::new();
        write_tar(&t, epoch, &mut tar).unwrap();
        prop_assert_eq!(tar.len() % 512, 0);
        let back = read_layer(&tar[..]).unwrap();
        prop_assert_eq!(back, as_read_back(&t, epoch));
    }

    #[test]
    fn gzip_is_deterministic_and_decompresses_to_the_tar(t in tree(), threads in 0usize..5) {
        let opts = |threads| LayerOptions { source_date_epoch: EPOCH, compression: Compression::default(), threads };
        let mut a = Vec::new();
        let info = write_layer(&t, &opts(threads), &mut a).unwrap();
        let mut b = Vec::new();
        write_layer(&t, &opts(1), &mut b).unwrap();
        prop_assert!(a == b);
        let mut tar = Vec::new();
        write_tar(&t, EPOCH, &mut tar).unwrap();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut plain).unwrap();
        prop_assert!(plain == tar);
        prop_assert_eq!(info.uncompressed_size, tar.len() as u64);
    }
}
