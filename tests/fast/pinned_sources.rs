//! Pinned sources: fetching tarballs, .deb, .rpm and single binaries from a local HTTP server,
//! tamper detection, the cache, the lock file, --offline, --locked, the catalog through
//! --mirror, OCI layout sources, the presence check.
//!
//! Nothing here reaches the internet: artifacts are served from 127.0.0.1 by [`Server`]
//! (`common/artifact_server.rs`). A real Debian package: `debian_package_source.rs`; the
//! mmdebstrap base: the slow tier's `debian_base_source.rs`.

use std::path::PathBuf;

use kiln_layers::{Entry, FileTree};
use kiln_pipeline::sources::{self, Error};

use crate::common::artifact_server::*;
use crate::common::kiln_code;
use crate::common::sources::{file, plan_of, setup, HEAD};

/// A spec fetching all four kinds from `server`.
fn spec_all(server: &Server, extra_etcd: &str) -> String {
    format!(
        r#"{HEAD}
[etcd]
source = {{ url = "{}", strip_components = 1, paths = ["etcd", "etcdctl"], dest = "/usr/bin"{extra_etcd} }}

[docker]
dockerd = "/usr/bin/dockerd"
source = {{ url = "{}", paths = ["usr/bin/*"] }}

[calico.cni.source]
url = "{}"
dest = "/opt/cni/bin/calico"
also = [{{ url = "{}" }}]
"#,
        server.url("/etcd.tar.gz"),
        server.url("/docker.deb"),
        server.url("/calico"),
        server.url("/ipam.rpm"),
    )
}

fn serve_all(server: &Server, f: &Fixtures) {
    for (p, b) in [
        ("/etcd.tar.gz", &f.tarball),
        ("/docker.deb", &f.deb),
        ("/ipam.rpm", &f.rpm),
        ("/calico", &f.binary),
    ] {
        server.put(
            p,
            Served {
                body: b.clone(),
                ..Served::default()
            },
        );
    }
}

#[test]
fn fetches_tarball_deb_rpm_and_binary_over_http() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let s = setup(&spec_all(&server, ""));
    let r = s.resolve().unwrap();
    let etcd = &r.trees["etcd"];
    assert_eq!(file(etcd, "/usr/bin/etcd").data().unwrap(), script("etcd"));
    assert_eq!(file(etcd, "/usr/bin/etcd").mode, 0o755);
    assert!(etcd.get("/usr/bin/README.md").is_none());
    let docker = &r.trees["docker"];
    assert_eq!(
        file(docker, "/usr/bin/dockerd").data().unwrap(),
        script("dockerd")
    );
    assert_eq!(file(docker, "/usr/bin/dockerd").mode, 0o755);
    let cni = &r.trees["calico-cni"];
    assert_eq!(file(cni, "/opt/cni/bin/calico").data().unwrap(), f.binary);
    assert_eq!(file(cni, "/opt/cni/bin/calico").mode, 0o755);
    assert_eq!(
        file(cni, "/opt/cni/bin/calico-ipam").data().unwrap(),
        script("calico-ipam")
    );
    assert_eq!(file(cni, "/opt/cni/bin/calico-ipam").mode, 0o755);
    // Digests recorded (nothing was pinned) and the lock written beside the spec.
    assert_eq!(r.recorded.len(), 4);
    let lock = std::fs::read_to_string(s.dir.path().join("kiln.lock")).unwrap();
    for (url, bytes) in [
        ("/etcd.tar.gz", &f.tarball),
        ("/docker.deb", &f.deb),
        ("/ipam.rpm", &f.rpm),
        ("/calico", &f.binary),
    ] {
        assert!(lock.contains(&server.url(url)), "{lock}");
        assert!(lock.contains(&sha(bytes)), "{lock}");
        assert!(s.blobs().contains(&sha(bytes)));
    }
    // A second run uses the cache and the lock: nothing fetched, nothing recorded.
    let before = server.log.lock().unwrap().len();
    let r2 = s.resolve().unwrap();
    assert!(r2.recorded.is_empty());
    assert_eq!(server.log.lock().unwrap().len(), before);
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("kiln.lock")).unwrap(),
        lock
    );
}

