//! Sources that come from Debian's package registry (the only network the tests use):
//! a real `.deb` fetched with `apt-get download`, and the mmdebstrap base, built and checked
//! for reproducibility. Split from `sources.rs`, whose helpers they use.

use std::process::Command;

use kiln_layers::EntryKind;
use kiln_pipeline::sources;
use kiln_test_support::require_tool;

use crate::sources::{file, plan_of, setup, HEAD};

#[test]
fn real_debian_etcd_server_deb_is_extracted_and_runs() {
    require_tool("apt-get", "apt");
    let spec = format!("{HEAD}\n[etcd]\nsource = {{ deb = \"etcd-server\", paths = [\"usr/bin/etcd\"] }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n");
    let s = setup(&spec);
    let r = s
        .resolve()
        .unwrap_or_else(|e| panic!("{e}\n(apt-get download needs `apt-get update` to have run)"));
    let etcd = &r.trees["etcd"];
    assert!(matches!(
        file(etcd, "/usr/bin/etcd").kind,
        EntryKind::File(_)
    ));
    assert_eq!(file(etcd, "/usr/bin/etcd").mode & 0o111, 0o111);
    let out = tempfile::tempdir().unwrap();
    kiln_layers::extract_to_dir(etcd, out.path()).unwrap();
    let v = Command::new(out.path().join("usr/bin/etcd"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && text.contains("etcd Version:"),
        "{text}"
    );
    assert!(r.lock[0].origin == "deb:etcd-server" && r.recorded.len() == 1);
}

/// mmdebstrap minbase + one small package. Slow (~30–80 s), so the cache is the machine's
/// test cache and later runs reuse it (the test then checks the offline path).
#[test]
fn debian_base_from_mmdebstrap() {
    require_tool("mmdebstrap", "mmdebstrap");
    let spec = format!("{HEAD}\n[base.debian]\nsuite = \"bookworm\"\nvariant = \"minbase\"\npackages = [\"hello\"]\nkernel = \"\"\n\n[etcd]\nsource = {{ base = true }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n");
    let mut s = setup(&spec);
    s.opts.cache_dir = kiln_test_support::machine_cache();
    let started = std::time::Instant::now();
    let r = s.resolve().unwrap();
    eprintln!("debian base resolved in {:.1?}", started.elapsed());
    let Some(base @ sources::BaseSource::Tarball { .. }) = &r.base else {
        panic!("no tarball base")
    };
    let t = &base.metadata_tree().unwrap();
    assert!(t.get("/usr/bin/hello").is_some());
    assert!(
        matches!(t.get("/bin").map(|e| &e.kind), Some(EntryKind::Symlink(_))),
        "merged /usr"
    );
    let plan = plan_of(&s.spec_path);
    // Only the units' binaries the base lacks are reported (etcd, dockerd), not /bin/sh.
    let e = sources::check_presence(&plan, &plan.profiles[0], t)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/usr/bin/etcd") && !e.contains("/bin/sh "),
        "{e}"
    );
    // A second resolve is served from the cache, offline.
    s.opts.offline = true;
    let r2 = s.resolve().unwrap();
    assert_eq!(r2.lock, r.lock);
}

/// Issue 9, item 6: two mmdebstrap builds of the same inputs, on the same machine a minute
/// apart and into two empty caches, give the same base tarball (nothing of the build machine
/// or the moment is in it).
#[test]
fn debian_base_is_reproducible() {
    require_tool("mmdebstrap", "mmdebstrap");
    let spec = format!("{HEAD}\n[base.debian]\nsuite = \"bookworm\"\nvariant = \"minbase\"\npackages = [\"hello\"]\nkernel = \"\"\n\n[etcd]\nsource = {{ base = true }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n");
    let digest = || {
        let s = setup(&spec);
        let r = s.resolve().unwrap();
        match &r.base {
            Some(sources::BaseSource::Tarball { sha256, .. }) => sha256.clone(),
            _ => panic!("no tarball base"),
        }
    };
    let (a, b) = (digest(), digest());
    assert_eq!(a, b, "two builds of the same Debian base differ");
}
