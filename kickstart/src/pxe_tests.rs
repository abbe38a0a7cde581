//! The PXE tree of a test topology (a master, two agents on two role images), byte for byte
//! against `snapshots/pxe/` and `snapshots/pxe-install/` (`KILN_BLESS=1` rewrites them after a
//! deliberate change), plus what each file must hold whatever the layout. GRUB configs are
//! checked by GRUB's own parser (`grub-script-check`, Debian `grub-common`).

use std::fs;
use std::path::Path;
use std::process::Command;

use kiln_model::plan::{AccessPlan, HostPlan, Installer, ProvisionPlan, Roles};
use kiln_model::values::{Fqdn, HostAddr, HostName, HttpUrl, IfName, MacAddr};
use kiln_test_support::require_tool;

use super::*;

fn host(name: &str, master: bool, ip: &str, mac: &str) -> HostPlan {
    HostPlan {
        name: HostName::parse(name).unwrap(),
        fqdn: Fqdn::parse(&format!("{name}.example.test")).unwrap(),
        roles: Roles {
            master,
            agent: !master,
        },
        profile: if master { "master" } else { "agent" }.into(),
        address: HostAddr::parse(ip).unwrap(),
        mac: MacAddr::parse(mac).unwrap(),
        gateway: Some("10.0.0.1".parse().unwrap()),
        dns: vec![],
        interface: IfName::parse("eth0").unwrap(),
        etcd_name: None,
        zk_id: None,
        access: AccessPlan::default(),
    }
}

fn hosts() -> Vec<HostPlan> {
    vec![
        host("m1", true, "10.0.0.11/24", "52:54:00:AA:00:11"),
        host("a1", false, "10.0.0.21/24", "52:54:00:aa:00:21"),
        host("a2", false, "10.0.0.22/24", "52-54-00-aa-00-22"),
    ]
}

fn profile(name: &str, seed: char) -> PxeProfile {
    let hex = |c: char| std::iter::repeat(c).take(64).collect::<String>();
    PxeProfile {
        name: name.into(),
        image: format!("pt-{name}"),
        kernel_sha256: hex(seed),
        initramfs_sha256: hex(char::from(seed as u8 + 1)),
        root_sha256: hex(char::from(seed as u8 + 2)),
        disk_cmdline: format!(
            "console=ttyS0 kiln.image=pt-{name} kiln.disk=0a1b2c3d kiln.root=part:2 \
             kiln.roothash={} kiln.hashoffset=209715200 kiln.state=part:3 apparmor=0",
            hex('f')
        ),
        uki_sha256: None,
        uki_cmdline: String::new(),
    }
}

fn profiles() -> Vec<PxeProfile> {
    vec![profile("master", 'a'), profile("agent", '1')]
}

fn provision(installer: bool) -> ProvisionPlan {
    ProvisionPlan {
        url: HttpUrl::parse("http://10.0.0.5:8080").unwrap(),
        pxe: true,
        installer: installer.then(|| Installer {
            kernel: "http://10.0.0.5:8080/centos/9/vmlinuz".into(),
            initrd: "http://10.0.0.5:8080/centos/9/initrd.img".into(),
        }),
    }
}

/// The PXE tree against the snapshot directory `dir`: every file, and no other (stale files
/// too); `KILN_BLESS=1` rewrites it.
fn compare_snapshot(dir: &Path, files: &[PxeFile]) {
    let tree = kiln_test_support::snapshot::files(files.iter().map(|f| (f.path.clone(), &f.text)));
    assert_eq!(tree.len(), files.len(), "two PXE files with one path");
    kiln_test_support::snapshot::assert_dir(dir, &tree);
}