#[test]
fn one_changed_byte_is_caught_and_nothing_is_written() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let mut bad = f.tarball.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    server.put(
        "/etcd.tar.gz",
        Served {
            body: bad.clone(),
            ..Served::default()
        },
    );
    let s = setup(&spec_all(
        &server,
        &format!(", sha256 = \"{}\"", sha(&f.tarball)),
    ));
    let e = s.resolve().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&server.url("/etcd.tar.gz"))
            && msg.contains(&sha(&f.tarball))
            && msg.contains(&sha(&bad)),
        "{msg}"
    );
    assert!(
        !s.blobs().contains(&sha(&bad)),
        "a tampered blob reached the cache"
    );
    assert!(!s.dir.path().join("kiln.lock").exists());
    // The CLI says the same and exits 1.
    let cache = s.opts.cache_dir.display().to_string();
    let (_, err) = kiln_code(
        &["fetch", s.spec_path.to_str().unwrap(), "--cache", &cache],
        1,
    );
    assert!(
        err.contains("sha256 mismatch") && err.contains(&sha(&bad)),
        "{err}"
    );
}

#[test]
fn truncated_download_is_caught_and_a_broken_one_resumes() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    // Always cut: every attempt breaks, the download fails naming the URL.
    server.put(
        "/etcd.tar.gz",
        Served {
            body: f.tarball.clone(),
            cut_at: Some(f.tarball.len() / 2),
            cut_once: false,
        },
    );
    let s = setup(&spec_all(&server, ""));
    let e = s.resolve().unwrap_err().to_string();
    assert!(
        e.contains(&server.url("/etcd.tar.gz")) && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    assert!(!s.blobs().contains(&sha(&f.tarball)));
    assert!(!s.dir.path().join("kiln.lock").exists());
    // A file served truncated (Content-Length agrees) is caught by its pinned digest.
    server.put(
        "/etcd.tar.gz",
        Served {
            body: f.tarball[..f.tarball.len() - 7].to_vec(),
            ..Served::default()
        },
    );
    let s2 = setup(&spec_all(
        &server,
        &format!(", sha256 = \"{}\"", sha(&f.tarball)),
    ));
    assert!(matches!(
        s2.resolve().unwrap_err(),
        Error::DigestMismatch { .. }
    ));
    // Cut once: the retry resumes with a Range request and the result verifies.
    let half = f.tarball.len() / 2;
    server.put(
        "/etcd.tar.gz",
        Served {
            body: f.tarball.clone(),
            cut_at: Some(half),
            cut_once: true,
        },
    );
    let s3 = setup(&spec_all(
        &server,
        &format!(", sha256 = \"{}\"", sha(&f.tarball)),
    ));
    let r = s3.resolve().unwrap();
    assert!(r.trees["etcd"].get("/usr/bin/etcd").is_some());
    let reqs = server.requests("/etcd.tar.gz");
    assert_eq!(
        reqs.last().unwrap().clone(),
        Some(format!("bytes={half}-")),
        "{reqs:?}"
    );
}

/// Issue 9, item 5: a corrupt cache entry is named, removed and fetched again from its
/// source, and the resolution goes on; offline, where it cannot be, the miss says why.
#[test]
fn a_corrupt_cache_entry_is_named_removed_and_restored_from_its_source() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let mut s = setup(&spec_all(&server, ""));
    s.resolve().unwrap();
    let blob = s.opts.cache_dir.join("blobs/sha256").join(sha(&f.tarball));
    let corrupt = || {
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&blob, bytes).unwrap();
    };
    corrupt();
    let r = s.resolve().unwrap();
    assert_eq!(r.repaired.len(), 1, "{:?}", r.repaired);
    assert_eq!(r.repaired[0].path, blob);
    assert_eq!(r.repaired[0].origin, server.url("/etcd.tar.gz"));
    let msg = r.repaired[0].to_string();
    assert!(
        msg.contains(&blob.display().to_string()) && msg.contains("corrupt"),
        "{msg}"
    );
    assert_eq!(sha(&std::fs::read(&blob).unwrap()), sha(&f.tarball));
    assert!(r.trees["etcd"].get("/usr/bin/etcd").is_some());
    // Offline it cannot be restored: the entry is removed and the miss names it.
    corrupt();
    s.opts.offline = true;
    let e = s.resolve().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Unavailable(_)), "{msg}");
    assert!(
        msg.contains(&format!("cache entry {} was corrupt", blob.display())),
        "{msg}"
    );
    assert!(!blob.exists(), "the corrupt entry must be removed");
    s.opts.offline = false;
    assert!(s.resolve().unwrap().repaired.is_empty());
    assert!(blob.exists());
}

