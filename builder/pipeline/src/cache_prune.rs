//! How much the cache holds, what the newest builds use, and pruning: `kiln cache prune`, and
//! the cap `kiln build` applies after every build.
//!
//! What is pruned, by kind of entry (everything else — `refs/`, `partial/`, `builds/`,
//! temporary files, directories kiln does not know — is counted in the size, never removed):
//!
//! | entry | what | made again by |
//! |---|---|---|
//! | `boot/KEY/` | one role image's bootable outputs (the bulk: root image, sparse raw disk) | the next build that needs them (minutes) |
//! | `layers/KEY.json` + `layers/blobs/sha256/HEX` | a compressed layer (the blob with every key naming it) | compressing it again |
//! | `blobs/sha256/HEX` | a source: a download, an imported file, a Debian base, an image's blob | fetching (or mmdebstrap) again; `--offline` cannot |
//!
//! **Referenced entries are never pruned.** Every `kiln build` (also one that finds nothing
//! to do) records what it used in `builds/OUTPUT-ID.json`, one record per output directory,
//! replaced by the next build into it: its boot entries, and every digest it used — the
//! lock entries (sources and the base), the base's and the baked images' blobs, and every
//! blob of the images it wrote (its layers). An entry is referenced when the records of the
//! [`PruneOptions::keep_builds`] most recently built output directories name it. Entries
//! written or used in the last [`GRACE`] are kept too (a build running beside may be using
//! them before its record is written).
//!
//! **Last use** of an entry is the later of its file's mtime (a boot entry's is touched on
//! every hit) and the time of the newest record naming it; `--older-than` and the cap go by
//! it, oldest first. Sizes are what the files take on disk (allocated blocks, as `du`): a
//! sparse raw disk counts its data, not its length.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The cap `kiln build` prunes the cache to when neither `--cache-max-size` nor
/// [`MAX_SIZE_ENV`] says otherwise: 20 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

/// The environment variable that sets the cap (`20G`, `500M`, `0` for no automatic pruning).
pub const MAX_SIZE_ENV: &str = "KILN_CACHE_MAX_SIZE";

/// How many output directories' newest builds keep their entries.
pub const DEFAULT_KEEP_BUILDS: usize = 3;

/// Entries written or used this recently are never pruned.
pub const GRACE: Duration = Duration::from_secs(10 * 60);

const BUILDS: &str = "builds";

/// What one build used, recorded in the cache (`builds/ID.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The output directory (absolute where it could be made so).
    pub output: String,
    /// Seconds since the epoch when the build finished.
    pub time: u64,
    /// Keys of the boot entries (`boot/KEY/`) it used.
    pub boot: Vec<String>,
    /// Every sha256 (hex) it used: sources, base, image blobs, layers.
    pub digests: Vec<String>,
}

/// Records `record` as the newest build into its output directory (written beside and
/// renamed: a record is whole or absent).
pub fn record_build(cache: &Path, mut record: BuildRecord) -> io::Result<()> {
    let dir = cache.join(BUILDS);
    fs::create_dir_all(&dir)?;
    record.boot.sort();
    record.boot.dedup();
    record.digests.sort();
    record.digests.dedup();
    let id = hex::encode(&Sha256::digest(record.output.as_bytes())[..12]);
    let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".{id}.json.{}", std::process::id()));
    fs::write(&tmp, json)?;
    fs::rename(&tmp, dir.join(format!("{id}.json")))
}

/// Every record in the cache, newest first.
fn records(cache: &Path) -> Vec<(PathBuf, BuildRecord)> {
    let mut out: Vec<(PathBuf, BuildRecord)> = fs::read_dir(cache.join(BUILDS))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !name_of(p).starts_with('.'))
        .filter_map(|p| {
            let r = serde_json::from_slice(&fs::read(&p).ok()?).ok()?;
            Some((p, r))
        })
        .collect();
    out.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(a.0.cmp(&b.0)));
    out
}

/// The kind of a cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `boot/KEY/`.
    Boot,
    /// A layer blob and the keys naming it.
    Layer,
    /// A source blob.
    Source,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Boot => "boot outputs",
            Kind::Layer => "layer",
            Kind::Source => "source",
        }
    }
}

