//! Rendered trees: snapshots of every file for each topology, and byte-identical re-renders.
//!
//! Snapshots live in `tests/snapshots/NAME/` exactly as `kiln render` writes them (manifests
//! carry modes and owners). After an intended change, refresh them with
//! `KILN_BLESS=1 cargo test --test integration render` and review the diff.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{fixture, kiln_code, tests_dir};

/// The topologies under snapshot: (snapshot name, spec or None for the built-in demo).
pub const TOPOLOGIES: &[(&str, Option<&str>)] = &[
    ("demo", None),
    ("three-two", Some("specs/three-two.toml")),
    ("dcos-large", Some("specs/dcos-large.toml")),
    ("static-endpoints", Some("specs/static-endpoints.toml")),
];

/// Renders a topology into `dir/NAME` and returns that path. The spec is named relative to
/// `tests/` (kiln runs there), so warnings recorded in `plan.json` name the same file on every
/// checkout.
pub fn render(name: &str, spec: Option<&str>, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let out_s = out.to_str().unwrap().to_string();
    let spec_path = spec.map(|s| {
        assert!(fixture(s).is_file(), "no fixture {s}");
        format!("fixtures/{s}")
    });
    let mut args = vec!["render"];
    if let Some(s) = &spec_path {
        args.push(s);
    }
    args.extend(["-o", &out_s]);
    let run = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(&args)
        .current_dir(tests_dir())
        .env_remove("KILN_LOG")
        .output()
        .expect("running kiln");
    assert_eq!(
        run.status.code(),
        Some(0),
        "kiln {args:?}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// Every entry below `root`: relative path → file bytes, or `-> target` for a symlink.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", fs::read_link(&p).unwrap().display()).into_bytes(),
                );
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn bless(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).unwrap();
    }
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn rendered_trees_match_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, spec) in TOPOLOGIES {
        let got_dir = render(name, *spec, tmp.path());
        let want_dir = tests_dir().join("snapshots").join(name);
        if std::env::var_os("KILN_BLESS").is_some() {
            bless(&got_dir, &want_dir);
            continue;
        }
        assert!(
            want_dir.is_dir(),
            "no snapshot for {name}; create it with KILN_BLESS=1"
        );
        let (got, want) = (snapshot(&got_dir), snapshot(&want_dir));
        for (path, bytes) in &got {
            match want.get(path) {
                None => failures.push(format!("{name}: new file {path}")),
                Some(w) if w != bytes => failures.push(format!(
                    "{name}: {path} differs\n--- snapshot\n{}\n--- rendered\n{}",
                    String::from_utf8_lossy(w),
                    String::from_utf8_lossy(bytes)
                )),
                Some(_) => {}
            }
        }
        for path in want.keys().filter(|p| !got.contains_key(*p)) {
            failures.push(format!("{name}: {path} no longer rendered"));
        }
    }
    assert!(
        failures.is_empty(),
        "rendered trees differ from tests/snapshots (KILN_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (name, spec) in TOPOLOGIES {
        let (x, y) = (render(name, *spec, a.path()), render(name, *spec, b.path()));
        assert_eq!(snapshot(&x), snapshot(&y), "{name}: two renders differ");
    }
}

/// Per-host values live only in identity trees: no host's IP or name appears in a profile
/// tree except where the cluster layout itself lists the masters (zoo.cfg, etcd peers, hosts).
#[test]
fn profile_trees_carry_no_agent_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("dcos-large", Some("specs/dcos-large.toml"), tmp.path());
    let tree = snapshot(&out.join("profiles/agent"));
    for (path, bytes) in &tree {
        let text = String::from_utf8_lossy(bytes);
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