#[test]
fn offline_with_warm_cache_works_and_cold_cache_lists_every_artifact() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let mut s = setup(&spec_all(&server, ""));
    // Cold: every one of the four artifacts is listed with how to provide it.
    s.opts.offline = true;
    let e = s.resolve().unwrap_err();
    let Error::Unavailable(missing) = &e else {
        panic!("{e}")
    };
    assert_eq!(missing.len(), 4, "{e}");
    let msg = e.to_string();
    for p in ["/etcd.tar.gz", "/docker.deb", "/ipam.rpm", "/calico"] {
        assert!(msg.contains(&server.url(p)), "{msg}");
    }
    assert!(
        msg.contains("kiln cache import") && msg.contains("--mirror"),
        "{msg}"
    );
    assert!(
        server.log.lock().unwrap().is_empty(),
        "offline touched the network"
    );
    // Warm: fetch, then offline resolves without a single request.
    s.opts.offline = false;
    s.resolve().unwrap();
    let n = server.log.lock().unwrap().len();
    s.opts.offline = true;
    let r = s.resolve().unwrap();
    assert_eq!(server.log.lock().unwrap().len(), n);
    assert!(r.trees["etcd"].get("/usr/bin/etcd").is_some());
    // `kiln cache import` fills a cold cache by digest; the CLI is offline-happy after that.
    let cold = s.dir.path().join("cold");
    let cold_s = cold.display().to_string();
    let files: Vec<PathBuf> = [
        ("a", &f.tarball),
        ("b", &f.deb),
        ("c", &f.rpm),
        ("d", &f.binary),
    ]
    .iter()
    .map(|(n, b)| {
        let p = f.dir.path().join(n);
        std::fs::write(&p, b).unwrap();
        p
    })
    .collect();
    let spec = s.spec_path.to_str().unwrap();
    let (_, err) = kiln_code(&["fetch", spec, "--offline", "--cache", &cold_s], 1);
    assert!(err.contains("4 artifact(s) cannot be provided"), "{err}");
    let mut args = vec!["cache", "import", "--cache", &cold_s];
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let (out, _) = kiln_code(&args, 0);
    assert!(out.contains(&format!("sha256:{}", sha(&f.rpm))), "{out}");
    kiln_code(
        &["fetch", spec, "--offline", "--locked", "--cache", &cold_s],
        0,
    );
}

#[test]
fn locked_refuses_a_source_added_to_the_spec() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let s = setup(&spec_all(&server, ""));
    let spec = s.spec_path.to_str().unwrap();
    let cache = s.opts.cache_dir.display().to_string();
    kiln_code(&["lock", spec, "--cache", &cache], 0);
    kiln_code(&["fetch", spec, "--locked", "--cache", &cache], 0);
    // Add a source: calico-ipam now also comes from an extra URL.
    server.put(
        "/extra",
        Served {
            body: script("extra"),
            ..Served::default()
        },
    );
    let changed = std::fs::read_to_string(&s.spec_path).unwrap().replace(
        &format!("also = [{{ url = \"{}\" }}]", server.url("/ipam.rpm")),
        &format!(
            "also = [{{ url = \"{}\" }}, {{ url = \"{}\", dest = \"/opt/cni/bin/extra\" }}]",
            server.url("/ipam.rpm"),
            server.url("/extra")
        ),
    );
    std::fs::write(&s.spec_path, changed).unwrap();
    let (_, err) = kiln_code(&["fetch", spec, "--locked", "--cache", &cache], 1);
    assert!(
        err.contains(&server.url("/extra"))
            && err.contains("--locked")
            && err.contains("kiln lock"),
        "{err}"
    );
    assert!(
        server.requests("/extra").is_empty(),
        "--locked fetched an unlocked source"
    );
    // `kiln lock` takes the change in.
    kiln_code(&["lock", spec, "--cache", &cache], 0);
    let lock = std::fs::read_to_string(s.dir.path().join("kiln.lock")).unwrap();
    assert!(lock.contains(&server.url("/extra")), "{lock}");
}

