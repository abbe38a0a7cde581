//! The PXE test (issue 11): `fixtures/specs/pxe.toml` built on the demo's Debian base, its
//! `dist/` served by `kiln serve` on the build host, and hosts network-booted in QEMU with
//! SeaBIOS and Debian's iPXE ROM (`ipxe-qemu`): `-boot n` over the user network's TFTP
//! (`boot.ipxe` from `dist/pxe`), which chains over HTTP to `http://10.0.2.2:28080/`.
//!
//! - an unknown MAC gets `boot.ipxe`'s refusal on the console and boots nothing;
//! - a root image tampered with on the server is refused by the initramfs (`veritysetup
//!   verify` before anything is mounted): a FATAL line, no switch_root;
//! - px1 (master+agent) and px2 (agent) boot diskless, verify their root image, take their
//!   hostname and address from their own seed, and reach a healthy etcd — px1 its own member,
//!   px2 through its etcd gateway at px1's address (a user network cannot be shared, so each
//!   VM has its own; px1's QEMU forwards a build-host port to its member and px2's QEMU
//!   carries px2's connections to px1's address there); Docker on px2 has the gateway as its
//!   cluster store; every unit is up with no restarts (`kiln boot`'s checks from the build's
//!   manifest).
//!
//! Also: nothing under `dist/pxe` and no shared path `kiln serve` exposes holds a host's seed
//! secret. Serial logs and the server's request log stay under `target/tmp/pxe-test/` when
//! the test fails.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_pipeline::stages::Dist;
use kiln_serve::{ServeOptions, Server};
use kiln_test_support::{machine_cache, require_tool};
use kiln_vm::qemu::{self, Accel, AccelPick, BootFrom, VmSpec};
use kiln_vm::qga::Agent;
use kiln_vm::{health, BootOptions, L2Net};

use crate::common::vm::write_mesos_fixture;
use crate::common::{fixture, kiln_code};
use kiln_pipeline::values::MesosFlavour;

/// The port `provision.url` names (`http://10.0.2.2:28080/`).
const SERVE_PORT: u16 = 28080;
/// px1's QEMU forwards the build host's 127.0.0.1:23790 to its etcd member...
const ETCD_FORWARD: &str = "tcp:127.0.0.1:23790-10.0.2.15:2379";
/// ...and px2's QEMU carries each connection px2 opens to px1's address there, so px2's etcd
/// gateway (and Docker's etcd client, which syncs to the member's advertised URL) reach px1
/// at its own address, as on one network.
const ETCD_TO_PX1: &str = "tcp:10.0.2.15:2379-cmd:busybox nc 127.0.0.1 23790";
const UNKNOWN_MAC: &str = "52:54:00:0b:00:99";
/// QEMU's iPXE ROM for virtio-net (Debian `ipxe-qemu`).
const IPXE_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";

fn pxe_vm(name: &str, mac: &str, dist: &Path, hostfwd: &[&str], guestfwd: &[&str]) -> VmSpec {
    VmSpec {
        name: name.into(),
        boot: BootFrom::Network {
            tftp: dist.join("pxe"),
            bootfile: "boot.ipxe".into(),
            hostfwd: hostfwd.iter().map(|s| s.to_string()).collect(),
            guestfwd: guestfwd.iter().map(|s| s.to_string()).collect(),
        },
        cdrom: None,
        mac: mac.into(),
        net: None,
        host_link: None,
        memory_mib: 2048,
        cpus: 1,
        firmware: kiln_vm::Firmware::Bios,
        vars_template: None,
        tpm: false,
    }
}

fn console(vm: &qemu::Vm) -> String {
    String::from_utf8_lossy(&fs::read(&vm.serial_log).unwrap_or_default()).into_owned()
}

