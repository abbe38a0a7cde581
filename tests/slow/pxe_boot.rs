//! The PXE test (issues 11 and 21): `fixtures/specs/pxe.toml` built on the demo's Debian base
//! and signed with the machine's test Secure Boot keys, its `dist/` served by `kiln serve` on the
//! build host, and hosts network-booted in QEMU on each path the PXE tree offers (each VM on a
//! QEMU user network of its own, `dist/pxe` its TFTP root):
//!
//! - **iPXE, BIOS** (SeaBIOS with Debian's iPXE ROM, `bootfile=boot.ipxe`): an unknown MAC gets
//!   `boot.ipxe`'s refusal and boots nothing;
//! - **UEFI HTTP boot + iPXE + the signed network UKI, Secure Boot on** (OVMF with the build's
//!   keys enrolled and a TPM; the firmware's HTTP boot loads the signed `pxe/ipxe.efi`, whose
//!   DHCP filename is `boot.ipxe`'s URL): a script tampered to boot the image's kernel and
//!   initramfs with another root hash is refused by the firmware (the kernel is not signed
//!   with a key in db; with Secure Boot off, the control, the same script boots the other
//!   root), and a root image tampered with on the server is refused by the initramfs
//!   (`veritysetup verify` before anything is mounted);
//! - then four rounds of both hosts, px1 (master+agent) and px2 (agent), so that every path
//!   boots a master and an agent to healthy: (1) px1 by the **signed UKI** and px2 by
//!   **PXELINUX, BIOS** (`bootfile=lpxelinux.0`, kernel and initramfs over HTTP), started one
//!   after another; (2) px1 by **iPXE, BIOS** and px2 by **GRUB, UEFI** (OVMF's own PXE
//!   loading `grub/x86_64-efi/core.efi` from `grub-mknetdir`); (3) px1 by PXELINUX and px2 by
//!   the signed UKI; (4) px1 by GRUB and px2 by iPXE; rounds 2–4 started together.
//!
//! A host on the signed path boots through a host script **tampered** to hand its UKI the
//! other host's root image and root hash (a valid pair): it runs its own root, the one inside
//! its signed UKI; its seed is found by MAC and its signature checked; a unit planted in that
//! seed's user-data on the server never reaches it; PCR 11 equals its role's network UKI value.
//! From round 2 on, px2's seed by name carries the same planted unit: on the unsigned paths
//! cloud-init runs and writes it (the control). `/proc/cmdline` shows which loader started
//! each host.
//!
//! Booted hosts take their hostname and address from their own seed and reach a
//! healthy etcd — px1 its own member, px2 through its etcd gateway at px1's address (px1's QEMU forwards a
//! build-host port to its member and px2's QEMU carries px2's connections to px1's address
//! there); Docker on px2 has the gateway as its cluster store; every unit is up with no
//! restarts (`kiln boot`'s checks from the build's manifest).
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
use kiln_vm::{health, BootOptions, Firmware, L2Net};
use kiln_vm::{Check, Probe};

use crate::common::vm::{add_write_file, secure_boot_keys, write_mesos_fixture};
use crate::common::{fixture, kiln_code};
use kiln_pipeline::values::MesosFlavour;

/// The port `provision.url` names (`http://10.0.2.2:28080/`).
const SERVE_PORT: u16 = 28080;
const BASE_URL: &str = "http://10.0.2.2:28080";
/// px1's QEMU forwards the build host's 127.0.0.1:23790 to its etcd member...
const ETCD_FORWARD: &str = "tcp:127.0.0.1:23790-10.0.2.15:2379";
/// ...and px2's QEMU carries each connection px2 opens to px1's address there, so px2's etcd
/// gateway (and Docker's etcd client, which syncs to the member's advertised URL) reach px1
/// at its own address, as on one network.
const ETCD_TO_PX1: &str = "tcp:10.0.2.15:2379-cmd:busybox nc 127.0.0.1 23790";
const PX1_MAC: &str = "52:54:00:0b:00:01";
const PX2_MAC: &str = "52:54:00:0b:00:02";
const UNKNOWN_MAC: &str = "52:54:00:0b:00:99";
/// QEMU's iPXE ROM for virtio-net (Debian `ipxe-qemu`).
const IPXE_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";

