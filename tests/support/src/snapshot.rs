//! Snapshot tests, one way for every suite: what a test produced is compared byte for byte
//! with files committed under a snapshot directory (or one snapshot file).
//!
//! - Without `KILN_BLESS`, [`assert_dir`] fails on every file that differs, is new (produced
//!   but not in the snapshot) or is stale (in the snapshot but no longer produced), naming
//!   each file, and says how to accept an intended change: `./dev gen`, or the test run with
//!   `KILN_BLESS=1`.
//! - With `KILN_BLESS=1` it rewrites the snapshot instead: changed and new files are written,
//!   stale ones deleted (and directories they leave empty); unchanged files are not touched.
//!   Review the result with `git diff` before committing it.
//!
//! A snapshot directory holds regular files and symbolic links (compared by target); file
//! modes are not part of a snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The environment variable that turns comparing into rewriting.
pub const BLESS_VAR: &str = "KILN_BLESS";

/// How to accept an intended change, as every failure says it.
const HOW_TO_BLESS: &str = "if the change is intended, run `./dev gen` (or this test with \
                            KILN_BLESS=1) and review the diff before committing it";

/// One entry of a snapshot: a file's bytes or a symbolic link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target, as written.
    Symlink(PathBuf),
}

impl From<Vec<u8>> for Entry {
    fn from(b: Vec<u8>) -> Self {
        Entry::File(b)
    }
}

impl From<&[u8]> for Entry {
    fn from(b: &[u8]) -> Self {
        Entry::File(b.to_vec())
    }
}

impl From<String> for Entry {
    fn from(s: String) -> Self {
        Entry::File(s.into_bytes())
    }
}

impl From<&str> for Entry {
    fn from(s: &str) -> Self {
        Entry::File(s.as_bytes().to_vec())
    }
}

impl From<&String> for Entry {
    fn from(s: &String) -> Self {
        Entry::File(s.as_bytes().to_vec())
    }
}

/// A tree of entries by relative path (`/`-separated, no leading `/`).
pub type Tree = BTreeMap<String, Entry>;

/// Whether this run rewrites snapshots: `KILN_BLESS` is set to something other than `""` or
/// `0`.
pub fn blessing() -> bool {
    std::env::var_os(BLESS_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A [`Tree`] of regular files from `(relative path, contents)` pairs.
pub fn files<I, K, V>(files: I) -> Tree
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<Entry>,
{
    files
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// Every file and symbolic link below `root` (directories are implied by the paths); an empty
/// tree when `root` does not exist. Panics on any other I/O error.
pub fn read_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    if fs::symlink_metadata(root).is_err() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for e in entries {
            let p = e
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path();
            let rel = relative(root, &p);
            let meta = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.insert(rel, Entry::Symlink(target));
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.insert(rel, Entry::File(bytes));
            }
        }
    }
    out
}

/// `path` below `root` as a `/`-separated relative path.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Compares `actual` with the snapshot directory `expected`: every file must be there with
/// the same bytes and the snapshot must hold nothing else. With `KILN_BLESS=1` the directory
/// is made to hold exactly `actual` instead.
#[track_caller]
pub fn assert_dir(expected: &Path, actual: &Tree) {
    assert_dir_except(expected, actual, &[]);
}

/// [`assert_dir`] for a directory that also holds files written by hand: the relative paths
/// in `hand_written` are neither compared nor deleted.
#[track_caller]
pub fn assert_dir_except(expected: &Path, actual: &Tree, hand_written: &[&str]) {
    check_dir(expected, actual, hand_written, blessing());
}

