//! Crash-safe publishing of an output directory (`kiln build -o DIST`, `kiln render -o DIR`).
//!
//! A [`Staging`] directory `NAME.kiln-stage-ID` is written beside the output `NAME` and
//! swapped in with one `renameat2(RENAME_EXCHANGE)`, after which the staging name holds the old
//! output, which is then removed. Killed at any instant (`kill -9` included), `NAME` holds the
//! complete old or the complete new output, never a mix and never nothing:
//!
//! - before the exchange, `NAME` is untouched; after it, `NAME` is the new output whole;
//! - where the filesystem has no `RENAME_EXCHANGE`, two renames are used (`NAME` →
//!   `NAME.kiln-old-ID`, then the staging directory → `NAME`); a build killed between them
//!   leaves `NAME` missing, and the next one renames `NAME.kiln-old-ID` back (the recovery
//!   rule).
//!
//! Ownership: each staging directory has a lock file `NAME.kiln-lock-ID` (its owner's PID and
//! start time, for people) held with `flock` for as long as the owner lives; the kernel drops
//! the lock when the process dies, however it dies. Before staging, a build recovers every
//! leftover whose lock it can take (the owner is dead) and leaves those of live builds alone.
//! `ID` is the PID and a per-process counter.
//!
//! Writers: a staging directory makes one build's swap safe, but two builds of one output
//! running at once would both succeed and the one that swaps last would win. So a whole
//! `kiln build` holds [`OutputLock`], a `flock` on `NAME.kiln-output-lock` (its PID and start
//! time inside, for the message of whoever waits): a second build of the same output waits
//! for the first to finish (and then finds its output, often "nothing changed") or, asked not
//! to wait, refuses ([`Error::Busy`]). The lock dies with its process, however it dies, so a
//! crashed build never blocks the next; the holder removes the file when it is done.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kiln_layers::IoError;
use rustix::fs::{FlockOperation, RenameFlags};
use rustix::io::Errno;

/// Errors of staging and publishing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The output exists and is not an earlier output of the same command.
    #[error("{} exists and is not a kiln {what} output; choose another directory or remove it", path.display())]
    NotOurs { path: PathBuf, what: &'static str },
    /// The output path names no directory that can be replaced (`.`, `/`).
    #[error("{} cannot be replaced as a whole; name a directory, e.g. `-o dist`", path.display())]
    NoName { path: PathBuf },
    /// Another kiln build is writing the output, and the caller chose not to wait.
    #[error(
        "another kiln build is writing {} ({}); run again when it has finished, or without \
         --no-wait to wait for it",
        path.display(),
        holder_text(holder)
    )]
    Busy {
        path: PathBuf,
        /// The PID of the build holding the output's lock, when it could be read.
        holder: Option<u32>,
    },
}

fn holder_text(holder: &Option<u32>) -> String {
    holder.map_or_else(|| "pid unknown".into(), |p| format!("pid {p}"))
}

/// A `Result` alias for publishing.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fails unless `out` may be replaced: it does not exist, is an empty directory, or holds
/// `marker` (an earlier output of the same kiln command, `what`).
pub fn replaceable(out: &Path, marker: &str, what: &'static str) -> Result<()> {
    if fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    let ours = out.join(marker).exists();
    let empty = out.is_dir()
        && fs::read_dir(out)
            .map_err(IoError::at("reading", out))?
            .next()
            .is_none();
    if ours || empty {
        Ok(())
    } else {
        Err(Error::NotOurs {
            path: out.to_path_buf(),
            what,
        })
    }
}

/// Test hook: with `KILN_TEST_PAUSE_AT=POINT[,POINT…]` in the environment the process prints
/// `kiln-test: paused at POINT` to stderr at that point and sleeps until it is killed, so a test
/// can kill it exactly there, or, with `KILN_TEST_RESUME_FILE=PATH`, until `PATH` exists, so a
/// test can let it go on. Points: `staged`, `swap`, `between-renames` (fallback only),
/// `after-swap`, `removing-old`.
pub fn pause_at(point: &str) {
    let Some(points) = std::env::var_os("KILN_TEST_PAUSE_AT") else {
        return;
    };
    if points.to_string_lossy().split(',').any(|p| p == point) {
        eprintln!("kiln-test: paused at {point}");
        let resume = std::env::var_os("KILN_TEST_RESUME_FILE").map(PathBuf::from);
        loop {
            match &resume {
                Some(file) if file.exists() => return,
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
                None => std::thread::sleep(Duration::from_secs(3600)),
            }
        }
    }
}

