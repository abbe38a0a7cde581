//! `kiln build`'s cloud-init seeds (`dist/cloud-init/`), checked by independent tools: cloud-init's
//! own schema check, `blkid`, `xorriso` extracting the ISO, and Python's tarfile and YAML
//! reading the identity archive and `write_files`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::tests_dir;
use crate::common::workspace::{build, build_args, fixture_workspace, report};
use kiln_test_support::{require_tool, run, snapshot};

const SEED_FILES: [&str; 4] = [
    "kiln-identity.tar",
    "meta-data",
    "network-config",
    "user-data",
];

/// Compares the identity archive's regular files with `write_files` (path, bytes, mode, owner).
const SAME_FILES: &str = r#"
import base64, sys, tarfile, yaml
tar = {m.name.lstrip("./").lstrip("/"): (tar_f.extractfile(m).read(), "%04o" % m.mode)
       for tar_f in [tarfile.open(sys.argv[1])] for m in tar_f.getmembers() if m.isfile()
       and m.name.lstrip("./").lstrip("/") != "etc/systemd/network/10-kiln.network"
       and not m.name.lstrip("./").lstrip("/").startswith("run/")}
for m in tarfile.open(sys.argv[1]).getmembers():
    assert not m.isfile() or (m.uid, m.gid) == (0, 0), m.name
doc = yaml.safe_load(open(sys.argv[2]))
wf = {f["path"].lstrip("/"): (base64.b64decode(f["content"]), f["permissions"])
      for f in doc["write_files"]}
assert all(f["owner"] == "root:root" and f["encoding"] == "b64" for f in doc["write_files"])
assert tar == wf, (sorted(tar), sorted(wf))
assert not set(doc) & {"packages", "runcmd", "bootcmd", "package_update", "package_upgrade"}
print(len(wf))
"#;

fn instance_id(dist: &Path, host: &str) -> String {
    let meta = fs::read_to_string(dist.join(format!("cloud-init/{host}/meta-data"))).unwrap();
    meta.lines()
        .find_map(|l| l.strip_prefix("instance-id: "))
        .unwrap()
        .to_string()
}

