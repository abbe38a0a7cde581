//! kiln-cli: the `kiln` command line. It holds the argument parser ([`command`] gives it to
//! the docs generator, `kiln-gendocs`), one module per subcommand under `commands/` (each an
//! argument struct and its `run`), the argument groups and spec loading they share, the
//! logging set-up (`-v`, `KILN_LOG`) and the mapping of errors to exit codes (0 ok, 1
//! failure, 2 usage or spec error). The work itself is in `kiln-pipeline`, `kiln-vm` and
//! `kiln-serve`; the `kiln` binary only calls [`main`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use kiln_pipeline::diag::escape_controls;
use kiln_pipeline::validate::Rejected;

mod args;
mod commands;
mod progress;

use args::Usage;
use commands::{boot, build, cache, check, fetch, init, keys, lock, push, render, schema, serve};

/// Exit codes, documented in the README and `--help`.
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bake immutable host images for a Calico-networked Apache Mesos cluster",
    long_about = "kiln turns one cluster spec (TOML) into everything each host of a Calico-networked \
Mesos cluster needs: one image per role, identity per host.\n\n\
Without a SPEC argument, commands use the built-in demo (one host running everything).",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage or spec error.\n\n\
Examples:\n  kiln init cluster.toml       # write the demo spec as a starting point\n  \
kiln check cluster.toml      # validate and show the resolved plan\n  \
kiln render cluster.toml -o rendered/"
)]
struct Cli {
    /// More log output (repeat for more); KILN_LOG=debug works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's arguments, help and work are in its module under `commands/`.
#[derive(Subcommand)]
enum Command {
    Init(init::InitArgs),
    Check(check::CheckArgs),
    Schema(schema::SchemaArgs),
    Build(build::BuildArgs),
    Keys(keys::KeysArgs),
    Boot(boot::BootArgs),
    Serve(serve::ServeArgs),
    Push(push::PushArgs),
    Lock(lock::LockArgs),
    Fetch(fetch::FetchArgs),
    Cache(cache::CacheArgs),
    Render(render::RenderArgs),
}

impl Command {
    fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Init(a) => a.run(),
            Command::Check(a) => a.run(),
            Command::Schema(a) => a.run(),
            Command::Build(a) => a.run(),
            Command::Keys(a) => a.run(),
            Command::Boot(a) => a.run(),
            Command::Serve(a) => a.run(),
            Command::Push(a) => a.run(),
            Command::Lock(a) => a.run(),
            Command::Fetch(a) => a.run(),
            Command::Cache(a) => a.run(),
            Command::Render(a) => a.run(),
        }
    }
}

/// The whole `kiln` command line as clap sees it: what the man pages and shell completions are
/// generated from.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs `kiln` with the process's arguments: parses them (clap exits on a usage error), sets
/// up logging, runs the subcommand and turns its result into the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    exit_code(cli.command.run())
}

/// Log output on stderr: warnings by default, `-v` info, `-vv` debug; `KILN_LOG` (an
/// `EnvFilter` directive) overrides both.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Spans mark the pipeline's stages; each is printed when it closes, with its duration.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints a failed command's error on stderr and gives its exit code: 2 for a rejected spec
/// (its diagnostics as they are) or a [`Usage`] error, 1 for anything else.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match (e.downcast_ref::<Rejected>(), e.downcast_ref::<Usage>()) {
            (Some(r), _) => {
                eprintln!("{r}");
                ExitCode::from(EXIT_USAGE)
            }
            (None, Some(u)) => {
                eprintln!("error: {}", escape_controls(&u.to_string()));
                ExitCode::from(EXIT_USAGE)
            }
            (None, None) => {
                // Errors may quote what a spec or a server said: no control characters reach
                // the terminal.
                eprintln!("error: {}", escape_controls(&error_text(&e)));
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

/// An error and its causes on one line, each said once: a cause whose text is already in the
/// line (a library error that shows its source and also returns it from `source()`) is left
/// out, so an OS error is not repeated. A full disk is called that, next to the path.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    if let Some(io) = kiln_layers::IoError::find_disk_full(e.as_ref()) {
        let os = io.to_string();
        text = if text.contains(&os) {
            text.replacen(&os, &format!("disk full: {os}"), 1)
        } else {
            format!("{text} (disk full)")
        };
    }
    text
}