#[test]
fn catalog_urls_go_through_the_mirror() {
    let f = make_fixtures();
    let server = Server::start();
    let v = "1.11.8";
    server.put(
        "/m/github.com/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz",
        Served {
            body: f.tarball.clone(),
            ..Served::default()
        },
    );
    for bin in ["calico", "calico-ipam"] {
        server.put(
            &format!("/m/github.com/projectcalico/cni-plugin/releases/download/v{v}/{bin}"),
            Served {
                body: script(bin),
                ..Served::default()
            },
        );
    }
    let mut plugins = FileTree::new();
    for b in ["./loopback", "./host-local", "./portmap", "./bridge"] {
        plugins
            .insert(&format!("/{}", &b[2..]), Entry::file(script(b), 0o755))
            .unwrap();
    }
    let mut tar = Vec::new();
    kiln_layers::write_tar(&plugins, 0, &mut tar).unwrap();
    server.put("/m/github.com/containernetworking/plugins/releases/download/v0.8.7/cni-plugins-linux-amd64-v0.8.7.tgz", Served { body: tar, ..Served::default() });
    let spec = format!("{HEAD}\n[docker]\nsource = {{ base = true }}\n");
    let mut s = setup(&spec);
    s.opts.mirror = Some(server.url("/m"));
    let r = s.resolve().unwrap();
    assert_eq!(
        file(&r.trees["etcd"], "/usr/bin/etcdctl").data().unwrap(),
        script("etcdctl")
    );
    let cni = &r.trees["calico-cni"];
    for b in ["calico", "calico-ipam", "loopback", "portmap"] {
        assert_eq!(file(cni, &format!("/opt/cni/bin/{b}")).mode, 0o755);
    }
    assert!(cni.get("/opt/cni/bin/bridge").is_none());
    // The lock records upstream URLs, not the mirror's.
    let lock = std::fs::read_to_string(s.dir.path().join("kiln.lock")).unwrap();
    assert!(lock.contains("origin = \"https://github.com/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz\""), "{lock}");
    assert!(!lock.contains("127.0.0.1"), "{lock}");
}

#[test]
fn two_builds_filling_one_cache_at_once() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    let a = setup(&spec_all(&server, ""));
    let mut b = setup(&spec_all(&server, ""));
    b.opts.cache_dir = a.opts.cache_dir.clone();
    std::thread::scope(|sc| {
        let ha = sc.spawn(|| a.resolve().map(|r| r.lock));
        let hb = sc.spawn(|| b.resolve().map(|r| r.lock));
        let (la, lb) = (ha.join().unwrap().unwrap(), hb.join().unwrap().unwrap());
        assert_eq!(la, lb);
    });
    let blobs = a.blobs();
    assert_eq!(blobs.len(), 4, "{blobs:?}");
    for name in &blobs {
        let bytes = std::fs::read(a.opts.cache_dir.join("blobs/sha256").join(name)).unwrap();
        assert_eq!(&sha(&bytes), name);
    }
}

#[test]
fn presence_check_names_the_unit_and_the_source_to_add() {
    let spec = format!("{HEAD}\n[etcd]\nsource = {{ base = true }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n");
    let s = setup(&spec);
    let plan = plan_of(&s.spec_path);
    let profile = &plan.profiles[0];
    let mut rootfs = FileTree::new();
    rootfs.insert("/bin", Entry::symlink("usr/bin")).unwrap();
    rootfs
        .insert("/usr/bin/dockerd", Entry::file("x", 0o644))
        .unwrap();
    let e = sources::check_presence(&plan, profile, &rootfs).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("etcd.service")
            && msg.contains("/usr/bin/etcd is missing")
            && msg.contains("etcd.source"),
        "{msg}"
    );
    assert!(
        msg.contains("docker.service") && msg.contains("not executable"),
        "{msg}"
    );
    // With the binaries in place (through the merged-/usr link) the check passes.
    rootfs
        .replace("/usr/bin/dockerd", Entry::file("x", 0o755))
        .unwrap();
    for s in &profile.services {
        if rootfs.get(&s.exec).is_none() && !s.exec.starts_with("/bin/") {
            rootfs.insert(&s.exec, Entry::file("x", 0o755)).unwrap();
        }
    }
    rootfs
        .insert("/usr/bin/sh", Entry::file("x", 0o755))
        .unwrap();
    sources::check_presence(&plan, profile, &rootfs).unwrap();
}

