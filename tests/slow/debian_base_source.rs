//! The `debian` base made by mmdebstrap through kiln's source resolution: minbase plus one
//! small package, cached in the machine's test cache and then resolved offline, the presence
//! check against it, and two builds into two empty caches giving the same tarball.
//! mmdebstrap talks to Debian's mirror (the package registry).

use kiln_layers::EntryKind;
use kiln_pipeline::sources;
use kiln_test_support::require_tool;

use crate::common::sources::{plan_of, setup, HEAD};

/// mmdebstrap minbase + one small package. Slow (~30–80 s), so the cache is the machine's
/// test cache and later runs reuse it (the test then checks the offline path).
#[test]
fn mmdebstrap_base_has_its_packages_and_resolves_offline_from_the_cache() {
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