#[test]
fn pxe_tree_matches_its_snapshot() {
    let files = render("pt", &provision(false), &profiles(), &hosts()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/pxe");
    compare_snapshot(&dir, &files);
}

#[test]
fn pxe_tree_with_an_installer_matches_its_snapshot() {
    let files = render("pt", &provision(true), &profiles(), &hosts()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/pxe-install");
    compare_snapshot(&dir, &files);
    let ipxe = files
        .iter()
        .find(|f| f.path == "mac/52-54-00-aa-00-21-install.ipxe")
        .unwrap();
    assert!(ipxe
        .text
        .contains("inst.ks=http://10.0.0.5:8080/kickstart/a1.ks inst.ks.sendmac"));
}

fn file<'a>(files: &'a [PxeFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .text
}

#[test]
fn each_host_boots_diskless_from_its_own_files() {
    let files = render("pt", &provision(false), &profiles(), &hosts()).unwrap();
    let boot = file(&files, "boot.ipxe");
    assert!(boot.starts_with("#!ipxe\n"));
    assert!(boot.contains("http://10.0.0.5:8080/pxe/mac/${mac:hexhyp}.ipxe || goto unknown"));
    assert!(boot.contains("echo kiln: no host with MAC ${mac} in cluster pt\n"));
    // The refusal never reaches a kernel: nothing after :unknown boots.
    let after = &boot[boot.find(":unknown").unwrap()..];
    for cmd in ["kernel", "chain", "boot", "imgexec", "sanboot", "exit"] {
        assert!(
            !after
                .lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "{cmd} after :unknown"
        );
    }
    let a = "a".repeat(64);
    let m1 = file(&files, "mac/52-54-00-aa-00-11.ipxe");
    let want = format!(
        "kernel --name vmlinuz http://10.0.0.5:8080/pxe/sha256/{a} initrd=initrd.img \
         console=ttyS0 kiln.image=pt-master kiln.root=http://10.0.0.5:8080/pxe/sha256/{} \
         kiln.roothash={} kiln.hashoffset=209715200 apparmor=0 \
         kiln.seed=http://10.0.0.5:8080/cloud-init/m1/ ds=nocloud || goto failed",
        "c".repeat(64),
        "f".repeat(64)
    );
    assert!(m1.lines().any(|l| l == want), "{m1}");
    assert!(m1.contains(&format!(
        "initrd --name initrd.img http://10.0.0.5:8080/pxe/sha256/{} || goto failed",
        "b".repeat(64)
    )));
    for f in &files {
        assert!(!f.text.contains("kiln.disk="), "{}", f.path);
        assert!(!f.text.contains("kiln.state="), "{}", f.path);
        assert!(!f.text.contains("part:"), "{}", f.path);
    }
    // Agents share their role's files, each with its own seed.
    let a1 = file(&files, "pxelinux.cfg/01-52-54-00-aa-00-21");
    let a2 = file(&files, "pxelinux.cfg/01-52-54-00-aa-00-22");
    assert!(a1.contains("kiln.seed=http://10.0.0.5:8080/cloud-init/a1/ ds=nocloud\n"));
    assert!(a2.contains("kiln.seed=http://10.0.0.5:8080/cloud-init/a2/ ds=nocloud\n"));
    assert!(a1.contains(&format!(
        "KERNEL http://10.0.0.5:8080/pxe/sha256/{}",
        "1".repeat(64)
    )));
    // GRUB: both names, same text.
    let g = file(&files, "grub/grub.cfg-01-52-54-00-aa-00-22");
    assert_eq!(g, file(&files, "grub/grub.cfg-52-54-00-aa-00-22"));
    assert!(g.contains(" kiln.seed=http://10.0.0.5:8080/cloud-init/a2/ ds=nocloud\n"));
    assert_eq!(grub_quote("a ds=x;s=y b"), "a 'ds=x;s=y' b");
    assert!(g.contains(&format!(
        "linux (http,10.0.0.5:8080)/pxe/sha256/{} ",
        "1".repeat(64)
    )));
}

#[test]
fn a_disk_cmdline_without_a_root_is_refused() {
    assert!(matches!(
        diskless_cmdline("console=ttyS0", "http://x/r", "http://x/s/"),
        Err(PxeError::NoRoot { .. })
    ));
}

#[test]
fn a_network_uki_line_names_the_root_by_digest_and_the_seeds_by_mac() {
    let p = profile("agent", 'a');
    let line = network_uki_cmdline(
        &p.disk_cmdline,
        &provision(false),
        &p.root_sha256,
        &["kiln.seed-signer=ab12".to_string()],
    )
    .unwrap();
    assert_eq!(
        line,
        format!(
            "console=ttyS0 kiln.image=pt-agent kiln.root=http://10.0.0.5:8080/pxe/sha256/{} \
             kiln.roothash={} kiln.hashoffset=209715200 apparmor=0 \
             kiln.seed-by-mac=http://10.0.0.5:8080/cloud-init/mac/ ds=nocloud kiln.seed-signer=ab12",
            "c".repeat(64),
            "f".repeat(64)
        )
    );
}

#[test]
fn uefi_ipxe_chains_the_network_uki_and_bios_ipxe_boots_the_kernel() {
    let mut ps = profiles();
    for p in &mut ps {
        p.uki_sha256 = Some("9".repeat(64));
        p.uki_cmdline = format!("kiln.image=pt-{} UKI-LINE", p.name);
    }
    let files = render("pt", &provision(false), &ps, &hosts()).unwrap();
    let a1 = &files
        .iter()
        .find(|f| f.path == "mac/52-54-00-aa-00-21.ipxe")
        .unwrap()
        .text;
    let (bios, uefi) = a1.split_once(":uki\n").unwrap();
    assert!(
        bios.contains("iseq ${platform} efi && goto uki ||\n"),
        "{a1}"
    );
    assert!(bios.contains("\nkernel --name vmlinuz "), "{a1}");
    assert!(
        uefi.contains(&format!(
            "chain --name kiln.efi http://10.0.0.5:8080/pxe/sha256/{} kiln.image=pt-agent \
             UKI-LINE ||\n",
            "9".repeat(64)
        )),
        "{a1}"
    );
    assert!(!uefi.contains("kernel --name"), "{a1}");
}

#[test]
fn grub_parses_every_grub_config() {
    let check = require_tool("grub-script-check", "grub-common");
    let files = render("pt", &provision(true), &profiles(), &hosts()).unwrap();
    let dir = kiln_test_support::tempdir();
    for f in files.iter().filter(|f| f.path.starts_with("grub/")) {
        let p = dir.path().join("grub.cfg");
        fs::write(&p, &f.text).unwrap();
        let out = Command::new(&check).arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.path,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dhcp_reservations_give_each_mac_its_spec_address() {
    let files = render("pt", &provision(false), &profiles(), &hosts()).unwrap();
    let isc = file(&files, "dhcp/dhcpd-hosts.conf");
    let dnsmasq = file(&files, "dhcp/dnsmasq-hosts.conf");
    for (name, mac, ip) in [
        ("m1", "52:54:00:aa:00:11", "10.0.0.11"),
        ("a1", "52:54:00:aa:00:21", "10.0.0.21"),
        ("a2", "52:54:00:aa:00:22", "10.0.0.22"),
    ] {
        let want = format!("host {name} {{ hardware ethernet {mac}; fixed-address {ip}; }}");
        assert_eq!(isc.lines().filter(|l| *l == want).count(), 1, "{isc}");
        let want = format!("dhcp-host={mac},{ip},{name}");
        assert_eq!(
            dnsmasq.lines().filter(|l| *l == want).count(),
            1,
            "{dnsmasq}"
        );
    }
    // Nothing but comments and one line per host: no prefix, gateway or secret.
    for text in [isc, dnsmasq] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(text.ends_with("}\n") || text.ends_with(",a2\n"), "{text:?}");
    }
}

#[test]
fn dnsmasq_accepts_the_reservations() {
    let dnsmasq = require_tool("dnsmasq", "dnsmasq-base");
    let files = render("pt", &provision(false), &profiles(), &hosts()).unwrap();
    let dir = kiln_test_support::tempdir();
    let conf = dir.path().join("dnsmasq-hosts.conf");
    fs::write(&conf, file(&files, "dhcp/dnsmasq-hosts.conf")).unwrap();
    // --test parses the whole configuration (and the file it names) and exits.
    let out = Command::new(&dnsmasq)
        .arg("--test")
        .arg("--conf-file=/dev/null")
        .arg(format!("--conf-file={}", conf.display()))
        .arg("--dhcp-range=10.0.0.0,static")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("syntax check OK"), "{text}");
}

#[test]
fn isc_dhcpd_accepts_the_reservations() {
    // ISC dhcpd's own parser (`dhcpd -t`), from Debian's isc-dhcp-server package unpacked
    // here, not installed: installing it would start a DHCP server on the machine.
    // `apt-get download` reaches Debian's mirror (as the etcd-server source test does).
    require_tool("apt-get", "apt");
    require_tool("dpkg-deb", "dpkg");
    let dir = kiln_test_support::tempdir();
    let out = Command::new("apt-get")
        .args(["download", "isc-dhcp-server"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apt-get download isc-dhcp-server (needs `apt-get update` to have run): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap();
    let root = dir.path().join("root");
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let files = render("pt", &provision(false), &profiles(), &hosts()).unwrap();
    let hosts_conf = dir.path().join("dhcpd-hosts.conf");
    fs::write(&hosts_conf, file(&files, "dhcp/dhcpd-hosts.conf")).unwrap();
    let conf = dir.path().join("dhcpd.conf");
    fs::write(
        &conf,
        format!(
            "subnet 10.0.0.0 netmask 255.255.255.0 {{ }}\ninclude \"{}\";\n",
            hosts_conf.display()
        ),
    )
    .unwrap();
    let check = |conf: &Path| {
        Command::new(root.join("usr/sbin/dhcpd"))
            .arg("-t")
            .arg("-cf")
            .arg(conf)
            .output()
            .unwrap()
    };
    let out = check(&conf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a malformed declaration is refused.
    fs::write(
        &hosts_conf,
        "host m1 { hardware ethernet zz; fixed-address 10.0.0.11 }\n",
    )
    .unwrap();
    assert!(!check(&conf).status.success());
}