/// Test hook: `KILN_TEST_NO_EXCHANGE=1` makes the swap take the two-rename fallback, as on a
/// filesystem without `RENAME_EXCHANGE`.
fn exchange_disabled() -> bool {
    std::env::var_os("KILN_TEST_NO_EXCHANGE").is_some_and(|v| v == "1")
}

/// The names around an output `NAME` in its parent directory.
#[derive(Debug, Clone)]
struct Names {
    parent: PathBuf,
    name: String,
}

impl Names {
    fn of(out: &Path) -> Result<Names> {
        let name = out
            .file_name()
            .filter(|n| *n != "." && *n != "..")
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NoName {
                path: out.to_path_buf(),
            })?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(Names {
            parent: parent.to_path_buf(),
            name: name.to_string(),
        })
    }
    fn out(&self) -> PathBuf {
        self.parent.join(&self.name)
    }
    fn prefix(&self, kind: &str) -> String {
        format!("{}.kiln-{kind}-", self.name)
    }
    fn path(&self, kind: &str, id: &str) -> PathBuf {
        self.parent.join(format!("{}{id}", self.prefix(kind)))
    }
    fn stage(&self, id: &str) -> PathBuf {
        self.path("stage", id)
    }
    fn old(&self, id: &str) -> PathBuf {
        self.path("old", id)
    }
    fn lock(&self, id: &str) -> PathBuf {
        self.path("lock", id)
    }
    fn output_lock(&self) -> PathBuf {
        self.parent.join(format!("{}.kiln-output-lock", self.name))
    }
}

/// The right to write an output, held (`flock` on `NAME.kiln-output-lock`) for a whole build;
/// see the module doc. Released, and its file removed, when dropped.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    file: Option<File>,
}

impl OutputLock {
    /// Takes the lock of output `out`. When another build holds it: with `wait`, says so once
    /// through `progress` ("waiting for another kiln build to finish writing DIR (pid N)") and
    /// waits for it; without, fails with [`Error::Busy`].
    pub fn acquire(out: &Path, wait: bool, progress: &mut dyn FnMut(&str)) -> Result<OutputLock> {
        let names = Names::of(out)?;
        fs::create_dir_all(&names.parent).map_err(IoError::at("creating", &names.parent))?;
        let path = names.output_lock();
        let mut said = false;
        loop {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(IoError::at("creating lock file", &path))?;
            if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                let holder = lock_holder(&path);
                if !wait {
                    return Err(Error::Busy {
                        path: out.to_path_buf(),
                        holder,
                    });
                }
                if !said {
                    progress(&format!(
                        "waiting for another kiln build to finish writing {} ({})",
                        out.display(),
                        holder_text(&holder)
                    ));
                    said = true;
                }
                loop {
                    match rustix::fs::flock(&f, FlockOperation::LockExclusive) {
                        Err(Errno::INTR) => continue,
                        r => break r.map_err(|e| IoError::at("locking", &path)(e.into()))?,
                    }
                }
            }
            // The holder removes the file as it finishes: a lock on a removed file is nobody's.
            if !same_file(&f, &path) {
                continue;
            }
            let mut lock = OutputLock {
                path,
                file: Some(f),
            };
            if let Some(f) = &mut lock.file {
                let who = format!("{} {}\n", std::process::id(), start_time().unwrap_or(0));
                f.set_len(0)
                    .and_then(|()| f.write_all(who.as_bytes()))
                    .map_err(IoError::at("writing lock file", &lock.path))?;
            }
            return Ok(lock);
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still held, so nobody takes a lock on a file about to disappear
        // unknowingly (they check that the path still names what they locked).
        if let Some(f) = self.file.take() {
            let _ = fs::remove_file(&self.path);
            drop(f);
        }
    }
}

