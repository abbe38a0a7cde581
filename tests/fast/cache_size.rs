//! The cache stays within its cap (issue 18, item 17). Before, every role image digest ever
//! built left its bootable outputs in `CACHE/boot/` for good — one day of ordinary use held
//! 51 GB there and filled the disk —, a raw disk was stored and copied into `dist/` without
//! its holes, and nothing said how much the cache held.
//!
//! On the bootable fixture (`common/workspace.rs`: real disks, small): `kiln cache prune`
//! removes the least recently used entries down to the cap and never what the newest build
//! uses; a raw disk copied from the cache into `dist/` keeps its holes; `kiln build` ends
//! with a line saying how much the cache holds and prunes it to its cap.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::kiln_code;
use crate::common::workspace::{bootable_workspace, build_args};

/// Bytes on disk of `p` and everything below it (as `du`).
fn du(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            n += du(&e.unwrap().path());
        }
    }
    n
}

/// `kiln build` of `text` into `dist` with the workspace's cache; returns stderr.
fn build_text(spec: &Path, text: &str, dist: &Path, extra: &[&str]) -> String {
    fs::write(spec, text).unwrap();
    let cache = cache_of(spec);
    let mut args = build_args(spec, dist, cache.to_str().unwrap());
    args.extend(extra);
    kiln_code(&args, 0).1
}

fn cache_of(spec: &Path) -> PathBuf {
    spec.with_file_name("cache")
}