/// Waits for `marker` on `vm`'s console (QEMU may exit after printing it).
fn wait_for(vm: &mut qemu::Vm, marker: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if console(vm).contains(marker) {
            return true;
        }
        if !vm.running() {
            return console(vm).contains(marker);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// Runs `script` with bash in the guest behind `socket`; returns its output, asserting it
/// succeeded.
fn sh_ok(socket: &Path, script: &str) -> String {
    let mut a = Agent::connect(socket, Duration::from_secs(10)).unwrap();
    let out = a
        .exec("/bin/bash", &["-c", script], Duration::from_secs(60))
        .unwrap();
    let text = out.stdout_text() + &out.stderr_text();
    assert_eq!(out.exit_code, Some(0), "in the guest: {script}\n{text}");
    text
}

/// Flips one byte of `file` at `at` (twice restores it).
fn flip_byte(file: &Path, at: u64) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0xff;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

/// The root image digest the PXE config of `mac` boots.
fn root_of(dist: &Path, mac: &str) -> PathBuf {
    let script =
        fs::read_to_string(dist.join(format!("pxe/mac/{}.ipxe", mac.replace(':', "-")))).unwrap();
    let url = script
        .split_whitespace()
        .find_map(|a| a.strip_prefix("kiln.root="))
        .unwrap();
    let hex = url.rsplit('/').next().unwrap();
    dist.join("pxe/sha256").join(hex)
}

#[test]
fn hosts_boot_diskless_from_pxe_and_kiln_serve() {
    for (tool, pkg) in [
        ("mmdebstrap", "mmdebstrap"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("xorriso", "xorriso"),
        ("tar2sqfs", "squashfs-tools-ng"),
        ("veritysetup", "cryptsetup-bin"),
        ("busybox", "busybox-static"),
    ] {
        require_tool(tool, pkg);
    }
    assert!(
        Path::new(IPXE_ROM).is_file(),
        "this test needs QEMU's iPXE ROM {IPXE_ROM} (Debian package `ipxe-qemu`): \
         `apt-get install -y ipxe-qemu`"
    );
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pxe-test");
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("pxe.toml");
    fs::copy(fixture("specs/pxe.toml"), &spec).unwrap();
    write_mesos_fixture(
        &work.path().join("fixture-clusterd"),
        MesosFlavour::Clusterd,
    );
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
            "--leave-out",
            "marathon,calico",
            "--cache",
            cache.to_str().unwrap(),
        ],
        0,
    );
    eprintln!("pxe build: {:.0?}", started.elapsed());
    drop(base);
    no_seed_secret_outside_the_hosts_paths(&dist);

    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut opts = ServeOptions::new(&dist, format!("127.0.0.1:{SERVE_PORT}").parse().unwrap());
    // QEMU's user network NATs each guest: the server sees px1 and px2 both as 127.0.0.1,
    // never at their spec addresses, so their own files go to any peer here (the binding of
    // a host's files to its address is tested in the fast tier, tests/fast/serve.rs).
    opts.trust_any_peer = true;
    let server = Server::bind(&opts)
        .unwrap_or_else(|e| panic!("kiln serve on 127.0.0.1:{SERVE_PORT} (provision.url): {e}"));
    let stop = server.stop_handle();
    let l = log.clone();
    let serving = std::thread::spawn(move || {
        server.run(Arc::new(move |line: &str| {
            l.lock().unwrap().push(line.into())
        }));
    });
    let save_log = || {
        fs::write(logs.join("serve.log"), log.lock().unwrap().join("\n")).unwrap();
    };

    let _vms = crate::common::vm::vm_lock();
    let tools = qemu::Tools::find().unwrap();
    let accel = AccelPick {
        accel: Accel::Tcg,
        why: "the PXE test runs TCG (KVM guests hang on the project machines)".into(),
    };
    let run_dir = logs.join("run");
    fs::create_dir_all(&run_dir).unwrap();

    unknown_mac_is_refused(&tools, &accel, &dist, &run_dir, &log);
    tampered_root_is_refused(&tools, &accel, &dist, &run_dir);

    let manifest = kiln_vm::read_manifest(&Dist::new(&dist)).unwrap();
    let checks = |host: &str| {
        manifest
            .hosts
            .iter()
            .find(|h| h.name == host)
            .unwrap()
            .checks
            .clone()
    };
    let vms = vec![
        (
            pxe_vm("px1", "52:54:00:0b:00:01", &dist, &[ETCD_FORWARD], &[]),
            checks("px1"),
        ),
        (
            pxe_vm("px2", "52:54:00:0b:00:02", &dist, &[], &[ETCD_TO_PX1]),
            checks("px2"),
        ),
    ];
    let mut opts = BootOptions::new(&dist);
    opts.keep = true;
    opts.timeout = Duration::from_secs(900);
    // One after another: px2's etcd gateway points at px1's member, and this keeps the
    // staggered start (`kiln boot --start staggered`) under test; the cluster test starts
    // its VMs together, the default.
    opts.start = kiln_vm::StartOrder::Staggered;
    opts.start_gap = Duration::from_secs(120);
    let booted = Instant::now();
    let run = kiln_vm::run(
        &tools,
        &accel,
        vms,
        &run_dir,
        L2Net::random(),
        &opts,
        &mut |l| eprintln!("pxe boot: {l}"),
    )
    .unwrap();
    save_log();
    fs::write(
        logs.join("report.json"),
        serde_json::to_vec_pretty(&run.report).unwrap(),
    )
    .unwrap();
    assert!(
        run.report.healthy,
        "PXE-booted hosts not healthy (logs in {}):\n{}",
        logs.display(),
        health::table(&run.report.hosts)
    );
    eprintln!(
        "pxe: px1 and px2 healthy {:.0} s after px1's QEMU started",
        booted.elapsed().as_secs_f64()
    );
    for (vm, name, ip) in [
        (&run.kept[0], "px1", "10.0.2.15/24"),
        (&run.kept[1], "px2", "10.0.2.16/24"),
    ] {
        identity_from_its_seed(vm, name, ip);
    }
    for (vm, name) in [(&run.kept[0], "px1"), (&run.kept[1], "px2")] {
        clusterd_agent_stays_on_cgroup_v2(&vm.qga_socket, name);
    }
    for h in &run.report.hosts {
        boot_timeline_is_in_order(h);
    }
    for vm in &run.kept {
        idle_units_never_run(&vm.qga_socket, &vm.name);
    }
    // px2 has no etcd member: its gateway on 127.0.0.1:2379 reaches px1's, and Docker's
    // cluster store is that gateway.
    let px2 = &run.kept[1].qga_socket;
    let h = sh_ok(
        px2,
        "exec 3<>/dev/tcp/127.0.0.1/2379; printf 'GET /v2/members HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    );
    assert!(h.contains("\"name\":\"px1\""), "{h}");
    let info = sh_ok(px2, "docker info 2>/dev/null | grep 'Cluster Store'");
    assert!(info.contains("etcd://127.0.0.1:2379"), "{info}");

    let served = log.lock().unwrap().clone();
    for want in [
        "GET /pxe/mac/52-54-00-0b-00-01.ipxe 200",
        "GET /cloud-init/px1/user-data 200",
        "GET /cloud-init/px2/network-config 200",
    ] {
        assert!(
            served.iter().any(|l| l.starts_with(want)),
            "no {want:?} in {served:#?}"
        );
    }
    drop(run);
    stop.stop();
    let _ = serving.join();
    let _ = fs::remove_dir_all(&logs);
}

/// A MAC that is in no host's config: boot.ipxe's refusal, nothing fetched or booted.
fn unknown_mac_is_refused(
    tools: &qemu::Tools,
    accel: &AccelPick,
    dist: &Path,
    run_dir: &Path,
    log: &Mutex<Vec<String>>,
) {
    let spec = pxe_vm("unknown", UNKNOWN_MAC, dist, &[], &[]);
    let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, false).unwrap();
    let refusal = format!("kiln: no host with MAC {UNKNOWN_MAC} in cluster px");
    let t = Instant::now();
    assert!(
        wait_for(&mut vm, &refusal, Duration::from_secs(180)),
        "no refusal on the console:\n{}",
        console(&vm)
    );
    eprintln!(
        "pxe: unknown MAC refused after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    let text = console(&vm);
    assert!(!text.contains("Linux version"), "a kernel booted:\n{text}");
    vm.kill();
    let served = log.lock().unwrap().clone();
    assert!(
        served
            .iter()
            .any(|l| l.starts_with("GET /pxe/mac/52-54-00-0b-00-99.ipxe 404")),
        "{served:#?}"
    );
    assert!(
        !served.iter().any(|l| l.starts_with("GET /pxe/sha256/")),
        "an unknown MAC fetched a boot file: {served:#?}"
    );
}

/// One flipped byte in px2's root image on the server: the initramfs refuses it before
/// mounting anything, and the VM powers off.
fn tampered_root_is_refused(tools: &qemu::Tools, accel: &AccelPick, dist: &Path, run_dir: &Path) {
    let root = root_of(dist, "52:54:00:0b:00:02");
    let at = 4096 * 37 + 11;
    flip_byte(&root, at);
    let spec = pxe_vm("px2-tampered", "52:54:00:0b:00:02", dist, &[], &[]);
    let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, false).unwrap();
    let t = Instant::now();
    let refused = wait_for(
        &mut vm,
        "kiln-initramfs: boot stopped",
        Duration::from_secs(300),
    );
    flip_byte(&root, at);
    let text = console(&vm);
    assert!(refused, "the tampered root was not refused:\n{text}");
    eprintln!(
        "pxe: tampered root refused after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        text.contains("does not match root hash") && text.contains("refusing to boot it"),
        "{text}"
    );
    assert!(
        !text.contains("switching to the image's /sbin/init"),
        "{text}"
    );
    assert!(!text.contains("root verified"), "{text}");
    vm.kill();
}

/// Issue 20, item 3: the base's idle units are masked on the booted host and never ran.
fn idle_units_never_run(s: &Path, name: &str) {
    for (unit, _) in kiln_pipeline::components::IDLE_UNITS {
        let state = sh_ok(
            s,
            &format!("systemctl is-enabled {unit}; systemctl show -P ActiveState {unit}"),
        );
        assert_eq!(state, "masked\ninactive\n", "{name}: {unit}");
    }
}

/// Issue 20, item 1: `kiln boot`'s timeline of a host is read in the guest and in order:
/// kernel, the initramfs' `/init`, systemd in the verified root, every unit of the host active,
/// healthy once the last check passed; with the critical chain of the unit that came up last.
fn boot_timeline_is_in_order(h: &kiln_vm::health::HostHealth) {
    let t = h
        .timeline
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no timeline", h.name));
    let (init, root) = (
        t.initramfs_secs.expect("initramfs"),
        t.switch_root_secs.expect("switch-root"),
    );
    assert!(
        0.0 < t.kernel_secs && t.kernel_secs <= init && init < root,
        "{}: {t:?}",
        h.name
    );
    let units: Vec<&str> = h
        .checks
        .iter()
        .filter_map(|c| c.id.strip_prefix("unit:"))
        .collect();
    assert_eq!(
        t.units.iter().map(|u| u.unit.as_str()).collect::<Vec<_>>(),
        units,
        "{}",
        h.name
    );
    let last = t
        .units
        .iter()
        .map(|u| {
            u.active_secs
                .unwrap_or_else(|| panic!("{}: {} never active", h.name, u.unit))
        })
        .fold(root, f64::max);
    let healthy = t.healthy_secs.expect("healthy");
    assert!(last <= healthy + 1.0, "{}: {t:?}", h.name);
    let slowest = t.slowest_unit.as_deref().unwrap();
    assert!(
        t.critical_chain.contains(slowest) && t.critical_chain.contains('@'),
        "{}: {}",
        h.name,
        t.critical_chain
    );
}

/// Issue 19, item 4: clusterd's Mesos picks its cgroup v2 isolators on a cgroup2 host, so its
/// agents stay on Debian 12's unified hierarchy (no `systemd.unified_cgroup_hierarchy=0`), with
/// the cpu and memory controllers delegated to the agent's unit; its wrapper was started as
/// `agent` with the flags of `/etc/mesos-agent/`.
fn clusterd_agent_stays_on_cgroup_v2(s: &Path, name: &str) {
    let fs_type = sh_ok(s, "stat -fc %T /sys/fs/cgroup");
    assert_eq!(fs_type.trim(), "cgroup2fs", "{name}");
    let cmdline = sh_ok(s, "cat /proc/cmdline");
    assert!(
        !cmdline.contains("unified_cgroup_hierarchy"),
        "{name}: {cmdline}"
    );
    let delegated = sh_ok(
        s,
        "cat /sys/fs/cgroup/system.slice/mesos-agent.service/cgroup.controllers",
    );
    for c in ["cpu", "memory"] {
        assert!(
            delegated.split_whitespace().any(|x| x == c),
            "{name}: mesos-agent.service lacks the {c} controller: {delegated}"
        );
    }
    let flags = sh_ok(s, "cat /run/kiln-fixture/mesos-agent.flags");
    assert!(flags.starts_with("argv: agent\n"), "{name}: {flags}");
    assert!(
        flags.contains("\n--isolation=cgroups/cpu,cgroups/mem,")
            && flags.contains("\n--master=zk://10.0.2.15:2181/mesos\n"),
        "{name}: {flags}"
    );
    let pid = sh_ok(s, "systemctl show -P MainPID mesos-agent.service");
    let cg = sh_ok(s, &format!("cat /proc/{}/cgroup", pid.trim()));
    assert_eq!(
        cg.trim(),
        "0::/system.slice/mesos-agent.service",
        "{name}: the agent is not in its own delegated cgroup"
    );
}

/// The booted host's name and address are its seed's, its root is the verified image from
/// the server, and it has no disk.
fn identity_from_its_seed(vm: &qemu::Vm, name: &str, ip: &str) {
    let s = &vm.qga_socket;
    assert_eq!(sh_ok(s, "cat /etc/hostname").trim(), name);
    assert_eq!(sh_ok(s, "hostname").trim(), name);
    assert_eq!(sh_ok(s, "cat /proc/sys/kernel/hostname").trim(), name);
    let addr = sh_ok(s, "ip -4 -o addr show dev ens3");
    assert!(addr.contains(&format!("inet {ip} ")), "{name}: {addr}");
    let cmdline = sh_ok(s, "cat /proc/cmdline");
    assert!(
        cmdline.contains("kiln.root=http://10.0.2.2:28080/pxe/sha256/"),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&format!(
            "kiln.seed=http://10.0.2.2:28080/cloud-init/{name}/ ds=nocloud"
        )),
        "{cmdline}"
    );
    let root = sh_ok(s, "findmnt -n -o SOURCE,FSTYPE /");
    assert!(
        root.contains("/dev/mapper/kiln-root squashfs"),
        "{name}: {root}"
    );
    let disks = sh_ok(s, "ls /sys/block");
    assert!(
        !disks.contains("vda") && !disks.contains("sda"),
        "{name}: {disks}"
    );
    // cloud-init is off (`cloud-init=disabled`): kiln-identity.service alone applied the seed.
    let ci = sh_ok(
        s,
        "for u in cloud-init-local.service cloud-init.service; do \
           systemctl show -P ActiveState $u; done; \
         journalctl -b -u kiln-identity.service --no-pager -o cat",
    );
    assert!(ci.starts_with("inactive\ninactive\n"), "{name}: {ci}");
    assert!(
        ci.contains(&format!(
            "kiln-identity: identity of {name} applied from /var/lib/cloud/seed/nocloud"
        )),
        "{name}: {ci}"
    );
}

