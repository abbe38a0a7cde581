//! The cluster test (issue 10): one master and one agent built from
//! `fixtures/specs/cluster.toml` on the demo's Debian base, booted by `kiln boot --all` (the
//! library call behind it) from their disks and seeds, and checked from inside through the
//! guest agent:
//! - `kiln boot`'s own health checks pass on both hosts (etcd member, the agent's gateway to
//!   it, ZooKeeper, Docker's cluster store and node key, CNI files, calico-node, Mesos,
//!   Marathon, every unit active and never restarted);
//! - the FIXTURE stand-ins for Mesos, Marathon and calico-node (upstream only, not fetchable
//!   here) were started at the right paths with the flags and environment the spec implies,
//!   and after the units they must follow; Marathon's and calico-node's as containers of
//!   FIXTURE images, Marathon's in the master's Docker on the host's network;
//! - a real CNI ADD with Debian's plugins into a network namespace on the agent;
//! - the agent `docker pull`s an image kiln built and `kiln push`ed to a registry on the host;
//! - a write to `/usr` fails and the host stays healthy;
//! - a reboot of the master keeps etcd's and ZooKeeper's data and the cluster is healthy again.
//!
//! A flipped byte in the root image and a wrong root hash are refused at boot:
//! `verified_disk_boot.rs`.
//!
//! The base and the boot outputs are cached in kiln's cache (`$KILN_TEST_CACHE`, else kiln's
//! default), so a machine that keeps it builds them once. Serial logs and the report stay under
//! `target/tmp/cluster-test/` when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_layers::{Entry, FileTree};
use kiln_test_support::{machine_cache, require_tool, run, Registry};
use kiln_vm::health::{self, Watched};
use kiln_vm::qga::Agent;
use kiln_vm::{BootOptions, BootRun, Check};

use crate::common::vm::write_mesos_fixture;
use crate::common::workspace::{busybox_tree, write_fixture_image, write_fixture_image_with};
use crate::common::{fixture, kiln_code};
use kiln_pipeline::values::MesosFlavour;

/// The registry port the spec names (`[registry] address = "10.0.2.2:5000"`): the build host's
/// 127.0.0.1:5000 as the VMs see it through their host link.
const REGISTRY_PORT: u16 = 5000;