#[test]
fn build_writes_a_cidata_seed_per_host_that_cloud_init_blkid_and_xorriso_accept() {
    require_tool("xorriso", "xorriso");
    require_tool("cloud-init", "cloud-init");
    require_tool("blkid", "util-linux");
    require_tool("python3", "python3");
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    let rep = report(&dist);
    for host in ["m1", "a1"] {
        let dir = dist.join(format!("cloud-init/{host}"));
        let iso = dist.join(format!("cloud-init/{host}-cidata.iso"));
        for f in SEED_FILES.iter().map(|f| dir.join(f)).chain([iso.clone()]) {
            let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }

        let out = run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(dir.join("user-data")));
        assert!(out.contains("Valid cloud-config"), "{out}");

        // The identity archive, and the seed's copy that kiln-identity.service unpacks before
        // cloud-init runs: the same files, bytes and modes as cloud-init's write_files.
        for tar in [
            dist.join(format!("identity/{host}.tar")),
            dir.join("kiln-identity.tar"),
        ] {
            let n = run(Command::new("python3")
                .args(["-c", SAME_FILES])
                .arg(&tar)
                .arg(dir.join("user-data")));
            assert!(n.trim().parse::<usize>().unwrap() >= 2, "{host}: {n}");
        }
        // It names the user-data it goes with (kiln-identity.service skips cloud-init when the
        // seed's user-data is that one): GNU tar, as the unit runs it, reads the same sha256.
        let sum = run(Command::new("tar")
            .args(["-x", "-O", "-f"])
            .arg(dir.join("kiln-identity.tar"))
            .arg("run/kiln/identity/user-data.sha256"));
        let want = run(Command::new("sha256sum").arg(dir.join("user-data")));
        assert_eq!(sum.trim(), want.split(' ').next().unwrap(), "{host}");
        // GNU tar, which unpacks it on the host, lists the networkd file too.
        let list = run(Command::new("tar")
            .args(["-tvf"])
            .arg(dir.join("kiln-identity.tar")));
        assert!(
            list.lines().any(|l| l.starts_with("-rw-r--r-- 0/0")
                && l.ends_with("etc/systemd/network/10-kiln.network")),
            "{list}"
        );

        let blkid = run(Command::new("blkid").arg(&iso));
        assert!(blkid.contains(r#"LABEL="cidata""#), "{blkid}");
        assert!(blkid.contains(r#"TYPE="iso9660""#), "{blkid}");

        let out = tmp.path().join(format!("extracted-{host}"));
        run(Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&iso)
            .args(["-extract", "/"])
            .arg(&out));
        let mut names: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, SEED_FILES);
        for f in SEED_FILES {
            assert_eq!(
                fs::read(out.join(f)).unwrap(),
                fs::read(dir.join(f)).unwrap()
            );
        }

        let entry = rep["identity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["host"] == host)
            .unwrap();
        assert_eq!(entry["instance_id"], instance_id(&dist, host).as_str());
        assert_eq!(entry["seed_iso"], format!("cloud-init/{host}-cidata.iso"));
    }
    // The seeds are listed in SHA256SUMS like every other output.
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  cloud-init/m1-cidata.iso\n"), "{sums}");
}

#[test]
fn seed_isos_are_reproducible_and_instance_id_follows_the_identity() {
    require_tool("xorriso", "xorriso");
    let (tmp, spec) = fixture_workspace();
    let (d1, d2, d3) = (
        tmp.path().join("dist1"),
        tmp.path().join("dist2"),
        tmp.path().join("dist3"),
    );
    build(&spec, &d1, &[]);
    // Files written in another second: still the same ISO.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build(&spec, &d2, &[]);
    for host in ["m1", "a1"] {
        let iso = format!("cloud-init/{host}-cidata.iso");
        assert_eq!(
            fs::read(d1.join(&iso)).unwrap(),
            fs::read(d2.join(&iso)).unwrap(),
            "{iso} differs between two builds"
        );
    }

    // m1's address changes its identity (identity.env, network); a1's stays as it was.
    let text = fs::read_to_string(&spec).unwrap();
    fs::write(&spec, text.replace("10.9.0.11/24", "10.9.0.12/24")).unwrap();
    build(&spec, &d3, &[]);
    assert_ne!(instance_id(&d1, "m1"), instance_id(&d3, "m1"));
    assert_eq!(instance_id(&d1, "a1"), instance_id(&d3, "a1"));
    let nc = fs::read_to_string(d3.join("cloud-init/m1/network-config")).unwrap();
    assert!(nc.contains("\"10.9.0.12/24\""), "{nc}");
    assert!(nc.contains("macaddress: \"52:54:00:09:00:11\""), "{nc}");
}

#[test]
fn without_xorriso_the_build_stops_first_naming_the_package() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let empty = tmp.path().join("no-tools");
    fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(build_args(&spec, &dist, cache.to_str().unwrap()))
        .env("PATH", &empty)
        .env_remove("KILN_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`xorriso` is needed"), "{stderr}");
    assert!(stderr.contains("apt-get install xorriso"), "{stderr}");
    assert!(!dist.exists(), "nothing is written");
}

/// The seeds of the built-in demo's hosts, rendered from their identity trees (not placed on a
/// base: no build here), byte for byte against `snapshots/demo-seed/HOST/` (every file, no
/// other); `./dev gen` (or `KILN_BLESS=1`) rewrites it.
#[test]
fn demo_seeds_match_their_snapshot_and_cloud_init_accepts_them() {
    require_tool("cloud-init", "cloud-init");
    let src = kiln_pipeline::read_spec(None).unwrap();
    let loaded = kiln_pipeline::validate::load(&src).unwrap();
    let rendered = kiln_pipeline::components::render(&loaded.plan).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut seeds = snapshot::Tree::new();
    for host in &loaded.plan.hosts {
        let name = host.name.as_str();
        let files = kiln_pipeline::stages::identity_files(name, &rendered.hosts[name]).unwrap();
        let seed = kiln_provision::cloudinit::render(host, &files).unwrap();
        for (file, text) in seed.files() {
            seeds.insert(format!("{name}/{file}"), text.into());
        }
        let ud = tmp.path().join(format!("{name}-user-data"));
        fs::write(&ud, &seed.user_data).unwrap();
        run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&ud));
    }
    snapshot::assert_dir(&tests_dir().join("snapshots/demo-seed"), &seeds);
}