#[test]
fn oci_layout_base_and_component_image_are_verified_and_locked() {
    let s = setup(&format!(
        "{HEAD}\n[etcd]\nsource = {{ base = true }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n"
    ));
    // An OCI layout with one image, tagged twice (base and calico-node both come from it).
    let layout_dir = s.dir.path().join("images");
    let mut w = kiln_oci::oci::layout::LayoutWriter::create(&layout_dir).unwrap();
    let mut t = FileTree::new();
    t.insert("/usr/bin/sh", Entry::file(script("sh"), 0o755))
        .unwrap();
    let blob =
        kiln_layers::write_layer_to_dir(&t, &kiln_layers::LayerOptions::default(), &layout_dir)
            .unwrap();
    let layer = kiln_oci::Layer {
        digest: blob.digest,
        diff_id: blob.diff_id,
        size: blob.size,
        media_type: blob.media_type.to_string(),
    };
    let spec = kiln_oci::ImageSpec::new("kiln/base", "v1", vec![layer], 0);
    let store = w.store().clone();
    let written = w.add_image(&spec, &store, Some("v1")).unwrap();
    w.finish().unwrap();
    let text = std::fs::read_to_string(&s.spec_path)
        .unwrap()
        .replace(
            "source = { base = true }\n\n[[hosts]]",
            "source = { oci = \"oci:images:v1\" }\n\n[[hosts]]",
        )
        .replace(
            "[calico.node]\nenabled = false",
            "[calico.node]\nenabled = true\nsource = { oci = \"oci:images:v1\" }",
        );
    std::fs::write(&s.spec_path, text).unwrap();
    let r = s.resolve().unwrap();
    let Some(sources::BaseSource::Image(base)) = &r.base else {
        panic!("no image base")
    };
    assert_eq!(
        base.image.manifest_descriptor.digest,
        written.manifest.digest
    );
    assert!(
        base.store.contains(&blob.digest),
        "layers are copied into the cache's store"
    );
    assert_eq!(r.images["calico-node"].image.layers.len(), 1);
    let lock = std::fs::read_to_string(s.dir.path().join("kiln.lock")).unwrap();
    assert!(
        lock.contains("origin = \"image:oci:images:v1\"")
            && lock.contains(&written.manifest.digest.hex()),
        "{lock}"
    );
    // A changed image under the same tag no longer matches the lock.
    let mut w = kiln_oci::oci::layout::LayoutWriter::create(s.dir.path().join("images2")).unwrap();
    let mut t2 = FileTree::new();
    t2.insert("/usr/bin/sh", Entry::file(script("other"), 0o755))
        .unwrap();
    let blob2 = kiln_layers::write_layer_to_dir(
        &t2,
        &kiln_layers::LayerOptions::default(),
        &s.dir.path().join("images2"),
    )
    .unwrap();
    let layer2 = kiln_oci::Layer {
        digest: blob2.digest,
        diff_id: blob2.diff_id,
        size: blob2.size,
        media_type: blob2.media_type.to_string(),
    };
    let store2 = w.store().clone();
    w.add_image(
        &kiln_oci::ImageSpec::new("kiln/base", "v1", vec![layer2], 0),
        &store2,
        Some("v1"),
    )
    .unwrap();
    w.finish().unwrap();
    std::fs::remove_dir_all(&layout_dir).unwrap();
    std::fs::rename(s.dir.path().join("images2"), &layout_dir).unwrap();
    let e = s.resolve().unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. }) && e.to_string().contains("image:oci:images:v1"),
        "{e}"
    );
}

#[test]
fn new_source_and_debian_keys_are_validated_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(
        &spec,
        format!(
            "{HEAD}\n[base.debian]\nvariant = \"tiny\"\npackages = [\"Bad Name\"]\n\n[etcd.source]\nurl = \"https://example.invalid/etcd.tgz\"\ndest = \"usr/bin\"\nmode = 0o17777\npaths = [\"../x\"]\n"
        ),
    )
    .unwrap();
    let (_, err) = kiln_code(&["check", spec.to_str().unwrap()], 2);
    for want in [
        "unknown mmdebstrap variant \"tiny\"",
        "\"Bad Name\" is not a Debian package name",
        "\"usr/bin\" is not an absolute path",
        "has bits beyond 0o7777",
        "\"../x\" is not a path inside the archive",
        "bad.toml:",
        "help:",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn source_commands_have_help_with_examples() {
    for cmd in [
        &["lock", "--help"][..],
        &["fetch", "--help"],
        &["cache", "import", "--help"],
    ] {
        let (out, _) = kiln_code(cmd, 0);
        assert!(out.contains("Examples:") && out.contains("kiln "), "{out}");
    }
    let (out, _) = kiln_code(&["fetch", "--help"], 0);
    for flag in ["--offline", "--mirror", "--locked", "--cache"] {
        assert!(out.contains(flag), "{out}");
    }
}

#[test]
fn every_unreachable_artifact_is_listed_in_one_run() {
    let f = make_fixtures();
    let server = Server::start();
    serve_all(&server, &f);
    // Two artifacts are gone upstream (404): both are named, with the HTTP status.
    server.files.lock().unwrap().remove("/docker.deb");
    server.files.lock().unwrap().remove("/calico");
    let s = setup(&spec_all(&server, ""));
    let e = s.resolve().unwrap_err();
    let Error::Unavailable(missing) = &e else {
        panic!("{e}")
    };
    let origins: Vec<&str> = missing.iter().map(|m| m.origin.as_str()).collect();
    assert_eq!(
        origins,
        [server.url("/docker.deb"), server.url("/calico")],
        "{e}"
    );
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert!(!s.dir.path().join("kiln.lock").exists());
}
