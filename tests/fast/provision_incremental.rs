//! Provisioning artifacts are written incrementally (`kiln_pipeline::stages::provision::write`, what
//! `kiln build` and `benches/provision_scale.rs` use): after one host's identity changes only
//! that host's seed files and kickstart are written again (every other file keeps its inode,
//! mtime and bytes; an address change also rewrites the PXE host list and the DHCP
//! reservations, which list every host's address), and a removed host's files are gone —
//! from the library call on a three-host cluster with kickstarts and a PXE tree, and through
//! `kiln build`, which links the previous output's files into its staging directory and keeps
//! unchanged seed ISOs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use kiln_layers::FileTree;
use kiln_pipeline::diag::SpecSource;
use kiln_pipeline::stages::provision::{self, Provision, WriteStats};
use kiln_pipeline::stages::Dist;
use kiln_provision::pxe::PxeProfile;

use crate::common::workspace::{build, fixture_workspace};
use crate::common::{changed_keys, files_below, without_calico_node};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel test@kiln";

/// m1 (master), a2 and a3 (agents), kickstarts on, PXE with an installer entry; `a2` at
/// `a2_address`; a3 only `with_a3`. No calico-node: Stream 9 has no legacy iptables for it.
fn spec(a2_address: &str, with_a3: bool) -> String {
    let mut s = format!(
        "[cluster]\nname = \"inc\"\ndomain = \"kiln.test\"\n\n[boot]\nenabled = true\ndisks = []\n\n\
         [access]\nssh_authorized_keys = [\"{KEY}\"]\n\n\
         [kickstart]\nenabled = true\ntarget = \"stream9\"\nmode = \"packages\"\n\
         install_url = \"http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os\"\n\n\
         [provision]\nurl = \"http://10.8.0.5:8080/\"\n\n\
         [calico.node]\nenabled = false\n\n\
         [[hosts]]\nname = \"m1\"\nroles = [\"master\"]\naddress = \"10.8.0.11/24\"\nmac = \"52:54:00:08:00:11\"\ngateway = \"10.8.0.1\"\n\n\
         [[hosts]]\nname = \"a2\"\nroles = [\"agent\"]\naddress = \"{a2_address}\"\nmac = \"52:54:00:08:00:22\"\ngateway = \"10.8.0.1\"\n\n"
    );
    if with_a3 {
        s.push_str("[[hosts]]\nname = \"a3\"\nroles = [\"agent\"]\naddress = \"10.8.0.23/24\"\nmac = \"52:54:00:08:00:23\"\ngateway = \"10.8.0.1\"\n");
    }
    s
}