/// [`assert_dir_except`], blessing or not as `bless` says.
#[track_caller]
fn check_dir(expected: &Path, actual: &Tree, hand_written: &[&str], bless: bool) {
    let kept = |p: &str| hand_written.contains(&p);
    let mut want = read_tree(expected);
    want.retain(|p, _| !kept(p));
    let actual: BTreeMap<&String, &Entry> = actual.iter().filter(|(p, _)| !kept(p)).collect();

    let mut changed = Vec::new();
    let mut new = Vec::new();
    for (&path, &got) in &actual {
        match want.get(path) {
            None => new.push(path.clone()),
            Some(w) if w != got => changed.push(path.clone()),
            Some(_) => {}
        }
    }
    let stale: Vec<String> = want
        .keys()
        .filter(|p| !actual.contains_key(p))
        .cloned()
        .collect();
    if changed.is_empty() && new.is_empty() && stale.is_empty() {
        return;
    }

    if bless {
        for path in changed.iter().chain(&new) {
            write_entry(&expected.join(path), actual[path]);
        }
        for path in &stale {
            let p = expected.join(path);
            fs::remove_file(&p).unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
            remove_empty_parents(expected, &p);
        }
        eprintln!(
            "{BLESS_VAR}: rewrote snapshot {}: {} changed, {} new, {} stale removed",
            shown(expected),
            changed.len(),
            new.len(),
            stale.len()
        );
        return;
    }

    let mut msg = format!(
        "snapshot {} does not match what the test produced:\n",
        shown(expected)
    );
    for path in &changed {
        let _ = writeln!(msg, "  changed: {path}");
        msg += &difference(&want[path], actual[path]);
    }
    for path in &new {
        let _ = writeln!(msg, "  new (produced, not in the snapshot): {path}");
    }
    for path in &stale {
        let _ = writeln!(msg, "  stale (in the snapshot, no longer produced): {path}");
    }
    panic!("{msg}{HOW_TO_BLESS}");
}

/// Compares `actual` with the snapshot file `expected`; with `KILN_BLESS=1` writes it instead.
#[track_caller]
pub fn assert_file(expected: &Path, actual: impl AsRef<[u8]>) {
    check_file(expected, actual.as_ref(), blessing());
}

/// [`assert_file`], blessing or not as `bless` says.
#[track_caller]
fn check_file(expected: &Path, actual: &[u8], bless: bool) {
    let want = match fs::read(expected) {
        Ok(w) => Some(w),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", expected.display()),
    };
    if want.as_deref() == Some(actual) {
        return;
    }
    if bless {
        write_entry(expected, &Entry::File(actual.to_vec()));
        eprintln!("{BLESS_VAR}: rewrote snapshot {}", shown(expected));
        return;
    }
    match want {
        None => panic!(
            "snapshot {} is missing (the test produced {} bytes):\n{HOW_TO_BLESS}",
            shown(expected),
            actual.len()
        ),
        Some(w) => panic!(
            "snapshot {} does not match what the test produced:\n{}{HOW_TO_BLESS}",
            shown(expected),
            difference(&Entry::File(w), &Entry::File(actual.to_vec()))
        ),
    }
}

/// Writes `entry` at `path`, replacing whatever is there.
fn write_entry(path: &Path, entry: &Entry) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }
    match entry {
        Entry::File(bytes) => fs::write(path, bytes),
        Entry::Symlink(target) => std::os::unix::fs::symlink(target, path),
    }
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Removes the directories between `file` and `root` that deleting `file` left empty.
fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Where a difference starts, in a few lines.
fn difference(want: &Entry, got: &Entry) -> String {
    match (want, got) {
        (Entry::File(w), Entry::File(g)) => {
            match (std::str::from_utf8(w), std::str::from_utf8(g)) {
                (Ok(w), Ok(g)) => text_difference(w, g),
                _ => format!(
                    "    binary: {} bytes in the snapshot, {} now\n",
                    w.len(),
                    g.len()
                ),
            }
        }
        _ => format!(
            "    snapshot: {}\n    now:      {}\n",
            describe(want),
            describe(got)
        ),
    }
}

fn describe(e: &Entry) -> String {
    match e {
        Entry::File(b) => format!("a file of {} bytes", b.len()),
        Entry::Symlink(t) => format!("a symlink to {}", t.display()),
    }
}

/// The lines from the first difference on (at most a few of each side).
fn text_difference(want: &str, got: &str) -> String {
    const SHOWN: usize = 8;
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let first = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let mut out = format!(
        "    first difference at line {} ({} lines in the snapshot, {} now{})\n",
        first + 1,
        w.len(),
        g.len(),
        if w.len() == g.len() && want.ends_with('\n') != got.ends_with('\n') {
            "; they differ in the final newline"
        } else {
            ""
        }
    );
    for (side, lines) in [("-", &w), ("+", &g)] {
        for l in lines.iter().skip(first).take(SHOWN) {
            let _ = writeln!(out, "    {side} {l}");
        }
        if lines.len() <= first {
            let _ = writeln!(out, "    {side} (end of file)");
        } else if lines.len() > first + SHOWN {
            let _ = writeln!(out, "    {side} …");
        }
    }
    out
}

/// `path` relative to the workspace (the nearest ancestor holding `Cargo.lock`) when it is
/// inside it, for messages that name the file as a contributor sees it.
fn shown(path: &Path) -> String {
    let abs = normalize(path);
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join("Cargo.lock").is_file() {
            return relative(d, &abs);
        }
        dir = d.parent();
    }
    abs.display().to_string()
}