/// Nothing under `dist/pxe`, and no shared path `kiln serve` exposes, holds the seed's secret;
/// each host's own seed does.
fn no_seed_secret_outside_the_hosts_paths(dist: &Path) {
    use crate::common::secret_scan::{needles_of, scan, walk, CLUSTER_KEY_BODY};
    let needles = needles_of(&[("ssh key", CLUSTER_KEY_BODY)]);
    let mut found = Vec::new();
    let mut files = Vec::new();
    walk(&dist.join("pxe"), &mut files);
    assert!(files.len() >= 12, "{files:?}");
    // Every file of pxe/ is served (and so scanned below).
    let tree = kiln_serve::Tree::open(dist).unwrap();
    let served = tree.served().unwrap();
    for f in &files {
        let rel = f.strip_prefix(dist).unwrap().display().to_string();
        assert!(
            served.iter().any(|s| s.rel == rel && s.host.is_none()),
            "{rel}"
        );
    }
    let mut own = 0;
    let mut seen = std::collections::BTreeSet::new();
    for s in &served {
        // Hard links (pxe/sha256/ and boot/PROFILE/) are scanned once.
        let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(dist.join(&s.rel)).unwrap());
        if !seen.insert(ino) {
            continue;
        }
        let bytes = fs::read(dist.join(&s.rel)).unwrap();
        match &s.host {
            None => scan(&s.rel, &bytes, &needles, &mut found),
            Some(_) if s.rel.ends_with("/user-data") => {
                let mut hits = Vec::new();
                scan(&s.rel, &bytes, &needles, &mut hits);
                assert!(!hits.is_empty(), "{} lacks the host's key", s.rel);
                own += 1;
            }
            Some(_) => {}
        }
    }
    assert_eq!(own, 2, "{served:#?}");
    assert!(
        found.is_empty(),
        "secrets on shared paths:\n{}",
        found.join("\n")
    );
}
