//! `kiln build` and `kiln push`: OCI layout, docker-archives and registry, checked with skopeo,
//! umoci, Debian's docker-registry and the machine's Docker Engine.
//!
//! The base and the calico/node image are small fixtures written by the test (busybox plus
//! scripts named as fixtures standing in for Mesos, Marathon, etcd, … which cannot be had
//! here; `common/workspace.rs`); what is under test is kiln's wiring and the artifacts'
//! validity.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kiln_layers::{Entry, FileTree};

use sha2::{Digest as _, Sha256};

use crate::common::workspace::{
    build, build_args, busybox_tree, fixture_workspace, fixture_workspace_with, report,
    write_fixture_image, STAND_INS,
};
use crate::common::{checked_sboms, kiln, kiln_code, spdx_package};
use kiln_test_support::{require_docker, require_tool, run, DockerCleanup, Registry};

fn image<'a>(report: &'a serde_json::Value, reference: &str) -> &'a serde_json::Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("no image {reference}"))
}

#[test]
fn build_writes_an_oci_layout_that_skopeo_and_umoci_read() {
    require_tool("umoci", "umoci");
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let rep = report(&dist);
    let agent = image(&rep, "t-agent");
    assert_eq!(agent["repository"], "kiln-test/t-agent");
    assert_eq!(agent["tags"], serde_json::json!(["latest", "t1"]));

    // skopeo sees the same manifest digest kiln reported.
    let out = run(Command::new("skopeo").args([
        "inspect",
        &format!("oci:{}:t-agent", dist.join("oci").display()),
    ]));
    let inspect: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspect["Digest"], agent["manifest_digest"]);
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        agent["layers"].as_array().unwrap().len()
    );
    assert_eq!(inspect["Labels"]["io.kiln.profile"], "agent");

    // The layer of /etc/hosts is the same for both roles, so it is stored once.
    let layer_of = |img: &serde_json::Value, from: &str| {
        img["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["from"] == from)
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(
        layer_of(agent, "hosts (config)"),
        layer_of(image(&rep, "t-master"), "hosts (config)")
    );
    assert_eq!(
        layer_of(agent, "base"),
        layer_of(image(&rep, "t-master"), "base")
    );

    // umoci unpacks the image; every rendered file is there with its content and mode.
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:t-agent", dist.join("oci").display()),
        ])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let rendered = tmp.path().join("rendered");
    kiln_code(
        &[
            "render",
            spec.to_str().unwrap(),
            "-o",
            rendered.to_str().unwrap(),
        ],
        0,
    );
    let manifest = fs::read_to_string(rendered.join("profiles/agent.manifest")).unwrap();
    let mut checked = 0;
    for line in manifest.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let (mode, kind, path) = (parts[0], parts[2], parts[3]);
        let there = rootfs.join(path.trim_start_matches('/'));
        let meta = fs::symlink_metadata(&there)
            .unwrap_or_else(|_| panic!("{path} missing from the unpacked image"));
        match kind {
            "file" => {
                assert_eq!(
                    fs::read(&there).unwrap(),
                    fs::read(
                        rendered
                            .join("profiles/agent")
                            .join(path.trim_start_matches('/'))
                    )
                    .unwrap(),
                    "{path}"
                );
                assert_eq!(
                    format!("{:04o}", meta.permissions().mode() & 0o7777),
                    mode,
                    "{path}"
                );
            }
            "symlink" => assert_eq!(
                fs::read_link(&there).unwrap().to_str().unwrap(),
                parts[5],
                "{path}"
            ),
            _ => assert!(meta.is_dir(), "{path}"),
        }
        checked += 1;
    }
    assert!(checked > 20, "only {checked} entries compared");
    assert_eq!(
        fs::metadata(rootfs.join("usr/bin/fixture-suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    // The calico/node image is baked in for the load-images unit.
    assert!(rootfs
        .join("var/lib/kiln/images/kiln-fixture_calico-node_2.6.12.tar")
        .is_file());
    // SHA256SUMS covers what was written.
    run(Command::new("sha256sum")
        .arg("--quiet")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&dist));
}

#[test]
fn rendered_files_follow_the_base_symlinks() {
    require_tool("umoci", "umoci");
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let bundle = tmp.path().join("master");
    let image = format!("{}:t-master", dist.join("oci").display());
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    let etc = bundle.join("rootfs/etc/zookeeper");
    // The symlink survives; zoo.cfg lands in its target beside Debian's other files.
    assert_eq!(
        fs::read_link(etc.join("conf")).unwrap(),
        Path::new("conf_example")
    );
    assert!(fs::read_to_string(etc.join("conf_example/zoo.cfg"))
        .unwrap()
        .contains("clientPort=2181"));
    assert!(etc.join("conf/environment").is_file());
}

#[test]
fn builds_are_reproducible_across_runs_and_thread_counts() {
    let (tmp, spec) = fixture_workspace();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build(&spec, &a, &["--threads", "1"]);
    build(&spec, &b, &["--threads", "2"]);
    assert_eq!(
        fs::read(a.join("SHA256SUMS")).unwrap(),
        fs::read(b.join("SHA256SUMS")).unwrap()
    );
    assert_eq!(
        fs::read(a.join("build-report.json")).unwrap(),
        fs::read(b.join("build-report.json")).unwrap()
    );
}

#[test]
fn a_failed_build_keeps_the_previous_dist() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let before = fs::read(dist.join("SHA256SUMS")).unwrap();
    // Point calico/node at a source that does not exist: the build fails, dist stays.
    let text = fs::read_to_string(&spec).unwrap().replace(
        "oci:calico-node-oci:calico-node",
        "oci:missing-oci:calico-node",
    );
    fs::write(&spec, text).unwrap();
    let cache = spec.with_file_name("cache");
    let out = kiln(&build_args(&spec, &dist, cache.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing-oci"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(dist.join("SHA256SUMS")).unwrap(), before);
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".kiln-"))
        .collect();
    assert!(leftovers.is_empty(), "staging dir left behind");
}