/// The boot entries (`CACHE/boot/KEY`), sorted.
fn boot_entries(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Sets the last use of the boot entries `keys` to `age` ago.
fn age_boot_entries(cache: &Path, keys: &[String], age: Duration) {
    for k in keys {
        let f = fs::File::options()
            .write(true)
            .open(cache.join("boot").join(k).join("boot-report.json"))
            .unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }
}

/// The spec with the master at `address`: /etc/hosts names the masters, so every role image
/// (and its boot outputs) changes with it.
fn with_master_at(text: &str, address: &str) -> String {
    assert!(text.contains("10.9.0.11/24"));
    text.replace("10.9.0.11/24", address)
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn cache_prune_keeps_referenced_entries() {
    let (tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let cache = cache_of(&spec);
    let dist = tmp.path().join("dist");

    // Three builds into one output, each with other role images: A, B, then C (the newest).
    build_text(&spec, &with_master_at(&text, "10.9.0.12/24"), &dist, &[]);
    let a = boot_entries(&cache);
    assert_eq!(a.len(), 2, "one entry per role: {a:?}");
    build_text(&spec, &with_master_at(&text, "10.9.0.13/24"), &dist, &[]);
    let b: Vec<String> = boot_entries(&cache)
        .into_iter()
        .filter(|k| !a.contains(k))
        .collect();
    let c_text = with_master_at(&text, "10.9.0.14/24");
    build_text(&spec, &c_text, &dist, &[]);
    let c: Vec<String> = boot_entries(&cache)
        .into_iter()
        .filter(|k| !a.contains(k) && !b.contains(k))
        .collect();
    assert_eq!((b.len(), c.len()), (2, 2));

    // A was last used 3 days ago, B 2 days ago, C (and the record of its build) 1 day ago:
    // older than the grace period, so only the record protects C.
    age_boot_entries(&cache, &a, 3 * DAY);
    age_boot_entries(&cache, &b, 2 * DAY);
    age_boot_entries(&cache, &c, DAY);
    let builds = cache.join("builds");
    let records: Vec<PathBuf> = fs::read_dir(&builds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "one record per output directory");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&records[0]).unwrap()).unwrap();
    let day_ago = SystemTime::now() - DAY;
    record["time"] = day_ago.duration_since(UNIX_EPOCH).unwrap().as_secs().into();
    fs::write(&records[0], serde_json::to_vec(&record).unwrap()).unwrap();

    // A cap that A's removal meets: A goes, B stays.
    let a_size: u64 = a.iter().map(|k| du(&cache.join("boot").join(k))).sum();
    let cap = du(&cache) - a_size;
    let cache_arg = cache.to_str().unwrap();
    let (out, _) = kiln_code(
        &[
            "cache",
            "prune",
            "--cache",
            cache_arg,
            "--max-size",
            &cap.to_string(),
        ],
        0,
    );
    let mut left = boot_entries(&cache);
    assert_eq!(left.len(), 4, "{out}");
    assert!(a.iter().all(|k| !left.contains(k)), "A removed: {out}");
    assert!(du(&cache) <= cap, "{out}");
    for k in &a {
        assert!(
            out.contains(&format!("removed boot outputs boot/{k}")),
            "{out}"
        );
    }

    // No cap at all: B goes, C stays — the newest build of the output uses it.
    let (out, _) = kiln_code(
        &["cache", "prune", "--cache", cache_arg, "--max-size", "1"],
        0,
    );
    left = boot_entries(&cache);
    let mut want = c.clone();
    want.sort();
    assert_eq!(left, want, "{out}");
    assert!(out.contains("kept for the newest builds"), "{out}");

    // And C is whole: a build of C into a new output takes every role's outputs from it.
    let err = build_text(&spec, &c_text, &tmp.path().join("dist2"), &[]);
    assert_eq!(
        err.matches("unchanged (boot cache)").count(),
        2,
        "both roles from the cache:\n{err}"
    );
}

#[test]
fn raw_disk_in_dist_is_sparse() {
    let (tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("disks = [\"raw\"]", "disks = [\"raw\", \"qcow2\"]");
    let cache = cache_of(&spec);
    let first = tmp.path().join("dist1");
    build_text(&spec, &text, &first, &[]);
    // The second build into a new output takes the boot outputs from the cache.
    let second = tmp.path().join("dist2");
    let err = build_text(&spec, &text, &second, &[]);
    assert!(err.contains("boot agent: unchanged (boot cache)"), "{err}");

    let raw = second.join("boot/agent/disk.raw");
    let m = fs::metadata(&raw).unwrap();
    let allocated = m.blocks() * 512;
    assert!(
        m.len() > 64 << 20,
        "a state partition of 64 MiB: {}",
        m.len()
    );
    assert!(
        allocated * 4 < m.len(),
        "{}: {allocated} bytes allocated of {}: copied without its holes",
        raw.display(),
        m.len()
    );
    // The same bytes as the disk the first build made.
    assert_eq!(
        fs::read(&raw).unwrap(),
        fs::read(first.join("boot/agent/disk.raw")).unwrap()
    );
    // The cache keeps the raw disk sparse and no qcow2 beside it: that one is converted
    // again from the raw disk, to the same bytes.
    for k in boot_entries(&cache) {
        let entry = cache.join("boot").join(&k);
        let m = fs::metadata(entry.join("disk.raw")).unwrap();
        assert!(m.blocks() * 512 * 4 < m.len(), "{k}: stored without holes");
        assert!(!entry.join("disk.qcow2").exists(), "{k}: qcow2 stored");
    }
    assert_eq!(
        fs::read(second.join("boot/agent/disk.qcow2")).unwrap(),
        fs::read(first.join("boot/agent/disk.qcow2")).unwrap()
    );
}

#[test]
fn build_summary_reports_cache_size() {
    let (tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let cache = cache_of(&spec);
    let dist = tmp.path().join("dist");
    let err = build_text(&spec, &text, &dist, &[]);
    let line = err
        .lines()
        .find(|l| l.starts_with("cache: "))
        .unwrap_or_else(|| panic!("no cache line:\n{err}"));
    assert!(
        line.contains(&format!(" in {} (cap 20.0 GiB)", cache.display())),
        "{line}"
    );
    let size = line["cache: ".len()..].split(" in ").next().unwrap();
    let (n, unit) = size.split_once(' ').unwrap();
    assert!(
        n.parse::<f64>().is_ok() && ["B", "KiB", "MiB", "GiB"].contains(&unit),
        "{line}"
    );

    // The cap applies after every build: the first build's boot outputs, unused for a day,
    // go when the next build (other role images) would leave the cache over a small cap.
    let first = boot_entries(&cache);
    age_boot_entries(&cache, &first, DAY);
    let err = build_text(
        &spec,
        &with_master_at(&text, "10.9.0.12/24"),
        &dist,
        &["--cache-max-size", "1"],
    );
    let line = err.lines().find(|l| l.starts_with("cache: ")).unwrap();
    assert!(line.contains("(cap 1 B; pruned 2 entries"), "{line}");
    assert!(boot_entries(&cache).iter().all(|k| !first.contains(k)));
    assert_eq!(boot_entries(&cache).len(), 2);

    // A build that finds nothing to do says it too.
    let err = build_text(&spec, &with_master_at(&text, "10.9.0.12/24"), &dist, &[]);
    assert!(err.contains("nothing changed"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("cache: ")), "{err}");
}
