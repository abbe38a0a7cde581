//! docker-archive without Docker: determinism and round trip through our reader.

use kiln_oci::archive::{
    list_docker_archive, read_docker_archive, write_docker_archive_file, ArchiveImage,
};
use kiln_oci::oci::layout::Layout;
use kiln_oci::BlobStore;

use crate::layout::write_sample_layout;

#[test]
fn docker_archive_is_deterministic_and_reads_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("oci");
    let (wa, wb, layers) = write_sample_layout(&dir);
    let layout = Layout::open(&dir).expect("open");
    let images = [
        ArchiveImage {
            manifest: wa.manifest.clone(),
            repo_tags: vec!["kiln/a:v1".into()],
        },
        ArchiveImage {
            manifest: wb.manifest.clone(),
            repo_tags: vec!["kiln/b:v1".into()],
        },
    ];
    let one = tmp.path().join("one.tar");
    let two = tmp.path().join("two.tar");
    write_docker_archive_file(&one, layout.store(), &images, 1_700_000_000).expect("write");
    write_docker_archive_file(&two, layout.store(), &images, 1_700_000_000).expect("write");
    assert_eq!(
        std::fs::read(&one).expect("read"),
        std::fs::read(&two).expect("read")
    );

    // Entries are sorted, owned by root, with one mtime; the shared layer appears once.
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&one).expect("open"));
    for e in archive.entries().expect("entries") {
        let e = e.expect("entry");
        assert_eq!(e.header().mtime().expect("mtime"), 1_700_000_000);
        assert_eq!(e.header().uid().expect("uid"), 0);
        names.push(e.path().expect("path").to_string_lossy().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
        3
    );

    let listed = list_docker_archive(&one).expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].repo_tags, vec!["kiln/a:v1".to_string()]);

    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(store_dir.path()).expect("store");
    let imported = read_docker_archive(&one, &store).expect("import");
    assert_eq!(imported.len(), 2);
    assert_eq!(imported[0].config.digest, wa.config.digest);
    assert_eq!(imported[1].config.digest, wb.config.digest);
    let diff_ids: Vec<_> = imported[0].layers.iter().map(|l| l.diff_id).collect();
    assert_eq!(diff_ids, vec![layers[0].diff_id, layers[1].diff_id]);
    // Layers were written uncompressed, so their blob digest is their diff ID.
    assert_eq!(imported[0].layers[0].digest, layers[0].diff_id);
    for image in &imported {
        let resolved = kiln_oci::oci::layout::resolve_in_store(
            &store,
            image.manifest.clone(),
            &kiln_oci::Platform::linux_amd64(),
        )
        .expect("imported image resolves");
        assert_eq!(resolved.config_descriptor.digest, image.config.digest);
    }
}
