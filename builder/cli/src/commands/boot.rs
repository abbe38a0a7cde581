//! `kiln boot`: boot a build's hosts in QEMU and check their health.

use std::io::Write;
use std::path::PathBuf;

use crate::args::Usage;

/// Boot the hosts of a build in QEMU and print their health table.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each host boots its role's disk (DIST/boot/PROFILE/disk.qcow2, behind an \
overlay, so the build is never written) with its cloud-init seed as a CD-ROM and its NIC (the \
spec's MAC) on one private L2 network shared by the VMs of the run (QEMU multicast socket \
on 127.0.0.1, no root), plus a second NIC, the host link (QEMU user networking, brought up \
as 10.0.2.15/24 through the guest agent), through which the hosts reach the build host's \
127.0.0.1 at 10.0.2.2, e.g. a registry for the cluster. The VMs start together (--start \
staggered: each after the one before it is past its kernel). The checks come from the plan \
(DIST/boot/manifest.json) and run inside each guest through the QEMU guest agent: etcd \
/version and /health, the local etcd proxy or gateway, ZooKeeper srvr, docker info and the \
cluster store, Docker's node key in etcd, CNI plugins and config, Mesos and Marathon where \
present, and every unit active with no restarts. KVM is used when a short probe boot \
proves it works, TCG otherwise. Serial logs, overlays and agent sockets stay in the run \
directory. Exit 0 only when every host is healthy.\n\nExamples:\n  kiln boot dist --all\n  \
kiln boot dist --host node1 --keep\n  kiln boot dist --all --timeline\n  \
kiln boot dist --all --json | jq '.hosts[] | {name, healthy, healthy_secs: .timeline.healthy_secs}'"
)]
pub(crate) struct BootArgs {
    /// The output directory of `kiln build`.
    dist: PathBuf,
    /// Boot only this host (repeatable).
    #[arg(long = "host", value_name = "NAME", conflicts_with = "all")]
    hosts: Vec<String>,
    /// Boot every host of the build (the default when no --host is given).
    #[arg(long)]
    all: bool,
    /// Print the result as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also print each host's boot timeline: kernel start, initramfs, switch-root, each unit
    /// active, healthy (seconds after its QEMU started), and the critical chain of the unit
    /// that came up last. `--json` always carries it (`hosts[].timeline`).
    #[arg(long)]
    timeline: bool,
    /// Leave the VMs running; prints their PIDs, consoles and agent sockets.
    #[arg(long)]
    keep: bool,
    /// Seconds to wait for every check to pass.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Accelerator: auto (KVM if a probe boot works, else TCG), kvm or tcg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    accel: String,
    /// Memory per VM in MiB.
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// Virtual CPUs per VM (default: this machine's cores shared out among the VMs, 1 to 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: Option<u32>,
    /// Where overlays, serial logs and agent sockets go (default: a new dir under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// How the VMs start: together (the default) or staggered (each once the one before it is
    /// past its kernel, at most 60 s apart). On 2 cores under TCG both took about as long
    /// (docs/design/boot-facts.md).
    #[arg(long, default_value = "together", value_parser = ["together", "staggered"])]
    start: String,
    /// Firmware: bios (SeaBIOS; syslinux from the disk's protective MBR), uefi (OVMF,
    /// Debian `ovmf`; the unified kernel image from the disk's EFI system partition) or
    /// uefi-secure (OVMF enforcing Secure Boot with the build's certificates enrolled, made
    /// with `virt-fw-vars` from PyPI `virt-firmware`; needs a build with [boot.secure_boot]).
    /// HOST=FIRMWARE sets one host's (repeat for more). Every disk boots on bios and uefi.
    /// Default: uefi-secure for a signed build, else bios.
    #[arg(long, value_name = "[HOST=]FIRMWARE")]
    firmware: Vec<String>,
    /// Give every VM a TPM 2.0 (Debian `swtpm`): with uefi or uefi-secure, the health table
    /// then checks that PCR 11 holds the value `kiln build` computed from the UKI (measured
    /// boot).
    #[arg(long)]
    tpm: bool,
}