/// cloud-init's own hostname code (the installed cloud-init, Debian 12's 22.4 in CI) run in
/// the order a Debian host with the NoCloud datasource runs it on first boot, on a role image's
/// cloud-init config and a host's seed. `argv`: the system config files (kiln's drop-in first,
/// then Debian's `/etc/cloud/cloud.cfg`), the seed directory, a cloud dir, and the file that
/// stands for `/etc/hostname`. Prints the names given to the kernel, one per line.
///
/// 1. `init-local`: `cmd/main.py` `_maybe_set_hostname` runs `set_hostname` with the system
///    config only (user-data is not read yet) and records what it set;
/// 2. `init` (network): `_maybe_set_hostname` again, now with user-data merged, then the
///    `cloud_init_modules` kiln's config lists: `write_files` (kiln's `/etc/hostname` among
///    them), `set_hostname`, `update_hostname`.
const CLOUD_INIT_FIRST_BOOT: &str = r#"
import base64, logging, os, sys, yaml
from cloudinit import cloud, distros, helpers, util
from cloudinit.config import cc_set_hostname, cc_update_hostname
from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloud
kiln_cfg, debian_cfg, seed, cloud_dir, etc_hostname = sys.argv[1:6]
log = logging.getLogger("kiln-test")
system = util.mergemanydict([yaml.safe_load(open(kiln_cfg)), yaml.safe_load(open(debian_cfg))])
user = yaml.safe_load(open(os.path.join(seed, "user-data")))
paths = helpers.Paths({"cloud_dir": cloud_dir})
os.makedirs(paths.get_cpath("data"), exist_ok=True)
d = distros.fetch("debian")("debian", system, paths)
d.hostname_conf_fn = etc_hostname
applied = []
d._apply_hostname = applied.append
ds = DataSourceNoCloud(system, d, paths)
ds.metadata = yaml.safe_load(open(os.path.join(seed, "meta-data")))
def maybe_set_hostname(cfg):  # cmd/main.py _maybe_set_hostname
    c = cloud.Cloud(ds, paths, cfg, d, None)
    hostname, _, _ = util.get_hostname_fqdn(cfg, c, metadata_only=True)
    if hostname:
        cc_set_hostname.handle("set-hostname", cfg, c, log, None)
maybe_set_hostname(system)
merged = util.mergemanydict([user, system])
maybe_set_hostname(merged)
for f in user.get("write_files", []):
    if f["path"] == "/etc/hostname":
        open(etc_hostname, "wb").write(base64.b64decode(f["content"]))
c = cloud.Cloud(ds, paths, merged, d, None)
cc_set_hostname.handle("set_hostname", merged, c, log, None)
cc_update_hostname.handle("update_hostname", merged, c, log, None)
print("\n".join(applied))
"#;

