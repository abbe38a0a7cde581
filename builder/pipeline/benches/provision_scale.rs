//! Benchmark: every host's provisioning artifacts for 1,000, 5,000 and 10,000 hosts.
//!
//! `cargo bench -p kiln-pipeline --bench provision_scale` (`-- --readme` prints the README block,
//! `-- --runs N` runs each size N times, 3 by default: seconds are the median and range). Per
//! size and run, in a child process of this binary (so that its peak RSS is that size's):
//! a spec of 5 masters and N-5 agents with `[kickstart]` (stream9, `packages` mode: the role's
//! files in `%post`, no image needed) and `[provision]` (PXE with the kickstart install entry) is parsed, validated
//! and rendered, and `kiln_pipeline::stages::provision::write` — the function `kiln build` calls —
//! writes every seed file (no ISOs: xorriso is `kiln build`'s), kickstart and PXE config into
//! an empty directory. The PXE configs reference **synthetic** boot files (fake sha256s of
//! kernel, initramfs and root image per role; nothing here boots). Then one agent's address
//! changes, the spec is rendered again and written into the same directory: every file's
//! inode, mtime and bytes are compared before and after, and the benchmark fails unless
//! exactly that host's files changed (and the three that list every host's address:
//! `pxe/hosts.json` and the DHCP reservations). A third write with nothing changed shows the
//! cost of the comparison alone. Peak RSS is the child's `VmHWM` right after the first write (spec,
//! plan, render and write; the benchmark's own snapshots come later).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use kiln_layers::FileTree;
use kiln_pipeline::diag::SpecSource;
use kiln_pipeline::stages::provision::{self, Provision};
use kiln_pipeline::stages::Dist;
use kiln_provision::pxe::PxeProfile;
use sha2::{Digest, Sha256};

const SIZES: [usize; 3] = [1_000, 5_000, 10_000];
const MASTERS: usize = 5;

/// The spec of `hosts` hosts; host `changed` (an agent) gets another address.
fn spec(hosts: usize, changed: Option<usize>) -> String {
    let mut s = String::from(
        "[cluster]\nname = \"scale\"\ndomain = \"scale.example\"\n\n\
         [boot]\nenabled = true\ndisks = []\n\n\
         [access]\nssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel bench@kiln\"]\n\n\
         [kickstart]\nenabled = true\ntarget = \"stream9\"\nmode = \"packages\"\n\
         install_url = \"http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os\"\n\
         packages = [\"chrony\", \"firewalld\"]\n\n\
         [provision]\nurl = \"http://10.0.0.1:8080/\"\n\
         \n",
    );
    for i in 0..hosts {
        let (name, role) = if i < MASTERS {
            (format!("m{i}"), "master")
        } else {
            (format!("a{i}"), "agent")
        };
        let n = i + 2; // 10.0.0.1 is the gateway
        let a = if changed == Some(i) { n + 200_000 } else { n };
        let _ = write!(
            s,
            "[[hosts]]\nname = \"{name}\"\nroles = [\"{role}\"]\naddress = \"10.{}.{}.{}/8\"\nmac = \"02:00:00:{:02x}:{:02x}:{:02x}\"\ngateway = \"10.0.0.1\"\n\n",
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255,
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255
        );
    }
    s
}

fn fake_sha256(what: &str) -> String {
    hex::encode(Sha256::digest(what.as_bytes()))
}

/// Every file under `dir`: relative path → (inode, mtime in ns, sha256 of the bytes).
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, i128, [u8; 32])> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                let digest = Sha256::digest(std::fs::read(&p).unwrap()).into();
                out.insert(rel, (m.ino(), mtime, digest));
            }
        }
    }
    out
}

