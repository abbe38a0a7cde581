//! What the upstream programs do with kiln's files on a real host (issue 8): the Mesos init
//! wrapper's flags, ZooKeeper's AdminServer, the agent's task ports, isolation and cgroups.
//! Marathon's are in `real_hosts_marathon.rs`.
//! Each test is named after what broke; the upstream facts are in
//! `docs/design/upstream-facts.md`, cited in the components.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::kiln_code;
use crate::common::render::{demo_with, render, render_text, TOPOLOGIES};

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `NAME=` assignments of a shell or env file (comments and blank lines skipped).
fn assigned(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

// The mesosphere init wrapper, as a test oracle (mesosphere/mesos-deb-packaging 54ec74a,
// `mesos-init-wrapper` l.68-87 and l.126-146; `default/*` and `build_mesos` l.243-253 for what
// the package installs). Written from reading it, not copied.

/// Variables the wrapper turns into flags of `kind` (`ULIMIT` into `ulimit`).
fn wrapper_vars(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "master" => &[
            ("ULIMIT", "ulimit"),
            ("ZK", "zk"),
            ("IP", "ip"),
            ("PORT", "port"),
            ("CLUSTER", "cluster"),
            ("LOGS", "log_dir"),
        ],
        _ => &[
            ("ULIMIT", "ulimit"),
            ("MASTER", "master"),
            ("IP", "ip"),
            ("LOGS", "log_dir"),
            ("ISOLATION", "isolation"),
        ],
    }
}

