//! The iptables mode (issue 19, item 5): calico-node of Calico 1.x and 2.x writes its rules
//! with the legacy iptables of its image, Debian 12's `iptables` is iptables-nft and
//! firewalld 1.3 defaults to nftables; so a profile that runs calico-node gets the base's
//! `iptables`/`ip6tables` alternatives pointed at `iptables-legacy` (links and dpkg's state,
//! as `update-alternatives --set` leaves them, checked with Debian's own `update-alternatives`
//! against Debian's own postinst) and firewalld's iptables backend; a profile without it is
//! left as the base has it. The presence check refuses a base without legacy iptables, and
//! `kiln check` says each profile's mode and why. (The booted proof, rules of firewalld,
//! Docker, a CNI plugin and the calico-node fixture all in legacy iptables, is in the cluster
//! test.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kiln_layers::{Entry, FileTree};
use kiln_pipeline::sources;
use kiln_test_support::require_tool;

use crate::common::render::{render_text, TWO_HOSTS};
use crate::common::sources::plan_of;
use crate::common::workspace::{build_args, busybox_tree, debian_iptables, fixture_workspace_with};
use crate::common::{fixture, kiln, kiln_code};

/// The alternatives links `update-alternatives --set GROUP /usr/sbin/GROUP-legacy` makes for
/// Debian's two groups: (link, target).
fn legacy_links() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for g in ["iptables", "ip6tables"] {
        for s in ["", "-restore", "-save"] {
            v.push((
                format!("etc/alternatives/{g}{s}"),
                format!("/usr/sbin/{g}-legacy{s}"),
            ));
        }
    }
    v
}