/// One prunable entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// Its main path (the boot directory, the blob), relative to the cache.
    pub path: String,
    /// Every path that goes with it (relative to the cache).
    pub paths: Vec<String>,
    /// Bytes on disk.
    pub size: u64,
    /// When it was last written or used.
    pub last_use: SystemTime,
    /// Named by one of the newest builds' records.
    pub referenced: bool,
}

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Remove entries (oldest use first) until the cache holds at most this many bytes.
    pub max_size: Option<u64>,
    /// Remove entries not used for this long.
    pub older_than: Option<Duration>,
    /// The newest build of this many output directories keeps its entries.
    pub keep_builds: usize,
    /// Only say what would go.
    pub dry_run: bool,
    /// "Now" (tests move it).
    pub now: SystemTime,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_size: Some(DEFAULT_MAX_SIZE),
            older_than: None,
            keep_builds: DEFAULT_KEEP_BUILDS,
            dry_run: false,
            now: SystemTime::now(),
        }
    }
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Bytes the cache held before.
    pub size_before: u64,
    /// Bytes it holds after (with `dry_run`: would hold).
    pub size_after: u64,
    /// The entries removed (with `dry_run`: that would be).
    pub removed: Vec<Entry>,
    /// Bytes of referenced entries (kept whatever the cap).
    pub referenced: u64,
    /// Entries kept (prunable or not).
    pub kept: usize,
}

impl PruneReport {
    /// Bytes freed.
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|e| e.size).sum()
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Bytes on disk of `path` (a file, or a directory and everything in it; symlinks not
/// followed).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        for e in fs::read_dir(path).into_iter().flatten().flatten() {
            total += disk_usage(&e.path());
        }
    }
    total
}

fn mtime(path: &Path) -> SystemTime {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH)
}

