//! Starting hosts as QEMU VMs without root: a qcow2 overlay per host over the built disk (the
//! disk itself is never written), the host's seed ISO as a CD-ROM, one NIC with the host's MAC
//! on a private L2 network shared by the VMs of one run (a UDP multicast socket netdev on
//! 127.0.0.1, group and port random per run), the serial console in a log file and the guest
//! agent's virtio-serial channel on a unix socket. See `docs/design/boot-facts.md` for why: KVM is
//! probed with a real boot, and the build machine's cores are shared out among the VMs.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_layers::IoError;
use serde::Serialize;

use super::{BootError, Result};

/// The QEMU programs a run needs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub qemu: PathBuf,
    pub qemu_img: PathBuf,
}

impl Tools {
    /// Finds `qemu-system-x86_64` and `qemu-img` on `PATH`.
    pub fn find() -> Result<Tools> {
        Ok(Tools {
            qemu: which("qemu-system-x86_64").ok_or(BootError::Tool {
                tool: "qemu-system-x86_64",
                package: "qemu-system-x86",
            })?,
            qemu_img: which("qemu-img").ok_or(BootError::Tool {
                tool: "qemu-img",
                package: "qemu-utils",
            })?,
        })
    }
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The firmware a VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: the disk's protective MBR boots syslinux.
    #[default]
    Bios,
    /// OVMF (Debian `ovmf`), Secure Boot off: the firmware starts the unified kernel image
    /// from the disk's EFI system partition (`\EFI\BOOT\BOOTX64.EFI`).
    Uefi,
    /// OVMF with Secure Boot enforcing (`OVMF_CODE_4M.secboot.fd`, SMM on), the build's
    /// certificates enrolled in a variable store made for the run
    /// ([`VmSpec::vars_template`]): only a UKI signed with the db key starts.
    UefiSecure,
}

impl Firmware {
    /// OVMF's code for this firmware (`None`: SeaBIOS).
    pub fn ovmf_code(self) -> Option<&'static str> {
        match self {
            Firmware::Bios => None,
            Firmware::Uefi => Some(OVMF_CODE),
            Firmware::UefiSecure => Some(OVMF_CODE_SECURE),
        }
    }
}

/// OVMF's code (read-only) and the template of its variable store (copied per VM), Debian's
/// 4 MiB builds.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF built with Secure Boot and SMM (it needs `-machine smm=on` and a secure flash).
pub const OVMF_CODE_SECURE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";

/// Fails when OVMF is not installed.
pub fn require_ovmf() -> Result<()> {
    for f in [OVMF_CODE, OVMF_VARS, OVMF_CODE_SECURE] {
        if !Path::new(f).is_file() {
            return Err(BootError::Tool {
                tool: "OVMF (UEFI firmware for QEMU)",
                package: "ovmf",
            });
        }
    }
    Ok(())
}

/// The accelerator VMs run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the user asked for: `auto` probes KVM with a short real boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// How a VM boots.
#[derive(Debug, Clone)]
pub enum BootFrom {
    /// A disk image (through SeaBIOS), behind a qcow2 overlay in the run directory.
    Disk { image: PathBuf, format: DiskFormat },
    /// A kernel and initramfs given to QEMU directly (test fixtures).
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// PXE: the NIC (the VM's MAC, on a QEMU user network of its own, whose BOOTP offers
    /// `bootfile` from the TFTP directory `tftp`) boots first with QEMU's iPXE ROM (Debian
    /// `ipxe-qemu`). The guest reaches the build host's 127.0.0.1 at [`HOST_LINK_HOST`];
    /// `hostfwd` are QEMU `hostfwd=` rules into it (`tcp:127.0.0.1:23790-10.0.2.15:2379`),
    /// `guestfwd` QEMU `guestfwd=` rules out of it (`tcp:10.0.2.15:2379-cmd:busybox nc
    /// 127.0.0.1 23790`: the guest's connections to that address and port run the command,
    /// one per connection). A user network NATs every frame it sees, so it cannot be shared
    /// with other VMs; these two stitch one VM's port into another's network.
    ///
    /// On UEFI firmware the NIC has no option ROM (an unsigned iPXE ROM would not load with
    /// Secure Boot on): OVMF's own network stack boots, by PXE (TFTP, `bootfile`) or, with
    /// `http_boot`, by UEFI HTTP boot from that URL (a boot entry set in the VM's variable
    /// store with `virt-fw-vars --set-boot-uri`).
    Network {
        tftp: PathBuf,
        bootfile: String,
        hostfwd: Vec<String>,
        guestfwd: Vec<String>,
        http_boot: Option<String>,
    },
}