/// Builds `spec` (offline) expecting exit code 1 and no output directory; returns stderr.
fn build_fails(spec: &Path) -> String {
    let dist = spec.with_file_name("dist");
    let cache = spec.with_file_name("cache");
    let out = kiln(&build_args(spec, &dist, cache.to_str().unwrap()));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!dist.exists(), "a failed build left {}", dist.display());
    err
}

#[test]
fn a_unit_whose_program_no_source_provides_stops_the_build() {
    let (_tmp, spec) = fixture_workspace();
    // Marathon is no longer "in the base" but the base lacks it: kiln must not write an image
    // that would not start marathon.service.
    let text = fs::read_to_string(&spec).unwrap().replace(
        "[marathon]\nsource = { base = true }",
        "[marathon]\nsource = { file = \"no-such-marathon\" }",
    );
    fs::write(&spec, text).unwrap();
    let err = build_fails(&spec);
    assert!(err.contains("no-such-marathon"), "{err}");
}

#[test]
fn a_missing_cni_plugin_stops_the_build() {
    let (tmp, spec) = fixture_workspace();
    // The CNI plugins come from a directory that lacks calico-ipam.
    let plugins = tmp.path().join("cni");
    fs::create_dir(&plugins).unwrap();
    fs::write(plugins.join("calico"), "#!/bin/sh\n# kiln test fixture\n").unwrap();
    let text = fs::read_to_string(&spec).unwrap().replace(
        "[calico.cni]\nsource = { base = true }",
        "[calico.cni]\nplugins_dir = \"/opt/kiln-test/cni\"\nsource = { file = \"cni\", dest = \"/opt/kiln-test/cni\" }",
    );
    fs::write(&spec, text).unwrap();
    let err = build_fails(&spec);
    assert!(err.contains("/opt/kiln-test/cni/calico-ipam"), "{err}");
    assert!(!err.contains("/opt/kiln-test/cni/calico "), "{err}");
}