/// Every prunable entry of the cache, with what the newest `keep_builds` records reference.
pub fn entries(cache: &Path, keep_builds: usize) -> Vec<Entry> {
    let records = records(cache);
    // Last use by record (every record counts for the time; only the newest keep_builds
    // protect).
    let mut used_at: BTreeMap<String, u64> = BTreeMap::new();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for (i, (_, r)) in records.iter().enumerate() {
        let names = r
            .boot
            .iter()
            .map(|k| format!("boot:{k}"))
            .chain(r.digests.iter().map(|d| format!("sha256:{d}")));
        for n in names {
            let t = used_at.entry(n.clone()).or_insert(0);
            *t = (*t).max(r.time);
            if i < keep_builds {
                referenced.insert(n);
            }
        }
    }
    let last_use = |own: SystemTime, name: &str| {
        let by_record = used_at
            .get(name)
            .map(|s| UNIX_EPOCH + Duration::from_secs(*s))
            .unwrap_or(UNIX_EPOCH);
        own.max(by_record)
    };
    let mut out = Vec::new();

    for e in fs::read_dir(cache.join("boot"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let (p, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        if name.starts_with('.') || !p.is_dir() {
            continue;
        }
        let marker = p.join("boot-report.json");
        let own = if marker.is_file() {
            mtime(&marker)
        } else {
            mtime(&p)
        };
        let id = format!("boot:{name}");
        out.push(Entry {
            kind: Kind::Boot,
            path: format!("boot/{name}"),
            paths: vec![format!("boot/{name}")],
            size: disk_usage(&p),
            last_use: last_use(own, &id),
            referenced: referenced.contains(&id),
        });
    }

    // Layers: each blob with the keys naming it; keys whose blob is gone alone.
    let mut keys_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for e in fs::read_dir(cache.join("layers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let (p, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        let Some(key) = name.strip_suffix(".json") else {
            continue;
        };
        if !is_hex64(key) {
            continue;
        }
        #[derive(Deserialize)]
        struct Layer {
            digest: String,
        }
        let blob = fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Layer>(&b).ok())
            .map(|l| l.digest.trim_start_matches("sha256:").to_string())
            .filter(|h| is_hex64(h));
        match blob {
            Some(h) => keys_of.entry(h).or_default().push(name),
            None => orphans.push(name),
        }
    }
    let layer_blobs = cache.join("layers/blobs/sha256");
    let mut blob_names: BTreeSet<String> = fs::read_dir(&layer_blobs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_hex64(n))
        .collect();
    blob_names.extend(keys_of.keys().cloned());
    for hex in blob_names {
        let blob = layer_blobs.join(&hex);
        let keys = keys_of.remove(&hex).unwrap_or_default();
        let mut paths = vec![format!("layers/blobs/sha256/{hex}")];
        paths.extend(keys.iter().map(|k| format!("layers/{k}")));
        let own = paths
            .iter()
            .map(|p| mtime(&cache.join(p)))
            .max()
            .unwrap_or(UNIX_EPOCH);
        let id = format!("sha256:{hex}");
        out.push(Entry {
            kind: Kind::Layer,
            path: paths[0].clone(),
            size: paths.iter().map(|p| disk_usage(&cache.join(p))).sum(),
            paths,
            last_use: last_use(own, &id),
            referenced: referenced.contains(&id) && blob.is_file(),
        });
    }
    for k in orphans {
        let p = format!("layers/{k}");
        out.push(Entry {
            kind: Kind::Layer,
            size: disk_usage(&cache.join(&p)),
            last_use: mtime(&cache.join(&p)),
            path: p.clone(),
            paths: vec![p],
            referenced: false,
        });
    }

    for e in fs::read_dir(cache.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let (p, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        if !is_hex64(&name) {
            continue;
        }
        let id = format!("sha256:{name}");
        let rel = format!("blobs/sha256/{name}");
        out.push(Entry {
            kind: Kind::Source,
            size: disk_usage(&p),
            last_use: last_use(mtime(&p), &id),
            referenced: referenced.contains(&id),
            path: rel.clone(),
            paths: vec![rel],
        });
    }
    out
}

/// Removes what `opts` asks for: entries unused for `older_than`, then the least recently
/// used until the cache holds at most `max_size` — never a referenced entry, never one used
/// within [`GRACE`]. Records of output directories past the newest `keep_builds` that name
/// nothing left are removed with them.
pub fn prune(cache: &Path, opts: &PruneOptions) -> io::Result<PruneReport> {
    let size_before = disk_usage(cache);
    let mut all = entries(cache, opts.keep_builds);
    // Oldest use first.
    all.sort_by(|a, b| a.last_use.cmp(&b.last_use).then(a.path.cmp(&b.path)));
    let referenced = all.iter().filter(|e| e.referenced).map(|e| e.size).sum();
    let mut size = size_before;
    let mut removed = Vec::new();
    let mut kept = 0;
    for e in all {
        let age = opts.now.duration_since(e.last_use).unwrap_or_default();
        let old = opts.older_than.is_some_and(|d| age >= d);
        let over = opts.max_size.is_some_and(|m| size > m);
        if e.referenced || age < GRACE || !(old || over) {
            kept += 1;
            continue;
        }
        if !opts.dry_run {
            for p in &e.paths {
                let p = cache.join(p);
                let r = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                match r {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
        size = size.saturating_sub(e.size);
        removed.push(e);
    }
    if !opts.dry_run {
        drop_stale_records(cache, opts.keep_builds);
    }
    Ok(PruneReport {
        size_before,
        size_after: if opts.dry_run {
            size
        } else {
            disk_usage(cache)
        },
        removed,
        referenced,
        kept,
    })
}

/// Records past the newest `keep` protect nothing; they only date their entries' last use.
/// Those whose entries are all gone are removed.
fn drop_stale_records(cache: &Path, keep: usize) {
    for (path, r) in records(cache).into_iter().skip(keep) {
        let boot_left = r.boot.iter().any(|k| cache.join("boot").join(k).is_dir());
        let blob_left = r.digests.iter().any(|d| {
            cache.join("blobs/sha256").join(d).is_file()
                || cache.join("layers/blobs/sha256").join(d).is_file()
        });
        if !boot_left && !blob_left {
            let _ = fs::remove_file(path);
        }
    }
}

/// `20G`, `20GiB`, `512M`, `1.5T`, `4096` (bytes): powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 20G, 512M, 4096)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30d, 12h, 90m)"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: give a unit: s, m, h, d or w")),
    };
    Ok(Duration::from_secs(n * secs))
}

/// `7.4 GiB`, `512.0 MiB`, `12 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The cap from [`MAX_SIZE_ENV`] (`None`: `0`, no automatic pruning), else
/// [`DEFAULT_MAX_SIZE`].
pub fn max_size_from_env() -> Result<Option<u64>, String> {
    match std::env::var(MAX_SIZE_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let n = parse_size(&v).map_err(|e| format!("{MAX_SIZE_ENV}: {e}"))?;
            Ok((n > 0).then_some(n))
        }
        _ => Ok(Some(DEFAULT_MAX_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("20X").is_err() && parse_size("G").is_err());
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5400);
        assert!(parse_duration("30").is_err());
        assert_eq!(human(7_945_689_497), "7.4 GiB");
        assert_eq!(human(100), "100 B");
    }
}
