//! Upstream sources that still exist (issue 19, items 1 and 2): every upstream artifact of the
//! full demo has a live default or a named setting to fill; Mesos has none and `kiln lock`
//! says what to set before it fetches anything; Mesos' packaging flavour is read from the spec
//! or the source's name, renders that packaging's layout, and a source of the other packaging
//! is caught at build.

use std::fs;
use std::path::Path;

use crate::common::kiln_code;
use crate::common::render::{demo_with, render_text};
use crate::common::workspace::{build_args, fixture_workspace};

/// Hosts that served upstream artifacts once and are gone (D2iQ's DC/OS hosting, 2023).
const DEAD_HOSTS: &[&str] = &["repos.mesosphere.com", "downloads.mesosphere.io"];

/// `kiln check` of `spec` written to `dir/NAME.toml`: (exit code, stdout, stderr).
fn check(dir: &Path, name: &str, spec: &str) -> (i32, String, String) {
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, spec).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The demo's full spec passes `kiln check`; its plan names, for every upstream artifact, a
/// default that is still served or the exact setting to fill, and the JSON says the same.
#[test]
fn every_upstream_artifact_of_the_full_demo_has_a_live_default_or_a_setting_to_fill() {
    let (text, err) = kiln_code(&["check"], 0);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  source     "))
        .collect();
    for name in [
        "mesos ",
        "image marathon:",
        "calico-cni ",
        "image calico-node:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(name)),
            "no source line for {name}:\n{text}"
        );
    }
    for l in &lines {
        assert!(
            l.contains(": catalog https://")
                || l.contains(": catalog ")
                || l.contains(": in the base")
                || l.contains(": NO SOURCE: "),
            "{l}"
        );
        for dead in DEAD_HOSTS.iter().filter(|_| l.contains(": catalog ")) {
            assert!(!l.contains(dead), "a default on a dead host: {l}");
        }
    }
    let mesos = lines.iter().find(|l| l.starts_with("mesos ")).unwrap();
    assert!(
        mesos.contains("NO SOURCE") && mesos.contains("set mesos.source"),
        "{mesos}"
    );
    // Each known option says how to fill it and what it brings.
    for want in [
        "aventer-mesos",
        "clusterd",
        "mesosphere",
        "cgroup v2",
        "legacy cgroup",
    ] {
        assert!(text.contains(want), "the options lack {want:?}:\n{text}");
    }
    // A warning on the spec's [mesos] line, not an error.
    assert!(
        err.contains("warning: mesos 1.11.0 has no source to fetch") && err.contains("[mesos]"),
        "{err}"
    );

    let (json, _) = kiln_code(&["check", "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sources = v["sources"].as_array().unwrap();
    let missing: Vec<&str> = sources
        .iter()
        .filter(|s| s["from"] == "missing")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["mesos"], "{sources:?}");
    for s in sources {
        let fill = s["fill"].as_str();
        assert_eq!(s["from"] == "missing", fill.is_some(), "{s}");
        if let Some(f) = fill {
            assert!(f.contains("set mesos.source"), "{f}");
        }
    }
}

/// `kiln lock` with no Mesos source stops before fetching anything and names the setting and
/// its options; `--strict` turns the check's warning into a failure.
#[test]
fn lock_without_a_mesos_source_names_the_setting_and_fetches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    fs::write(&spec, kiln_pipeline::DEMO_SPEC).unwrap();
    let cache = tmp.path().join("cache");
    let (_, err) = kiln_code(
        &[
            "lock",
            spec.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains("have no source to fetch")
            && err.contains("- mesos.source:")
            && err.contains("aventer-mesos")
            && err.contains("brings:"),
        "{err}"
    );
    assert!(!tmp.path().join("kiln.lock").exists(), "a lock was written");
    // Nothing was downloaded: the cache holds no blob.
    let blobs = cache.join("blobs/sha256");
    assert!(
        !blobs.exists() || fs::read_dir(&blobs).unwrap().next().is_none(),
        "something was fetched"
    );
    kiln_code(&["check", "--strict", spec.to_str().unwrap()], 2);
}