#[test]
fn docker_loads_archives_and_pulls_pushed_images() {
    require_docker();
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &["--archives"]);
    let rep = report(&dist);
    let registry = Registry::start();
    let host = registry.host();
    let mut cleanup = DockerCleanup(Vec::new());

    // docker load: the image ID is the config digest kiln wrote.
    for img in rep["images"].as_array().unwrap() {
        let archive = dist
            .join("archives")
            .join(format!("{}.tar", img["reference"].as_str().unwrap()));
        run(Command::new("docker").arg("load").arg("-i").arg(&archive));
        let name = format!(
            "{}:{}",
            img["repository"].as_str().unwrap(),
            img["tags"][0].as_str().unwrap()
        );
        cleanup.0.push(name.clone());
        let id =
            run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &name]));
        assert_eq!(id.trim(), img["config_digest"].as_str().unwrap(), "{name}");
    }
    let out = run(Command::new("docker").args([
        "run",
        "--rm",
        "kiln-fixture/calico-node:2.6.12",
        "cat",
        "/etc/calico/fixture",
    ]));
    assert_eq!(out, "kiln test fixture for calico/node\n");

    // kiln push, then skopeo and docker read what the registry has.
    let to = format!("{host}/kiln");
    let (_, err) = kiln_code(
        &["push", dist.to_str().unwrap(), "--to", &to, "--insecure"],
        0,
    );
    assert!(err.contains("pushed"), "{err}");
    let agent = image(&rep, "t-agent");
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{to}/t-agent:t1"),
    ]));
    let inspect: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspect["Digest"], agent["manifest_digest"]);
    let copy = tmp.path().join("copy");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{to}/t-agent:latest"),
        &format!("oci:{}:back", copy.display()),
    ]));
    let back =
        run(Command::new("skopeo").args(["inspect", &format!("oci:{}:back", copy.display())]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&back).unwrap()["Digest"],
        agent["manifest_digest"]
    );

    // A second push of the unchanged build uploads nothing.
    let uploads = Registry::upload_requests(&registry.access_log());
    let (_, err) = kiln_code(
        &["push", dist.to_str().unwrap(), "--to", &to, "--insecure"],
        0,
    );
    assert!(
        err.lines()
            .filter(|l| l.starts_with("pushed"))
            .all(|l| l.contains("(0 uploaded, 0 mounted")),
        "{err}"
    );
    assert_eq!(
        Registry::upload_requests(&registry.access_log()),
        uploads,
        "second push uploaded blobs"
    );

    // docker pull from the registry (127.0.0.0/8 registries are insecure by default) and run.
    let pulled = format!("{to}/kiln-fixture/calico-node:2.6.12");
    cleanup.0.push(pulled.clone());
    cleanup.0.push(format!("{to}/t-agent:latest"));
    run(Command::new("docker").args(["pull", &pulled]));
    run(Command::new("docker").args(["pull", &format!("{to}/t-agent:latest")]));
    let out =
        run(Command::new("docker").args(["run", "--rm", &pulled, "cat", "/etc/calico/fixture"]));
    assert_eq!(out, "kiln test fixture for calico/node\n");
}