/// Writes every host's artifacts of `text` into `dist`; returns (seconds, CPU seconds, stats),
/// timed from the spec text: parse, validation, plan, render and the write.
fn write(text: String, dist: &Dist) -> (f64, f64, provision::WriteStats) {
    let t = Instant::now();
    let cpu = cpu_seconds();
    let src = SpecSource {
        name: "scale.toml".into(),
        text,
    };
    let loaded = kiln_pipeline::validate::load(&src).unwrap_or_else(|r| panic!("{r}"));
    let plan = loaded.plan;
    let rendered = kiln_pipeline::components::render(&plan).unwrap();
    let profiles: Vec<PxeProfile> = plan
        .profiles
        .iter()
        .map(|p| PxeProfile {
            name: p.name.clone(),
            image: format!("{}-{}", plan.cluster, p.name),
            kernel_sha256: fake_sha256(&format!("{} vmlinuz", p.name)),
            initramfs_sha256: fake_sha256(&format!("{} initramfs.img", p.name)),
            root_sha256: fake_sha256(&format!("{} root.img", p.name)),
            disk_cmdline: format!(
                "console=ttyS0 kiln.image={}-{} kiln.disk=PARTUUID=00000000-01 kiln.root=part:2 \
                 kiln.roothash={} kiln.hashoffset=268435456 kiln.state=part:3 apparmor=0",
                plan.cluster,
                p.name,
                fake_sha256(&format!("{} roothash", p.name))
            ),
            uki_sha256: None,
            uki_cmdline: String::new(),
        })
        .collect();
    let base = FileTree::new();
    let liveimg = BTreeMap::new();
    let out = provision::write(
        &Provision {
            plan: &plan,
            rendered: &rendered,
            base: &base,
            pxe: Some(&profiles),
            pxe_loaders: &[],
            liveimg: &liveimg,
            signer: None,
        },
        dist,
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(out.hosts.len(), plan.hosts.len());
    (secs, cpu, out.stats)
}

/// CPU seconds (user + system, every thread) this process has used so far: `utime` and
/// `stime` of `/proc/self/stat`, in USER_HZ (100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of proc(5); `after_comm` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What the file system alone takes for the same files: each path of `written` created
/// empty (one thread) beside `dir` with the same directories. ext4's inode allocation varies
/// a lot with what was deleted lately (seen: 30,000 empty files in 0.6 s to 1.8 s on the same
/// disk within minutes), so this is the figure to read the write's time against.
fn fs_floor(dir: &Path, written: &[String]) -> f64 {
    let mut name = dir.file_name().unwrap().to_os_string();
    name.push(".fs-floor");
    let floor = dir.with_file_name(name);
    let t = Instant::now();
    for rel in written {
        let p = floor.join(rel);
        if let Some(parent) = p.parent() {
            if !parent.is_dir() {
                std::fs::create_dir_all(parent).unwrap();
            }
        }
        std::fs::File::create(&p).unwrap();
    }
    t.elapsed().as_secs_f64()
}

/// One size, in this process, into the empty directory `dir`: prints one JSON line.
fn child(hosts: usize, dir: &Path) {
    let dist = Dist::new(dir);
    let (cold, cold_cpu, stats) = write(spec(hosts, None), &dist);
    // Spec, plan, render and the write, before the benchmark's own bookkeeping.
    let hwm_write = vm_hwm_kib();
    assert!(stats.removed.is_empty());
    let files = stats.written.len();
    let bytes: u64 = stats
        .written
        .iter()
        .map(|r| std::fs::metadata(dist.root().join(r)).unwrap().len())
        .sum();
    let before = snapshot(dist.root());
    assert_eq!(before.len(), files, "every file on disk was written once");
    let floor = fs_floor(dir, &stats.written);

    // One agent's identity changes.
    let changed = hosts / 2;
    let name = format!("a{changed}");
    let (one, one_cpu, stats) = write(spec(hosts, Some(changed)), &dist);
    let after = snapshot(dist.root());
    assert_eq!(after.len(), before.len());
    let differing: Vec<&String> = after
        .iter()
        .filter(|(rel, now)| before.get(*rel) != Some(now))
        .map(|(rel, _)| rel)
        .collect();
    // Its own files, and the three that list every host's address.
    let own = |rel: &str| {
        rel.starts_with(&format!("cloud-init/{name}/"))
            || rel == format!("kickstart/{name}.ks")
            || rel == "pxe/hosts.json"
            || rel.starts_with("pxe/dhcp/")
    };
    assert!(
        differing.iter().all(|r| own(r)),
        "only {name}'s files may change: {differing:?}"
    );
    assert!(!differing.is_empty());
    let mut reported = stats.written.clone();
    reported.sort();
    let mut seen: Vec<String> = differing.iter().map(|s| s.to_string()).collect();
    seen.sort();
    assert_eq!(reported, seen, "write reports what changed on disk");

    let (nothing, _, stats) = write(spec(hosts, Some(changed)), &dist);
    assert!(stats.written.is_empty() && stats.removed.is_empty());

    println!(
        "{}",
        serde_json::json!({
            "hosts": hosts,
            "files": files,
            "mib": bytes as f64 / (1024.0 * 1024.0),
            "cold": cold,
            "cold_cpu": cold_cpu,
            "floor": floor,
            "one_cpu": one_cpu,
            "changed_files": seen,
            "one": one,
            "nothing": nothing,
            "hwm_kib": hwm_write,
            "hwm_all_kib": vm_hwm_kib(),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args[i + 1].parse().unwrap(), Path::new(&args[i + 2]));
        return;
    }
    let readme = args.iter().any(|a| a == "--readme");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .map_or(3, |i| args[i + 1].parse().unwrap());
    let exe = std::env::current_exe().unwrap();
    // Removed only at the end: ext4 allocates inodes more slowly right after many were
    // deleted (it skips recently freed ones), which would charge a run with the previous
    // run's clean-up. `TMPDIR` chooses the file system.
    let tmp = tempfile::tempdir().unwrap();
    // Sizes interleaved, so a busy moment of the machine does not fall on one size only.
    let mut results: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
    for run in 0..runs {
        for n in SIZES {
            let dir = tmp.path().join(format!("{n}-{run}"));
            std::fs::create_dir(&dir).unwrap();
            let out = Command::new(&exe)
                .args(["--child", &n.to_string()])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{n} hosts: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            results.entry(n).or_default().push(v);
        }
    }
    // Median (and range) over the runs of one figure.
    let stat = |vs: &[serde_json::Value], key: &str| -> String {
        let mut xs: Vec<f64> = vs.iter().map(|v| v[key].as_f64().unwrap()).collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[xs.len() / 2];
        if xs.len() > 1 {
            format!("{median:.2} ({:.2}–{:.2})", xs[0], xs[xs.len() - 1])
        } else {
            format!("{median:.2}")
        }
    };
    let mut t = String::new();
    t.push_str(
        "| hosts | files written | MiB | spec → files in an empty dir: s | CPU s | file system alone: the same files created empty, s | peak RSS (MiB) | one agent's address changed: files rewritten | s | CPU s | nothing changed: s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for (n, vs) in &results {
        let v = &vs[0];
        let changed: Vec<&str> = v["changed_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for other in vs {
            assert_eq!(other["changed_files"], v["changed_files"]);
            assert_eq!(other["files"], v["files"]);
        }
        // The host's own four files, named once.
        let host = changed
            .first()
            .and_then(|c| c.split('/').nth(1))
            .unwrap_or_default()
            .trim_end_matches(".ks");
        let peak = vs
            .iter()
            .map(|v| v["hwm_kib"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let _ = writeln!(
            t,
            "| {n} | {} | {:.0} | {} | {} | {} | {:.0} | {} ({host}: seed files and kickstart; hosts.json and the DHCP reservations) | {} | {} | {} |",
            v["files"],
            v["mib"].as_f64().unwrap(),
            stat(vs, "cold"),
            stat(vs, "cold_cpu"),
            stat(vs, "floor"),
            peak / 1024.0,
            changed.len(),
            stat(vs, "one"),
            stat(vs, "one_cpu"),
            stat(vs, "nothing"),
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if readme {
        println!("<!-- bench:provision_scale -->");
        print!("{t}");
        println!(
            "\nSeconds: median (min–max) of {runs} runs, each from the spec text: parse, \
             validation, plan, render and write; CPU s is user + system time of all \
             threads in that time (on an idle machine the write takes about CPU s / \
             {cores} of wall clock, the threads being busy together). Peak RSS: the highest VmHWM after the \
             first write (spec, plan, render and write; each run in its own process). \
             Measured on {cores} cores."
        );
        println!("<!-- /bench:provision_scale -->");
    } else {
        println!(
            "provisioning artifacts (seed files, stream9 packages kickstarts, PXE configs with \
             an installer entry; synthetic boot digests), {MASTERS} masters + agents, {cores} \
             cores, median (min–max) of {runs} runs\n"
        );
        print!("{t}");
    }
}
