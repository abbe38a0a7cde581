//! Independent oracles for rendered files: `systemd-analyze verify` for every unit, and
//! Python's json/xml/configparser for every config file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::render::{render, TOPOLOGIES};
use crate::common::tests_dir;
use kiln_test_support::{require_tool, verify_unit};

/// Every absolute program an `Exec*=` line of `unit` runs.
fn exec_paths(unit: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| l.starts_with("Exec") && l.contains('='))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(_, v)| v.trim_start_matches(['-', '@', '+', '!', ':']))
        })
        .filter_map(|v| v.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(String::from)
        .collect()
}

/// Verifies each unit of a profile inside a root made of the profile tree, this machine's
/// systemd units, and every program the units run: the machine's own where it has it, else a
/// small fixture script standing in for an upstream binary that cannot be had here (Mesos,
/// Marathon, …). Returns the programs that were stood in for.
fn verify_profile(profile: &Path, root: &Path) -> Vec<String> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", profile.display()))
        .arg(root)
        .status()
        .unwrap();
    assert!(status.success());
    let sys = root.join("usr/lib/systemd");
    fs::create_dir_all(&sys).unwrap();
    assert!(Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&sys)
        .status()
        .unwrap()
        .success());
    let unit_dir = root.join("etc/systemd/system");
    let mut units: Vec<_> = fs::read_dir(&unit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        // Masked units are symlinks to /dev/null: nothing to verify, they never run.
        .filter(|p| !p.is_symlink())
        .collect();
    units.sort();
    assert!(!units.is_empty());
    let mut stood_in = Vec::new();
    for u in &units {
        for prog in exec_paths(&fs::read_to_string(u).unwrap()) {
            let dest = root.join(prog.trim_start_matches('/'));
            if dest.exists() {
                continue;
            }
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            if Path::new(&prog).is_file() {
                fs::copy(&prog, &dest).unwrap();
            } else {
                fs::write(
                    &dest,
                    format!("#!/bin/sh\n# kiln test fixture standing in for {prog}\nexit 0\n"),
                )
                .unwrap();
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
                stood_in.push(prog);
            }
        }
    }
    for u in &units {
        verify_unit(root, u.file_name().unwrap().to_str().unwrap());
    }
    stood_in
}

#[test]
fn every_rendered_unit_passes_systemd_analyze_verify() {
    require_tool("systemd-analyze", "systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut stood_in = Vec::new();
    for (name, spec) in TOPOLOGIES {
        let out = render(name, *spec, tmp.path());
        for p in fs::read_dir(out.join("profiles"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
        {
            let root = tempfile::tempdir().unwrap();
            stood_in.extend(verify_profile(&p, root.path()));
        }
    }
    stood_in.sort();
    stood_in.dedup();
    eprintln!(
        "verified against fixture stand-ins for: {}",
        stood_in.join(" ")
    );
}

#[test]
fn verify_catches_a_unit_whose_program_is_missing() {
    require_tool("systemd-analyze", "systemd");
    let tmp = tempfile::tempdir().unwrap();
    let out = render("demo", None, tmp.path());
    let root = tempfile::tempdir().unwrap();
    verify_profile(&out.join("profiles/master-agent"), root.path());
    fs::remove_file(root.path().join("usr/bin/docker")).unwrap();
    let res = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("/etc/systemd/system/marathon.service")
        .output()
        .unwrap();
    assert!(
        !res.status.success(),
        "verify passed without /usr/bin/docker, the program of Marathon's container unit"
    );
}

#[test]
fn every_config_file_parses_with_independent_parsers() {
    require_tool("python3", "python3");
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = TOPOLOGIES
        .iter()
        .map(|(n, s)| render(n, *s, tmp.path()))
        .collect();
    let out = Command::new("python3")
        .arg(tests_dir().join("common/parse_check.py"))
        .args(&dirs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["json=", "xml=", "unit=", "properties=", "env=", "flag="] {
        assert!(stdout.contains(kind), "no {kind} files checked: {stdout}");
    }
}

#[test]
fn parse_check_rejects_broken_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/docker");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("daemon.json"), "{\"cluster-store\": }\n").unwrap();
    let out = Command::new("python3")
        .arg(tests_dir().join("common/parse_check.py"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