/// The settings firewalld reads from a firewalld.conf (`#` lines are comments).
fn settings(conf: &str) -> Vec<&str> {
    conf.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The agent (calico-node) gets the alternatives links and dpkg's state of `iptables` and
/// `ip6tables` switched to legacy, in manual mode, and firewalld's iptables backend; the
/// master (no calico-node) none of them. `kiln check` and `plan.json` say so, with the reason.
#[test]
fn calico_node_profiles_switch_the_base_to_legacy_iptables_and_others_keep_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(tmp.path(), "out", TWO_HOSTS);
    let agent = out.join("profiles/agent");
    let master = out.join("profiles/master");
    for (link, target) in legacy_links() {
        let got = fs::read_link(agent.join(&link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(got, Path::new(&target), "{link}");
        assert!(
            fs::symlink_metadata(master.join(&link)).is_err(),
            "the master runs no calico-node, yet has {link}"
        );
    }
    // Only the two groups whose legacy variant Debian's iptables package ships.
    let names: Vec<String> = fs::read_dir(agent.join("etc/alternatives"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for g in ["iptables", "ip6tables"] {
        let state = fs::read_to_string(agent.join("var/lib/dpkg/alternatives").join(g)).unwrap();
        assert!(state.starts_with("manual\n"), "{g}:\n{state}");
        assert!(!master.join("var/lib/dpkg/alternatives").join(g).exists());
    }
    let conf = fs::read_to_string(agent.join("etc/firewalld/firewalld.conf")).unwrap();
    assert_eq!(
        settings(&conf),
        ["DefaultZone=public", "FirewallBackend=iptables"],
        "{conf}"
    );
    // The master keeps the base's firewalld.conf (nftables, Debian's default).
    assert!(!master.join("etc/firewalld/firewalld.conf").exists());

    // `kiln check` and the plan say which mode each profile gets, and why.
    let spec = tmp.path().join("out.toml");
    let (text, _) = kiln_code(&["check", spec.to_str().unwrap()], 0);
    let mut mode = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("profile ") {
            current = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(m) = line.trim_start().strip_prefix("iptables: ") {
            mode.insert(current.clone(), m.to_string());
        }
    }
    assert!(
        mode["agent"]
            .starts_with("legacy (calico-node of Calico 2.6.12 writes legacy iptables rules"),
        "{text}"
    );
    assert!(
        mode["master"].starts_with("base (no calico-node on this profile"),
        "{text}"
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("plan.json")).unwrap()).unwrap();
    let modes: Vec<(&str, &str)> = plan["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["iptables"]["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(modes, [("agent", "legacy"), ("master", "base")]);
}

/// Without calico-node nothing changes, and with `[firewall]` off kiln writes no firewalld
/// file (the check line says what that leaves to the operator).
#[test]
fn without_calico_node_or_firewall_kiln_writes_no_such_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(
        tmp.path(),
        "no-node",
        &format!("{TWO_HOSTS}\n[calico.node]\nenabled = false\n"),
    );
    for p in ["agent", "master"] {
        let root = out.join("profiles").join(p);
        assert!(!root.join("etc/alternatives").exists(), "{p}");
        assert!(!root.join("var/lib/dpkg").exists(), "{p}");
        assert!(!root.join("etc/firewalld/firewalld.conf").exists(), "{p}");
    }
    let out = render_text(
        tmp.path(),
        "no-firewall",
        &format!("{TWO_HOSTS}\n[firewall]\nenabled = false\n"),
    );
    let agent = out.join("profiles/agent");
    assert!(agent.join("etc/alternatives/iptables").is_symlink());
    assert!(!agent.join("etc/firewalld").exists());
    let plan: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("plan.json")).unwrap()).unwrap();
    let why = plan["profiles"][0]["iptables"]["why"].as_str().unwrap();
    assert!(why.contains("needs FirewallBackend=iptables"), "{why}");
}

/// Stand-ins for the files a group's choices name (empty executables): `update-alternatives`
/// drops a choice whose file is missing.
fn choice_files(root: &Path) {
    let sbin = root.join("usr/sbin");
    fs::create_dir_all(&sbin).unwrap();
    for g in ["iptables", "ip6tables"] {
        for v in ["legacy", "nft"] {
            for s in ["", "-restore", "-save"] {
                let f = sbin.join(format!("{g}-{v}{s}"));
                fs::write(&f, "").unwrap();
                fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }
}

/// Copies the rendered alternatives (links and dpkg's state) of `profile` into `root`.
fn place_rendered(profile: &Path, root: &Path) {
    for dir in ["etc/alternatives", "var/lib/dpkg/alternatives"] {
        fs::create_dir_all(root.join(dir)).unwrap();
        for e in fs::read_dir(profile.join(dir)).unwrap() {
            let e = e.unwrap();
            let to = root.join(dir).join(e.file_name());
            match fs::read_link(e.path()) {
                Ok(t) => std::os::unix::fs::symlink(t, to).unwrap(),
                Err(_) => {
                    fs::copy(e.path(), to).unwrap();
                }
            }
        }
    }
}

/// What kiln renders is exactly what Debian's `update-alternatives --set` leaves after Debian's
/// own iptables postinst registered the groups (run into a temporary root with `--root`),
/// and Debian's `update-alternatives --query` reads kiln's state as manual, legacy.
#[test]
fn debians_update_alternatives_agrees_with_the_rendered_state() {
    require_tool("update-alternatives", "dpkg");
    let postinst = Path::new("/var/lib/dpkg/info/iptables.postinst");
    assert!(
        postinst.is_file(),
        "this test runs Debian's iptables postinst: install Debian's `iptables` package"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(tmp.path(), "out", TWO_HOSTS);
    let agent = out.join("profiles/agent");

    // Debian's postinst into a root of its own: `update-alternatives` on PATH adds --root.
    let debian = tmp.path().join("debian-root");
    choice_files(&debian);
    for s in ["arptables", "ebtables"] {
        for x in ["", "-restore", "-save"] {
            fs::write(debian.join(format!("usr/sbin/{s}-nft{x}")), "").unwrap();
        }
    }
    let wrap = tmp.path().join("wrap");
    fs::create_dir_all(&wrap).unwrap();
    let ua = wrap.join("update-alternatives");
    fs::write(
        &ua,
        format!(
            "#!/bin/sh\nexec /usr/bin/update-alternatives --root '{}' \"$@\"\n",
            debian.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ua, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", wrap.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str]| {
        let o = Command::new(args[0])
            .args(&args[1..])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&["sh", postinst.to_str().unwrap(), "configure"]);
    for g in ["iptables", "ip6tables"] {
        run(&[
            "update-alternatives",
            "--set",
            g,
            &format!("/usr/sbin/{g}-legacy"),
        ]);
        let want = fs::read(debian.join("var/lib/dpkg/alternatives").join(g)).unwrap();
        let got = fs::read(agent.join("var/lib/dpkg/alternatives").join(g)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "dpkg's state of {g}"
        );
    }
    for (link, target) in legacy_links() {
        assert_eq!(
            fs::read_link(debian.join(&link)).unwrap(),
            Path::new(&target),
            "{link}"
        );
    }

    // Debian's update-alternatives reads kiln's own files as a manual choice of legacy.
    let ours = tmp.path().join("kiln-root");
    choice_files(&ours);
    place_rendered(&agent, &ours);
    for g in ["iptables", "ip6tables"] {
        let q = run(&[
            "/usr/bin/update-alternatives",
            "--root",
            ours.to_str().unwrap(),
            "--query",
            g,
        ]);
        assert!(q.contains("\nStatus: manual\n"), "{q}");
        assert!(
            q.contains(&format!("\nValue: /usr/sbin/{g}-legacy\n")),
            "{q}"
        );
        assert!(q.contains(&format!("\nBest: /usr/sbin/{g}-nft\n")), "{q}");
    }
}

/// The presence check: a legacy-mode profile's iptables programs must reach an executable
/// that is not iptables' nf_tables variant, through kiln's links over the base.
#[test]
fn presence_check_refuses_a_base_without_legacy_iptables() {
    let spec = fixture("specs/build.toml");
    let plan = plan_of(&spec);
    let rendered = kiln_pipeline::components::render(&plan).unwrap();
    let agent = plan.profile("agent").unwrap();
    let iptables_absent = |base: FileTree, plan: &kiln_pipeline::plan::Plan| {
        let mut rootfs = base;
        rootfs
            .overlay(&kiln_pipeline::components::render(plan).unwrap().profiles["agent"])
            .unwrap();
        match sources::check_presence(plan, plan.profile("agent").unwrap(), &rootfs) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .absent
                .into_iter()
                .filter(|a| a.component == "iptables")
                .collect(),
        }
    };
    assert_eq!(agent.iptables.mode.as_str(), "legacy");
    assert!(rendered.profiles["agent"]
        .get("/etc/alternatives/iptables")
        .is_some());

    // Debian's layout: kiln's links reach xtables-legacy-multi.
    let mut debian = busybox_tree();
    debian_iptables(&mut debian);
    assert!(iptables_absent(debian.clone(), &plan).is_empty());

    // Without the legacy binary (a base whose iptables package is not there or partial).
    let mut partial = debian.clone();
    assert!(partial.remove("/usr/sbin/xtables-legacy-multi"));
    let absent = iptables_absent(partial, &plan);
    assert_eq!(absent.len(), 6, "{absent:?}");
    let a = &absent[0];
    assert_eq!(
        (a.unit.as_str(), a.path.as_str()),
        ("calico-node.service", "/usr/sbin/iptables")
    );
    assert!(
        a.problem.contains("no /usr/sbin/xtables-legacy-multi"),
        "{a:?}"
    );
    assert!(
        a.help.contains("add iptables to base.debian.packages"),
        "{a:?}"
    );

    // A RHEL-family base: kiln writes no Debian alternatives; RHEL 9's iptables (through its
    // alternatives to the nft variant) is refused, CentOS 7's legacy one passes.
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("[base]\n", "[base]\nfamily = \"rhel\"\n");
    let tmp = tempfile::tempdir().unwrap();
    let rhel_spec = tmp.path().join("cluster.toml");
    fs::write(&rhel_spec, text).unwrap();
    let rhel = plan_of(&rhel_spec);
    assert!(
        kiln_pipeline::components::render(&rhel).unwrap().profiles["agent"]
            .get("/etc/alternatives/iptables")
            .is_none()
    );
    let mut stream9 = busybox_tree();
    stream9
        .insert("/usr/sbin/xtables-nft-multi", Entry::file("x", 0o755))
        .unwrap();
    let mut centos7 = busybox_tree();
    centos7
        .insert("/usr/sbin/xtables-multi", Entry::file("x", 0o755))
        .unwrap();
    for g in ["iptables", "ip6tables"] {
        for s in ["", "-restore", "-save"] {
            for (t, target) in [
                (&mut stream9, format!("/etc/alternatives/{g}{s}")),
                (&mut centos7, "xtables-multi".to_string()),
            ] {
                t.insert(&format!("/usr/sbin/{g}{s}"), Entry::symlink(target))
                    .unwrap();
            }
            stream9
                .insert(
                    &format!("/etc/alternatives/{g}{s}"),
                    Entry::symlink(format!("/usr/sbin/{g}-nft{s}")),
                )
                .unwrap();
            stream9
                .insert(
                    &format!("/usr/sbin/{g}-nft{s}"),
                    Entry::symlink("xtables-nft-multi"),
                )
                .unwrap();
        }
    }
    let absent = iptables_absent(stream9, &rhel);
    assert_eq!(absent.len(), 6, "{absent:?}");
    assert!(
        absent[0]
            .problem
            .contains("nf_tables variant (via /usr/sbin/xtables-nft-multi)"),
        "{absent:?}"
    );
    assert!(
        absent[0]
            .help
            .contains("RHEL 8 and 9 ship no legacy iptables"),
        "{absent:?}"
    );
    assert!(iptables_absent(centos7, &rhel).is_empty());
}

/// `kiln build` on a base without legacy iptables stops at the presence check and says which
/// program, why and what to add.
#[test]
fn build_on_a_base_without_legacy_iptables_says_what_to_add() {
    let (tmp, spec) = fixture_workspace_with(|base| {
        assert!(base.remove("/usr/sbin/xtables-legacy-multi"));
    });
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let out = kiln(&build_args(&spec, &dist, cache.to_str().unwrap()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("calico-node.service: /usr/sbin/iptables is missing (no /usr/sbin/xtables-legacy-multi after following links)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("add iptables to base.debian.packages"),
        "{stderr}"
    );
}