/// Marathon's launcher, `bin/marathon` in WORKDIR `/marathon` (the entry point of
/// mesosphere/marathon's image), as a FIXTURE image's: records its arguments, environment and
/// working directory under `/fixture` in the container and answers `/ping` on `--http_port`.
const MARATHON: &str = r#"#!/bin/sh
# kiln test FIXTURE standing in for Marathon's launcher: not Marathon.
mkdir -p /fixture/www
echo "argv: $*" > /fixture/flags
env | sort > /fixture/env
pwd > /fixture/cwd
echo pong > /fixture/www/ping
port=
while [ $# -gt 0 ]; do [ "$1" = --http_port ] && port=$2; shift; done
exec httpd -f -p "$port" -h /fixture/www
"#;

/// calico/node's entry point, as a FIXTURE: writes the container's environment to the host's
/// `/var/log/calico` (a volume of the unit), adds a `cali-FORWARD` chain to the host's
/// filter table as Felix 2.x does (`iptables-restore --noflush` with the legacy iptables of
/// its image, into the host's tables: the unit runs it with `--net=host`; the image's
/// iptables is the build host's, see [`legacy_iptables`]) and stays up.
const CALICO_NODE: &str = r#"#!/bin/sh
# kiln test FIXTURE standing in for calico/node: not Calico.
env | sort > /var/log/calico/fixture-env
iptables-legacy-save -t filter | grep -q -- '-j cali-FORWARD' ||
  printf '*filter\n:cali-FORWARD - [0:0]\n-I FORWARD 1 -j cali-FORWARD\nCOMMIT\n' |
  iptables-legacy-restore --noflush > /var/log/calico/fixture-iptables 2>&1
exec sleep 2147483647
"#;

/// A Calico CNI plugin, as a FIXTURE (the CNI ADD below uses Debian's real plugins).
const CNI_PLUGIN: &str =
    "#!/bin/sh\n# kiln test FIXTURE standing in for a Calico CNI plugin: not Calico.\nexit 1\n";

/// The spec and the fixture artifacts it names, in `dir`.
fn workspace(dir: &Path) -> PathBuf {
    let spec = dir.join("cluster.toml");
    fs::copy(fixture("specs/cluster.toml"), &spec).unwrap();
    let file = |rel: &str, text: &str| {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    write_mesos_fixture(&dir.join("fixture-mesos"), MesosFlavour::Mesosphere);
    // Signed UKIs and seeds (issue 21): the master boots them with Secure Boot enforcing.
    // The machine's test keys, so that a warm run finds the signed boot outputs in the cache.
    let keys = crate::common::vm::secure_boot_keys();
    let mut text = fs::read_to_string(&spec).unwrap();
    text.push_str(&format!(
        "\n[boot.secure_boot]\nkey = \"{k}/db.key\"\ncert = \"{k}/db.crt\"\n\
         pk_cert = \"{k}/PK.crt\"\nkek_cert = \"{k}/KEK.crt\"\n",
        k = keys.display()
    ));
    fs::write(&spec, text).unwrap();
    file("fixture-calico-cni/calico", CNI_PLUGIN);
    file("fixture-calico-cni/calico-ipam", CNI_PLUGIN);
    let mut node: FileTree = busybox_tree();
    for applet in ["env", "sort", "sleep", "grep"] {
        node.insert(&format!("/bin/{applet}"), Entry::symlink("busybox"))
            .unwrap();
    }
    legacy_iptables(&mut node);
    node.insert("/fixture-calico-node", Entry::file(CALICO_NODE, 0o755))
        .unwrap();
    write_fixture_image(
        &dir.join("fixture-calico-node-oci"),
        "calico-node",
        &node,
        Some(vec!["/fixture-calico-node".into()]),
    );
    let mut marathon: FileTree = busybox_tree();
    for applet in ["env", "sort", "mkdir", "httpd"] {
        marathon
            .insert(&format!("/bin/{applet}"), Entry::symlink("busybox"))
            .unwrap();
    }
    marathon
        .insert("/marathon/bin/marathon", Entry::file(MARATHON, 0o755))
        .unwrap();
    write_fixture_image_with(
        &dir.join("fixture-marathon-oci"),
        "marathon",
        &marathon,
        |image| {
            image.entrypoint = Some(vec!["bin/marathon".into()]);
            image.working_dir = Some("/marathon".into());
        },
    );
    spec
}

/// The build host's legacy iptables (Debian 12's, as the guests' base) in the calico-node
/// FIXTURE image, as calico/node carries its own: `xtables-legacy-multi`, the libraries it
/// links (where `ldd` finds them), the extensions it loads and its `iptables-legacy*` names,
/// and `/run` for its lock file.
fn legacy_iptables(node: &mut FileTree) {
    let multi = "/usr/sbin/xtables-legacy-multi";
    let ldd = std::process::Command::new("ldd")
        .arg(multi)
        .output()
        .unwrap();
    assert!(
        ldd.status.success(),
        "ldd {multi}: Debian's iptables is needed"
    );
    let mut files = vec![multi.to_string()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-….so.2 (0x…)`
        let path = line.split("=>").last().unwrap().split_whitespace().next();
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.to_string());
        }
    }
    for e in fs::read_dir("/usr/lib/x86_64-linux-gnu/xtables").unwrap() {
        files.push(e.unwrap().path().to_string_lossy().into_owned());
    }
    for f in files {
        node.insert(&f, Entry::file(fs::read(&f).unwrap(), 0o755))
            .unwrap();
    }
    for name in [
        "iptables-legacy",
        "iptables-legacy-save",
        "iptables-legacy-restore",
    ] {
        node.insert(
            &format!("/usr/sbin/{name}"),
            Entry::symlink("xtables-legacy-multi"),
        )
        .unwrap();
    }
    node.insert("/run", Entry::dir(0o755)).unwrap();
}

/// Runs `script` with bash in the guest behind `socket`.
fn try_sh(socket: &Path, script: &str) -> Result<(i32, String), kiln_vm::qga::QgaError> {
    let mut a = Agent::connect(socket, Duration::from_secs(10))?;
    let out = a.exec("/bin/bash", &["-c", script], Duration::from_secs(120))?;
    Ok((
        out.exit_code.unwrap_or(-1),
        out.stdout_text() + &out.stderr_text(),
    ))
}

/// [`try_sh`] that must reach the agent; returns (exit code, stdout+stderr).
fn sh(socket: &Path, script: &str) -> (i32, String) {
    try_sh(socket, script).unwrap_or_else(|e| panic!("in the guest: {script}\n{e}"))
}

/// [`sh`] that must succeed.
fn sh_ok(socket: &Path, script: &str) -> String {
    let (code, out) = sh(socket, script);
    assert_eq!(code, 0, "in the guest: {script}\n{out}");
    out
}

/// The monotonic time a unit became active (µs since boot), 0 when it never did.
fn active_since(socket: &Path, unit: &str) -> u64 {
    let out = sh_ok(
        socket,
        &format!("systemctl show -P ActiveEnterTimestampMonotonic {unit}"),
    );
    out.trim().parse().unwrap_or(0)
}

/// Asserts that `first` became active before `then` did.
fn started_before(socket: &Path, first: &str, then: &str) {
    let (a, b) = (active_since(socket, first), active_since(socket, then));
    assert!(
        a > 0 && b > 0 && a <= b,
        "{first} ({a} µs) must be active before {then} ({b} µs)"
    );
}

/// Lines of a fixture's record file.
fn record(socket: &Path, file: &str) -> Vec<String> {
    sh_ok(socket, &format!("cat /run/kiln-fixture/{file}"))
        .lines()
        .map(String::from)
        .collect()
}

/// Asserts that `lines` (a fixture's record) holds each of `want` as a whole line.
fn has_all(lines: &[String], want: &[&str], what: &str) {
    for w in want {
        assert!(
            lines.iter().any(|l| l == w),
            "{what} lacks {w:?}:\n{}",
            lines.join("\n")
        );
    }
}

/// The guest agent socket of `host`.
fn qga(run: &BootRun, host: &str) -> PathBuf {
    let h = run.report.hosts.iter().find(|h| h.name == host).unwrap();
    h.qga_socket.clone()
}

#[test]
fn a_master_and_an_agent_boot_healthy_wired_as_the_spec_says() {
    for (tool, pkg) in [
        ("mmdebstrap", "mmdebstrap"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("docker-registry", "docker-registry"),
        ("xorriso", "xorriso"),
        ("tar2sqfs", "squashfs-tools-ng"),
    ] {
        require_tool(tool, pkg);
    }
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-test");
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = workspace(work.path());
    let dist = work.path().join("dist");
    let cache = machine_cache();
    let started = Instant::now();
    // The cluster and PXE specs share their Debian base: one of them makes it, the other
    // waits and takes it from the machine's cache.
    let base = crate::common::vm::debian_base_lock(&spec);
    kiln_code(
        &[
            "build",
            spec.to_str().unwrap(),
            "-o",
            dist.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ],
        0,
    );
    eprintln!("cluster build: {:.0?}", started.elapsed());
    drop(base);

    // The registry on the host; the build pushed to it, as an operator would.
    let registry = Registry::start_on(REGISTRY_PORT);
    kiln_code(
        &[
            "push",
            dist.to_str().unwrap(),
            "--to",
            &format!("{}/pushed", registry.host()),
            "--insecure",
        ],
        0,
    );

    operator_adds_to_the_agents_user_data(&dist);
    planted_in_the_masters_seed(&dist);

    let _vms = crate::common::vm::vm_lock();
    let mut opts = BootOptions::new(&dist);
    // The master on UEFI with Secure Boot enforcing (the build's keys enrolled) and a TPM; the
    // agent on BIOS, where cloud-init still runs for what an operator adds.
    opts.firmware = kiln_vm::Firmware::Bios;
    opts.host_firmware
        .insert("m1".into(), kiln_vm::Firmware::UefiSecure);
    opts.tpm = true;
    opts.keep = true;
    opts.run_dir = Some(logs.join("run"));
    opts.timeout = Duration::from_secs(1200);
    let run = kiln_vm::boot(&opts, &mut |l| eprintln!("kiln boot: {l}")).unwrap();
    fs::write(
        logs.join("report.json"),
        serde_json::to_vec_pretty(&run.report).unwrap(),
    )
    .unwrap();
    assert!(
        run.report.healthy,
        "cluster not healthy (logs in {}):\n{}\n{}",
        logs.display(),
        health::table(&run.report.hosts),
        tails(&run.report.hosts)
    );
    let (m1, a1) = (qga(&run, "m1"), qga(&run, "a1"));
    let m1_checks: Vec<&str> = run
        .report
        .hosts
        .iter()
        .find(|h| h.name == "m1")
        .unwrap()
        .checks
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    for id in ["secure-boot", "pcr11"] {
        assert!(
            m1_checks.contains(&id),
            "m1 has no {id} check: {m1_checks:?}"
        );
    }

    wiring_on_the_master(&m1);
    marathon_runs_its_image_in_docker_on_the_master(&m1);
    wiring_on_the_agent(&a1);
    one_node_name(&m1, "m1.kiln.test");
    one_node_name(&a1, "a1.kiln.test");
    task_ports_open_on_agents_only(&m1, &a1);
    cgroup_hierarchy_follows_the_mesos_agent(&m1, &a1);
    cloud_init_never_runs_on_the_secure_booted_master(&m1);
    cloud_init_writes_what_kiln_identity_applied(&m1, &a1);
    cni_add_with_debians_plugins(&a1);
    iptables_follows_calico_node(&m1, &a1);
    pull_from_the_hosts_registry(&a1, &dist);
    usr_is_read_only(&m1, &a1);
    master_reboot_keeps_its_data(&run, &dist, &m1, &a1);

    drop(run);
    let _ = fs::remove_dir_all(&logs);
}

fn tails(hosts: &[kiln_vm::HostHealth]) -> String {
    let mut s = String::new();
    for h in hosts.iter().filter(|h| !h.healthy) {
        s += &format!("--- {} console:\n{}\n", h.name, h.console_tail.join("\n"));
        for (unit, j) in &h.journals {
            s += &format!("--- {} {unit}:\n{j}\n", h.name);
        }
    }
    s
}

/// Mesos master and Marathon got the flags and environment the spec implies, in order.
fn wiring_on_the_master(m1: &Path) {
    let flags = [
        "argv: master",
        "--zk=zk://10.88.0.11:2181/mesos",
        "--quorum=1",
        "--port=5050",
        "--cluster=ct",
    ];
    has_all(&record(m1, "mesos-master.flags"), &flags, "mesos-master");
    let env = ["LIBPROCESS_IP=10.88.0.11", "MESOS_HOSTNAME=m1.kiln.test"];
    has_all(&record(m1, "mesos-master.env"), &env, "mesos-master env");
    started_before(m1, "zookeeper.service", "mesos-master.service");
    // Debian's zkServer.sh hands the unit's SERVER_JVMFLAGS to the JVM: the election's
    // longest wait between rounds of votes is 2 s, not 60 s (issue 20).
    let java = sh_ok(
        m1,
        "for c in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$c; echo; done | grep QuorumPeerMain",
    );
    assert!(
        java.contains("-Dzookeeper.fastleader.maxNotificationInterval=2000 ")
            && java.contains("QuorumPeerMain"),
        "ZooKeeper's JVM runs without the election interval: {java}"
    );
    // The master runs no agent-side unit.
    let (code, _) = sh(m1, "systemctl is-active calico-node.service");
    assert_ne!(code, 0, "calico-node must not run on a master-only host");
}

/// Marathon's FIXTURE image ran in the master's Docker, on the host's network, unprivileged,
/// from its entry point with the flags and environment the spec implies, after Docker, the
/// load one-shot and the Mesos master; that Docker has no cluster store.
fn marathon_runs_its_image_in_docker_on_the_master(m1: &Path) {
    let fixture = |file: &str| -> Vec<String> {
        sh_ok(m1, &format!("docker exec marathon cat /fixture/{file}"))
            .lines()
            .map(String::from)
            .collect()
    };
    let argv = "argv: --master zk://10.88.0.11:2181/mesos --zk zk://10.88.0.11:2181/marathon \
                --http_port 8080 --hostname m1.kiln.test";
    has_all(&fixture("flags"), &[argv], "marathon");
    let env = ["LIBPROCESS_IP=10.88.0.11", "LIBPROCESS_PORT=15101"];
    has_all(&fixture("env"), &env, "marathon's environment");
    has_all(
        &fixture("cwd"),
        &["/marathon"],
        "marathon's working directory",
    );
    let inspect = sh_ok(
        m1,
        "docker inspect -f '{{.HostConfig.NetworkMode}} {{.HostConfig.Privileged}} {{.Config.Image}}' marathon",
    );
    // The name it runs as: the spec's image under the cluster registry's prefix.
    assert_eq!(
        inspect.trim(),
        "host false 10.0.2.2:5000/kiln/kiln-fixture/marathon:v1.6.322"
    );
    // The host's network: the container's listener is in the host's own socket table.
    sh_ok(m1, "ss -Hltn 'sport = :8080' | grep -q LISTEN");
    started_before(m1, "docker.service", "kiln-load-images.service");
    started_before(m1, "kiln-load-images.service", "marathon.service");
    started_before(m1, "mesos-master.service", "marathon.service");
    let info = sh_ok(m1, "docker info 2>&1");
    assert!(
        !info.contains("Cluster Store: etcd"),
        "a master's Docker must not use the cluster store:\n{info}"
    );
}

/// Mesos agent and calico-node got the flags and environment the spec implies, in order.
fn wiring_on_the_agent(a1: &Path) {
    let flags = record(a1, "mesos-slave.flags");
    let want = [
        "argv: slave",
        "--master=zk://10.88.0.11:2181/mesos",
        "--containerizers=docker,mesos",
        "--network_cni_config_dir=/etc/cni/net.d",
        "--network_cni_plugins_dir=/opt/cni/bin",
        "--resources=ports:[31000-32000]",
    ];
    has_all(&flags, &want, "mesos-slave");
    let iso = flags
        .iter()
        .find(|l| l.starts_with("--isolation="))
        .expect("an --isolation flag");
    for want in [
        "cgroups/cpu",
        "cgroups/mem",
        "filesystem/linux",
        "docker/runtime",
        "network/cni",
    ] {
        assert!(
            iso.split([',', '=']).any(|i| i == want),
            "{iso} lacks {want}"
        );
    }
    has_all(
        &record(a1, "mesos-slave.env"),
        &["LIBPROCESS_IP=10.88.0.21"],
        "mesos-slave env",
    );
    let env: Vec<String> = sh_ok(a1, "cat /var/log/calico/fixture-env")
        .lines()
        .map(String::from)
        .collect();
    let want = [
        "ETCD_ENDPOINTS=http://127.0.0.1:2379",
        "NODENAME=a1.kiln.test",
        "IP=10.88.0.21",
        "CALICO_NETWORKING_BACKEND=bird",
        "CALICO_LIBNETWORK_ENABLED=true",
    ];
    has_all(&env, &want, "calico-node's environment");
    started_before(a1, "docker.service", "kiln-load-images.service");
    started_before(a1, "kiln-load-images.service", "calico-node.service");
    started_before(a1, "etcd-gateway.service", "calico-node.service");
    started_before(a1, "docker.service", "mesos-slave.service");
    // The calico config sits where the agent's flags point.
    let conf = sh_ok(a1, "cat /etc/cni/net.d/calico.conf");
    let conf: serde_json::Value = serde_json::from_str(&conf).unwrap();
    assert_eq!(conf["type"], "calico");
    assert_eq!(conf["ipam"]["type"], "calico-ipam");
    assert_eq!(conf["etcd_endpoints"], "http://127.0.0.1:2379");
}

/// With `calico.node.nodename = "fqdn"` (the spec's), the kernel hostname (what the Calico
/// CNI plugin's `os.Hostname()` and Docker's `HOSTNAME` for libnetwork give), `hostname`,
/// `/etc/hostname` and kiln's node name (calico-node's NODENAME, checked in its environment
/// above) are the FQDN: cloud-init 22.4 used to shorten it.
fn one_node_name(s: &Path, want: &str) {
    for (what, cmd) in [
        ("the kernel hostname", "cat /proc/sys/kernel/hostname"),
        ("hostname", "hostname"),
        ("/etc/hostname", "cat /etc/hostname"),
        (
            "KILN_NODENAME",
            ". /etc/kiln/identity.env && echo \"$KILN_NODENAME\"",
        ),
    ] {
        assert_eq!(sh_ok(s, cmd).trim(), want, "{what}");
    }
}

/// The agent's firewall (the real firewalld, from the files kiln wrote) opens the ports the
/// agent offers to tasks (Mesos' 31000-32000) to the master, where Marathon's health checks
/// come from, and nothing beside them; the master, which offers none, keeps them closed.
fn task_ports_open_on_agents_only(m1: &Path, a1: &Path) {
    let www = "mkdir -p /run/kiln-fixture/task.www && echo task > /run/kiln-fixture/task.www/t";
    for s in [m1, a1] {
        // busybox httpd without -f goes to the background.
        sh_ok(s, &format!("{www} && busybox httpd -p 31777 -h /run/kiln-fixture/task.www && busybox httpd -p 33777 -h /run/kiln-fixture/task.www"));
    }
    // An HTTP GET by bash's /dev/tcp (the guest's busybox wget crashes), cut after 5 s;
    // `; echo`: the status of the whole, after its output.
    let get = |from: &Path, to: &str, port: u16, path: &str| {
        let (_, out) = sh(
            from,
            &format!(
                "timeout 5 bash -c 'exec 3<>/dev/tcp/{to}/{port} && \
                 printf \"GET {path} HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3' 2>&1; echo \" rc=$?\""
            ),
        );
        out
    };
    let why = || {
        let fw = "firewall-cmd --state; firewall-cmd --get-default-zone; firewall-cmd --list-all; \
                  firewall-cmd --info-service=kiln-mesos-slave; ss -ltn";
        format!(
            "a1:\n{}\nm1:\n{}",
            sh(a1, fw).1,
            sh(m1, "ip -4 addr; ip route").1
        )
    };
    let out = get(m1, "10.88.0.21", 5051, "/health");
    assert!(
        out.ends_with(" rc=0\n"),
        "m1 → a1:5051, the agent's port: {out}\n{}",
        why()
    );
    let out = get(m1, "10.88.0.21", 31777, "/t");
    assert!(
        out.ends_with("\r\n\r\ntask\n rc=0\n"),
        "m1 → a1:31777, a task port: {out}\n{}",
        why()
    );
    let out = get(m1, "10.88.0.21", 33777, "/t");
    assert!(
        !out.ends_with(" rc=0\n"),
        "m1 → a1:33777 is no task port but answered: {out}"
    );
    let out = get(a1, "10.88.0.11", 31777, "/t");
    assert!(
        !out.ends_with(" rc=0\n"),
        "a1 → m1:31777: a master offers no task ports but answered: {out}"
    );
}

/// The agent boots the legacy cgroup hierarchy with the cpu and memory controllers the Mesos
/// 1.x agent's isolators use (`systemd.unified_cgroup_hierarchy=0` on its kernel command
/// line); the master, which runs no agent, stays on Debian 12's unified hierarchy.
fn cgroup_hierarchy_follows_the_mesos_agent(m1: &Path, a1: &Path) {
    let fs_type = |s: &Path| sh_ok(s, "stat -fc %T /sys/fs/cgroup").trim().to_string();
    assert_eq!(
        fs_type(a1),
        "tmpfs",
        "a1: /sys/fs/cgroup is not the legacy hierarchy"
    );
    for c in ["cpu", "memory", "freezer"] {
        sh_ok(
            a1,
            &format!("stat -fc %T /sys/fs/cgroup/{c} | grep -qx cgroupfs"),
        );
    }
    assert!(sh_ok(a1, "cat /proc/cmdline").contains("systemd.unified_cgroup_hierarchy=0"));
    assert_eq!(
        fs_type(m1),
        "cgroup2fs",
        "m1 must stay on the unified hierarchy"
    );
}

/// Debian's `bridge` and `host-local` plugins add an interface to a new network namespace;
/// Debian's `portmap`, chained after them as a CNI runtime would, writes its DNAT rules with
/// the host's `iptables`, which on the agent (calico-node of Calico 2.6.12) is legacy: they
/// land in `iptables-legacy-save`'s nat table.
fn cni_add_with_debians_plugins(a1: &Path) {
    let out = sh_ok(
        a1,
        r#"set -e
ip netns add kiln-cni-test
cat > /run/kiln-cni-test.conf <<'EOF'
{"cniVersion": "0.4.0", "name": "kiln-test", "type": "bridge", "bridge": "kilncni0",
 "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.99.0.0/24"}}
EOF
export CNI_COMMAND=ADD CNI_CONTAINERID=kiln-cni-test CNI_NETNS=/run/netns/kiln-cni-test \
  CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
/usr/lib/cni/bridge < /run/kiln-cni-test.conf | tee /run/kiln-cni-test.json
echo
ip netns exec kiln-cni-test ip -o -4 addr show dev eth0
# From inside the namespace, the bridge's gateway address answers (busybox: minbase has no ping).
ip netns exec kiln-cni-test busybox ping -c 1 -W 5 10.99.0.1
python3 -c '
import json
prev = json.load(open("/run/kiln-cni-test.json"))
print(json.dumps({"cniVersion": "0.4.0", "name": "kiln-test", "type": "portmap",
  "capabilities": {"portMappings": True}, "prevResult": prev,
  "runtimeConfig": {"portMappings": [{"hostPort": 31888, "containerPort": 80, "protocol": "tcp"}]}}))
' | /usr/lib/cni/portmap
echo
iptables-legacy-save -t nat
"#,
    );
    for want in [
        ":CNI-HOSTPORT-DNAT",
        "--dport 31888",
        "-j CNI-HOSTPORT-DNAT",
    ] {
        assert!(out.contains(want), "no {want} in legacy nat:\n{out}");
    }
    assert!(out.contains("\"ips\""), "CNI ADD printed no result:\n{out}");
    assert!(
        out.contains("inet 10.99.0."),
        "no address in the namespace:\n{out}"
    );
    assert!(
        out.contains("1 packets received"),
        "the namespace does not answer:\n{out}"
    );
}

/// Lines `FAMILY NAME` of every nftables table, by Debian's libnftables (python3-nftables, a
/// dependency of firewalld; the base has no `nft`).
fn nft_tables(s: &Path) -> Vec<String> {
    let out = sh_ok(
        s,
        r#"python3 -c '
import json, nftables
n = nftables.Nftables()
n.set_json_output(True)
rc, out, err = n.cmd("list tables")
assert rc == 0, err
for t in json.loads(out)["nftables"]:
    if "table" in t:
        print(t["table"]["family"], t["table"]["name"])
'"#,
    );
    out.lines().map(String::from).collect()
}

/// The agent runs calico-node of Calico 2.6.12, which writes legacy iptables rules: its
/// `iptables`/`ip6tables` alternatives are a manual choice of legacy (dpkg agrees), firewalld
/// runs on its iptables backend (its state, its D-Bus config, a journal without errors), and
/// every rule set is in legacy iptables (firewalld's chains, Docker's, the calico-node
/// FIXTURE's `cali-FORWARD`, written from its container) while nftables holds no ip, ip6 or
/// inet table (firewalld's ebtables `*_direct` chains stay in nftables' bridge family: Debian
/// has only ebtables-nft). The master, without calico-node, keeps Debian's iptables-nft and
/// firewalld's nftables backend.
fn iptables_follows_calico_node(m1: &Path, a1: &Path) {
    let query = |s: &Path, g: &str| {
        sh_ok(
            s,
            &format!("update-alternatives --query {g} | grep -E '^(Status|Value):'"),
        )
    };
    let backend = |s: &Path| {
        sh_ok(
            s,
            "busctl get-property org.fedoraproject.FirewallD1 /org/fedoraproject/FirewallD1/config \
             org.fedoraproject.FirewallD1.config FirewallBackend",
        )
    };
    let journal = "journalctl -b -u firewalld --no-pager -o cat";
    for g in ["iptables", "ip6tables"] {
        assert_eq!(
            query(a1, g),
            format!("Status: manual\nValue: /usr/sbin/{g}-legacy\n"),
            "a1 {g}"
        );
        assert_eq!(
            query(m1, g),
            format!("Status: auto\nValue: /usr/sbin/{g}-nft\n"),
            "m1 {g}"
        );
    }
    assert!(sh_ok(a1, "iptables -V").contains("(legacy)"));
    assert!(sh_ok(m1, "iptables -V").contains("(nf_tables)"));
    for s in [a1, m1] {
        assert_eq!(sh_ok(s, "firewall-cmd --state").trim(), "running");
    }
    assert_eq!(
        backend(a1).trim(),
        "s \"iptables\"",
        "{}",
        sh(a1, journal).1
    );
    assert_eq!(
        backend(m1).trim(),
        "s \"nftables\"",
        "{}",
        sh(m1, journal).1
    );
    let log = sh_ok(a1, journal);
    assert!(!log.contains("ERROR"), "firewalld on a1:\n{log}");

    let legacy = sh_ok(a1, "iptables-legacy-save; ip6tables-legacy-save");
    for want in [
        ":INPUT_direct",
        "-j IN_public",
        ":DOCKER-USER",
        ":DOCKER ",
        "-A FORWARD -j cali-FORWARD",
    ] {
        assert!(
            legacy.contains(want),
            "a1: no {want:?} in legacy iptables:\n{legacy}"
        );
    }
    let tables = nft_tables(a1);
    eprintln!("a1: nftables tables: {}", tables.join(", "));
    let beside: Vec<&String> = tables
        .iter()
        .filter(|t| !t.starts_with("bridge "))
        .collect();
    assert!(
        beside.is_empty(),
        "a1: nftables holds {beside:?} beside the legacy rules:\n{}",
        tables.join("\n")
    );

    let tables = nft_tables(m1);
    eprintln!("m1: nftables tables: {}", tables.join(", "));
    assert!(
        tables.iter().any(|t| t == "inet firewalld"),
        "m1: firewalld's nftables table missing: {tables:?}"
    );
    let legacy = sh_ok(m1, "iptables-legacy-save");
    assert!(
        !legacy.contains("INPUT_direct"),
        "m1: firewalld wrote legacy rules:\n{legacy}"
    );
}

/// The agent pulls an image of this build from the registry on the host (not from its own
/// baked copy: the pushed name is new to it) and gets the digest kiln built.
fn pull_from_the_hosts_registry(a1: &Path, dist: &Path) {
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(dist.join("build-report.json")).unwrap()).unwrap();
    let image = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "component" && i["reference"] == "calico-node")
        .expect("the calico-node component image in the build report");
    let digest = image["manifest_digest"].as_str().unwrap();
    let pulled = format!(
        "10.0.2.2:{REGISTRY_PORT}/pushed/{}:{}",
        image["push_name"].as_str().unwrap(),
        image["tags"][0].as_str().unwrap()
    );
    let out = sh_ok(
        a1,
        &format!(
            "docker pull {pulled} && docker image inspect -f '{{{{json .RepoDigests}}}}' {pulled}"
        ),
    );
    assert!(
        out.contains(digest),
        "pulled {pulled}, digest {digest} not in:\n{out}"
    );
}

/// `/usr` is the verified read-only root; a write fails and nothing else breaks.
fn usr_is_read_only(m1: &Path, a1: &Path) {
    for q in [m1, a1] {
        let (code, out) = sh(q, "touch /usr/kiln-write-test");
        assert_ne!(code, 0, "a write to /usr succeeded");
        assert!(out.contains("Read-only file system"), "{out}");
    }
}

/// etcd's key, a ZooKeeper znode and `myid` survive a reboot of the master, and both hosts are healthy
/// again afterwards.
fn master_reboot_keeps_its_data(run: &BootRun, dist: &Path, m1: &Path, a1: &Path) {
    sh_ok(
        m1,
        "exec 3<>/dev/tcp/10.88.0.11/2379; printf 'PUT /v2/keys/kiln-test HTTP/1.0\\r\\n\
         Content-Type: application/x-www-form-urlencoded\\r\\nContent-Length: 16\\r\\n\\r\\n\
         value=kept-value' >&3; cat <&3",
    );
    // A znode, through Debian's own ZooKeeper client (a JVM: slow under TCG, once each way).
    let zk_cli = "/usr/share/zookeeper/bin/zkCli.sh -server 10.88.0.11:2181";
    sh_ok(m1, &format!("{zk_cli} create /kiln-test kept-znode"));
    let myid = sh_ok(
        m1,
        "stat -L -c '%Y' /var/lib/zookeeper/myid && cat /var/lib/zookeeper/myid",
    );
    let m1_host = run.report.hosts.iter().find(|h| h.name == "m1").unwrap();
    let boots = |log: &Path| {
        fs::read_to_string(log)
            .unwrap_or_default()
            .matches("kiln-initramfs:")
            .count()
    };
    let before = boots(&m1_host.serial_log);
    // The agent may go away before it answers: only a reboot that never happens fails.
    let _ = try_sh(m1, "systemctl reboot --no-block");
    let deadline = Instant::now() + Duration::from_secs(300);
    while boots(&m1_host.serial_log) <= before {
        assert!(Instant::now() < deadline, "the master did not reboot");
        std::thread::sleep(Duration::from_secs(2));
    }
    let checks = |name: &str| -> Vec<Check> {
        kiln_vm::read_manifest(&kiln_pipeline::stages::Dist::new(dist))
            .unwrap()
            .hosts
            .into_iter()
            .find(|h| h.name == name)
            .unwrap()
            .checks
    };
    let watched: Vec<Watched> = run
        .report
        .hosts
        .iter()
        .map(|h| Watched {
            name: h.name.clone(),
            qga_socket: h.qga_socket.clone(),
            serial_log: h.serial_log.clone(),
            checks: checks(&h.name),
        })
        .collect();
    let again = health::wait_healthy(
        &watched,
        Instant::now(),
        Duration::from_secs(900),
        &mut |l| eprintln!("after reboot: {l}"),
    );
    assert!(
        again.iter().all(|h| h.healthy),
        "not healthy after the master's reboot:\n{}\n{}",
        health::table(&again),
        tails(&again)
    );
    let got = sh_ok(
        m1,
        "exec 3<>/dev/tcp/10.88.0.11/2379; printf 'GET /v2/keys/kiln-test HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    );
    assert!(
        got.contains("\"value\":\"kept-value\""),
        "etcd lost its key:\n{got}"
    );
    let znode = sh_ok(m1, &format!("{zk_cli} get /kiln-test"));
    assert!(
        znode.contains("kept-znode"),
        "ZooKeeper lost its znode:\n{znode}"
    );
    let myid_after = sh_ok(
        m1,
        "stat -L -c '%Y' /var/lib/zookeeper/myid && cat /var/lib/zookeeper/myid",
    );
    assert_eq!(
        myid, myid_after,
        "myid was rewritten: the identity is written once per instance"
    );
    // The agent reaches the rebooted member through its gateway again.
    sh_ok(
        a1,
        "exec 3<>/dev/tcp/127.0.0.1/2379; printf 'GET /v2/keys/kiln-test HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 | grep -q kept-value",
    );
}

/// A file the operator adds to a1's user-data (see [`operator_adds_to_the_agents_user_data`]).
const OPERATOR_FILE: &str = "/etc/kiln-test/added-by-the-operator";

/// Adds a `write_files` entry (argv\[2\], content "operator") to the user-data argv\[1\].
/// What an operator adds to a host's seed beside kiln's identity: one more `write_files` entry
/// in a1's user-data, and its cidata volume made again (xorriso, as kiln makes it). cloud-init
/// must run for it (issue 20, item 2: it keeps working for what operators add). m1's seed
/// stays kiln's own.
fn operator_adds_to_the_agents_user_data(dist: &Path) {
    add_to_user_data(dist, "a1", OPERATOR_FILE);
}

/// One more `write_files` entry (`path`, content "operator") in `host`'s user-data, and its
/// cidata volume made again (xorriso, as kiln makes it).
fn add_to_user_data(dist: &Path, host: &str, path: &str) {
    let dir = dist.join(format!("cloud-init/{host}"));
    crate::common::vm::add_write_file(&dir.join("user-data"), path);
    run(Command::new("xorriso")
        .args([
            "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet", "-rock", "-o",
        ])
        .arg(dist.join(format!("cloud-init/{host}-cidata.iso")))
        .arg(&dir));
}

/// A unit an attacker on the provisioning side adds to m1's seed (a `write_files` entry in its
/// user-data, the volume made again). m1 boots the signed chain, which applies only the signed
/// identity and never runs cloud-init (issue 21, item 6).
const PLANTED_UNIT: &str = "/etc/systemd/system/kiln-planted.service";

fn planted_in_the_masters_seed(dist: &Path) {
    add_to_user_data(dist, "m1", PLANTED_UNIT);
}

/// The master booted the signed chain (issue 21, item 6): kiln-identity.service checked the
/// seed's signature, applied the signed identity and left cloud-init's four stages off (the
/// user-data, which carries the planted unit, is not signed); the host is healthy without
/// them, and the planted unit is not there.
fn cloud_init_never_runs_on_the_secure_booted_master(m1: &Path) {
    for unit in [
        "cloud-init-local.service",
        "cloud-init.service",
        "cloud-config.service",
        "cloud-final.service",
    ] {
        let state = sh_ok(
            m1,
            &format!("systemctl show -P ConditionResult {unit}; systemctl show -P ExecMainStartTimestampMonotonic {unit}"),
        );
        assert_eq!(
            state.split_whitespace().collect::<Vec<_>>(),
            ["no", "0"],
            "m1: {unit} ran"
        );
    }
    let log = sh_ok(m1, "journalctl -b -u kiln-identity.service -o cat");
    for line in [
        "verify-seed: kiln-identity.tar is signed by certificate",
        "cloud-init skipped: booted with kiln.seed-signer",
    ] {
        assert!(log.contains(line), "m1: {line:?} missing: {log}");
    }
    // The unit planted in the seed's user-data did not reach the secure-booted master.
    sh_ok(m1, &format!("test ! -e {PLANTED_UNIT}"));
    sh_ok(
        m1,
        "test ! -e /var/lib/cloud/instance/sem/config_write_files",
    );
}

/// Issue 20, item 2, with cloud-init on (the PXE test boots with it off): a1's user-data has
/// the operator's addition, so cloud-init ran and wrote it; kiln's units order after
/// kiln-identity.service, not cloud-init; cloud-init's write_files left every identity file
/// exactly as kiln-identity.service unpacked it from the seed.
fn cloud_init_writes_what_kiln_identity_applied(m1: &Path, a1: &Path) {
    for (s, host, unit) in [(m1, "m1", "etcd.service"), (a1, "a1", "docker.service")] {
        let after = sh_ok(s, &format!("systemctl show -P After {unit}"));
        assert!(
            after.contains("kiln-identity.service") && !after.contains("cloud-init.service"),
            "{host}: {unit} After={after}"
        );
    }
    let log = sh_ok(a1, "journalctl -b -u kiln-identity.service -o cat");
    assert!(
        log.contains("cloud-init runs: the seed's user-data is not the one kiln wrote"),
        "a1: {log}"
    );
    // cloud-init runs at idle priority, after the services: wait for all its stages.
    let status = sh_ok(a1, "timeout 110 cloud-init status --wait --long");
    assert!(status.contains("status: done"), "a1: {status}");
    sh_ok(a1, "test -e /var/lib/cloud/instance/sem/config_write_files");
    let added = sh_ok(a1, &format!("cat {OPERATOR_FILE}"));
    assert_eq!(
        added.trim(),
        "operator",
        "a1: the operator's write_files entry"
    );
    let diff = sh_ok(
        a1,
        "set -e; t=/run/kiln-test-seed; mkdir -p $t; mount -o ro /dev/disk/by-label/cidata $t; \
         n=0; for f in $(tar -tf $t/kiln-identity.tar | grep -v '/$'); do \
           case $f in run/*) continue ;; esac; n=$((n+1)); \
           a=$(tar -xOf $t/kiln-identity.tar \"$f\" | sha256sum); b=$(sha256sum < \"/$f\"); \
           [ \"$a\" = \"$b\" ] || echo \"DIFF $f\"; \
           m=$(tar -tvf $t/kiln-identity.tar \"$f\" | cut -c1-10); \
           [ \"$m\" = \"$(stat -c %A \"/$f\")\" ] || echo \"MODE $f $m\"; \
         done; umount $t; echo \"files $n\"",
    );
    assert!(
        !diff.contains("DIFF") && !diff.contains("MODE") && diff.contains("files "),
        "a1: {diff}"
    );
}
