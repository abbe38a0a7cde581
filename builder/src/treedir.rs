//! Writing rendered trees to a directory for inspection (`kiln render`), published atomically.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_layers::{EntryKind, FileTree};

use crate::components::Rendered;

/// Marks a directory as kiln's output, so a re-render may replace it.
pub const MARKER: &str = ".kiln-render";

/// One line per entry: `MODE UID:GID KIND PATH[ -> TARGET]`, the metadata a plain directory
/// cannot carry (owners) or that git does not keep (modes).
pub fn manifest(tree: &FileTree) -> String {
    let mut out = String::new();
    for (path, e) in tree.iter() {
        let target = match &e.kind {
            EntryKind::Symlink(t) | EntryKind::Hardlink(t) => format!(" -> {t}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:04o} {}:{} {} {}{}\n",
            e.mode,
            e.uid,
            e.gid,
            e.kind.name(),
            path,
            target
        ));
    }
    out
}

/// Writes `tree` below `root` (entry `/etc/x` → `root/etc/x`), with modes; owners are left to
/// the manifest.
pub fn write_tree(tree: &FileTree, root: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root)?;
    for (path, e) in tree.iter() {
        let dest = root.join(path.trim_start_matches('/'));
        match &e.kind {
            EntryKind::Dir => fs::create_dir_all(&dest)?,
            EntryKind::File(data) => {
                fs::write(&dest, data)?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(e.mode))?;
            }
            EntryKind::Symlink(t) => std::os::unix::fs::symlink(t, &dest)?,
            other => {
                return Err(io::Error::other(format!(
                    "{path}: cannot write a {} to a plain directory",
                    other.name()
                )))
            }
        }
    }
    // Directory modes last, so a read-only directory does not block writing its children.
    for (path, e) in tree.iter().filter(|(_, e)| e.kind == EntryKind::Dir) {
        fs::set_permissions(
            root.join(path.trim_start_matches('/')),
            fs::Permissions::from_mode(e.mode),
        )?;
    }
    Ok(())
}

/// Writes every tree of `rendered` plus `plan.json` into `out`:
/// `profiles/NAME/…`, `profiles/NAME.manifest`, `hosts/NAME/…`, `hosts/NAME.manifest`.
///
/// The directory is built beside `out` and swapped in only when complete; an existing `out`
/// is replaced only if it is empty or an earlier render (it has [`MARKER`]).
pub fn publish(rendered: &Rendered, plan_json: &str, out: &Path) -> io::Result<()> {
    let staging = stage(out, MARKER, "render")?;
    let result = (|| {
        for (kind, trees) in [("profiles", &rendered.profiles), ("hosts", &rendered.hosts)] {
            for (name, tree) in trees {
                write_tree(tree, &staging.join(kind).join(name))?;
                fs::write(
                    staging.join(kind).join(format!("{name}.manifest")),
                    manifest(tree),
                )?;
            }
        }
        fs::write(staging.join("plan.json"), plan_json)?;
        fs::write(staging.join(MARKER), "rendered by kiln\n")?;
        swap_in(&staging, out)
    })();
    if result.is_err() && staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Fails unless `out` may be replaced: it does not exist, is empty, or holds `marker` (an
/// earlier output of the same kiln command).
pub fn replaceable(out: &Path, marker: &str, what: &str) -> io::Result<()> {
    if out.exists() {
        let ours = out.join(marker).exists();
        let empty = out.is_dir() && fs::read_dir(out)?.next().is_none();
        if !ours && !empty {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a kiln {what} output; choose another directory or remove it",
                    out.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that `out` may be replaced — it does not exist, is empty, or holds `marker` (an
/// earlier output of the same kiln command) — and returns a fresh, empty staging directory
/// beside it, where the new output is written before [`swap_in`].
pub fn stage(out: &Path, marker: &str, what: &str) -> io::Result<PathBuf> {
    replaceable(out, marker, what)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| what.into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".{name}.kiln-new-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir_all(&staging)?;
    Ok(staging)
}

/// Replaces `out` with `staging` (renames; the old `out` is removed only after the swap).
pub fn swap_in(staging: &Path, out: &Path) -> io::Result<()> {
    let old: Option<PathBuf> = if out.exists() {
        let old = staging.with_extension("old");
        fs::rename(out, &old)?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(staging, out) {
        if let Some(old) = &old {
            let _ = fs::rename(old, out);
        }
        return Err(e);
    }
    if let Some(old) = old {
        fs::remove_dir_all(old)?;
    }
    Ok(())
}
