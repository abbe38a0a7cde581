//! kiln-vm: `kiln boot` — starts the hosts of a build as QEMU VMs and checks them from inside
//! through the QEMU guest agent until every service answers on its endpoint and no unit
//! restarted. It holds the QEMU runner ([`qemu`]), the guest-agent client ([`qga`]) and the
//! health checks and their table ([`health`]); it reads a build only through [`kiln_dist`].
//!
//! [`boot`] reads `DIST/boot/manifest.json` ([`kiln_dist::boot_manifest`]), starts each selected host's disk
//! ([`qemu`]) one after another on a private L2 network, and waits ([`health`]) for the checks
//! the manifest lists, probed through [`qga`]. It returns a [`BootReport`]; the caller decides
//! the exit code (`healthy`).

pub mod health;
pub mod qemu;
pub mod qga;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_layers::IoError;
use serde::Serialize;

pub use health::{CheckHealth, CheckStatus, HostHealth};
pub use kiln_dist::boot_manifest::{BootManifest, Check, HostBoot, Probe, ProfileBoot};
use kiln_dist::Dist;
pub use qemu::{Accel, AccelChoice, Firmware, L2Net, Vm};

/// Version of the [`BootReport`] JSON shape.
pub const REPORT_VERSION: u32 = 1;

/// Why a boot run could not be made (an unhealthy host is not an error: see
/// [`BootReport::healthy`]).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("`{tool}` is needed to boot hosts: install it with `apt-get install {package}`")]
    Tool {
        tool: &'static str,
        package: &'static str,
    },
    #[error(transparent)]
    Manifest(#[from] kiln_dist::boot_manifest::ReadError),
    #[error("no host {name} in the boot manifest (hosts: {known})")]
    UnknownHost { name: String, known: String },
    #[error("no hosts to boot: pass --host NAME or --all")]
    NoHosts,
    #[error("{what} {path}: {source}")]
    Missing {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("VM {host}: {detail}")]
    Qemu { host: String, detail: String },
    #[error(
        "--firmware uefi: the disk of profile {profile} has no unified kernel image (its image \
         has no systemd EFI stub; `kiln build` warned): boot it with --firmware bios"
    )]
    NoUki { profile: String },
    #[error("--firmware uefi-secure: {0}")]
    SecureBoot(String),
    #[error(transparent)]
    Io(#[from] IoError),
}

impl BootError {
    /// Whether the error is the caller's (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BootError::UnknownHost { .. }
                | BootError::NoHosts
                | BootError::NoUki { .. }
                | BootError::SecureBoot(_)
        )
    }
}

/// `Result` with a [`BootError`].
pub type Result<T, E = BootError> = std::result::Result<T, E>;

/// What [`boot`] does.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The output directory of `kiln build`.
    pub dist: PathBuf,
    /// Hosts to boot, by name; empty: all of them.
    pub hosts: Vec<String>,
    pub accel: AccelChoice,
    /// Memory per VM, MiB.
    pub memory_mib: u32,
    /// Virtual CPUs per VM; `None`: [`cpus_each`] of the build machine's cores.
    pub cpus: Option<u32>,
    /// Where overlays, serial logs and sockets go (created if missing); `None`: a new
    /// directory under `$TMPDIR`. It is left in place (the logs stay).
    pub run_dir: Option<PathBuf>,
    /// How long to wait for every check to pass.
    pub timeout: Duration,
    /// Leave the VMs running (in [`BootRun::kept`]) instead of stopping them.
    pub keep: bool,
    /// Whether the VMs start together or one after another.
    pub start: StartOrder,
    /// The firmware every VM boots with, unless [`BootOptions::host_firmware`] names another.
    pub firmware: Firmware,
    /// The firmware of single hosts, by name (a fleet may mix BIOS and UEFI machines).
    pub host_firmware: BTreeMap<String, Firmware>,
    /// Give every VM a TPM 2.0 (swtpm) and check PCR 11 against the build's value.
    pub tpm: bool,
    /// With [`StartOrder::Staggered`]: how long a VM may take to pass early boot before the
    /// next one starts anyway.
    pub start_gap: Duration,
    /// How long the KVM probe boot may take to show a kernel line.
    pub kvm_probe_timeout: Duration,
}