#[test]
fn build_never_replaces_a_directory_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("home");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "keep me").unwrap();
    let res = kiln(&["build", "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a kiln build output"), "{err}");
    assert_eq!(
        fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn every_program_of_a_unit_is_checked_not_only_exec_start() {
    let (tmp, spec) = fixture_workspace();
    // Rebuild the fixture base without /bin/sh: docker.service reloads through it and
    // kiln-load-images.service runs it.
    let mut base = FileTree::new();
    for (path, e) in busybox_tree().iter().filter(|(p, _)| *p != "/bin/sh") {
        base.replace(path, e.clone()).unwrap();
    }
    for prog in STAND_INS {
        let script = format!("#!/bin/busybox sh\n# kiln test fixture standing in for {prog}\n");
        base.insert(prog, Entry::file(script, 0o755)).unwrap();
    }
    fs::remove_dir_all(tmp.path().join("base-oci")).unwrap();
    write_fixture_image(&tmp.path().join("base-oci"), "base", &base, None);
    let err = build_fails(&spec);
    assert!(err.contains("/bin/sh"), "{err}");
    assert!(
        err.contains("docker.service") && err.contains("kiln-load-images.service"),
        "{err}"
    );
}

/// Blobs in the layer cache beside `spec`.
fn cached_layer_blobs(spec: &Path) -> Vec<String> {
    let dir = spec.with_file_name("cache").join("layers/blobs/sha256");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with("partial"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Issue 9: an unchanged spec with unchanged sources finds nothing to do and says so; the
/// output is left as it was (same inode: not rewritten) and the cache gains no blob.
#[test]
fn an_unchanged_rebuild_does_nothing_and_says_so() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let blobs = cached_layer_blobs(&spec);
    assert!(!blobs.is_empty(), "the build cached no layer");
    let ino = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    };
    let before = ino(&dist.join("build-report.json"));
    let cache = spec.with_file_name("cache");
    let (_, err) = kiln_code(&build_args(&spec, &dist, cache.to_str().unwrap()), 0);
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(
        ino(&dist.join("build-report.json")),
        before,
        "dist was rewritten"
    );
    assert_eq!(
        cached_layer_blobs(&spec),
        blobs,
        "a no-change build wrote a blob"
    );
}

/// Issue 9: after one config value changes, only the layer holding it is compressed; every
/// other layer comes from the layer cache (counted from the cache, not timed).
#[test]
fn one_changed_value_recompresses_only_its_layer() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let before = cached_layer_blobs(&spec);
    let text = fs::read_to_string(&spec).unwrap();
    let changed = text.replacen("[zookeeper]\n", "[zookeeper]\ntick_time = 3000\n", 1);
    assert_ne!(changed, text, "the fixture has no [zookeeper] table");
    fs::write(&spec, changed).unwrap();
    let cache = spec.with_file_name("cache");
    let res = kiln(&build_args(&spec, &dist, cache.to_str().unwrap()));
    let err = String::from_utf8_lossy(&res.stderr).into_owned();
    assert_eq!(res.status.code(), Some(0), "{err}");
    assert!(err.contains("1 to compress"), "{err}");
    let after = cached_layer_blobs(&spec);
    let new: Vec<_> = after.iter().filter(|b| !before.contains(b)).collect();
    assert_eq!(new.len(), 1, "new blobs: {new:?}");
    let zoo = fs::read_to_string(&spec).unwrap();
    assert!(zoo.contains("tick_time = 3000"));
}

/// Issue 9: by default dist/ holds each blob once (no docker-archives); `--archives` adds
/// them.
#[test]
fn dist_holds_each_blob_once_unless_archives_are_asked_for() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    assert!(!dist.join("archives").exists());
    let size = |p: &Path| -> u64 {
        let out = Command::new("du").arg("-sb").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The per-host cloud-init seeds (ISOs of ~370 kB each) are not blobs.
    let all = size(&dist) - size(&dist.join("cloud-init"));
    let oci = size(&dist.join("oci"));
    assert!(
        all as f64 <= oci as f64 * 1.1,
        "dist is {all} bytes for an OCI layout of {oci}"
    );
    let with = tmp.path().join("with-archives");
    build(&spec, &with, &["--archives"]);
    assert!(with.join("archives/t-agent.tar").is_file());
}

