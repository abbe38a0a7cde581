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

const SEED_FILES: [&str; 3] = ["meta-data", "network-config", "user-data"];

/// Compares the identity archive's regular files with `write_files` (path, bytes, mode, owner).
const SAME_FILES: &str = r#"
import base64, sys, tarfile, yaml
tar = {m.name.lstrip("./").lstrip("/"): (tar_f.extractfile(m).read(), "%04o" % m.mode)
       for tar_f in [tarfile.open(sys.argv[1])] for m in tar_f.getmembers() if m.isfile()
       and m.name.lstrip("./").lstrip("/") != "etc/systemd/network/10-kiln.network"}
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

        let n = run(Command::new("python3")
            .args(["-c", SAME_FILES])
            .arg(dist.join(format!("identity/{host}.tar")))
            .arg(dir.join("user-data")));
        assert!(n.trim().parse::<usize>().unwrap() >= 2, "{host}: {n}");

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

/// cloud-init's own hostname code (the installed cloud-init, Debian 12's 22.4 in CI), run as
/// `set_hostname` and `update_hostname` run it on a Debian host with the NoCloud datasource,
/// on a seed (`argv[1]`: its directory): writes the name it would put in `/etc/hostname` to
/// the file `argv[2]` and prints the name it would give the kernel.
const CLOUD_INIT_HOSTNAME: &str = r#"
import os, sys, yaml
from cloudinit import distros, helpers, util
from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloud
seed = sys.argv[1]
cfg = yaml.safe_load(open(os.path.join(seed, "user-data")))
paths = helpers.Paths({})
d = distros.fetch("debian")("debian", {}, paths)
d.hostname_conf_fn = sys.argv[2]
applied = []
d._apply_hostname = applied.append
ds = DataSourceNoCloud({}, d, paths)
ds.metadata = yaml.safe_load(open(os.path.join(seed, "meta-data")))
class Cloud:  # cloudinit.cloud.Cloud.get_hostname, which passes through to the datasource
    def get_hostname(self, fqdn=False, metadata_only=False):
        return ds.get_hostname(fqdn=fqdn, metadata_only=metadata_only)
prefer = util.get_cfg_option_bool(cfg, "prefer_fqdn_over_hostname", None)
if prefer is not None:
    d.set_option("prefer_fqdn_over_hostname", prefer)
hostname, fqdn, _ = util.get_hostname_fqdn(cfg, Cloud())
d.set_hostname(hostname, fqdn)
print(applied[0])
"#;

/// cloud-init 22.4 shortened an FQDN node name: with `calico.node.nodename = "fqdn"` it wrote
/// the short name to the kernel and `/etc/hostname`, so the CNI plugin (`os.Hostname()`) and
/// libnetwork named workloads after another node than calico-node's NODENAME. In both modes
/// the name cloud-init writes and applies, kiln's `/etc/hostname`, the seed's
/// `local-hostname` and `KILN_NODENAME` (calico-node's NODENAME) are one name.
#[test]
fn fqdn_nodename_is_not_shortened_by_cloud_init() {
    require_tool("python3", "python3");
    require_tool("cloud-init", "cloud-init");
    let python = cloud_init_python();
    for (mode, suffix) in [("hostname", ""), ("fqdn", ".kiln.test")] {
        let (tmp, spec) = fixture_workspace();
        let text = fs::read_to_string(&spec).unwrap().replace(
            "[calico.node]\n",
            &format!("[calico.node]\nnodename = \"{mode}\"\n"),
        );
        fs::write(&spec, text).unwrap();
        let dist = tmp.path().join("dist");
        build(&spec, &dist, &[]);
        for host in ["m1", "a1"] {
            let want = format!("{host}{suffix}");
            let seed = dist.join(format!("cloud-init/{host}"));
            let written = tmp.path().join(format!("{host}-{mode}-hostname"));
            let out = run(Command::new(&python)
                .args(["-c", CLOUD_INIT_HOSTNAME])
                .arg(&seed)
                .arg(&written));
            let applied = out.trim().to_string();
            assert_eq!(
                applied, want,
                "{mode}: the kernel hostname cloud-init sets on {host}"
            );
            let file = fs::read_to_string(&written).unwrap();
            assert_eq!(
                file,
                format!("{want}\n"),
                "{mode}: cloud-init's /etc/hostname on {host}"
            );
            let meta = fs::read_to_string(seed.join("meta-data")).unwrap();
            assert!(
                meta.lines().any(|l| l == format!("local-hostname: {want}")),
                "{mode}: {host}'s meta-data:\n{meta}"
            );
            let files = write_files(&seed.join("user-data"));
            assert_eq!(
                files.get("/etc/hostname").map(String::as_str),
                Some(file.as_str()),
                "{mode}: kiln's /etc/hostname on {host} differs from cloud-init's"
            );
            let env = files
                .get("/etc/kiln/identity.env")
                .cloned()
                .unwrap_or_default();
            assert!(
                env.lines().any(|l| l == format!("KILN_NODENAME={want}")),
                "{mode}: calico-node's NODENAME on {host}:\n{env}"
            );
        }
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

/// The `write_files` of a user-data file: path → text.
fn write_files(user_data: &Path) -> std::collections::BTreeMap<String, String> {
    let out = run(Command::new("python3")
        .args([
            "-c",
            "import base64, json, sys, yaml\n\
             doc = yaml.safe_load(open(sys.argv[1]))\n\
             print(json.dumps({f['path']: base64.b64decode(f['content']).decode() \
             for f in doc.get('write_files', []) if f.get('encoding') == 'b64'}))",
        ])
        .arg(user_data));
    serde_json::from_str(&out).unwrap()
}