/// The PID written into the lock file at `path` by its holder, which writes it right after
/// taking the lock: read a few times, in case it has not yet.
fn lock_holder(path: &Path) -> Option<u32> {
    for _ in 0..20 {
        let pid = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if pid.is_some() {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A staging directory beside an output, owned by this process. [`Staging::publish`] swaps it
/// in; dropped unpublished (an error, a panic), it is removed.
#[derive(Debug)]
pub struct Staging {
    names: Names,
    id: String,
    dir: PathBuf,
    /// Held (`flock`) for the staging directory's lifetime.
    lock: Option<File>,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Staging {
    /// Recovers what dead builds of `out` left behind, checks that `out` may be replaced
    /// ([`replaceable`]) and creates an empty staging directory beside it.
    pub fn new(out: &Path, marker: &str, what: &'static str) -> Result<Staging> {
        let names = Names::of(out)?;
        fs::create_dir_all(&names.parent).map_err(IoError::at("creating", &names.parent))?;
        recover(&names)?;
        replaceable(out, marker, what)?;
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let lock = take_lock(&names.lock(&id))?;
        let mut staging = Staging {
            dir: names.stage(&id),
            names,
            id,
            lock: Some(lock),
        };
        // A directory of this name is a leftover of a dead process that had our PID.
        remove_all(&staging.dir)?;
        fs::create_dir(&staging.dir).map_err(IoError::at("creating", &staging.dir))?;
        if let Some(lock) = &mut staging.lock {
            // For people looking at a leftover: who owned it.
            let _ = writeln!(lock, "{} {}", std::process::id(), start_time().unwrap_or(0));
        }
        Ok(staging)
    }

    /// The staging directory, where the new output is written.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Swaps the staging directory in as the output and removes the old output.
    pub fn publish(mut self) -> Result<()> {
        let out = self.names.out();
        pause_at("staged");
        pause_at("swap");
        let exchanged = if exchange_disabled() {
            Err(Errno::INVAL)
        } else {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.dir,
                rustix::fs::CWD,
                &out,
                RenameFlags::EXCHANGE,
            )
        };
        // Where the old output is now, to be removed.
        let old = match exchanged {
            Ok(()) => Some(self.dir.clone()),
            Err(Errno::NOENT) => {
                // No old output: a plain rename.
                fs::rename(&self.dir, &out).map_err(IoError::at("renaming into place", &out))?;
                None
            }
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => self.swap_by_renames(&out)?,
            Err(e) => return Err(IoError::at("swapping in", &out)(e.into()).into()),
        };
        pause_at("after-swap");
        if let Some(old) = old {
            remove_old(&old)?;
        }
        self.release();
        Ok(())
    }

    /// The fallback swap: `out` → `NAME.kiln-old-ID`, staging → `out`. Returns where the old
    /// output is.
    fn swap_by_renames(&self, out: &Path) -> Result<Option<PathBuf>> {
        let old = self.names.old(&self.id);
        match fs::rename(out, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::rename(&self.dir, out).map_err(IoError::at("renaming into place", out))?;
                return Ok(None);
            }
            Err(e) => return Err(IoError::at("moving the old output aside", out)(e).into()),
        }
        pause_at("between-renames");
        if let Err(e) = fs::rename(&self.dir, out) {
            // Put the old output back; a crash here is repaired by the next build's recovery.
            let _ = fs::rename(&old, out);
            return Err(IoError::at("renaming into place", out)(e).into());
        }
        Ok(Some(old))
    }

    /// Removes the lock file and releases the lock (the staging directory is gone).
    fn release(&mut self) {
        if let Some(lock) = self.lock.take() {
            let _ = fs::remove_file(self.names.lock(&self.id));
            drop(lock);
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = remove_all(&self.dir);
            let _ = remove_all(&self.names.old(&self.id));
            self.release();
        }
    }
}

/// Creates and locks `path`, making sure the lock is on the file at `path` (a concurrent
/// recovery may take the lock of a file it just found and unlink it).
fn take_lock(path: &Path) -> Result<File> {
    let mut last = None;
    for _ in 0..100 {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(IoError::at("creating lock file", path))?;
        match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) if same_file(&f, path) => {
                f.set_len(0)
                    .map_err(IoError::at("writing lock file", path))?;
                return Ok(f);
            }
            Ok(()) => {}
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(IoError::at("locking", path)(last.map_or_else(
        || io::Error::other("lock file keeps disappearing"),
        Into::into,
    ))
    .into())
}

/// Whether `path` still names the open file `f`.
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// This process's start time (clock ticks after boot, field 22 of `/proc/self/stat`).
fn start_time() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with this PID exists.
fn alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .map_or(true, |p| Path::new("/proc").join(p.to_string()).exists())
}

/// Removes a file, symlink or directory tree; a missing path is fine.
fn remove_all(path: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(IoError::at("removing", path)(e).into())
        }
        _ => Ok(()),
    }
}