/// `provision::write` of `text` into `dist`, with made-up boot file digests.
fn write(text: String, dist: &Dist) -> WriteStats {
    let loaded = kiln_pipeline::validate::load(&SpecSource {
        name: "inc.toml".into(),
        text,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = &loaded.plan;
    let rendered = kiln_pipeline::components::render(plan).unwrap();
    let profiles: Vec<PxeProfile> = plan
        .profiles
        .iter()
        .map(|p| PxeProfile {
            name: p.name.clone(),
            image: format!("inc-{}", p.name),
            kernel_sha256: "1".repeat(64),
            initramfs_sha256: "2".repeat(64),
            root_sha256: "3".repeat(64),
            disk_cmdline: format!("console=ttyS0 kiln.image=inc-{} kiln.root=part:2", p.name),
            uki_sha256: None,
            uki_cmdline: String::new(),
        })
        .collect();
    provision::write(
        &Provision {
            plan,
            rendered: &rendered,
            base: &FileTree::new(),
            pxe: Some(&profiles),
            pxe_loaders: &[],
            liveimg: &BTreeMap::new(),
            signer: None,
        },
        dist,
    )
    .unwrap()
    .stats
}

/// Every file below `dir` (relative path → inode, mtime, mode, bytes).
type Snapshot = BTreeMap<String, (u64, (i64, i64), u32, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    files_below(dir, |p, m| {
        let mode = m.permissions().mode() & 0o7777;
        (
            m.ino(),
            (m.mtime(), m.mtime_nsec()),
            mode,
            fs::read(p).unwrap(),
        )
    })
}

/// Paths whose entry differs between `a` and `b`, or that only one has.
fn changed(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    changed_keys(a, b)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_identity_change_rewrites_only_that_hosts_files_and_a_removed_hosts_files_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = Dist::new(tmp.path());
    let first = write(spec("10.8.0.22/24", true), &dist);
    let s1 = snapshot(tmp.path());
    assert_eq!(first.written.len(), s1.len(), "{:?}", first.written);
    assert!(s1.contains_key("kickstart/a3.ks"));
    assert!(s1.contains_key("pxe/mac/52-54-00-08-00-23-install.ipxe"));
    for (rel, (_, _, mode, _)) in &s1 {
        let want = if rel.starts_with("pxe/") {
            0o644
        } else {
            0o600
        };
        assert_eq!(*mode, want, "{rel}");
    }

    // Writing the same plan again touches nothing.
    let again = write(spec("10.8.0.22/24", true), &dist);
    assert!(again.written.is_empty() && again.removed.is_empty());
    assert_eq!(again.unchanged, s1.len());
    assert_eq!(snapshot(tmp.path()), s1);

    // a2's address changes: its seed and kickstart, and the three files that list every
    // host's address (the PXE host list `kiln serve` binds each host's files to, and the
    // DHCP reservations that give the host that address); nothing else.
    let moved = write(spec("10.8.0.42/24", true), &dist);
    let s2 = snapshot(tmp.path());
    let a2 = strings(&[
        "cloud-init/a2/kiln-identity.tar",
        "cloud-init/a2/meta-data",
        "cloud-init/a2/network-config",
        "cloud-init/a2/user-data",
        "cloud-init/mac/52-54-00-08-00-22/kiln-identity.tar",
        "cloud-init/mac/52-54-00-08-00-22/meta-data",
        "cloud-init/mac/52-54-00-08-00-22/network-config",
        "cloud-init/mac/52-54-00-08-00-22/user-data",
        "kickstart/a2.ks",
        "pxe/dhcp/dhcpd-hosts.conf",
        "pxe/dhcp/dnsmasq-hosts.conf",
        "pxe/hosts.json",
    ]);
    assert_eq!(changed(&s1, &s2), a2);
    let mut written = moved.written.clone();
    written.sort();
    assert_eq!(written, a2);
    let dhcp = String::from_utf8(s2["pxe/dhcp/dnsmasq-hosts.conf"].3.clone()).unwrap();
    assert!(
        dhcp.contains("dhcp-host=52:54:00:08:00:22,10.8.0.42,a2\n"),
        "{dhcp}"
    );
    assert!(moved.removed.is_empty());
    let net = String::from_utf8(s2["cloud-init/a2/network-config"].3.clone()).unwrap();
    assert!(net.contains("10.8.0.42/24"), "{net}");
    assert_eq!(
        s2["kickstart/a2.ks"].2, 0o600,
        "a rewritten file keeps its mode"
    );

    // a3 leaves the cluster: its files go; hosts.json and the reservations no longer list it.
    let removed = write(spec("10.8.0.42/24", false), &dist);
    let s3 = snapshot(tmp.path());
    let gone = strings(&[
        "cloud-init/a3/kiln-identity.tar",
        "cloud-init/a3/meta-data",
        "cloud-init/a3/network-config",
        "cloud-init/a3/user-data",
        "cloud-init/mac/52-54-00-08-00-23/kiln-identity.tar",
        "cloud-init/mac/52-54-00-08-00-23/meta-data",
        "cloud-init/mac/52-54-00-08-00-23/network-config",
        "cloud-init/mac/52-54-00-08-00-23/user-data",
        "kickstart/a3.ks",
        "pxe/dhcp/dhcpd-hosts.conf",
        "pxe/dhcp/dnsmasq-hosts.conf",
        "pxe/grub/grub.cfg-01-52-54-00-08-00-23",
        "pxe/grub/grub.cfg-52-54-00-08-00-23",
        "pxe/hosts.json",
        "pxe/mac/52-54-00-08-00-23-install.ipxe",
        "pxe/mac/52-54-00-08-00-23.ipxe",
        "pxe/pxelinux.cfg/01-52-54-00-08-00-23",
    ]);
    assert_eq!(changed(&s2, &s3), gone);
    assert!(s3.contains_key("pxe/hosts.json"));
    assert!(!tmp.path().join("cloud-init/a3").exists());
    let rewritten = strings(&[
        "pxe/dhcp/dhcpd-hosts.conf",
        "pxe/dhcp/dnsmasq-hosts.conf",
        "pxe/hosts.json",
    ]);
    assert_eq!(removed.written, rewritten);
    let mut removed_paths = removed.removed.clone();
    removed_paths.sort();
    let mut want: Vec<String> = gone
        .iter()
        .filter(|p| !rewritten.contains(p))
        .cloned()
        .collect();
    want.push("cloud-init/a3/".into());
    want.push("cloud-init/mac/52-54-00-08-00-23/".into());
    want.sort();
    assert_eq!(removed_paths, want);
    let hosts = String::from_utf8(s3["pxe/hosts.json"].3.clone()).unwrap();
    assert!(!hosts.contains("a3") && hosts.contains("a2"), "{hosts}");
}

#[test]
fn a_stray_file_in_a_provisioning_directory_is_removed_and_a_changed_mode_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = Dist::new(tmp.path());
    write(spec("10.8.0.22/24", false), &dist);
    fs::create_dir_all(tmp.path().join("cloud-init/gone")).unwrap();
    fs::write(tmp.path().join("cloud-init/gone/user-data"), "old\n").unwrap();
    fs::write(tmp.path().join("kickstart/.a2.ks.kiln-tmp-1"), "half\n").unwrap();
    fs::create_dir_all(tmp.path().join("pxe/sha256")).unwrap();
    fs::write(tmp.path().join("pxe/sha256/boot-file"), "not provision's\n").unwrap();
    let ks = tmp.path().join("kickstart/m1.ks");
    fs::set_permissions(&ks, fs::Permissions::from_mode(0o644)).unwrap();
    let ino = fs::metadata(&ks).unwrap().ino();

    let stats = write(spec("10.8.0.22/24", false), &dist);
    assert_eq!(stats.written, strings(&["kickstart/m1.ks"]));
    assert_eq!(
        fs::metadata(&ks).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_ne!(
        fs::metadata(&ks).unwrap().ino(),
        ino,
        "renamed over, not chmod'ed"
    );
    let mut removed = stats.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        strings(&[
            "cloud-init/gone/",
            "cloud-init/gone/user-data",
            "kickstart/.a2.ks.kiln-tmp-1"
        ])
    );
    assert!(
        tmp.path().join("pxe/sha256/boot-file").exists(),
        "pxe/sha256 is the build's"
    );
}

/// The files of `dist` under cloud-init/ and kickstart/.
fn provisioning(dist: &Path) -> Snapshot {
    let mut all = snapshot(dist.join("cloud-init").as_path());
    all = all
        .into_iter()
        .map(|(k, v)| (format!("cloud-init/{k}"), v))
        .collect();
    for (k, v) in snapshot(dist.join("kickstart").as_path()) {
        all.insert(format!("kickstart/{k}"), v);
    }
    all
}

#[test]
fn kiln_build_rewrites_only_the_changed_hosts_provisioning_files() {
    let (tmp, spec) = fixture_workspace();
    let text = without_calico_node(&fs::read_to_string(&spec).unwrap());
    let text = format!(
        "{text}\n[[hosts]]\nname = \"a2\"\nroles = [\"agent\"]\naddress = \"10.9.0.22/24\"\nmac = \"52:54:00:09:00:22\"\n\n\
         [kickstart]\nenabled = true\ntarget = \"stream9\"\nmode = \"packages\"\n\
         install_url = \"http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os\"\n\n\
         [provision]\nurl = \"http://10.9.0.5:8080/\"\npxe = false\n"
    );
    fs::write(&spec, &text).unwrap();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let s1 = provisioning(&dist);
    assert!(s1.contains_key("cloud-init/a1-cidata.iso"));

    fs::write(&spec, text.replace("10.9.0.21/24", "10.9.0.41/24")).unwrap();
    build(&spec, &dist, &[]);
    let s2 = provisioning(&dist);
    let a1 = strings(&[
        "cloud-init/a1-cidata.iso",
        "cloud-init/a1/kiln-identity.tar",
        "cloud-init/a1/meta-data",
        "cloud-init/a1/network-config",
        "cloud-init/a1/user-data",
        "kickstart/a1.ks",
    ]);
    assert_eq!(changed(&s1, &s2), a1);
    // The seed volume holds the new address.
    let iso = fs::read(dist.join("cloud-init/a1-cidata.iso")).unwrap();
    assert!(memchr::memmem::find(&iso, b"10.9.0.41/24").is_some());

    // a2 leaves: its files go, the others stay as they were.
    let text = text.replace("10.9.0.21/24", "10.9.0.41/24");
    let cut = text.find("[[hosts]]\nname = \"a2\"").unwrap();
    let end = cut + text[cut..].find("\n\n").unwrap() + 2;
    fs::write(&spec, format!("{}{}", &text[..cut], &text[end..])).unwrap();
    build(&spec, &dist, &[]);
    let s3 = provisioning(&dist);
    let a2 = strings(&[
        "cloud-init/a2-cidata.iso",
        "cloud-init/a2/kiln-identity.tar",
        "cloud-init/a2/meta-data",
        "cloud-init/a2/network-config",
        "cloud-init/a2/user-data",
        "kickstart/a2.ks",
    ]);
    assert_eq!(changed(&s2, &s3), a2);
    assert!(!dist.join("cloud-init/a2").exists());
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(
        !sums.contains(" cloud-init/a2") && !sums.contains(" kickstart/a2.ks"),
        "{sums}"
    );
}
