//! The machine's Docker Engine loads our docker-archive and pulls from a registry we pushed to.

use std::process::Command;

use kiln_oci::archive::{read_docker_archive, write_docker_archive_file, ArchiveImage};
use kiln_oci::registry::{push, Client, ClientOptions, NoProgress, PushOptions};
use kiln_oci::{write_image, BlobStore, ImageSpec};

use crate::util::{busybox_layer, EPOCH};
use kiln_test_support::{require_docker, run, DockerCleanup, Registry};

fn busybox_image(store: &BlobStore, name: &str, tag: &str) -> (ImageSpec, kiln_oci::WrittenImage) {
    let mut spec = ImageSpec::new(name, tag, vec![busybox_layer(store)], EPOCH);
    spec.entrypoint = Some(vec!["/bin/busybox".into()]);
    spec.cmd = Some(vec!["echo".into(), "ok".into()]);
    spec.env = vec!["PATH=/bin".into()];
    spec.labels
        .insert("org.example.test".into(), "kiln-images".into());
    let written = write_image(store, &spec).expect("write image");
    (spec, written)
}

#[test]
fn docker_load_accepts_the_archive_and_shows_the_config_digest_as_image_id() {
    require_docker();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(tmp.path().join("blobs")).expect("store");
    let tag = format!("load-{}", std::process::id());
    let (spec, written) = busybox_image(&store, "kiln-test/busybox", &tag);
    let reference = spec.reference();
    let _cleanup = DockerCleanup(vec![reference.clone()]);
    let archive = tmp.path().join("image.tar");
    write_docker_archive_file(
        &archive,
        &store,
        &[ArchiveImage {
            manifest: written.manifest.clone(),
            repo_tags: vec![reference.clone()],
        }],
        EPOCH,
    )
    .expect("write archive");

    let out = run(Command::new("docker").arg("load").arg("-i").arg(&archive));
    assert!(out.contains(&reference), "docker load said: {out}");
    let id =
        run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &reference]));
    assert_eq!(id.trim(), written.config.digest.to_string());
    let out = run(Command::new("docker").args(["run", "--rm", "--network", "none", &reference]));
    assert_eq!(out.trim(), "ok");

    // What `docker save` writes, our reader imports with the same config and diff IDs.
    let saved = tmp.path().join("saved.tar");
    run(Command::new("docker")
        .arg("save")
        .arg("-o")
        .arg(&saved)
        .arg(&reference));
    let import_dir = tempfile::tempdir().expect("tempdir");
    let imported_store = BlobStore::open(import_dir.path()).expect("store");
    let imported = read_docker_archive(&saved, &imported_store).expect("import docker save output");
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].repo_tags, vec![reference.clone()]);
    assert_eq!(imported[0].config.digest, written.config.digest);
    let diff_ids: Vec<_> = imported[0].layers.iter().map(|l| l.diff_id).collect();
    assert_eq!(diff_ids, vec![spec.layers[0].diff_id]);
}

#[test]
fn docker_pulls_what_we_pushed_and_runs_busybox() {
    require_docker();
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(tmp.path().join("blobs")).expect("store");
    let tag = format!("pull-{}", std::process::id());
    let (_, written) = busybox_image(&store, "kiln-test/busybox", &tag);
    let mut opts = ClientOptions::new(&registry.host());
    opts.insecure = true;
    opts.docker_config = Some("/nonexistent/config.json".into());
    let client = Client::new(opts).expect("client");
    let report = push(
        &client,
        &store,
        &written.manifest,
        &PushOptions::new("kiln-test/busybox", &[&tag]),
        &mut NoProgress,
    )
    .expect("push");
    assert_eq!(report.blobs_uploaded, 2);

    let reference = format!("{}/kiln-test/busybox:{tag}", registry.host());
    let _cleanup = DockerCleanup(vec![reference.clone()]);
    run(Command::new("docker").args(["pull", &reference]));
    let digests = run(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &reference,
    ]));
    assert!(
        digests.contains(&written.manifest.digest.to_string()),
        "RepoDigests {digests} lacks {}",
        written.manifest.digest
    );
    let id =
        run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &reference]));
    assert_eq!(id.trim(), written.config.digest.to_string());
    let out = run(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        &reference,
        "echo",
        "pulled ok",
    ]));
    assert_eq!(out.trim(), "pulled ok");
}