/// Removes the old output after the swap (first one entry, then the rest, so that the test
/// hook `removing-old` stops with the removal under way).
fn remove_old(old: &Path) -> Result<()> {
    if fs::symlink_metadata(old).is_ok_and(|m| m.is_dir()) {
        let first = fs::read_dir(old)
            .map_err(IoError::at("reading", old))?
            .next()
            .transpose()
            .map_err(IoError::at("reading", old))?;
        if let Some(entry) = first {
            remove_all(&entry.path())?;
            pause_at("removing-old");
        }
    }
    remove_all(old)
}

/// Cleans up what dead builds left beside `out` (see [`Staging::new`], which calls it): for a
/// command that may finish without staging anything (an unchanged build).
pub fn recover_output(out: &Path) -> Result<()> {
    let names = Names::of(out)?;
    if !names.parent.is_dir() {
        return Ok(());
    }
    recover(&names)
}

/// Cleans up after dead builds of `names.out()`: for every ID whose lock can be taken (or
/// that has no lock file and whose PID is gone), a fallback swap cut between its renames is
/// undone (`NAME.kiln-old-ID` back to `NAME` when `NAME` is missing, else removed) and the
/// staging directory is removed. Leftovers of live builds are left alone.
fn recover(names: &Names) -> Result<()> {
    let mut locked = std::collections::BTreeSet::new();
    let mut unlocked = std::collections::BTreeSet::new();
    let legacy_stage = format!(".{}.kiln-new-", names.name);
    let mut legacy_live = false;
    let mut legacy_dead = Vec::new();
    let entries = fs::read_dir(&names.parent).map_err(IoError::at("reading", &names.parent))?;
    for entry in entries {
        let entry = entry.map_err(IoError::at("reading", &names.parent))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some(id) = file_name.strip_prefix(&names.prefix("lock")) {
            locked.insert(id.to_string());
        } else if let Some(id) = file_name
            .strip_prefix(&names.prefix("stage"))
            .or_else(|| file_name.strip_prefix(&names.prefix("old")))
        {
            unlocked.insert(id.to_string());
        } else if let Some(pid) = file_name.strip_prefix(&legacy_stage) {
            // Staging directories of kiln before crash-safe publishing: `.NAME.kiln-new-PID`.
            if alive(pid) {
                legacy_live = true;
            } else {
                legacy_dead.push(entry.path());
            }
        }
    }
    for id in &locked {
        let path = names.lock(id);
        let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err()
            || !same_file(&f, &path)
        {
            continue; // a live build's, or already cleaned up
        }
        clean(names, id)?;
        let _ = fs::remove_file(&path);
    }
    for id in unlocked.difference(&locked) {
        // Only a lock file removed by hand leaves these; the PID tells whether the owner
        // may still run.
        let pid = id.split('-').next().unwrap_or_default();
        if !alive(pid) && !names.lock(id).exists() {
            clean(names, id)?;
        }
    }
    if !legacy_live {
        for dir in legacy_dead {
            remove_all(&dir)?;
        }
        // Old kiln moved the old output to `.NAME.old` during its swap.
        let legacy_old = names.parent.join(format!(".{}.old", names.name));
        if fs::symlink_metadata(&legacy_old).is_ok() {
            restore_or_remove(&legacy_old, &names.out())?;
        }
    }
    Ok(())
}

/// Recovers the leftovers of one dead build.
fn clean(names: &Names, id: &str) -> Result<()> {
    let old = names.old(id);
    if fs::symlink_metadata(&old).is_ok() {
        restore_or_remove(&old, &names.out())?;
    }
    let stage = names.stage(id);
    if fs::symlink_metadata(&stage).is_ok() {
        tracing::info!("removing {} (left by a build that died)", stage.display());
    }
    remove_all(&stage)
}