impl BootArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        use kiln_vm::AccelChoice;
        let BootArgs {
            dist,
            hosts,
            all: _,
            json,
            timeline,
            keep,
            timeout,
            accel,
            memory,
            cpus,
            run_dir,
            start,
            firmware,
            tpm,
        } = self;
        let mut opts = kiln_vm::BootOptions::new(&dist);
        opts.hosts = hosts;
        opts.keep = keep;
        opts.timeout = std::time::Duration::from_secs(timeout);
        opts.memory_mib = memory;
        opts.cpus = cpus;
        opts.run_dir = run_dir;
        opts.start = match start.as_str() {
            "staggered" => kiln_vm::StartOrder::Staggered,
            _ => kiln_vm::StartOrder::Together,
        };
        opts.firmware = kiln_vm::default_firmware(&dist);
        for f in &firmware {
            let (host, name) = match f.split_once('=') {
                Some((h, n)) => (Some(h), n),
                None => (None, f.as_str()),
            };
            let fw = match name {
                "bios" => kiln_vm::Firmware::Bios,
                "uefi" => kiln_vm::Firmware::Uefi,
                "uefi-secure" => kiln_vm::Firmware::UefiSecure,
                other => {
                    return Err(Usage(format!(
                        "--firmware {f}: unknown firmware {other:?} (bios, uefi or uefi-secure, \
                         optionally after HOST=)"
                    ))
                    .into())
                }
            };
            match host {
                Some(h) => {
                    opts.host_firmware.insert(h.to_string(), fw);
                }
                None => opts.firmware = fw,
            }
        }
        opts.tpm = tpm;
        opts.accel = match accel.as_str() {
            "kvm" => AccelChoice::Kvm,
            "tcg" => AccelChoice::Tcg,
            _ => AccelChoice::Auto,
        };
        let run = kiln_vm::boot(&opts, &mut |m| eprintln!("  {m}")).map_err(|e| {
            if e.is_usage() {
                anyhow::Error::from(Usage(e.to_string()))
            } else {
                anyhow::Error::from(e).context(format!("booting {}", dist.display()))
            }
        })?;
        let report = &run.report;
        let mut table = kiln_vm::health::table(&report.hosts);
        if timeline {
            let lines: Vec<(&str, &kiln_vm::timeline::Timeline)> = report
                .hosts
                .iter()
                .filter_map(|h| h.timeline.as_ref().map(|t| (h.name.as_str(), t)))
                .collect();
            table.push('\n');
            table.push_str(&kiln_vm::timeline::table(&lines));
        }
        if json {
            eprint!("{table}");
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            std::io::stdout().write_all(s.as_bytes())?;
        } else {
            print!("{table}");
        }
        for (host, fw) in &report.forwards {
            let list: Vec<String> = fw
                .iter()
                .map(|f| format!("{} -> {}", f.host, f.guest_port))
                .collect();
            if !list.is_empty() {
                eprintln!("{host}: ports on this machine: {}", list.join(", "));
            }
        }
        for vm in &run.kept {
            eprintln!(
                "kept {}: pid {}, console {}, agent {}",
                vm.name,
                vm.pid,
                vm.serial_log.display(),
                vm.qga_socket.display()
            );
        }
        if !run.kept.is_empty() {
            // Dropping a kept VM would stop it.
            std::mem::forget(run.kept);
        }
        eprintln!("run directory {}", report.run_dir.display());
        if report.healthy {
            eprintln!(
                "all {} host(s) healthy in {:.0} s",
                report.hosts.len(),
                report.elapsed_secs
            );
            Ok(())
        } else {
            anyhow::bail!("unhealthy: {}", report.unhealthy().join(", "))
        }
    }
}
