//! The `kiln` binary: logging, argument parsing, dispatch, exit codes. The work is in the
//! library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiln::diag::Severity;
use kiln::validate::Rejected;

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

#[derive(Subcommand)]
enum Command {
    /// Write the built-in demo spec as a commented starting point.
    #[command(
        after_help = "Examples:\n  kiln init                 # writes ./cluster.toml\n  \
kiln init prod.toml\n  kiln init -                # print to stdout"
    )]
    Init {
        /// Where to write it; `-` prints to stdout.
        #[arg(default_value = "cluster.toml")]
        file: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate a spec and print the resolved plan: per host its role, units, ports and files.
    #[command(
        after_help = "Errors name the file, line and column and how to fix them. Warnings \
are printed and do not fail unless --strict.\n\nExamples:\n  kiln check                  # the built-in demo\n  \
kiln check cluster.toml --json | jq '.profiles[].services'"
    )]
    Check {
        /// The cluster spec (default: the built-in demo).
        spec: Option<PathBuf>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the JSON Schema of the spec (for editors and CI).
    #[command(after_help = "Example:\n  kiln schema > kiln-spec.schema.json")]
    Schema,
    /// Render every profile's file tree and every host's identity tree into a directory.
    #[command(
        after_help = "Layout of DIR:\n  profiles/NAME/…         files of the image profile NAME \
(e.g. master-agent)\n  profiles/NAME.manifest  mode, owner and kind of each entry\n  \
hosts/HOST/…            the host's identity files\n  hosts/HOST.manifest\n  plan.json               the resolved plan (as `kiln check --json`)\n\n\
DIR is written beside its final place and swapped in when complete; an existing DIR is \
replaced only if it is empty or an earlier render.\n\nExample:\n  kiln render cluster.toml -o rendered/"
    )]
    Render {
        /// The cluster spec (default: the built-in demo).
        spec: Option<PathBuf>,
        /// Output directory.
        #[arg(short, long, default_value = "rendered")]
        output: PathBuf,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match (e.downcast_ref::<Rejected>(), e.downcast_ref::<Usage>()) {
            (Some(r), _) => {
                eprintln!("{r}");
                ExitCode::from(EXIT_USAGE)
            }
            (None, Some(u)) => {
                eprintln!("error: {u}");
                ExitCode::from(EXIT_USAGE)
            }
            (None, None) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

/// A usage error (exit code 2) that is not clap's: e.g. a spec file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Loads and validates a spec, printing warnings; `--strict` turns them into a rejection.
fn load(spec: Option<&Path>, strict: bool) -> anyhow::Result<kiln::plan::Plan> {
    let src = kiln::read_spec(spec).map_err(|e| {
        let name = spec.map(|p| p.display().to_string()).unwrap_or_default();
        Usage(format!(
            "cannot read spec {name}: {e} (`kiln init {name}` writes an example)"
        ))
    })?;
    let plan = kiln::validate::load(&src)?;
    if strict && !plan.warnings.is_empty() {
        let mut diagnostics = plan.warnings.clone();
        for d in &mut diagnostics {
            d.severity = Severity::Error;
        }
        return Err(Rejected { diagnostics }.into());
    }
    for w in &plan.warnings {
        eprintln!("{w}");
    }
    Ok(plan)
}

fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Init { file, force } => {
            if file.as_os_str() == "-" {
                std::io::stdout().write_all(kiln::DEMO_SPEC.as_bytes())?;
                return Ok(());
            }
            if file.exists() && !force {
                anyhow::bail!(
                    "{} already exists; pass --force to overwrite it",
                    file.display()
                );
            }
            std::fs::write(&file, kiln::DEMO_SPEC)
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!(
                "wrote {}; next: kiln check {}",
                file.display(),
                file.display()
            );
            Ok(())
        }
        Command::Check { spec, json, strict } => {
            let plan = load(spec.as_deref(), strict)?;
            let rendered = kiln::components::render(&plan).context("rendering the plan")?;
            let report = kiln::report::build(&plan, &rendered);
            let out = if json {
                let mut s = serde_json::to_string_pretty(&report)?;
                s.push('\n');
                s
            } else {
                kiln::report::text(&report)
            };
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        Command::Schema => {
            std::io::stdout().write_all(kiln::schema_json().as_bytes())?;
            Ok(())
        }
        Command::Render {
            spec,
            output,
            strict,
        } => {
            let plan = load(spec.as_deref(), strict)?;
            let rendered = kiln::components::render(&plan).context("rendering the plan")?;
            let mut json = serde_json::to_string_pretty(&kiln::report::build(&plan, &rendered))?;
            json.push('\n');
            kiln::treedir::publish(&rendered, &json, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            let files: usize = rendered
                .profiles
                .values()
                .chain(rendered.hosts.values())
                .map(|t| t.len())
                .sum();
            eprintln!(
                "rendered {} profile(s) and {} host(s), {files} entries, into {}",
                rendered.profiles.len(),
                rendered.hosts.len(),
                output.display()
            );
            Ok(())
        }
    }
}