/// `old` is a complete old output moved aside by a swap that was cut short: put back when the
/// output is missing, else removed.
fn restore_or_remove(old: &Path, out: &Path) -> Result<()> {
    if fs::symlink_metadata(out).is_err() {
        tracing::warn!(
            "restoring {} from {} (a build died while swapping it in)",
            out.display(),
            old.display()
        );
        fs::rename(old, out).map_err(IoError::at("restoring", out))?;
        Ok(())
    } else {
        remove_all(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn publish(out: &Path, content: &str) {
        let s = Staging::new(out, "mark", "test").unwrap();
        fs::write(s.path().join("mark"), content).unwrap();
        s.publish().unwrap();
    }

    #[test]
    fn publishes_replaces_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        publish(&out, "1");
        publish(&out, "2");
        assert_eq!(fs::read_to_string(out.join("mark")).unwrap(), "2");
        assert_eq!(ls(tmp.path()), ["out"]);
        // Dropped unpublished: nothing left, output untouched.
        let s = Staging::new(&out, "mark", "test").unwrap();
        fs::write(s.path().join("x"), "half").unwrap();
        drop(s);
        assert_eq!(ls(tmp.path()), ["out"]);
        assert_eq!(fs::read_to_string(out.join("mark")).unwrap(), "2");
    }

    #[test]
    fn a_swap_cut_between_renames_is_undone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        publish(&out, "old");
        // What a build killed between the fallback's two renames leaves: the old output
        // aside, the new one staged, the owner's lock file unlocked.
        let names = Names::of(&out).unwrap();
        fs::rename(&out, names.old("999999999-0")).unwrap();
        fs::create_dir(names.stage("999999999-0")).unwrap();
        fs::write(names.stage("999999999-0").join("mark"), "new").unwrap();
        fs::write(names.lock("999999999-0"), "").unwrap();
        publish(&out, "next");
        assert_eq!(fs::read_to_string(out.join("mark")).unwrap(), "next");
        assert_eq!(ls(tmp.path()), ["out"]);
        // Recovery alone restores the old output.
        fs::rename(&out, names.old("999999999-1")).unwrap();
        fs::write(names.lock("999999999-1"), "").unwrap();
        recover(&names).unwrap();
        assert_eq!(fs::read_to_string(out.join("mark")).unwrap(), "next");
        assert_eq!(ls(tmp.path()), ["out"]);
    }

    #[test]
    fn a_live_staging_directory_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let live = Staging::new(&out, "mark", "test").unwrap();
        publish(&out, "other");
        assert!(live.path().is_dir());
        live.publish().unwrap();
        assert_eq!(ls(tmp.path()), ["out"]);
    }

    #[test]
    fn legacy_leftovers_are_recovered() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        // Old kiln, killed after moving the output aside: `.out.old` holds it.
        fs::create_dir(tmp.path().join(".out.old")).unwrap();
        fs::write(tmp.path().join(".out.old/mark"), "old").unwrap();
        fs::create_dir(tmp.path().join(".out.kiln-new-999999999")).unwrap();
        let s = Staging::new(&out, "mark", "test").unwrap();
        assert_eq!(fs::read_to_string(out.join("mark")).unwrap(), "old");
        drop(s);
        assert_eq!(ls(tmp.path()), ["out"]);
    }

    #[test]
    fn the_output_lock_is_exclusive_and_removed_when_released() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut said = Vec::new();
        let held = OutputLock::acquire(&out, false, &mut |m| said.push(m.to_string())).unwrap();
        assert_eq!(ls(tmp.path()), ["out.kiln-output-lock"]);
        let e = OutputLock::acquire(&out, false, &mut |_| {}).unwrap_err();
        let pid = std::process::id();
        assert!(
            matches!(e, Error::Busy { holder: Some(p), .. } if p == pid),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("(pid {pid})")), "{e}");
        // A waiter says so once and gets the lock when the holder lets go.
        let waiter = std::thread::spawn({
            let out = out.clone();
            move || {
                let mut said = Vec::new();
                let lock = OutputLock::acquire(&out, true, &mut |m| said.push(m.to_string()));
                (lock.map(drop).is_ok(), said)
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
        let (ok, waited) = waiter.join().unwrap();
        assert!(ok);
        assert_eq!(
            waited,
            [format!(
                "waiting for another kiln build to finish writing {} (pid {pid})",
                out.display()
            )]
        );
        assert!(said.is_empty());
        assert_eq!(ls(tmp.path()), Vec::<String>::new());
    }

    #[test]
    fn foreign_directories_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("home");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("notes"), "keep").unwrap();
        let e = Staging::new(&out, "mark", "test").unwrap_err();
        assert!(matches!(e, Error::NotOurs { .. }), "{e}");
        assert_eq!(ls(tmp.path()), ["home"]);
        assert!(matches!(
            Staging::new(Path::new("."), "mark", "test").unwrap_err(),
            Error::NoName { .. }
        ));
    }
}