/// The network boot paths of the PXE tree.
#[derive(Debug, Clone)]
enum Path_ {
    /// SeaBIOS, QEMU's iPXE ROM, `boot.ipxe`.
    IpxeBios,
    /// SeaBIOS, (QEMU's iPXE ROM as the PXE stack,) `lpxelinux.0`.
    PxelinuxBios,
    /// OVMF's own PXE, GRUB's `core.efi`.
    GrubUefi,
    /// OVMF without Secure Boot, UEFI HTTP boot of `ipxe.efi`, then `boot.ipxe`.
    IpxeUefi,
    /// OVMF with Secure Boot enforcing (`vars`: the build's keys enrolled), UEFI HTTP boot of
    /// the signed `ipxe.efi`, then `boot.ipxe` and the role's signed network UKI; `tpm`.
    SignedUki { vars: PathBuf, tpm: bool },
}

impl Path_ {
    /// A short name for VM names and logs.
    fn short(&self) -> &'static str {
        match self {
            Path_::IpxeBios => "ipxe",
            Path_::PxelinuxBios => "pxelinux",
            Path_::GrubUefi => "grub",
            Path_::IpxeUefi => "ipxe-efi",
            Path_::SignedUki { .. } => "uki",
        }
    }
}

fn pxe_vm(
    name: &str,
    mac: &str,
    dist: &Path,
    path: &Path_,
    hostfwd: &[&str],
    guestfwd: &[&str],
) -> VmSpec {
    let (bootfile, firmware, http_boot, vars, tpm) = match path {
        Path_::IpxeBios => ("boot.ipxe".to_string(), Firmware::Bios, None, None, false),
        Path_::PxelinuxBios => ("lpxelinux.0".into(), Firmware::Bios, None, None, false),
        Path_::GrubUefi => (
            "grub/x86_64-efi/core.efi".into(),
            Firmware::Uefi,
            None,
            None,
            false,
        ),
        Path_::IpxeUefi => (
            format!("{BASE_URL}/pxe/boot.ipxe"),
            Firmware::Uefi,
            Some(format!("{BASE_URL}/pxe/ipxe.efi")),
            None,
            false,
        ),
        Path_::SignedUki { vars, tpm } => (
            // iPXE's own DHCP gets this filename and fetches the script over HTTP.
            format!("{BASE_URL}/pxe/boot.ipxe"),
            Firmware::UefiSecure,
            Some(format!("{BASE_URL}/pxe/ipxe.efi")),
            Some(vars.clone()),
            *tpm,
        ),
    };
    VmSpec {
        name: name.into(),
        boot: BootFrom::Network {
            tftp: dist.join("pxe"),
            bootfile,
            hostfwd: hostfwd.iter().map(|s| s.to_string()).collect(),
            guestfwd: guestfwd.iter().map(|s| s.to_string()).collect(),
            http_boot,
        },
        cdrom: None,
        mac: mac.into(),
        net: None,
        host_link: None,
        memory_mib: 2048,
        cpus: 1,
        firmware,
        vars_template: vars,
        tpm,
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

/// The iPXE script of `mac` (below `dist/pxe`).
fn script_of(dist: &Path, mac: &str) -> PathBuf {
    dist.join(format!("pxe/mac/{}.ipxe", mac.replace(':', "-")))
}

/// The value of kernel argument `key` on the (first) line of `text` that has it.
fn arg_of(text: &str, key: &str) -> String {
    text.split_whitespace()
        .find_map(|a| a.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {text}"))
        .to_string()
}

/// The root image digest the PXE config of `mac` boots.
fn root_of(dist: &Path, mac: &str) -> PathBuf {
    let script = fs::read_to_string(script_of(dist, mac)).unwrap();
    let url = arg_of(&script, "kiln.root");
    let hex = url.rsplit('/').next().unwrap();
    dist.join("pxe/sha256").join(hex)
}

/// Replaces a file for the length of an attack; puts the original back when dropped.
struct Swapped {
    path: PathBuf,
    original: Vec<u8>,
}

impl Swapped {
    fn new(path: PathBuf, text: &str) -> Swapped {
        let original = fs::read(&path).unwrap();
        // A new inode: `dist/` files may share theirs with the cache.
        fs::remove_file(&path).unwrap();
        fs::write(&path, text).unwrap();
        Swapped { path, original }
    }
}

impl Drop for Swapped {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::write(&self.path, &self.original);
    }
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
        ("sbsign", "sbsigntool"),
        ("swtpm", "swtpm"),
        ("grub-mknetdir", "grub-common"),
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
    let keys = secure_boot_keys();
    let mut text = fs::read_to_string(fixture("specs/pxe.toml")).unwrap();
    text.push_str(&format!(
        "\n[boot.secure_boot]\nkey = \"{k}/db.key\"\ncert = \"{k}/db.crt\"\n\
         pk_cert = \"{k}/PK.crt\"\nkek_cert = \"{k}/KEK.crt\"\n",
        k = keys.display()
    ));
    fs::write(&spec, text).unwrap();
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
    let (_, err) = kiln_code(
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
    // A signed build that also writes a PXE tree is warned about the paths outside the chain.
    assert!(err.contains("provision.pxe"), "{err}");
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
    let manifest = kiln_vm::read_manifest(&Dist::new(&dist)).unwrap();
    let certs = manifest.secure_boot.clone().expect("a signed build");
    let vars = run_dir.join("enrolled.OVMF_VARS.fd");
    qemu::enrolled_vars(
        &vars,
        &certs.owner,
        &dist.join(&certs.pk),
        &dist.join(&certs.kek),
        &dist.join(&certs.db),
    )
    .unwrap();
    let secure = |tpm| Path_::SignedUki {
        vars: vars.clone(),
        tpm,
    };

    unknown_mac_is_refused(&tools, &accel, &dist, &run_dir, &log);
    unsigned_kernel_is_refused(&tools, &accel, &dist, &run_dir, &secure(false));
    tampered_root_is_refused(&tools, &accel, &dist, &run_dir, &secure(false));

    let checks = |host: &str| {
        manifest
            .hosts
            .iter()
            .find(|h| h.name == host)
            .unwrap()
            .checks
            .clone()
    };
    // Through the signed network UKI, a host also checks that the firmware ran Secure Boot
    // and that TPM PCR 11 equals its role's network UKI value in the build's manifest.
    let signed_checks = |host: &str| {
        let h = manifest.hosts.iter().find(|h| h.name == host).unwrap();
        let profile = manifest.profile(&h.profile).unwrap();
        [
            Check {
                id: "secure-boot".into(),
                about: "firmware booted with Secure Boot on".into(),
                probe: Probe::SecureBoot,
            },
            Check {
                id: "pcr11".into(),
                about: "measured boot: TPM PCR 11 equals the network UKI's".into(),
                probe: Probe::Pcr {
                    index: 11,
                    sha256: profile.net_pcr11.clone(),
                },
            },
        ]
    };
    let hosts = [
        Host::of(&dist, "px1", PX1_MAC, "10.0.2.15/24"),
        Host::of(&dist, "px2", PX2_MAC, "10.0.2.16/24"),
    ];
    assert_ne!(hosts[0].hash, hosts[1].hash);
    // A unit planted in each host's seed by MAC on the server (the user-data the network UKI
    // fetches): user-data is not signed, so the signed chain never runs it.
    for h in &hosts {
        add_write_file(
            &dist.join(format!(
                "cloud-init/mac/{}/user-data",
                h.mac.replace(':', "-")
            )),
            PLANTED_UNIT,
        );
    }
    let secure_tpm = secure(true);
    // Each path boots the master (px1, master+agent) and the agent (px2) to healthy: four
    // rounds of both hosts, px1's QEMU serving px2's etcd gateway. The first starts them one
    // after another (`kiln boot --start staggered` under test), the others together (the
    // cluster test's default). (Booting the last four pairs together only until their
    // network and seed, tried instead of rounds 3 and 4, took 449 s of the 430 s that the two
    // rounds take: on two cores under TCG most of a boot's work comes before that point.)
    let rounds: [Round; 4] = [
        Round {
            label: "signed UKI, PXELINUX",
            boots: [(0, &secure_tpm), (1, &Path_::PxelinuxBios)],
            start: kiln_vm::StartOrder::Staggered,
        },
        Round {
            label: "iPXE BIOS, GRUB UEFI",
            boots: [(0, &Path_::IpxeBios), (1, &Path_::GrubUefi)],
            start: kiln_vm::StartOrder::Together,
        },
        Round {
            label: "PXELINUX, signed UKI",
            boots: [(0, &Path_::PxelinuxBios), (1, &secure_tpm)],
            start: kiln_vm::StartOrder::Together,
        },
        Round {
            label: "GRUB UEFI, iPXE BIOS",
            boots: [(0, &Path_::GrubUefi), (1, &Path_::IpxeBios)],
            start: kiln_vm::StartOrder::Together,
        },
    ];
    let mut opts = BootOptions::new(&dist);
    opts.keep = true;
    opts.timeout = Duration::from_secs(900);
    opts.start_gap = Duration::from_secs(120);
    let mut booted_paths = Vec::new();
    for (n, round) in rounds.iter().enumerate() {
        let label = round.label;
        if n == 1 {
            // The control of the planted unit: in px2's seed by name (which the unsigned
            // paths fetch), it makes cloud-init run, and cloud-init writes it.
            add_write_file(&dist.join("cloud-init/px2/user-data"), PLANTED_UNIT);
        }
        // A host on the signed path gets its script tampered: the signed UKI is handed the
        // other host's root image and root hash, a valid pair another role boots with. With
        // Secure Boot on, the stub takes the command line inside the signed UKI, never this.
        let mut swapped = Vec::new();
        for &(i, path) in &round.boots {
            if matches!(path, Path_::SignedUki { .. }) {
                let (h, other) = (&hosts[i], &hosts[1 - i]);
                let text = fs::read_to_string(script_of(&dist, h.mac)).unwrap();
                let tampered = text
                    .replace(&h.root, &other.root)
                    .replace(&h.hash, &other.hash);
                assert!(tampered.contains(&format!("chain --name kiln.efi {BASE_URL}/pxe/sha256/")));
                swapped.push(Swapped::new(script_of(&dist, h.mac), &tampered));
            }
        }
        let vms = round
            .boots
            .iter()
            .map(|&(i, path)| {
                let h = &hosts[i];
                // px1's QEMU carries px2's etcd gateway to px1's member.
                let (hostfwd, guestfwd): (&[&str], &[&str]) = if i == 0 {
                    (&[ETCD_FORWARD], &[])
                } else {
                    (&[], &[ETCD_TO_PX1])
                };
                let mut c = checks(h.name);
                if matches!(path, Path_::SignedUki { .. }) {
                    c.extend(signed_checks(h.name));
                }
                let vm_name = format!("{}-{}", h.name, path.short());
                (pxe_vm(&vm_name, h.mac, &dist, path, hostfwd, guestfwd), c)
            })
            .collect();
        let dir = run_dir.join(format!("round{}", n + 1));
        fs::create_dir_all(&dir).unwrap();
        opts.start = round.start;
        let booted = Instant::now();
        let run = kiln_vm::run(
            &tools,
            &accel,
            vms,
            &dir,
            L2Net::random(),
            &opts,
            &mut |l| eprintln!("pxe boot ({label}): {l}"),
        )
        .unwrap();
        drop(swapped);
        save_log();
        fs::write(
            logs.join(format!("report-round{}.json", n + 1)),
            serde_json::to_vec_pretty(&run.report).unwrap(),
        )
        .unwrap();
        assert!(
            run.report.healthy,
            "round {} ({label}): hosts not healthy (logs in {}):\n{}",
            n + 1,
            logs.display(),
            health::table(&run.report.hosts)
        );
        eprintln!(
            "pxe: round {} ({label}) healthy {:.0} s after the first QEMU started",
            n + 1,
            booted.elapsed().as_secs_f64()
        );
        for (vm, &(i, path)) in run.kept.iter().zip(&round.boots) {
            let h = &hosts[i];
            let seed = match path {
                Path_::SignedUki { .. } => Seed::Signed,
                _ if i == 1 && n >= 1 => Seed::Altered,
                _ => Seed::KilnsOwn,
            };
            identity_from_its_seed(vm, h.name, h.ip, seed);
            booted_by(vm, path);
            booted_paths.push((h.name, path.short()));
            match seed {
                Seed::Signed => runs_its_own_root(vm, h, &hosts[1 - i]),
                Seed::Altered => assert_eq!(
                    sh_ok(&vm.qga_socket, &format!("cat {PLANTED_UNIT}")),
                    "operator\n",
                    "{}: the control: cloud-init wrote the planted unit",
                    vm.name
                ),
                Seed::KilnsOwn => {}
            }
            if n == 0 {
                clusterd_agent_stays_on_cgroup_v2(&vm.qga_socket, &vm.name);
                idle_units_never_run(&vm.qga_socket, &vm.name);
            }
        }
        for h in &run.report.hosts {
            boot_timeline_is_in_order(h);
        }
        px2_reaches_px1_through_its_gateway(&run.kept[1].qga_socket);
        for mut vm in run.kept {
            vm.kill();
        }
    }
    // Every path booted both roles to healthy.
    for path in ["uki", "pxelinux", "grub", "ipxe"] {
        for name in ["px1", "px2"] {
            assert!(
                booted_paths.contains(&(name, path)),
                "{name} not booted by {path}"
            );
        }
    }

    let served = log.lock().unwrap().clone();
    for want in [
        "GET /pxe/ipxe.efi 200",
        "GET /pxe/boot.ipxe 200",
        "GET /pxe/mac/52-54-00-0b-00-01.ipxe 200",
        "GET /cloud-init/mac/52-54-00-0b-00-01/kiln-identity.tar.sig 200",
        "GET /cloud-init/mac/52-54-00-0b-00-02/kiln-identity.tar.sig 200",
        "GET /cloud-init/px1/network-config 200",
        "GET /cloud-init/px2/network-config 200",
    ] {
        assert!(
            served.iter().any(|l| l.starts_with(want)),
            "no {want:?} in {served:#?}"
        );
    }
    stop.stop();
    let _ = serving.join();
    let _ = fs::remove_dir_all(&logs);
}

/// Both hosts booted to healthy, each (an index into the hosts) on its path.
struct Round<'a> {
    label: &'static str,
    boots: [(usize, &'a Path_); 2],
    start: kiln_vm::StartOrder,
}

/// A host of `pxe.toml` with the root its own PXE config boots.
struct Host {
    name: &'static str,
    mac: &'static str,
    ip: &'static str,
    /// `kiln.root=` and `kiln.roothash=` of its iPXE script.
    root: String,
    hash: String,
}

impl Host {
    fn of(dist: &Path, name: &'static str, mac: &'static str, ip: &'static str) -> Host {
        let script = fs::read_to_string(script_of(dist, mac)).unwrap();
        Host {
            name,
            mac,
            ip,
            root: arg_of(&script, "kiln.root"),
            hash: arg_of(&script, "kiln.roothash"),
        }
    }
}

/// Which loader started the kernel, read from `/proc/cmdline`: PXELINUX and GRUB add
/// `BOOT_IMAGE=` of the kernel they loaded over HTTP (GRUB in its own device syntax), iPXE on
/// BIOS passes the initrd's name, and the signed UKI's stub passes its own line, which names
/// the host's seed by MAC and neither of those.
fn booted_by(vm: &qemu::Vm, path: &Path_) {
    let line = sh_ok(&vm.qga_socket, "cat /proc/cmdline");
    let (says, not): (String, &[&str]) = match path {
        Path_::IpxeBios | Path_::IpxeUefi => ("initrd=initrd.img ".into(), &["BOOT_IMAGE="]),
        Path_::PxelinuxBios => (
            format!("BOOT_IMAGE={BASE_URL}/pxe/sha256/"),
            &["initrd=initrd.img"],
        ),
        Path_::GrubUefi => (
            "BOOT_IMAGE=(http,10.0.2.2:28080)/pxe/sha256/".into(),
            &["initrd=initrd.img"],
        ),
        Path_::SignedUki { .. } => (
            format!("kiln.seed-by-mac={BASE_URL}/cloud-init/mac/"),
            &["BOOT_IMAGE=", "initrd="],
        ),
    };
    assert!(
        line.contains(&says) && not.iter().all(|n| !line.contains(n)),
        "{}: not booted by {path:?}: {line}",
        vm.name
    );
}

/// A host booted through its signed UKI by a script tampered to name `other`'s root and root
/// hash runs its own root, the one inside the UKI: its command line and console name its own
/// root hash and never the other's, and the unit planted in its seed by MAC is absent.
fn runs_its_own_root(vm: &qemu::Vm, own: &Host, other: &Host) {
    let cmdline = sh_ok(&vm.qga_socket, "cat /proc/cmdline");
    assert_eq!(arg_of(&cmdline, "kiln.roothash"), own.hash, "{cmdline}");
    assert_eq!(arg_of(&cmdline, "kiln.root"), own.root, "{cmdline}");
    let text = console(vm);
    assert!(
        text.contains(&format!("with dm-verity, root hash {}", own.hash)),
        "{text}"
    );
    assert!(!text.contains(&other.hash), "{text}");
    let planted = sh_ok(
        &vm.qga_socket,
        &format!("test -e {PLANTED_UNIT} && echo present || echo absent"),
    );
    assert_eq!(
        planted.trim(),
        "absent",
        "{}: the unit planted in its seed reached it",
        vm.name
    );
}

/// px2 has no etcd member: its gateway on 127.0.0.1:2379 reaches px1's, and Docker's cluster
/// store is that gateway.
fn px2_reaches_px1_through_its_gateway(px2: &Path) {
    let h = sh_ok(
        px2,
        "exec 3<>/dev/tcp/127.0.0.1/2379; printf 'GET /v2/members HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    );
    assert!(h.contains("\"name\":\"px1\""), "{h}");
    let info = sh_ok(px2, "docker info 2>/dev/null | grep 'Cluster Store'");
    assert!(info.contains("etcd://127.0.0.1:2379"), "{info}");
}

/// A host script tampered to boot the image's kernel and kiln's initramfs (not the UKI) with
/// px2's root and root hash, on a Secure Boot machine: the firmware refuses the kernel (signed
/// by Debian, whose key is not in db; iPXE's probe loads the image through the firmware and
/// reports the refusal as "Could not select: Exec format error"), nothing starts. The control:
/// the same script on the same firmware with Secure Boot off starts that kernel, which fetches
/// px2's root and verifies it against the script's hash — the attack works there.
fn unsigned_kernel_is_refused(
    tools: &qemu::Tools,
    accel: &AccelPick,
    dist: &Path,
    run_dir: &Path,
    secure: &Path_,
) {
    let script = fs::read_to_string(script_of(dist, PX1_MAC)).unwrap();
    let px2 = fs::read_to_string(script_of(dist, PX2_MAC)).unwrap();
    let tampered = script
        .replace("iseq ${platform} efi && goto uki ||", "")
        .replace(&arg_of(&script, "kiln.root"), &arg_of(&px2, "kiln.root"))
        .replace(
            &arg_of(&script, "kiln.roothash"),
            &arg_of(&px2, "kiln.roothash"),
        );
    let _swapped = Swapped::new(script_of(dist, PX1_MAC), &tampered);
    let spec = pxe_vm("px1-kernel", PX1_MAC, dist, secure, &[], &[]);
    let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, false).unwrap();
    let t = Instant::now();
    let refused = wait_for(
        &mut vm,
        "kiln: px1: cannot fetch or boot",
        Duration::from_secs(300),
    );
    std::thread::sleep(Duration::from_secs(3));
    let text = console(&vm);
    vm.kill();
    assert!(refused, "the unsigned kernel was not refused:\n{text}");
    eprintln!(
        "pxe: kernel outside the signed UKI refused by the firmware after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    assert!(text.contains("booting px1"), "{text}");
    assert!(text.contains("Could not select"), "{text}");
    assert!(!text.contains("Linux version"), "a kernel started:\n{text}");
    assert!(!text.contains("kiln-initramfs"), "{text}");

    let spec = pxe_vm(
        "px1-kernel-no-sb",
        PX1_MAC,
        dist,
        &Path_::IpxeUefi,
        &[],
        &[],
    );
    let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, false).unwrap();
    let verified = wait_for(
        &mut vm,
        "kiln-initramfs: root image verified",
        Duration::from_secs(300),
    );
    let text = console(&vm);
    vm.kill();
    assert!(
        verified && text.contains(&arg_of(&px2, "kiln.root")),
        "with Secure Boot off, the tampered script did not boot px2's root:\n{text}"
    );
}

/// A MAC that is in no host's config: boot.ipxe's refusal, nothing fetched or booted.
fn unknown_mac_is_refused(
    tools: &qemu::Tools,
    accel: &AccelPick,
    dist: &Path,
    run_dir: &Path,
    log: &Mutex<Vec<String>>,
) {
    let spec = pxe_vm("unknown", UNKNOWN_MAC, dist, &Path_::IpxeBios, &[], &[]);
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

/// One flipped byte in px2's root image on the server: px2, booted through its signed UKI with
/// Secure Boot on, refuses it in the initramfs before mounting anything (the root hash is the
/// UKI's own), and the VM powers off.
fn tampered_root_is_refused(
    tools: &qemu::Tools,
    accel: &AccelPick,
    dist: &Path,
    run_dir: &Path,
    secure: &Path_,
) {
    let root = root_of(dist, PX2_MAC);
    let at = 4096 * 37 + 11;
    flip_byte(&root, at);
    let spec = pxe_vm("px2-tampered", PX2_MAC, dist, secure, &[], &[]);
    let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, false).unwrap();
    let t = Instant::now();
    let refused = wait_for(
        &mut vm,
        "kiln-initramfs: boot stopped",
        Duration::from_secs(400),
    );
    flip_byte(&root, at);
    let text = console(&vm);
    assert!(refused, "the tampered root was not refused:\n{text}");
    eprintln!(
        "pxe: tampered root refused after {:.0} s (signed UKI, Secure Boot)",
        t.elapsed().as_secs_f64()
    );
    assert!(text.contains("unified kernel image of agent"), "{text}");
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

/// A unit planted in seeds on the server (a `write_files` entry in their user-data).
const PLANTED_UNIT: &str = "/etc/systemd/system/kiln-planted.service";

/// How a host took its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seed {
    /// Unsigned path, kiln's own user-data: cloud-init skipped.
    KilnsOwn,
    /// Unsigned path, user-data added to on the server: cloud-init ran.
    Altered,
    /// The signed network UKI: seed found by MAC, its signature checked, cloud-init never run.
    Signed,
}

/// The booted host's name and address are its seed's, its root is the verified image from
/// the server, and it has no disk; cloud-init ran or not as `seed` says.
fn identity_from_its_seed(vm: &qemu::Vm, name: &str, ip: &str, seed: Seed) {
    let signed = seed == Seed::Signed;
    let s = &vm.qga_socket;
    assert_eq!(sh_ok(s, "cat /etc/hostname").trim(), name);
    assert_eq!(sh_ok(s, "hostname").trim(), name);
    assert_eq!(sh_ok(s, "cat /proc/sys/kernel/hostname").trim(), name);
    let addr = sh_ok(s, "ip -4 -o addr show dev ens3");
    assert!(addr.contains(&format!("inet {ip} ")), "{name}: {addr}");
    // The spec's name is in udev's link config too (so a late udev keeps it).
    let link = sh_ok(
        s,
        "udevadm test-builtin net_setup_link /sys/class/net/ens3 2>&1 || true",
    );
    assert!(
        link.contains("/run/systemd/network/10-kiln-identity.link"),
        "{name}: {link}"
    );
    let cmdline = sh_ok(s, "cat /proc/cmdline");
    assert!(
        cmdline.contains(&format!("kiln.root={BASE_URL}/pxe/sha256/")),
        "{cmdline}"
    );
    let seed_arg = if signed {
        format!("kiln.seed-by-mac={BASE_URL}/cloud-init/mac/ ds=nocloud")
    } else {
        format!("kiln.seed={BASE_URL}/cloud-init/{name}/ ds=nocloud")
    };
    assert!(cmdline.contains(&seed_arg), "{cmdline}");
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
    // kiln-identity.service applied the seed; cloud-init ran only for an altered seed on an
    // unsigned path.
    let ci = sh_ok(
        s,
        "for u in cloud-init-local.service cloud-init.service; do \
           systemctl show -P ActiveState $u; done; \
         journalctl -b -u kiln-identity.service --no-pager -o cat",
    );
    let (states, why) = match seed {
        Seed::KilnsOwn => (
            "inactive\ninactive\n",
            "cloud-init skipped: the seed's user-data is kiln's own",
        ),
        Seed::Altered => (
            "active\nactive\n",
            "cloud-init runs: the seed's user-data is not the one kiln wrote",
        ),
        Seed::Signed => (
            "inactive\ninactive\n",
            "cloud-init skipped: booted with kiln.seed-signer",
        ),
    };
    assert!(ci.starts_with(states) && ci.contains(why), "{name}: {ci}");
    assert!(
        ci.contains(&format!(
            "kiln-identity: identity of {name} applied from /var/lib/cloud/seed/nocloud"
        )),
        "{name}: {ci}"
    );
    assert_eq!(
        ci.contains("is signed by certificate"),
        signed,
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
    // Each host's user-data, at cloud-init/HOST/ and by MAC.
    assert_eq!(own, 4, "{served:#?}");
    assert!(
        found.is_empty(),
        "secrets on shared paths:\n{}",
        found.join("\n")
    );
}
