//! Writing rendered trees to a directory for inspection (`kiln render`), published crash-safe.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_layers::{EntryKind, FileTree, IoError};

use crate::components::Rendered;
use crate::publish::{Result, Staging};

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
/// the manifest. Errors name the path.
pub fn write_tree(tree: &FileTree, root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root).map_err(IoError::at("creating", root))?;
    for (path, e) in tree.iter() {
        let dest = root.join(path.trim_start_matches('/'));
        match &e.kind {
            EntryKind::Dir => fs::create_dir_all(&dest).map_err(IoError::at("creating", &dest))?,
            EntryKind::File(data) => {
                fs::write(&dest, data).map_err(IoError::at("writing", &dest))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(e.mode))
                    .map_err(IoError::at("setting the mode of", &dest))?;
            }
            EntryKind::Symlink(t) => {
                std::os::unix::fs::symlink(t, &dest).map_err(IoError::at("creating", &dest))?
            }
            other => {
                return Err(IoError::at("writing", &dest)(io::Error::other(format!(
                    "cannot write a {} to a plain directory",
                    other.name()
                )))
                .into())
            }
        }
    }
    // Directory modes last, so a read-only directory does not block writing its children.
    for (path, e) in tree.iter().filter(|(_, e)| e.kind == EntryKind::Dir) {
        let dest = root.join(path.trim_start_matches('/'));
        fs::set_permissions(&dest, fs::Permissions::from_mode(e.mode))
            .map_err(IoError::at("setting the mode of", &dest))?;
    }
    Ok(())
}

/// Writes every tree of `rendered` plus `plan.json` into `out`:
/// `profiles/NAME/…`, `profiles/NAME.manifest`, `hosts/NAME/…`, `hosts/NAME.manifest`.
///
/// The directory is staged beside `out` and swapped in only when complete, crash-safe (see
/// [`crate::publish`]); an existing `out` is replaced only if it is empty or an earlier render
/// (it has [`MARKER`]).
pub fn publish(rendered: &Rendered, plan_json: &str, out: &Path) -> Result<()> {
    let staging = Staging::new(out, MARKER, "render")?;
    let dir = staging.path();
    let write =
        |path: PathBuf, text: &str| fs::write(&path, text).map_err(IoError::at("writing", path));
    for (kind, trees) in [("profiles", &rendered.profiles), ("hosts", &rendered.hosts)] {
        for (name, tree) in trees {
            write_tree(tree, &dir.join(kind).join(name))?;
            write(
                dir.join(kind).join(format!("{name}.manifest")),
                &manifest(tree),
            )?;
        }
    }
    write(dir.join("plan.json"), plan_json)?;
    write(dir.join(MARKER), "rendered by kiln\n")?;
    staging.publish()
}