impl BootOptions {
    /// Defaults: all hosts, auto accel, 2048 MiB, 600 s.
    pub fn new(dist: impl Into<PathBuf>) -> Self {
        BootOptions {
            dist: dist.into(),
            hosts: Vec::new(),
            accel: AccelChoice::Auto,
            memory_mib: 2048,
            cpus: None,
            run_dir: None,
            timeout: Duration::from_secs(600),
            keep: false,
            start: StartOrder::Together,
            firmware: Firmware::Bios,
            host_firmware: BTreeMap::new(),
            tpm: false,
            start_gap: Duration::from_secs(60),
            kvm_probe_timeout: Duration::from_secs(20),
        }
    }
}

/// How the VMs of a run start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartOrder {
    /// Every VM at once: no host waits for the one before it to get past its firmware and
    /// kernel. Measured on 2 cores under TCG, the two orders were within run-to-run spread
    /// (1 + 1: 150 s together, 137 s staggered; 3 + 1: 343 s together, 368 s staggered; see
    /// docs/design/boot-facts.md).
    Together,
    /// Each VM after the one before it shows an early-boot line on its console (or after
    /// [`BootOptions::start_gap`]): fewer guests compete for the CPUs in firmware and kernel.
    Staggered,
}

/// The result of a run: `kiln boot --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// Every check of every host passed.
    pub healthy: bool,
    pub accel: Accel,
    /// Why that accelerator.
    pub accel_reason: String,
    pub run_dir: PathBuf,
    /// The private network's multicast group and port.
    pub network: L2Net,
    /// How the VMs started.
    pub start: StartOrder,
    /// The firmware they booted with.
    pub firmware: Firmware,
    /// Virtual CPUs each VM had.
    pub cpus: u32,
    /// Seconds from the first VM's start to the end of the checks.
    pub elapsed_secs: f64,
    pub hosts: Vec<HostHealth>,
    /// Per host, its services' ports reachable from the build host (through its host link).
    pub forwards: BTreeMap<String, Vec<qemu::Forward>>,
}

impl BootReport {
    /// Names of the unhealthy hosts.
    pub fn unhealthy(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| !h.healthy)
            .map(|h| h.name.as_str())
            .collect()
    }
}

/// A finished run: the report, and the VMs when kept (dropping them stops them).
#[derive(Debug)]
pub struct BootRun {
    pub report: BootReport,
    /// The running VMs, with `keep`; empty otherwise (they were stopped).
    pub kept: Vec<Vm>,
}

/// Reads `DIST/boot/manifest.json`.
pub fn read_manifest(dist: &Dist) -> Result<BootManifest> {
    Ok(kiln_dist::boot_manifest::read(dist)?)
}

/// The firmware a build targets: [`Firmware::UefiSecure`] when its UKIs are signed, else
/// [`Firmware::Bios`] (every disk boots there).
pub fn default_firmware(dist: &Path) -> Firmware {
    match read_manifest(&Dist::new(dist)) {
        Ok(m) if m.secure_boot.is_some() => Firmware::UefiSecure,
        _ => Firmware::Bios,
    }
}

/// The hosts of `m` named in `names` (all when empty), in manifest order.
pub fn select<'a>(m: &'a BootManifest, names: &[String]) -> Result<Vec<&'a HostBoot>> {
    for n in names {
        if !m.hosts.iter().any(|h| &h.name == n) {
            let known: Vec<&str> = m.hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(BootError::UnknownHost {
                name: n.clone(),
                known: known.join(", "),
            });
        }
    }
    let v: Vec<&HostBoot> = m
        .hosts
        .iter()
        .filter(|h| names.is_empty() || names.contains(&h.name))
        .collect();
    if v.is_empty() {
        return Err(BootError::NoHosts);
    }
    Ok(v)
}