/// Format of a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// A private L2 network: every VM of a run joins the same multicast group on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct L2Net {
    pub group: Ipv4Addr,
    pub port: u16,
}

impl L2Net {
    /// A group in 239.255.0.0/16 (organisation-local) and a port, random per run so parallel
    /// runs do not share a network.
    pub fn random() -> L2Net {
        let r = random_u64();
        let b = r.to_le_bytes();
        L2Net {
            group: Ipv4Addr::new(239, 255, b[0], b[1].max(1)),
            port: 20000 + (u16::from_le_bytes([b[2], b[3]]) % 40000),
        }
    }
    fn netdev(&self, id: &str) -> String {
        format!(
            "socket,id={id},mcast={}:{},localaddr=127.0.0.1",
            self.group, self.port
        )
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// One VM to start.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Host name: names the files in the run directory.
    pub name: String,
    pub boot: BootFrom,
    /// A CD-ROM (the host's `cidata` seed ISO).
    pub cdrom: Option<PathBuf>,
    /// The NIC's MAC, on `net`.
    pub mac: String,
    pub net: Option<L2Net>,
    /// A second NIC with this MAC on the VM's own QEMU user network: the host link, through
    /// which the guest reaches the build host's loopback at [`HOST_LINK_HOST`] (see
    /// [`host_link_mac`]). The image does not configure it; `kiln boot` does, through the guest
    /// agent (the `host-link` check).
    pub host_link: Option<HostLink>,
    pub memory_mib: u32,
    /// Virtual CPUs (`-smp`); [`crate::run`] sets it from the build machine's cores.
    pub cpus: u32,
    /// The firmware (OVMF only for a disk boot).
    pub firmware: Firmware,
    /// OVMF's variable store to copy for this VM (`None`: Debian's empty [`OVMF_VARS`]); with
    /// [`Firmware::UefiSecure`], one with the build's keys enrolled.
    pub vars_template: Option<PathBuf>,
    /// Give the VM a TPM 2.0 (`swtpm`, Debian package `swtpm`, its state in the run
    /// directory): systemd's stub measures the UKI into it.
    pub tpm: bool,
}

/// A VM's host link: its MAC and the ports forwarded from the build host into the guest.
#[derive(Debug, Clone)]
pub struct HostLink {
    pub mac: String,
    pub forwards: Vec<Forward>,
}

/// A TCP port of the guest reachable from the build host (QEMU `hostfwd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// The service's port in the guest (on its host link address).
    pub guest_port: u16,
    /// `127.0.0.1:PORT` on the build host.
    pub host: String,
}

impl Forward {
    /// Forwards for `guest_ports`, each to a free port on the build host's 127.0.0.1 (free when
    /// asked: another program may take it before QEMU binds it, which QEMU then reports).
    pub fn to_free_ports(guest_ports: &[u16]) -> Result<Vec<Forward>> {
        // Held together so no two forwards get the same port.
        let listeners = guest_ports
            .iter()
            .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(IoError::new("finding free ports on 127.0.0.1"))?;
        guest_ports
            .iter()
            .zip(&listeners)
            .map(|(&guest_port, l)| {
                let port = l
                    .local_addr()
                    .map_err(IoError::new("reading a bound port"))?
                    .port();
                Ok(Forward {
                    guest_port,
                    host: format!("127.0.0.1:{port}"),
                })
            })
            .collect()
    }
}

/// The build host as a guest sees it on its host link (QEMU user networking's gateway, which
/// forwards to the host's 127.0.0.1).
pub const HOST_LINK_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The guest's address on its host link, with prefix.
pub const HOST_LINK_ADDR: &str = "10.0.2.15/24";

/// The host link's MAC for a host whose NIC has `mac`: the same bytes with the first one
/// `5a` (locally administered, unicast), so it is stable per host and differs from the NIC.
pub fn host_link_mac(mac: &str) -> String {
    match mac.split_once(':') {
        Some((_, rest)) => format!("5a:{}", rest.to_lowercase()),
        None => mac.to_lowercase(),
    }
}

/// A running VM. Killed (and its overlay removed) on drop unless kept.
#[derive(Debug)]
pub struct Vm {
    pub name: String,
    pub pid: u32,
    /// The serial console (ttyS0).
    pub serial_log: PathBuf,
    /// QEMU's own messages.
    pub qemu_log: PathBuf,
    /// The guest agent's socket.
    pub qga_socket: PathBuf,
    overlay: Option<PathBuf>,
    child: Option<Child>,
}