/// `path` made absolute with `.` and `..` removed lexically (it may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_text(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let e = std::panic::catch_unwind(f).expect_err("the assertion passed");
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    /// The failure of comparing `now` with the snapshot `dir` (without blessing).
    fn dir_failure(dir: &Path, now: &Tree, hand_written: &'static [&'static str]) -> String {
        let (dir, now) = (dir.to_path_buf(), now.clone());
        panic_text(move || check_dir(&dir, &now, hand_written, false))
    }

    #[test]
    fn changed_new_and_stale_files_fail_and_bless_rewrites_exactly_them() {
        let dir = crate::tempdir();
        let snap = dir.path().join("snap");
        fs::create_dir_all(snap.join("a/deep")).unwrap();
        fs::write(snap.join("same"), "same\n").unwrap();
        fs::write(snap.join("changed"), "one\ntwo\n").unwrap();
        fs::write(snap.join("a/deep/stale"), "old\n").unwrap();
        fs::write(snap.join("README.md"), "by hand\n").unwrap();
        std::os::unix::fs::symlink("same", snap.join("link")).unwrap();
        let mut now = files([
            ("same", "same\n"),
            ("changed", "one\nthree\n"),
            ("new/file", "new\n"),
        ]);
        now.insert("link".into(), Entry::Symlink("same".into()));

        let msg = dir_failure(&snap, &now, &["README.md"]);
        assert!(msg.contains("changed: changed"), "{msg}");
        assert!(msg.contains("- two") && msg.contains("+ three"), "{msg}");
        assert!(
            msg.contains("new (produced, not in the snapshot): new/file"),
            "{msg}"
        );
        assert!(
            msg.contains("stale (in the snapshot, no longer produced): a/deep/stale"),
            "{msg}"
        );
        assert!(!msg.contains("README"), "{msg}");
        assert!(
            msg.contains("./dev gen") && msg.contains("KILN_BLESS=1"),
            "{msg}"
        );

        let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        let same_before = mtime(&snap.join("same"));
        check_dir(&snap, &now, &["README.md"], true);
        let mut want = now.clone();
        want.insert("README.md".into(), "by hand\n".into());
        assert_eq!(read_tree(&snap), want);
        assert!(!snap.join("a").exists(), "empty directories are removed");
        assert_eq!(
            mtime(&snap.join("same")),
            same_before,
            "unchanged files stay"
        );
        check_dir(&snap, &now, &["README.md"], false);

        // Without the exception, the hand-written file is stale.
        let msg = dir_failure(&snap, &now, &[]);
        assert!(
            msg.contains("stale (in the snapshot, no longer produced): README.md"),
            "{msg}"
        );

        // A missing snapshot directory: every file is new; blessing creates it.
        let fresh = dir.path().join("fresh");
        let msg = dir_failure(&fresh, &now, &[]);
        assert!(
            msg.contains("new (produced, not in the snapshot): same"),
            "{msg}"
        );
        check_dir(&fresh, &now, &[], true);
        assert_eq!(read_tree(&fresh), now);

        // A symlink whose target changed.
        let mut relinked = now.clone();
        relinked.insert("link".into(), Entry::Symlink("changed".into()));
        let msg = dir_failure(&fresh, &relinked, &[]);
        assert!(
            msg.contains("a symlink to same") && msg.contains("a symlink to changed"),
            "{msg}"
        );
    }

    #[test]
    fn a_snapshot_file_is_compared_and_blessed() {
        let dir = crate::tempdir();
        let file = dir.path().join("one/file.golden");
        let failure = |now: &'static str| {
            let file = file.clone();
            panic_text(move || check_file(&file, now.as_bytes(), false))
        };
        let msg = failure("x\n");
        assert!(
            msg.contains("is missing") && msg.contains("./dev gen"),
            "{msg}"
        );
        check_file(&file, b"x\n", true);
        check_file(&file, b"x\n", false);
        let msg = failure("x");
        assert!(msg.contains("final newline"), "{msg}");
        let msg = failure("x\ny\n");
        assert!(
            msg.contains("first difference at line 2") && msg.contains("- (end of file)"),
            "{msg}"
        );
        assert!(msg.contains("+ y"), "{msg}");
    }

    #[test]
    fn paths_are_shown_from_the_workspace_root() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/demo");
        assert_eq!(shown(&p), "tests/snapshots/demo");
    }
}