/// The flavour comes from `mesos.flavour`, else the source's name; a name that says nothing
/// needs the key, and `kiln check` says which flavour and why.
#[test]
fn mesos_flavour_is_read_from_the_spec_or_the_sources_name() {
    let tmp = tempfile::tempdir().unwrap();
    let at = "[mesos]\nversion = \"1.11.0\"";
    let with = |extra: &str| demo_with(at, &format!("{at}\n{extra}"));
    for (name, extra, want) in [
        (
            "aventer",
            "source = { url = \"https://pkgs.example.com/aventer-mesos_1.11.0-0.9.0.debian12_amd64.deb\" }",
            "mesos pkg  clusterd packaging (read from the source's name",
        ),
        (
            "rpm",
            "source = { file = \"vendor/mesos-1.11.0-2.0.1.el7.x86_64.rpm\" }",
            "mesos pkg  mesosphere packaging (read from the source's name",
        ),
        (
            "deb",
            "source = { deb = \"mesos=1.11.0-2.0.1.debian9\" }",
            "mesos pkg  mesosphere packaging (read from the source's name",
        ),
        (
            "explicit",
            "source = { file = \"vendor/mesos-build\" }\nflavour = \"clusterd\"",
            "mesos pkg  clusterd packaging (set by mesos.flavour)",
        ),
        (
            "none",
            "",
            "mesos pkg  clusterd packaging (the default",
        ),
    ] {
        let (code, out, err) = check(tmp.path(), name, &with(extra));
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains(want), "{name}: {want:?} not in\n{out}");
    }
    let (code, _, err) = check(
        tmp.path(),
        "dir",
        &with("source = { file = \"vendor/mesos-build\" }"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not say how its Mesos is packaged")
            && err.contains("set mesos.flavour = \"clusterd\"")
            && err.contains("dir.toml:"),
        "{err}"
    );
    let (code, _, err) = check(tmp.path(), "bad", &with("flavour = \"dcos\""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mesosphere, clusterd"), "{err}");
}

/// Each flavour renders its packaging's layout, with the same typed flags: clusterd's wrapper
/// reads `/etc/mesos-agent/` and is started as `agent` by `mesos-agent.service`, Mesosphere's
/// reads `/etc/mesos-slave/` and is started as `slave`; nothing of the other layout is written.
#[test]
fn each_mesos_flavour_renders_its_packages_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let at = "[mesos]\nversion = \"1.11.0\"";
    let mut flags = Vec::new();
    for (flavour, kind, other) in [
        ("clusterd", "agent", "slave"),
        ("mesosphere", "slave", "agent"),
    ] {
        let out = render_text(
            tmp.path(),
            flavour,
            &demo_with(at, &format!("{at}\nflavour = \"{flavour}\"")),
        );
        let root = out.join("profiles/master-agent");
        let unit =
            fs::read_to_string(root.join(format!("etc/systemd/system/mesos-{kind}.service")))
                .unwrap();
        assert!(
            unit.contains(&format!("ExecStart=/usr/bin/mesos-init-wrapper {kind}\n"))
                && unit.contains("Delegate=yes")
                && unit.contains("KillMode=process"),
            "{flavour}: {unit}"
        );
        assert!(root
            .join(format!(
                "etc/systemd/system/multi-user.target.wants/mesos-{kind}.service"
            ))
            .is_symlink());
        assert!(root.join(format!("etc/default/mesos-{kind}")).is_file());
        // The package's other unit name is masked, none of the other layout is written.
        assert!(
            !root.join(format!("etc/mesos-{other}")).exists(),
            "{flavour}"
        );
        assert!(
            !root.join(format!("etc/default/mesos-{other}")).exists(),
            "{flavour}"
        );
        let mut names: Vec<(String, String)> = fs::read_dir(root.join(format!("etc/mesos-{kind}")))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        names.sort();
        flags.push(names);
    }
    assert_eq!(flags[0], flags[1], "the flavours' agent flags differ");
    assert!(
        flags[0].iter().any(|(n, _)| n == "isolation"),
        "{:?}",
        flags[0]
    );
}

/// A source of the other packaging is caught at build: the fixture base carries clusterd's
/// daemons in `/usr/bin`, a spec saying `mesosphere` looks for `/usr/sbin/mesos-slave` and the
/// build names it and the key to change, before any image is written.
#[test]
fn a_source_of_the_other_packaging_fails_the_build_with_the_key_to_set() {
    let (tmp, spec) = fixture_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let at = "[mesos]\nsource = { base = true }";
    assert!(text.contains(at));
    fs::write(
        &spec,
        text.replace(at, &format!("{at}\nflavour = \"mesosphere\"")),
    )
    .unwrap();
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let (_, err) = kiln_code(&build_args(&spec, &dist, cache.to_str().unwrap()), 1);
    assert!(
        err.contains("/usr/sbin/mesos-slave")
            && err.contains("mesosphere packaging, set by mesos.flavour")
            && err.contains("set mesos.flavour = \"clusterd\""),
        "{err}"
    );
    assert!(!dist.exists(), "a dist was left behind");
}