impl Vm {
    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
    /// Leaves the VM running after this handle is gone (`--keep`).
    pub fn keep(mut self) -> u32 {
        self.child = None;
        self.overlay = None;
        self.pid
    }
    /// Stops QEMU now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(o) = self.overlay.take() {
            let _ = fs::remove_file(o);
        }
    }
    /// The last `lines` lines of the serial console.
    pub fn console_tail(&self, lines: usize) -> Vec<String> {
        tail(&self.serial_log, lines)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a text file (at most its last 256 KiB), control characters but
/// tab removed.
pub fn tail(path: &Path, lines: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<String> = text
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect()
        })
        .collect();
    all[all.len().saturating_sub(lines)..].to_vec()
}

/// Starts one VM in `run_dir` with `accel`. With `keep`, QEMU runs in its own process group
/// and outlives kiln; otherwise it is killed when kiln dies (see `die_with_parent`).
pub fn start(tools: &Tools, accel: Accel, spec: &VmSpec, run_dir: &Path, keep: bool) -> Result<Vm> {
    let name = &spec.name;
    let serial_log = run_dir.join(format!("{name}.serial.log"));
    let qemu_log = run_dir.join(format!("{name}.qemu.log"));
    let qga_socket = run_dir.join(format!("{name}.qga"));
    let _ = fs::remove_file(&qga_socket);
    let mut cmd = Command::new(&tools.qemu);
    cmd.args([
        "-name",
        name,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .args(["-machine", "q35", "-accel", accel.name()])
    .arg("-smp")
    .arg(spec.cpus.max(1).to_string())
    .arg("-m")
    .arg(spec.memory_mib.to_string())
    .arg("-serial")
    .arg(format!("file:{}", serial_log.display()));
    let mut overlay = None;
    if let Some(code) = spec.firmware.ovmf_code() {
        // Each VM has its own variable store: the firmware writes its boot entries there.
        let vars = run_dir.join(format!("{name}.OVMF_VARS.fd"));
        let template = spec
            .vars_template
            .as_deref()
            .unwrap_or(Path::new(OVMF_VARS));
        fs::copy(template, &vars).map_err(IoError::at("copying OVMF's variables to", &vars))?;
        if let BootFrom::Network {
            http_boot: Some(uri),
            ..
        } = &spec.boot
        {
            set_boot_uri(&vars, uri)?;
        }
        if spec.firmware == Firmware::UefiSecure {
            // The secure build keeps its variables behind SMM: without it, it does not start.
            cmd.args(["-machine", "smm=on", "-global"])
                .arg("driver=cfi.pflash01,property=secure,value=on");
        }
        cmd.arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
    }
    match &spec.boot {
        BootFrom::Disk { image, format } => {
            let o = run_dir.join(format!("{name}.qcow2"));
            create_overlay(tools, image, *format, &o)?;
            cmd.arg("-drive")
                .arg(format!(
                    "if=none,id=disk0,format=qcow2,file={}",
                    o.display()
                ))
                .args(["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]);
            overlay = Some(o);
        }
        BootFrom::Kernel {
            kernel,
            initrd,
            append,
        } => {
            cmd.arg("-kernel")
                .arg(kernel)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(append);
        }
        BootFrom::Network {
            tftp,
            bootfile,
            hostfwd,
            guestfwd,
            ..
        } => {
            let mut netdev = format!("user,id=p0,tftp={},bootfile={bootfile}", tftp.display());
            for f in hostfwd {
                netdev += &format!(",hostfwd={f}");
            }
            for f in guestfwd {
                netdev += &format!(",guestfwd={f}");
            }
            // The default romfile: QEMU's iPXE for virtio-net (efi-virtio.rom). graphics=off
            // has SeaBIOS copy text output (its own and iPXE's) to the serial console.
            let rom = if spec.firmware == Firmware::Bios {
                ""
            } else {
                ",romfile="
            };
            cmd.args(["-machine", "graphics=off", "-netdev", &netdev, "-device"])
                .arg(format!(
                    "virtio-net-pci,netdev=p0,mac={},bootindex=0{rom}",
                    spec.mac
                ));
        }
    }
    if let Some(iso) = &spec.cdrom {
        cmd.arg("-drive")
            .arg(format!(
                "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={}",
                iso.display()
            ))
            .args(["-device", "ide-cd,drive=cd0"]);
    }
    if let Some(net) = &spec.net {
        cmd.arg("-netdev")
            .arg(net.netdev("n0"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=n0,mac={},romfile=",
                spec.mac
            ));
    }
    if let Some(link) = &spec.host_link {
        // restrict=off: the guest may open connections to the host (that is the link's use).
        let guest = HOST_LINK_ADDR.split('/').next().unwrap_or(HOST_LINK_ADDR);
        let mut netdev = "user,id=h0,restrict=off".to_string();
        for f in &link.forwards {
            netdev.push_str(&format!(",hostfwd=tcp:{}-{guest}:{}", f.host, f.guest_port));
        }
        cmd.args(["-netdev", &netdev, "-device"]).arg(format!(
            "virtio-net-pci,netdev=h0,mac={},romfile=",
            link.mac
        ));
    }
    if spec.tpm {
        let socket = start_swtpm(run_dir, name)?;
        cmd.arg("-chardev")
            .arg(format!("socket,id=tpm0chr,path={}", socket.display()))
            .args(["-tpmdev", "emulator,id=tpm0,chardev=tpm0chr"])
            .args(["-device", "tpm-tis,tpmdev=tpm0"]);
    }
    cmd.args(["-device", "virtio-serial-pci"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=qga0,path={},server=on,wait=off",
            qga_socket.display()
        ))
        .arg("-device")
        .arg(format!(
            "virtserialport,chardev=qga0,name={}",
            super::qga::CHANNEL
        ));
    let log = File::create(&qemu_log).map_err(IoError::at("creating", &qemu_log))?;
    cmd.stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(IoError::new("duplicating a file handle"))?,
        )
        .stderr(log);
    if keep {
        cmd.process_group(0);
    } else {
        die_with_parent(&mut cmd);
    }
    tracing::debug!(?cmd, "starting VM {name}");
    let child = cmd.spawn().map_err(IoError::at("running", &tools.qemu))?;
    Ok(Vm {
        name: name.clone(),
        pid: child.id(),
        serial_log,
        qemu_log,
        qga_socket,
        overlay,
        child: Some(child),
    })
}

/// QEMU gets SIGKILL when the thread that started it ends (Ctrl-C, a crash, `kill -9`), so
/// no VM outlives a run that was not asked to keep them. Drop kills them on a normal exit.
/// Writes `out`: Debian's empty OVMF variable store with `pk`, `kek` and `db` (PEM or DER
/// certificates) enrolled under `owner` and Secure Boot on, made with `virt-fw-vars` (PyPI
/// `virt-firmware`).
pub fn enrolled_vars(out: &Path, owner: &str, pk: &Path, kek: &Path, db: &Path) -> Result<()> {
    virt_fw_vars("enrols the keys", |cmd| {
        cmd.arg("-i")
            .arg(OVMF_VARS)
            .arg("-o")
            .arg(out)
            .arg("--secure-boot");
        for (flag, cert) in [("--set-pk", pk), ("--add-kek", kek), ("--add-db", db)] {
            cmd.arg(flag).arg(owner).arg(cert);
        }
    })
}

/// Adds to the OVMF variable store `vars` a UEFI HTTP boot entry for `uri`, booted next
/// (`virt-fw-vars --set-boot-uri`: `BootNext`, once).
pub fn set_boot_uri(vars: &Path, uri: &str) -> Result<()> {
    virt_fw_vars("sets the HTTP boot entry", |cmd| {
        cmd.arg("-i")
            .arg(vars)
            .arg("-o")
            .arg(vars)
            .arg("--set-boot-uri")
            .arg(uri);
    })
}

/// Runs `virt-fw-vars` (PyPI `virt-firmware`) with the arguments `args` adds; `what` it does,
/// for the error when it is missing.
fn virt_fw_vars(what: &str, args: impl FnOnce(&mut Command)) -> Result<()> {
    let tool = which("virt-fw-vars").ok_or_else(|| {
        BootError::SecureBoot(format!(
            "`virt-fw-vars` {what} and is not on PATH: install it with \
             `pip install virt-firmware` (./dev does, into target/virt-firmware)"
        ))
    })?;
    let mut cmd = Command::new(tool);
    args(&mut cmd);
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BootError::SecureBoot(format!("running virt-fw-vars: {e}")))?;
    if !o.status.success() {
        return Err(BootError::SecureBoot(format!(
            "virt-fw-vars failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}

/// Starts a TPM 2.0 emulator for VM `name` (state and log in `run_dir`) and returns its
/// control socket. It runs detached and ends when QEMU closes the connection (`--terminate`).
pub fn start_swtpm(run_dir: &Path, name: &str) -> Result<PathBuf> {
    let swtpm = which("swtpm").ok_or(BootError::Tool {
        tool: "swtpm (the TPM emulator)",
        package: "swtpm",
    })?;
    let state = run_dir.join(format!("{name}.tpm"));
    fs::create_dir_all(&state).map_err(IoError::at("creating", &state))?;
    let socket = run_dir.join(format!("{name}.swtpm.sock"));
    let _ = fs::remove_file(&socket);
    let out = Command::new(swtpm)
        .args(["socket", "--tpm2", "--terminate", "--daemon"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", socket.display()))
        .arg("--log")
        .arg(format!(
            "file={}",
            run_dir.join(format!("{name}.swtpm.log")).display()
        ))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BootError::Qemu {
            host: name.to_string(),
            detail: format!("starting swtpm: {e}"),
        })?;
    if !out.status.success() {
        return Err(BootError::Qemu {
            host: name.to_string(),
            detail: format!(
                "swtpm failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(socket)
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and makes a single prctl system call,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

fn create_overlay(tools: &Tools, image: &Path, format: DiskFormat, overlay: &Path) -> Result<()> {
    let image = fs::canonicalize(image).map_err(|e| BootError::Missing {
        what: "disk image".into(),
        path: image.to_path_buf(),
        source: e,
    })?;
    let out = Command::new(&tools.qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", format.name(), "-b"])
        .arg(&image)
        .arg(overlay)
        .stdin(Stdio::null())
        .output()
        .map_err(IoError::at("running", &tools.qemu_img))?;
    if !out.status.success() {
        return Err(BootError::Qemu {
            host: overlay.display().to_string(),
            detail: format!(
                "qemu-img create failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Console lines that show a kernel past early boot (timer calibration done).
pub const PAST_EARLY_BOOT: &[&str] = &[
    "kiln-initramfs:",
    "Run /init as init process",
    "systemd[1]:",
    "Welcome to",
    "kiln-fixture:",
];

/// Waits until the VM's console shows one of `markers` (returned), QEMU exits (an error with
/// its messages), or `timeout` passes (`None`).
pub fn wait_console(vm: &mut Vm, markers: &[&str], timeout: Duration) -> Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read(&vm.serial_log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if let Some(m) = markers.iter().find(|m| text.contains(**m)) {
            return Ok(Some((*m).to_string()));
        }
        if !vm.running() {
            return Err(BootError::Qemu {
                host: vm.name.clone(),
                detail: format!("QEMU exited: {}", tail(&vm.qemu_log, 10).join(" | ")),
            });
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The outcome of choosing an accelerator.
#[derive(Debug, Clone, Serialize)]
pub struct AccelPick {
    pub accel: Accel,
    /// Why, for the log and the report.
    pub why: String,
}

/// Picks the accelerator: `auto` boots `probe` under KVM in `run_dir` and uses KVM only when
/// its console shows a kernel within `timeout` (KVM that exists but hangs guests is common in
/// nested setups); else TCG.
pub fn pick_accel(
    tools: &Tools,
    choice: AccelChoice,
    probe: &BootFrom,
    run_dir: &Path,
    timeout: Duration,
) -> Result<AccelPick> {
    let pick = |accel, why: &str| {
        Ok(AccelPick {
            accel,
            why: why.to_string(),
        })
    };
    match choice {
        AccelChoice::Kvm => return pick(Accel::Kvm, "--accel kvm"),
        AccelChoice::Tcg => return pick(Accel::Tcg, "--accel tcg"),
        AccelChoice::Auto => {}
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return pick(Accel::Tcg, &format!("/dev/kvm is not usable ({e}): TCG"));
    }
    let spec = VmSpec {
        name: "kvm-probe".into(),
        boot: probe.clone(),
        cdrom: None,
        mac: "52:54:00:00:00:01".into(),
        net: None,
        host_link: None,
        memory_mib: 512,
        cpus: 1,
        firmware: Firmware::Bios,
        vars_template: None,
        tpm: false,
    };
    let mut vm = start(tools, Accel::Kvm, &spec, run_dir, false)?;
    let mut markers = vec!["Linux version"];
    markers.extend_from_slice(PAST_EARLY_BOOT);
    let seen = wait_console(&mut vm, &markers, timeout);
    vm.kill();
    match seen {
        Ok(Some(m)) => pick(Accel::Kvm, &format!("KVM probe boot reached {m:?}")),
        Ok(None) => pick(
            Accel::Tcg,
            &format!("a KVM guest printed no kernel line within {timeout:?}: TCG"),
        ),
        Err(e) => pick(Accel::Tcg, &format!("a KVM guest failed ({e}): TCG")),
    }
}
