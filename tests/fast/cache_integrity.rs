//! Cache integrity (issue 9, item 5), seen from `kiln build`: a corrupt entry is named,
//! removed and restored from its source while the build goes on; the cache and the output
//! share no inode with the user's files or with each other; a full disk says so, with the
//! path; an OS error is said once. The layer cache under faults (issue 18, items 13 and 14): a
//! full disk leaves no partial file, a dead writer's partial files are removed by the next
//! build, and a truncated blob, a wrong size and a flipped byte are each said in one line.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::kiln_code;
use crate::common::workspace::{build_args, fixture_workspace};
use kiln_pipeline::sources::cache::sha256_hex;
use kiln_test_support::require_tool;

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(files(&p));
        } else if m.is_file() {
            out.push(p);
        }
    }
    out
}

/// `(device, inode)` → path of every regular file under `dirs`.
fn inodes(dirs: &[&Path]) -> BTreeMap<(u64, u64), PathBuf> {
    dirs.iter()
        .flat_map(|d| files(d))
        .map(|p| {
            let m = fs::metadata(&p).unwrap();
            ((m.dev(), m.ino()), p)
        })
        .collect()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// The largest blob of an OCI layout (its layer), by file name (the digest's hex).
fn largest_blob(layout: &Path) -> String {
    files(&layout.join("blobs/sha256"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn build(spec: &Path, dist: &Path, cache: &Path) -> String {
    kiln_code(&build_args(spec, dist, cache.to_str().unwrap()), 0).1
}

/// Regression: a corrupt cache entry was removed and the build stopped ("run again"); it is
/// now copied again from the local OCI layout it came from, named, and the build goes on.
#[test]
fn a_corrupt_blob_from_a_local_oci_layout_is_restored_and_the_build_goes_on() {
    let (tmp, spec) = fixture_workspace();
    let (dist, cache) = (tmp.path().join("dist"), tmp.path().join("cache"));
    build(&spec, &dist, &cache);
    let sums = fs::read(dist.join("SHA256SUMS")).unwrap();
    let hex = largest_blob(&tmp.path().join("base-oci"));
    let entry = cache.join("blobs/sha256").join(&hex);
    flip_a_byte(&entry);
    fs::remove_dir_all(&dist).unwrap();
    let err = build(&spec, &dist, &cache);
    assert!(
        err.contains(&format!("cache entry {} was corrupt", entry.display()))
            && err.contains("restored it from image:oci:base-oci:base"),
        "{err}"
    );
    assert_eq!(sha256_hex(&fs::read(&entry).unwrap()), hex);
    assert_eq!(fs::read(dist.join("SHA256SUMS")).unwrap(), sums);
}

/// A corrupt compressed layer in the layer cache is named, removed and compressed anew; the
/// output is the same as before.
#[test]
fn a_corrupt_layer_cache_entry_is_named_and_compressed_anew() {
    let (tmp, spec) = fixture_workspace();
    let (dist, cache) = (tmp.path().join("dist"), tmp.path().join("cache"));
    build(&spec, &dist, &cache);
    let sums = fs::read(dist.join("SHA256SUMS")).unwrap();
    let entry = files(&cache.join("layers/blobs/sha256"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip_a_byte(&entry);
    fs::remove_dir_all(&dist).unwrap();
    let err = build(&spec, &dist, &cache);
    assert!(
        err.contains(&format!("layer cache entry {} is corrupt", entry.display())),
        "{err}"
    );
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(sha256_hex(&fs::read(&entry).unwrap()), name);
    assert_eq!(fs::read(dist.join("SHA256SUMS")).unwrap(), sums);
}

/// Regression: blobs were hard-linked from the user's OCI layout into the cache and from the
/// cache into `dist/`, so writing one file changed all three.
#[test]
fn cache_and_dist_share_no_inode_with_user_files_or_each_other() {
    let (tmp, spec) = fixture_workspace();
    // A `file =` source too.
    let etcd = tmp.path().join("etcd");
    fs::write(
        &etcd,
        "#!/bin/sh\n# kiln test fixture standing in for etcd\n",
    )
    .unwrap();
    let text = fs::read_to_string(&spec).unwrap();
    let with_file = text.replacen(
        "[etcd]\nsource = { base = true }",
        "[etcd]\nsource = { file = \"etcd\", dest = \"/usr/bin/etcd\", mode = 0o755 }",
        1,
    );
    assert_ne!(with_file, text);
    fs::write(&spec, with_file).unwrap();
    let (dist, cache) = (tmp.path().join("dist"), tmp.path().join("cache"));
    build(&spec, &dist, &cache);

    let user_layouts = [
        tmp.path().join("base-oci"),
        tmp.path().join("calico-node-oci"),
    ];
    let mut user = inodes(&[&user_layouts[0], &user_layouts[1]]);
    let m = fs::metadata(&etcd).unwrap();
    user.insert((m.dev(), m.ino()), etcd.clone());
    let cached = inodes(&[&cache]);
    let out = inodes(&[&dist]);
    // The same blobs are in all three, as separate files.
    let hex = largest_blob(&user_layouts[0]);
    assert!(cache.join("blobs/sha256").join(&hex).is_file());
    assert!(dist.join("oci/blobs/sha256").join(&hex).is_file());
    for (a, b, what) in [
        (&user, &cached, "the user's files and the cache"),
        (&user, &out, "the user's files and dist"),
        (&cached, &out, "the cache and dist"),
    ] {
        let shared: Vec<_> = a
            .keys()
            .filter(|k| b.contains_key(k))
            .map(|k| &a[k])
            .collect();
        assert!(shared.is_empty(), "{what} share inodes: {shared:?}");
    }
    for p in user.values().chain(cached.values()).chain(out.values()) {
        assert_eq!(
            fs::metadata(p).unwrap().nlink(),
            1,
            "{} is hard-linked",
            p.display()
        );
    }
}

/// Runs `kiln ARGS` with a `size` tmpfs mounted at `mnt`, in a mount namespace of its own (no
/// mount outlives it); after kiln, what is left on the tmpfs is listed on stdout. Returns
/// (exit code, stdout, stderr).
fn with_full_disk(mnt: &Path, size: &str, args: &[&str]) -> (i32, String, String) {
    on_tmpfs(mnt, size, args, "ls -A \"$0\"")
}

/// [`with_full_disk`], running the shell command `after` (`$0` is `mnt`) once kiln is done,
/// with the tmpfs still mounted; its output is stdout.
fn on_tmpfs(mnt: &Path, size: &str, args: &[&str], after: &str) -> (i32, String, String) {
    require_tool("unshare", "util-linux");
    fs::create_dir_all(mnt).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.arg("--mount");
    if !rustix::process::geteuid().is_root() {
        cmd.arg("--map-root-user");
    }
    let script = format!(
        "mount -t tmpfs -o size={size} kiln-test \"$0\" || exit 99; \"$@\"; rc=$?; {after}; exit $rc"
    );
    let out = cmd
        .args(["--propagation", "private", "sh", "-c", &script])
        .arg(mnt)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_LOG")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code,
        99,
        "cannot mount a tmpfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 9, item 5: a full disk says "disk full" with the path, says the OS error once and
/// does not send the user to `--mirror`; a render cut short by it leaves nothing behind.
#[test]
fn a_full_disk_is_named_with_its_path_and_no_mirror_is_suggested() {
    let (tmp, spec) = fixture_workspace();
    let full = tmp.path().join("full");
    let cache = full.join("cache");
    let dist = tmp.path().join("dist");
    // The fixture base's layer (about 1 MB) does not fit into the cache.
    let args = build_args(&spec, &dist, cache.to_str().unwrap());
    let (code, _, err) = with_full_disk(&full, "256k", &args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert!(err.contains(&cache.display().to_string()), "{err}");
    assert!(!err.contains("--mirror"), "{err}");
    assert_eq!(err.matches("os error 28").count(), 1, "{err}");

    let out = full.join("out");
    let (code, left, err) = with_full_disk(&full, "16k", &["render", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("disk full") && err.contains(&out.display().to_string()),
        "{err}"
    );
    assert_eq!(err.matches("os error 28").count(), 1, "{err}");
    assert_eq!(left.trim(), "", "left on the full disk: {left}");
}

/// Regression: an I/O error printed its OS error once per nesting level ("…: Not a directory
/// (os error 20): Not a directory (os error 20)").
#[test]
fn an_os_error_is_said_once() {
    let (tmp, spec) = fixture_workspace();
    let file = tmp.path().join("a-file");
    fs::write(&file, "").unwrap();
    let cache = file.join("cache");
    let res = crate::common::kiln(&build_args(
        &spec,
        &tmp.path().join("dist"),
        cache.to_str().unwrap(),
    ));
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    assert!(err.contains(&cache.display().to_string()), "{err}");
}

/// The layer cache's files whose name ends in `.partial`, relative to `layers`.
fn partials(layers: &Path) -> Vec<String> {
    let mut v: Vec<String> = files(layers)
        .into_iter()
        .map(|p| p.strip_prefix(layers).unwrap().display().to_string())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    v.sort();
    v
}

/// Regression (issue 18, item 13): a full disk while the layer cache copied a layer in left
/// `HEX.partial` (as large as the copy got) on the cache's file system, filling it for every
/// later build. The partial file is removed on any error, a full disk included; the build
/// itself goes on (a layer that is not cached only costs a later recompression) and says why
/// the layer stayed uncached.
#[test]
fn disk_full_in_layer_cache_leaves_no_partial_files() {
    let (tmp, spec) = fixture_workspace();
    let cache = tmp.path().join("cache");
    let layers = cache.join("layers");
    let dist = tmp.path().join("dist");
    // The config layers fit into 256 KiB; the layer of baked images (busybox, about 1 MB)
    // does not.
    let args = build_args(&spec, &dist, cache.to_str().unwrap());
    let (code, left, err) = on_tmpfs(
        &layers,
        "256k",
        &args,
        "find \"$0\" -name '*.partial'; df -k \"$0\" >&2",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        left.trim(),
        "",
        "partial files left on the full disk: {left}\n{err}"
    );
    assert!(err.contains("layer cache: could not record"), "{err}");
    assert!(err.contains("(disk full)"), "{err}");
}

/// Regression (issue 18, item 13): partial files of a build that died while writing the
/// layer cache stayed forever. The next build removes those nobody holds, and leaves alone
/// the partial file a live build is writing (it holds its `flock`) and one written after the
/// build started.
#[test]
fn stale_partials_are_removed_by_the_next_build() {
    let (tmp, spec) = fixture_workspace();
    let cache = tmp.path().join("cache");
    let layers = cache.join("layers");
    let blobs = layers.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let in_an_hour = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let plant = |rel: &str, size: usize, mtime| {
        let path = layers.join(rel);
        fs::write(&path, vec![0u8; size]).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime).unwrap();
        f
    };
    let dead_blob = format!("blobs/sha256/{}.partial", "a".repeat(64));
    let dead_record = format!("{}.json.partial", "b".repeat(64));
    let live = format!("blobs/sha256/{}.partial", "c".repeat(64));
    let newer = format!("blobs/sha256/{}.partial", "d".repeat(64));
    plant(&dead_blob, 20 << 20, an_hour_ago);
    plant(&dead_record, 100, an_hour_ago);
    // A build still writing: it holds the partial file's lock.
    let writer = plant(&live, 1 << 20, an_hour_ago);
    rustix::fs::flock(
        &writer,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    plant(&newer, 100, in_an_hour);

    let dist = tmp.path().join("dist");
    build(&spec, &dist, &cache);
    assert_eq!(partials(&layers), [live.clone(), newer.clone()]);
    // Once its writer is gone, the next build removes it too.
    drop(writer);
    fs::File::options()
        .write(true)
        .open(layers.join(&live))
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    fs::remove_dir_all(&dist).unwrap();
    build(&spec, &dist, &cache);
    assert_eq!(partials(&layers), [newer]);
}

/// The record (`KEY.json`) of the layer-cache entry whose blob is `hex`.
fn record_of(layers: &Path, hex: &str) -> PathBuf {
    fs::read_dir(layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "json")
                && fs::read_to_string(p).unwrap().contains(hex)
        })
        .unwrap()
}

/// Regression (issue 18, item 14): a truncated layer-cache blob and a record giving another
/// size were repaired silently, while a flipped byte got a warning. All three are said the
/// same way: one warning line naming the blob, what was wrong, and that the layer is
/// compressed anew; the output is the same as before, and so is the cache.
#[test]
fn truncated_and_resized_cache_blobs_are_reported_like_corrupt_ones() {
    let (tmp, spec) = fixture_workspace();
    let (dist, cache) = (tmp.path().join("dist"), tmp.path().join("cache"));
    let layers = cache.join("layers");
    build(&spec, &dist, &cache);
    let sums = fs::read(dist.join("SHA256SUMS")).unwrap();
    let blob = files(&layers.join("blobs/sha256"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let hex = blob.file_name().unwrap().to_string_lossy().into_owned();
    let record = record_of(&layers, &hex);
    let bytes = fs::read(&blob).unwrap();
    let text = fs::read_to_string(&record).unwrap();
    let size = bytes.len();
    let resized = text.replace(
        &format!("\"size\":{size}"),
        &format!("\"size\":{}", size + 7),
    );
    assert_ne!(resized, text, "{text}");
    let faults: [(&str, &dyn Fn(), String); 3] = [
        (
            "truncated",
            &|| fs::write(&blob, &bytes[..size / 2]).unwrap(),
            format!("(truncated: {} of {size} bytes)", size / 2),
        ),
        (
            "resized",
            &|| fs::write(&record, &resized).unwrap(),
            format!(
                "(size mismatch: its record says {} bytes, the blob has {size})",
                size + 7
            ),
        ),
        (
            "flipped",
            &|| flip_a_byte(&blob),
            "(digest mismatch: its sha256 is ".into(),
        ),
    ];
    for (name, fault, what) in faults {
        fault();
        fs::remove_dir_all(&dist).unwrap();
        let err = build(&spec, &dist, &cache);
        let said: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(&blob.display().to_string()))
            .collect();
        assert_eq!(said.len(), 1, "{name}: not said in one line:\n{err}");
        let want = format!("layer cache entry {} is corrupt {what}", blob.display());
        assert!(
            said[0].contains(&want),
            "{name}: no {want:?} in {:?}",
            said[0]
        );
        assert!(
            said[0].contains("removed it, the layer is compressed anew"),
            "{name}: {:?}",
            said[0]
        );
        assert!(said[0].contains("WARN"), "{name}: {:?}", said[0]);
        assert_eq!(fs::read(dist.join("SHA256SUMS")).unwrap(), sums, "{name}");
        assert_eq!(
            fs::read(&blob).unwrap(),
            bytes,
            "{name}: the blob was not restored"
        );
        assert_eq!(fs::read_to_string(&record).unwrap(), text, "{name}");
    }
}