/// The run directory: the given one, or a new `kiln-boot-*` under `$TMPDIR`; kept afterwards.
pub fn run_dir(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(IoError::at("creating", d))?;
            Ok(d.to_path_buf())
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("kiln-boot-")
                .tempdir()
                .map_err(IoError::new("creating a run directory under $TMPDIR"))?;
            Ok(dir.keep())
        }
    }
}

/// Boots the selected hosts of a build and waits for them to be healthy. `progress` gets one
/// line per event (VM started, a host's checks changed).
pub fn boot(opts: &BootOptions, progress: &mut dyn FnMut(&str)) -> Result<BootRun> {
    let dist = Dist::new(&opts.dist);
    let m = read_manifest(&dist)?;
    let hosts = select(&m, &opts.hosts)?;
    let tools = qemu::Tools::find()?;
    for name in opts.host_firmware.keys() {
        select(&m, std::slice::from_ref(name))?;
    }
    let firmware_of = |host: &str| {
        opts.host_firmware
            .get(host)
            .copied()
            .unwrap_or(opts.firmware)
    };
    if hosts.iter().any(|h| firmware_of(&h.name) != Firmware::Bios) {
        qemu::require_ovmf()?;
    }
    let run_dir = run_dir(opts.run_dir.as_deref())?;
    let vars_template = if hosts
        .iter()
        .any(|h| firmware_of(&h.name) == Firmware::UefiSecure)
    {
        Some(secure_vars(&m, &dist, &run_dir)?)
    } else {
        None
    };
    let net = L2Net::random();
    let mut specs = Vec::new();
    let mut forwarded = BTreeMap::new();
    for h in &hosts {
        let p = m.profile(&h.profile).ok_or_else(|| BootError::Qemu {
            host: h.name.clone(),
            detail: format!("profile {} has no disk in the boot manifest", h.profile),
        })?;
        let firmware = firmware_of(&h.name);
        if firmware != Firmware::Bios && p.uki.is_empty() {
            return Err(BootError::NoUki {
                profile: p.name.clone(),
            });
        }
        if firmware == Firmware::UefiSecure && !p.signed {
            return Err(BootError::SecureBoot(format!(
                "the unified kernel image of profile {} is not signed",
                p.name
            )));
        }
        let (image, format) = if p.disk_qcow2.is_empty() {
            (dist.root().join(&p.disk_raw), qemu::DiskFormat::Raw)
        } else {
            (dist.root().join(&p.disk_qcow2), qemu::DiskFormat::Qcow2)
        };
        let seed = dist.root().join(&h.seed_iso);
        for (what, path) in [("disk image", &image), ("cloud-init seed", &seed)] {
            std::fs::metadata(path).map_err(|source| BootError::Missing {
                what: format!("{what} of {}", h.name),
                path: path.clone(),
                source,
            })?;
        }
        let link = qemu::host_link_mac(&h.mac);
        let mut checks = vec![Check {
            id: "host-link".into(),
            about: format!(
                "host link {} up (the build host is {})",
                qemu::HOST_LINK_ADDR,
                qemu::HOST_LINK_HOST
            ),
            probe: Probe::HostLink {
                mac: link.clone(),
                address: qemu::HOST_LINK_ADDR.into(),
            },
        }];
        checks.extend(h.checks.iter().cloned());
        if firmware == Firmware::UefiSecure {
            checks.push(Check {
                id: "secure-boot".into(),
                about: "firmware booted with Secure Boot on".into(),
                probe: Probe::SecureBoot,
            });
        }
        if opts.tpm && !p.pcr11.is_empty() && firmware != Firmware::Bios {
            checks.push(Check {
                id: "pcr11".into(),
                about: "measured boot: TPM PCR 11 equals the build's value".into(),
                probe: Probe::Pcr {
                    index: 11,
                    sha256: p.pcr11.clone(),
                },
            });
        }
        let forwards = qemu::Forward::to_free_ports(&service_ports(h))?;
        forwarded.insert(h.name.clone(), forwards.clone());
        specs.push((
            qemu::VmSpec {
                name: h.name.clone(),
                boot: qemu::BootFrom::Disk { image, format },
                cdrom: Some(seed),
                mac: h.mac.clone(),
                net: Some(net),
                host_link: Some(qemu::HostLink {
                    mac: link,
                    forwards,
                }),
                memory_mib: opts.memory_mib,
                cpus: 1,
                firmware,
                vars_template: vars_template.clone(),
                tpm: opts.tpm,
            },
            checks,
        ));
    }
    progress(&format!("run directory {}", run_dir.display()));
    let probe = specs[0].0.boot.clone();
    let pick = qemu::pick_accel(&tools, opts.accel, &probe, &run_dir, opts.kvm_probe_timeout)?;
    progress(&format!("accelerator {:?}: {}", pick.accel, pick.why));
    let mut run = run(&tools, &pick, specs, &run_dir, net, opts, progress)?;
    run.report.forwards = forwarded;
    Ok(run)
}