/// cloud-init 22.4 shortened an FQDN node name: with `calico.node.nodename = "fqdn"` it gave
/// the kernel the short name (its first stage reads only the role image's config, where
/// nothing said to prefer the FQDN), so the CNI plugin (`os.Hostname()`) and libnetwork named
/// workloads after another node than calico-node's NODENAME. Run on the demo's host in both
/// modes, cloud-init's own first-boot hostname code leaves the node name in the kernel and
/// in `/etc/hostname`, the same as kiln's `/etc/hostname`, the seed's `local-hostname` and
/// `KILN_NODENAME` (calico-node's NODENAME).
#[test]
fn fqdn_nodename_is_not_shortened_by_cloud_init() {
    require_tool("cloud-init", "cloud-init");
    let python = cloud_init_python();
    let debian_cfg = Path::new("/etc/cloud/cloud.cfg");
    assert!(
        debian_cfg.is_file(),
        "cloud-init's package ships {}",
        debian_cfg.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    for (mode, want) in [("hostname", "node1"), ("fqdn", "node1.kiln.test")] {
        let text = kiln_pipeline::DEMO_SPEC.replace(
            "[calico.node]\nenabled = true\n",
            &format!("[calico.node]\nenabled = true\nnodename = \"{mode}\"\n"),
        );
        assert_ne!(text, kiln_pipeline::DEMO_SPEC);
        let src =
            kiln_pipeline::diag::SpecSource::from_bytes("demo.toml", text.into_bytes()).unwrap();
        let loaded = kiln_pipeline::validate::load(&src).unwrap();
        let rendered = kiln_pipeline::components::render(&loaded.plan).unwrap();
        let host = &loaded.plan.hosts[0];
        let name = host.name.as_str();
        let files = kiln_pipeline::stages::identity_files(name, &rendered.hosts[name]).unwrap();
        let seed = kiln_provision::cloudinit::render(host, &files).unwrap();
        let dir = tmp.path().join(mode);
        let seed_dir = dir.join("seed");
        fs::create_dir_all(&seed_dir).unwrap();
        for (file, text) in seed.files() {
            fs::write(seed_dir.join(file), text).unwrap();
        }
        let profile = &rendered.profiles[host.profile.as_str()];
        let kiln_cfg = dir.join("90-kiln.cfg");
        let cfg = profile
            .get("/etc/cloud/cloud.cfg.d/90-kiln.cfg")
            .and_then(|e| match &e.kind {
                kiln_layers::EntryKind::File(data) => Some(data.clone()),
                _ => None,
            })
            .expect("the role image's cloud-init config");
        fs::write(&kiln_cfg, cfg).unwrap();
        let etc_hostname = dir.join("etc-hostname");
        let out = run(Command::new(&python)
            .args(["-c", CLOUD_INIT_FIRST_BOOT])
            .arg(&kiln_cfg)
            .arg(debian_cfg)
            .arg(&seed_dir)
            .arg(dir.join("cloud"))
            .arg(&etc_hostname));
        let kernel = out.lines().last().unwrap_or_default();
        assert_eq!(
            kernel, want,
            "{mode}: the kernel hostname cloud-init leaves ({out:?})"
        );
        let written = fs::read_to_string(&etc_hostname).unwrap();
        assert_eq!(
            written,
            format!("{want}\n"),
            "{mode}: /etc/hostname after cloud-init"
        );
        let by_path = |p: &str| files.iter().find(|f| f.path == p).map(|f| f.data.clone());
        assert_eq!(by_path("/etc/hostname"), Some(written.clone().into_bytes()));
        let env = String::from_utf8(by_path("/etc/kiln/identity.env").unwrap()).unwrap();
        assert!(
            env.lines().any(|l| l == format!("KILN_NODENAME={want}")),
            "{mode}: calico-node's NODENAME:\n{env}"
        );
        assert!(
            seed.meta_data
                .lines()
                .any(|l| l == format!("local-hostname: {want}")),
            "{mode}: {}",
            seed.meta_data
        );
    }
}

/// The Python that runs cloud-init (its script's `#!` line: Debian's `/usr/bin/python3`, which
/// need not be the `python3` first on PATH).
fn cloud_init_python() -> String {
    let script = run(Command::new("sh").args(["-c", "command -v cloud-init"]));
    let text = fs::read_to_string(script.trim()).unwrap();
    let line = text.lines().next().unwrap_or_default();
    let interp = line.strip_prefix("#!").unwrap_or("/usr/bin/python3").trim();
    interp
        .split_whitespace()
        .next()
        .unwrap_or("/usr/bin/python3")
        .to_string()
}