/// The package's own `/etc/default/NAME` (its variables) and flag files.
fn package_defaults(name: &str) -> Vec<String> {
    let v: &[&str] = match name {
        "mesos" => &["LOGS", "ULIMIT"],
        "mesos-master" => &["PORT", "ZK"],
        _ => &["MASTER"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

fn package_flag_files(kind: &str) -> Vec<String> {
    let v: &[&str] = match kind {
        "master" => &["quorum", "work_dir"],
        _ => &["work_dir"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// What the wrapper passes to the `kind` daemon of a host: the flags (in order, a flag given
/// twice appears twice) and whether it runs `ulimit`. `root` is the profile tree laid over
/// the Mesos package (kiln's files replace the package's at the same path); `env` is the
/// unit's environment.
fn wrapper_run(root: &Path, kind: &str, env: &[String]) -> (Vec<String>, bool) {
    let mut vars: Vec<String> = env.to_vec();
    for name in ["mesos".to_string(), format!("mesos-{kind}")] {
        let f = root.join("etc/default").join(&name);
        if f.is_file() {
            vars.extend(assigned(&read(&f)));
        } else {
            vars.extend(package_defaults(&name));
        }
    }
    let mut flags = Vec::new();
    let mut ulimit = false;
    for (var, flag) in wrapper_vars(kind) {
        if vars.iter().any(|v| v == var) {
            if *flag == "ulimit" {
                ulimit = true;
            } else {
                flags.push(flag.to_string());
            }
        }
    }
    let dir = root.join(format!("etc/mesos-{kind}"));
    let mut files = package_flag_files(kind);
    if dir.is_dir() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                files.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files.dedup();
    flags.extend(
        files
            .iter()
            .map(|f| f.strip_prefix('?').unwrap_or(f).to_string()),
    );
    (flags, ulimit)
}

/// `(host, profile root, the mesos units' environment)` of every host of a render output.
fn hosts_of(out: &Path) -> Vec<(String, PathBuf, Vec<String>)> {
    let mut v = Vec::new();
    for e in fs::read_dir(out.join("hosts")).unwrap() {
        let p = e.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let id = read(&p.join("etc/kiln/identity.env"));
        let profile = id
            .lines()
            .find_map(|l| l.strip_prefix("KILN_PROFILE="))
            .unwrap()
            .to_string();
        let root = out.join("profiles").join(&profile);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        v.push((name, root, assigned(&id)));
    }
    v.sort();
    v
}

/// The unit's own `Environment=` names, and whether it reads the identity env file.
fn unit_env(unit: &str) -> (Vec<String>, bool) {
    let names = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|v| v.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    (
        names,
        unit.contains("EnvironmentFile=/etc/kiln/identity.env"),
    )
}

fn duplicates(flags: &[String]) -> Vec<&String> {
    let mut seen = BTreeMap::new();
    for f in flags {
        *seen.entry(f).or_insert(0) += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(f, _)| f)
        .collect()
}

/// Issue 8, item 5: the package's `/etc/default/mesos-master` set `PORT=5050`, kiln wrote
/// `/etc/mesos-master/port`, the wrapper passed `--port` twice and Mesos 1.11 exited ("Flag
/// 'port' is already loaded"), restarting forever. kiln now owns the three default files and
/// every flag is one file.
#[test]
fn mesos_master_gets_each_flag_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (name, spec) in TOPOLOGIES {
        let out = render(name, *spec, tmp.path());
        for (host, root, identity) in hosts_of(&out) {
            for (kind, unit, needed) in [
                (
                    "master",
                    "mesos-master.service",
                    &["zk", "port", "quorum", "work_dir", "cluster", "log_dir"][..],
                ),
                (
                    "slave",
                    "mesos-slave.service",
                    &["master", "port", "work_dir", "log_dir"][..],
                ),
                (
                    "agent",
                    "mesos-agent.service",
                    &["master", "port", "work_dir", "log_dir"][..],
                ),
            ] {
                let unit_path = root.join("etc/systemd/system").join(unit);
                if unit_path.is_symlink() || !unit_path.is_file() {
                    continue;
                }
                // The package's default files must never apply: kiln writes all three.
                let agent_default = if kind == "master" {
                    "mesos-master"
                } else {
                    unit
                };
                let agent_default = agent_default.trim_end_matches(".service");
                for d in ["mesos", "mesos-master", agent_default] {
                    assert!(
                        root.join("etc/default").join(d).is_file(),
                        "{name}/{host}: no /etc/default/{d}"
                    );
                }
                let (mut env, reads_identity) = unit_env(&read(&unit_path));
                if reads_identity {
                    env.extend(identity.iter().cloned());
                }
                let (flags, _) = wrapper_run(&root, kind, &env);
                assert!(
                    duplicates(&flags).is_empty(),
                    "{name}/{host}: mesos-{kind} gets {:?} twice: {flags:?}",
                    duplicates(&flags)
                );
                for f in needed {
                    assert!(
                        flags.iter().any(|x| x == f),
                        "{name}/{host}: mesos-{kind} lacks --{f}: {flags:?}"
                    );
                }
                // The ZooKeeper URL the daemon gets is the one in /etc/mesos/zk.
                let zk_flag = if kind == "master" { "zk" } else { "master" };
                assert_eq!(
                    read(&root.join(format!("etc/mesos-{kind}/{zk_flag}"))),
                    read(&root.join("etc/mesos/zk")),
                    "{name}/{host}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "only {checked} daemons checked");

    // The oracle sees the original bug: the package's defaults with kiln's flag files.
    let out = render("demo", None, tmp.path());
    let bare = tempfile::tempdir().unwrap();
    let flag_dir = bare.path().join("etc/mesos-master");
    fs::create_dir_all(&flag_dir).unwrap();
    for e in fs::read_dir(out.join("profiles/master-agent/etc/mesos-master")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), flag_dir.join(e.file_name())).unwrap();
    }
    let (flags, _) = wrapper_run(bare.path(), "master", &[]);
    assert!(
        duplicates(&flags).contains(&&"port".to_string()),
        "{flags:?}"
    );
}

/// Issue 8, item 15 (the Mesos part): the package's `/etc/default/mesos` has `ULIMIT="-n
/// 8192"`, and the wrapper's `ulimit $ULIMIT` sets the soft and hard limit, lowering the unit's
/// `LimitNOFILE=` for Mesos and every task. Covered by owning the default files (item 5).
#[test]
fn mesos_package_ulimit_no_longer_lowers_limit_nofile() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("three-two", Some("specs/three-two.toml"), tmp.path());
    let mut checked = 0;
    for (host, root, identity) in hosts_of(&out) {
        for (kind, unit) in [
            ("master", "mesos-master.service"),
            ("slave", "mesos-slave.service"),
            ("agent", "mesos-agent.service"),
        ] {
            let unit_path = root.join("etc/systemd/system").join(unit);
            if unit_path.is_symlink() || !unit_path.is_file() {
                continue;
            }
            let text = read(&unit_path);
            assert!(text.contains("\nLimitNOFILE=65536\n"), "{host}: {text}");
            let (_, ulimit) = wrapper_run(&root, kind, &identity);
            assert!(!ulimit, "{host}: mesos-{kind} would run `ulimit`");
            let defaults = read(&root.join("etc/default/mesos"));
            assert!(
                !assigned(&defaults).contains(&"ULIMIT".into()),
                "{defaults}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "3 masters + 2 agents");
    // Without kiln's files the package's ULIMIT would apply.
    let bare = tempfile::tempdir().unwrap();
    assert!(wrapper_run(bare.path(), "slave", &[]).1);
}

/// Issue 8, item 6: ZooKeeper 3.5+ starts an AdminServer on 8080, Marathon's port; on a
/// single host ZooKeeper exits when Marathon has it, in a quorum Marathon loses it.
#[test]
fn zookeeper_admin_server_is_off_so_marathon_keeps_8080() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, spec) in TOPOLOGIES {
        let out = render(name, *spec, tmp.path());
        for e in fs::read_dir(out.join("profiles")).unwrap() {
            let root = e.unwrap().path();
            let cfg = root.join("etc/zookeeper/conf/zoo.cfg");
            if !root.is_dir() || !cfg.is_file() {
                continue;
            }
            let text = read(&cfg);
            let lines: Vec<&str> = text.lines().collect();
            assert!(
                lines.contains(&"admin.enableServer=false"),
                "{name}: {text}"
            );
            assert!(!text.contains("admin.serverPort"), "{name}: {text}");
            let fw = root.join("etc/firewalld/services/kiln-zookeeper.xml");
            if fw.is_file() {
                let zk = read(&fw);
                assert!(!zk.contains("port=\"8080\""), "{name}: {zk}");
            }
        }
    }
    let marathon = read(
        &tmp.path()
            .join("demo/profiles/master-agent/etc/firewalld/services/kiln-marathon.xml"),
    );
    assert!(marathon.contains("port=\"8080\""), "{marathon}");
}

/// `zookeeper.admin_port` turns the AdminServer on, on that port, and opens it on the
/// masters; the port-clash check sees it (fixture `port-clash-zookeeper-admin-marathon`).
#[test]
fn zookeeper_admin_port_turns_the_admin_server_on_and_opens_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = demo_with("# admin_port = 8081 ", "admin_port = 8081 ");
    let out = render_text(tmp.path(), "admin", &spec);
    let root = out.join("profiles/master-agent");
    let cfg = read(&root.join("etc/zookeeper/conf/zoo.cfg"));
    assert!(
        cfg.contains("\nadmin.enableServer=true\nadmin.serverPort=8081\n"),
        "{cfg}"
    );
    assert!(!cfg.contains("admin.enableServer=false"), "{cfg}");
    let fw = read(&root.join("etc/firewalld/services/kiln-zookeeper.xml"));
    assert!(
        fw.contains("<port protocol=\"tcp\" port=\"8081\"/>"),
        "{fw}"
    );
    let (check, _) = kiln_code(
        &["check", tmp.path().join("admin.toml").to_str().unwrap()],
        0,
    );
    assert!(check.contains("3888/tcp 8081/tcp"), "{check}");
}

/// The `<port …/>` lines of every firewalld service of a profile tree.
fn opened_ports(profile: &Path) -> Vec<String> {
    let dir = profile.join("etc/firewalld/services");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flat_map(|e| {
            read(&e.unwrap().path())
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("<port "))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

/// The agent's task ports were closed: an agent offers ports 31000-32000 (apache/mesos 1.11.0
/// `src/slave/constants.hpp` `DEFAULT_PORTS`), Marathon's host-networked tasks listen there
/// and its health checks reach them from the masters, but the agent's firewalld service
/// opened only 5051. `mesos.agent.ports` is now the agent's `ports` resource and is opened,
/// on agents only; other resources the spec gives stay in front of it.
#[test]
fn agent_task_ports_are_offered_and_opened_on_agents_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("three-two", Some("specs/three-two.toml"), tmp.path());
    let range = r#"<port protocol="tcp" port="31000-32000"/>"#;
    for profile in ["master", "agent"] {
        let root = out.join("profiles").join(profile);
        let ports = opened_ports(&root);
        let resources = root.join("etc/mesos-slave/resources");
        if profile == "agent" {
            assert_eq!(read(&resources), "ports:[31000-32000]\n");
            assert!(ports.iter().any(|p| p == range), "{profile}: {ports:?}");
        } else {
            assert!(!resources.exists());
            assert!(
                !ports.iter().any(|p| p.contains("31000")),
                "{profile} opens task ports: {ports:?}"
            );
        }
    }

    let spec = demo_with(
        "ports = [\"31000-32000\"]",
        "ports = [\"20000-20999\", \"25000\"]\n[mesos.agent.flags]\nresources = \"cpus:2;mem:1024\"",
    );
    let out = render_text(tmp.path(), "ports", &spec);
    let root = out.join("profiles/master-agent");
    assert_eq!(
        read(&root.join("etc/mesos-agent/resources")),
        "cpus:2;mem:1024;ports:[20000-20999,25000-25000]\n"
    );
    let ports = opened_ports(&root);
    for want in [
        r#"<port protocol="tcp" port="20000-20999"/>"#,
        r#"<port protocol="tcp" port="25000"/>"#,
        r#"<port protocol="tcp" port="5051"/>"#,
    ] {
        assert!(ports.iter().any(|p| p == want), "{want} not in {ports:?}");
    }
    assert!(!ports.iter().any(|p| p.contains("31000")), "{ports:?}");
}

/// Agents got no cpu or memory isolation: kiln's `--isolation` replaced Mesos' default
/// `posix/cpu,posix/mem` (apache/mesos 1.11.0 `src/slave/flags.cpp`) with a list of neither.
/// The default now limits both with cgroups; a list without them is refused unless the spec
/// says it wants unlimited tasks.
#[test]
fn agent_isolation_limits_cpu_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("three-two", Some("specs/three-two.toml"), tmp.path());
    let iso = read(&out.join("profiles/agent/etc/mesos-slave/isolation"));
    assert_eq!(
        iso,
        "cgroups/cpu,cgroups/mem,filesystem/linux,docker/runtime,network/cni\n"
    );

    let bare = "isolation = [\"filesystem/linux\", \"docker/runtime\", \"network/cni\"]";
    let from = "isolation = [\"cgroups/cpu\", \"cgroups/mem\", \"filesystem/linux\", \"docker/runtime\", \"network/cni\"]";
    let path = tmp.path().join("bare.toml");
    fs::write(&path, demo_with(from, bare)).unwrap();
    let (_, err) = kiln_code(&["check", path.to_str().unwrap()], 2);
    assert!(
        err.contains("no cgroups cpu or memory isolation") && err.contains("allow_unlimited_tasks"),
        "{err}"
    );
    let out = render_text(
        tmp.path(),
        "unlimited",
        &demo_with(from, &format!("{bare}\nallow_unlimited_tasks = true")),
    );
    assert_eq!(
        read(&out.join("profiles/master-agent/etc/mesos-agent/isolation")),
        "filesystem/linux,docker/runtime,network/cni\n"
    );
}

/// The real Mesos 1.x agent cannot run on Debian 12's unified cgroup hierarchy (its Linux
/// launcher and cgroups isolators use v1 subsystems; cgroup v2 exists only on apache/mesos'
/// unreleased master): a profile that runs the agent of a Mesosphere package boots the legacy
/// hierarchy, and `kiln check` says so and why; a profile without the agent stays on v2, and
/// so does every profile with clusterd's build, which picks its cgroup v2 isolators itself.
/// (The booted cluster test reads `/sys/fs/cgroup` on a mesosphere agent and a master; the
/// PXE test on clusterd agents.)
#[test]
fn mesos_agent_profiles_boot_the_legacy_cgroup_hierarchy() {
    let legacy_profiles = |spec: &Path| {
        let (text, _) = kiln_code(&["check", spec.to_str().unwrap()], 0);
        let arg = "kernel: systemd.unified_cgroup_hierarchy=0 (the Mesos";
        let mut current = String::new();
        let mut with_arg = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("profile ") {
                current = rest.split_whitespace().next().unwrap_or("").to_string();
            } else if line.trim_start().starts_with(arg) {
                with_arg.push(current.clone());
            }
        }
        (with_arg, text)
    };
    let spec = crate::common::fixture("specs/three-two.toml");
    let (with_arg, text) = legacy_profiles(&spec);
    assert_eq!(with_arg, ["agent"], "{text}");
    assert!(
        text.contains("mesos pkg  mesosphere packaging (set by mesos.flavour)")
            && text.contains("its agents boot the legacy cgroup hierarchy"),
        "{text}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let clusterd = tmp.path().join("clusterd.toml");
    fs::write(
        &clusterd,
        read(&spec).replace("flavour = \"mesosphere\"", "flavour = \"clusterd\""),
    )
    .unwrap();
    let (with_arg, text) = legacy_profiles(&clusterd);
    assert!(with_arg.is_empty(), "{text}");
    assert!(text.contains("its agents stay on cgroup v2"), "{text}");
}
