//! kiln-gendocs: the generator of kiln's reference, kept out of the `kiln` binary. It writes
//! the spec reference (`spec.md`), the spec's JSON Schema, the demo's "What runs where" table,
//! a man page for `kiln` and each subcommand, and bash, zsh and fish completions, all from the
//! code: the parser of `kiln-cli` ([`kiln_cli::command`]) and the spec and plan of
//! `kiln-pipeline`. The output is committed under `docs/reference/` (`./dev gen` regenerates
//! it; the binary is `kiln-gendocs DIR`) and checked for drift by the tests through
//! [`write_all`]. Everything written is a function of the code alone (no dates, no terminal
//! width), so a regeneration on another machine gives the same bytes.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The completion scripts: shell and file name (as each shell looks them up).
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "kiln.bash"),
    (Shell::Zsh, "_kiln"),
    (Shell::Fish, "kiln.fish"),
];

/// Writes `DIR/spec.md`, `DIR/kiln-spec.schema.json`, `DIR/what-runs-where.md`,
/// `DIR/man/*.1` (kiln and every subcommand) and `DIR/completions/{kiln.bash,_kiln,kiln.fish}`;
/// returns the files written.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let cmd = kiln_cli::command();
    let mut written = Vec::new();
    std::fs::create_dir_all(dir)?;
    let reference = dir.join("spec.md");
    std::fs::write(&reference, kiln_pipeline::spec::reference::markdown())?;
    written.push(reference);
    let schema = dir.join("kiln-spec.schema.json");
    std::fs::write(&schema, kiln_pipeline::schema_json())?;
    written.push(schema);
    let wrw = dir.join("what-runs-where.md");
    std::fs::write(&wrw, what_runs_where_demo()?)?;
    written.push(wrw);

    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    clean(&man, "1")?;
    let mut root = cmd.clone().disable_help_subcommand(true);
    root.build();
    let version = cmd.get_version().unwrap_or_default();
    let source = format!("kiln {version}");
    write_man_pages(&root, &man, &source, &mut written)?;

    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, name) in COMPLETIONS {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "kiln", &mut buf);
        let path = completions.join(name);
        std::fs::write(&path, buf)?;
        written.push(path);
    }
    Ok(written)
}

/// The demo's "What runs where" table (the README carries the same table).
pub fn what_runs_where_demo() -> io::Result<String> {
    let src = kiln_pipeline::read_spec(None).map_err(|e| io::Error::other(e.to_string()))?;
    let loaded =
        kiln_pipeline::validate::load(&src).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(kiln_pipeline::report::what_runs_where(&loaded.plan))
}

/// Writes the man page of `cmd` (built) and of each of its visible subcommands, recursively.
fn write_man_pages(
    cmd: &clap::Command,
    dir: &Path,
    source: &str,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .source(source)
        .manual("kiln manual");
    written.push(man.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, dir, source, written)?;
    }
    Ok(())
}

/// Removes `*.EXT` files from `dir`, so pages of removed subcommands do not linger.
fn clean(dir: &Path, ext: &str) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}
