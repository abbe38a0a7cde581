//! Rendered trees: snapshots of every file for each topology, and byte-identical re-renders.
//!
//! Snapshots live in `tests/snapshots/NAME/` exactly as `kiln render` writes them (manifests
//! carry modes and owners). After an intended change, refresh them with `./dev gen` (or
//! `KILN_BLESS=1 cargo test --test integration rendered_trees`) and review the diff.

use std::fs;

use kiln_test_support::snapshot::{self, read_tree, Entry};

use crate::common::render::{render, TOPOLOGIES};
use crate::common::{kiln_code, tests_dir};

/// Each topology's tree against its snapshot: every file with the same bytes (symlinks with
/// the same target) and no file more or less.
#[test]
fn rendered_trees_match_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, spec) in TOPOLOGIES {
        let got = render(name, *spec, tmp.path());
        snapshot::assert_dir(&tests_dir().join("snapshots").join(name), &read_tree(&got));
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (name, spec) in TOPOLOGIES {
        let (x, y) = (render(name, *spec, a.path()), render(name, *spec, b.path()));
        assert_eq!(read_tree(&x), read_tree(&y), "{name}: two renders differ");
    }
}

/// Per-host values live only in identity trees: no host's IP or name appears in a profile
/// tree except where the cluster layout itself lists the masters (zoo.cfg, etcd peers, hosts).
#[test]
fn profile_trees_carry_no_agent_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("dcos-large", Some("specs/dcos-large.toml"), tmp.path());
    let tree = read_tree(&out.join("profiles/agent"));
    for (path, entry) in &tree {
        let text = match entry {
            Entry::File(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Entry::Symlink(target) => format!("-> {}", target.display()),
        };
        for i in 1..=10 {
            assert!(
                !text.contains(&format!("172.16.1.{i}\n"))
                    && !text.contains(&format!("agent-{i}\n")),
                "{path} names agent-{i}"
            );
        }
    }
    let id = fs::read_to_string(out.join("hosts/agent-3/etc/kiln/identity.env")).unwrap();
    assert!(
        id.contains("KILN_IP=172.16.1.3\n") && id.contains("KILN_HOSTNAME=agent-3\n"),
        "{id}"
    );
    assert!(
        !id.contains("KILN_ZK_MYID"),
        "agents are not in the ensemble: {id}"
    );
    let myid = fs::read_to_string(out.join("hosts/master-4/var/lib/zookeeper/myid")).unwrap();
    assert_eq!(myid, "4\n");
}

/// A failed render leaves an existing output untouched and no staging directory behind.
#[test]
fn render_refuses_foreign_directories_and_keeps_them_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mine");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "keep me").unwrap();
    let (_, err) = kiln_code(&["render", "-o", out.to_str().unwrap()], 1);
    assert!(err.contains("is not a kiln render output"), "{err}");
    assert_eq!(
        fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "staging directory left behind"
    );
    // A previous render is replaced.
    let again = tmp.path().join("r");
    kiln_code(&["render", "-o", again.to_str().unwrap()], 0);
    kiln_code(&["render", "-o", again.to_str().unwrap()], 0);
    assert!(again.join("profiles/master-agent.manifest").is_file());
}