/// The SBOM of a base image (not mmdebstrap) lists the dpkg packages its layers carry, every
/// source artifact with its sha256, the baked calico/node image by digest, and passes
/// `pyspdxtools`.
#[test]
fn sbom_lists_source_artifacts_base_packages_and_baked_images() {
    let (tmp, spec) = fixture_workspace_with(|base| {
        let status = "Package: busybox-static\nStatus: install ok installed\n\
                      Architecture: amd64\nVersion: 1:1.35.0-4+b3\n";
        let copyright = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
                         Files: *\nCopyright: 1998-2011 Erik Andersen, Rob Landley, Denys Vlasenko\n\
                         License: GPL-2\n";
        base.insert("/var/lib/dpkg/status", Entry::file(status, 0o644))
            .unwrap();
        base.insert(
            "/usr/share/doc/busybox-static/copyright",
            Entry::file(copyright, 0o644),
        )
        .unwrap();
    });
    // etcd from a local file rather than from the base.
    let etcd = b"#!/bin/sh\n# kiln test fixture standing in for etcd (a file source)\n";
    fs::write(tmp.path().join("etcd-fixture"), etcd).unwrap();
    let text = fs::read_to_string(&spec).unwrap().replace(
        "[etcd]\nsource = { base = true }",
        "[etcd]\nsource = { file = \"etcd-fixture\", dest = \"/usr/bin/etcd\" }",
    );
    fs::write(&spec, text).unwrap();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let rep = report(&dist);
    let sboms = checked_sboms(&dist);
    assert_eq!(
        sboms.keys().collect::<Vec<_>>(),
        ["agent", "master"],
        "one SBOM per role image"
    );
    let doc = &sboms["master"];
    let hex = |d: &serde_json::Value| {
        d.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let sha256 = |p: &serde_json::Value| {
        p["checksums"][0]["checksumValue"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let file = spdx_package(doc, "etcd-fixture");
    assert_eq!(sha256(file), hex::encode(Sha256::digest(etcd)));
    assert_eq!(file["checksums"][0]["algorithm"], "SHA256");
    assert!(file["sourceInfo"]
        .as_str()
        .unwrap()
        .contains("file:etcd-fixture"));

    let role = spdx_package(doc, "kiln-test/t-master");
    assert_eq!(
        sha256(role),
        hex(&image(&rep, "t-master")["manifest_digest"])
    );
    assert_eq!(doc["relationships"][0]["relationshipType"], "DESCRIBES");
    assert_eq!(
        doc["relationships"][0]["relatedSpdxElement"],
        role["SPDXID"]
    );

    // calico/node is baked where Docker runs: the agent.
    let node = spdx_package(&sboms["agent"], "kiln-fixture/calico-node");
    assert_eq!(
        sha256(node),
        hex(&image(&rep, "calico-node")["manifest_digest"])
    );
    assert_eq!(node["versionInfo"], "2.6.12");

    let base = spdx_package(doc, "oci:base-oci:base");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("base-oci/index.json")).unwrap()).unwrap();
    assert_eq!(sha256(base), hex(&index["manifests"][0]["digest"]));
    let deb = spdx_package(doc, "busybox-static");
    assert_eq!(deb["versionInfo"], "1:1.35.0-4+b3");
    assert_eq!(deb["licenseDeclared"], "GPL-2.0-only");
    assert_eq!(
        deb["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/busybox-static@1%3A1.35.0-4%2Bb3?arch=amd64"
    );
    // Listed exactly where the image has calico/node's layer.
    for (profile, sbom) in &sboms {
        let baked = image(&rep, &format!("t-{profile}"))["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["from"] == "image calico-node");
        let listed = sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == node["name"]);
        assert_eq!(baked, listed, "{profile}");
    }
    for p in [file, base, deb] {
        let id = &p["SPDXID"];
        assert!(
            doc["relationships"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["spdxElementId"] == role["SPDXID"] && r["relatedSpdxElement"] == *id),
            "{id} is not related to the image"
        );
    }
}