/// OVMF's variable store with the build's Secure Boot certificates enrolled (PK, KEK, db;
/// Secure Boot on), made in `run_dir` with `virt-fw-vars` (PyPI `virt-firmware`).
fn secure_vars(m: &BootManifest, dist: &Dist, run_dir: &Path) -> Result<PathBuf> {
    let certs = m.secure_boot.as_ref().ok_or_else(|| {
        BootError::SecureBoot(
            "this build's UKIs are not signed: add [boot.secure_boot] to the spec (`kiln keys` \
             makes a key set) and build again"
                .into(),
        )
    })?;
    let out = run_dir.join("OVMF_VARS.secure-boot.fd");
    let cert = |rel: &str| dist.root().join(rel);
    qemu::enrolled_vars(
        &out,
        &certs.owner,
        &cert(&certs.pk),
        &cert(&certs.kek),
        &cert(&certs.db),
    )?;
    Ok(out)
}

/// The TCP ports a host's checks reach on its own address (etcd, ZooKeeper, Mesos,
/// Marathon…): the ones forwarded from the build host.
fn service_ports(h: &HostBoot) -> Vec<u16> {
    let me = h.address.to_string();
    let mut ports: Vec<u16> = h
        .checks
        .iter()
        .filter_map(|c| match &c.probe {
            Probe::Http { host, port, .. } | Probe::ZkSrvr { host, port } if *host == me => {
                Some(*port)
            }
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The timeline of a host whose QEMU started at `qemu_started`, if its agent answers.
fn read_timeline(
    h: &health::HostHealth,
    w: &health::Watched,
    qemu_started: Instant,
    run_started: Instant,
) -> Option<timeline::Timeline> {
    let mut agent = qga::Agent::connect(&w.qga_socket, Duration::from_secs(5)).ok()?;
    let units: Vec<String> = h
        .checks
        .iter()
        .filter_map(|c| c.id.strip_prefix("unit:").map(String::from))
        .collect();
    let checks: Vec<(String, Option<f64>)> = h
        .checks
        .iter()
        .map(|c| (c.id.clone(), c.passed_after_secs))
        .collect();
    timeline::read(&mut agent, qemu_started, run_started, &units, &checks)
}

/// Virtual CPUs each of `vms` VMs gets on a machine with `cores`: the cores shared out, at
/// least 1, at most 4. Under TCG each vCPU is a host thread (multi-threaded TCG), so one VM
/// with 2 vCPUs on 2 cores runs its services' start-up in parallel (etcd, ZooKeeper's JVM and
/// dockerd start at once), while several VMs with one each do not oversubscribe the cores.
pub fn cpus_each(cores: usize, vms: usize) -> u32 {
    (cores / vms.max(1)).clamp(1, 4) as u32
}

/// Starts `vms` (together or one after another, as `opts.start` says) and waits for their
/// checks: the part of [`boot`] after the manifest, also used by tests with their own guests.
pub fn run(
    tools: &qemu::Tools,
    accel: &qemu::AccelPick,
    vms: Vec<(qemu::VmSpec, Vec<Check>)>,
    run_dir: &Path,
    net: L2Net,
    opts: &BootOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BootRun> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = opts.cpus.unwrap_or_else(|| cpus_each(cores, vms.len()));
    if !vms.is_empty() {
        let order = match (vms.len(), opts.start) {
            (1, _) => "",
            (_, StartOrder::Together) => ", started together",
            (_, StartOrder::Staggered) => ", started one after another",
        };
        progress(&format!(
            "{} VM(s), {cpus} vCPU(s) each ({cores} core(s) here){order}",
            vms.len(),
        ));
    }
    let started = Instant::now();
    let mut running: Vec<Vm> = Vec::new();
    let mut watched = Vec::new();
    let mut qemu_started = Vec::new();
    for (mut spec, checks) in vms {
        spec.cpus = cpus;
        qemu_started.push(Instant::now());
        let mut vm = qemu::start(tools, accel.accel, &spec, run_dir, opts.keep)?;
        progress(&format!(
            "{}: started (pid {}, console {})",
            spec.name,
            vm.pid,
            vm.serial_log.display()
        ));
        if opts.start == StartOrder::Staggered {
            match qemu::wait_console(&mut vm, qemu::PAST_EARLY_BOOT, opts.start_gap)? {
                Some(m) => progress(&format!(
                    "{}: past early boot ({m:?} after {:.0} s)",
                    spec.name,
                    started.elapsed().as_secs_f64()
                )),
                None => progress(&format!(
                    "{}: no early-boot line within {:?}; starting the next VM anyway",
                    spec.name, opts.start_gap
                )),
            }
        }
        watched.push(health::Watched {
            name: spec.name.clone(),
            qga_socket: vm.qga_socket.clone(),
            serial_log: vm.serial_log.clone(),
            checks,
        });
        running.push(vm);
    }
    let left = opts.timeout.saturating_sub(started.elapsed());
    let mut hosts = health::wait_healthy(&watched, started, left, progress);
    // Before the timelines are read (a few agent calls per host, slow on a loaded machine).
    let checks_done = started.elapsed().as_secs_f64();
    for ((h, w), at) in hosts.iter_mut().zip(&watched).zip(qemu_started) {
        h.timeline = read_timeline(h, w, at, started);
    }
    let report = BootReport {
        version: REPORT_VERSION,
        healthy: hosts.iter().all(|h| h.healthy),
        accel: accel.accel,
        accel_reason: accel.why.clone(),
        run_dir: run_dir.to_path_buf(),
        network: net,
        start: opts.start,
        firmware: opts.firmware,
        cpus,
        elapsed_secs: (checks_done * 10.0).round() / 10.0,
        hosts,
        forwards: BTreeMap::new(),
    };
    let kept = if opts.keep {
        running
    } else {
        for vm in &mut running {
            vm.kill();
        }
        Vec::new()
    };
    Ok(BootRun { report, kept })
}

#[cfg(test)]
mod tests {
    use super::cpus_each;

    #[test]
    fn cores_are_shared_out_among_the_vms() {
        assert_eq!(cpus_each(2, 1), 2);
        assert_eq!(cpus_each(2, 2), 1);
        assert_eq!(cpus_each(2, 4), 1);
        assert_eq!(cpus_each(1, 1), 1);
        assert_eq!(cpus_each(16, 2), 4);
        assert_eq!(cpus_each(8, 0), 4);
    }
}
