//! The `kiln` binary: logging, argument parsing, dispatch, exit codes. The work is in the
//! library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kiln_pipeline::diag::{escape_controls, Severity};
use kiln_pipeline::validate::Rejected;

mod gendocs;
mod progress;

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
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Print the JSON Schema of the spec (for editors and CI).
    #[command(after_help = "Example:\n  kiln schema > kiln-spec.schema.json")]
    Schema,
    /// Build the images: one per role profile (base + one layer per component) plus the
    /// container images the units run, as an OCI layout (docker-archives on request).
    #[command(
        after_help = "Layout of DIR (default dist/):\n  oci/                 OCI image layout, one ref \
per image (CLUSTER-PROFILE, calico-node, …); every blob once\n  identity/HOST.tar    each host's identity, placed on its image\n  \
cloud-init/HOST/     its cloud-init NoCloud seed (meta-data, user-data, network-config)\n  \
cloud-init/HOST-cidata.iso  the seed as a cidata ISO (needs xorriso)\n  \
archives/REF.tar     docker-archive per image, with --archives\n  \
sbom/REF.spdx.json   SPDX 2.3 SBOM per role image (Debian packages, sources, baked images)\n  \
build-report.json    images, tags, digests, layers, SBOMs\n  SHA256SUMS\n\n\
The base comes from base.debian (mmdebstrap) or base.source.oci (oci:DIR[:REF] or \
docker-archive:FILE). SOURCE_DATE_EPOCH (default 1980-01-01) sets every timestamp, so the \
same spec and sources give the same digests. Compressed layers are cached by their inputs \
(CACHE/layers): an unchanged layer is never compressed twice, and a build whose spec, \
sources and options did not change finds nothing to do. DIR is swapped in only when the \
whole build succeeded.\n\nExamples:\n  kiln build cluster.toml -o dist\n  \
skopeo copy oci:dist/oci:prod-agent docker-daemon:kiln/prod-agent:latest\n  \
kiln build cluster.toml -o dist --archives && docker load -i dist/archives/prod-agent.tar\n  \
kiln push dist --to 127.0.0.1:5000/kiln --insecure"
    )]
    Build {
        /// The cluster spec (default: the built-in demo).
        spec: Option<PathBuf>,
        /// Output directory.
        #[arg(short, long, default_value = "dist")]
        output: PathBuf,
        /// Compress layers with zstd instead of gzip.
        #[arg(long)]
        zstd: bool,
        /// Compression threads per layer (0: all cores). Output is identical for any value.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Also write a docker-archive per image under DIR/archives/ (for `docker load`).
        #[arg(long)]
        archives: bool,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Boot the hosts of a build in QEMU and print their health table.
    #[command(
        after_help = "Each host boots its role's disk (DIST/boot/PROFILE/disk.qcow2, behind an \
overlay, so the build is never written) with its cloud-init seed as a CD-ROM and its NIC (the \
spec's MAC) on one private L2 network shared by the VMs of the run (QEMU multicast socket \
on 127.0.0.1, no root), plus a second NIC, the host link (QEMU user networking, brought up \
as 10.0.2.15/24 through the guest agent), through which the hosts reach the build host's \
127.0.0.1 at 10.0.2.2, e.g. a registry for the cluster. VMs start one after another. The checks come from the plan \
(DIST/boot/manifest.json) and run inside each guest through the QEMU guest agent: etcd \
/version and /health, the local etcd proxy or gateway, ZooKeeper srvr, docker info and the \
cluster store, Docker's node key in etcd, CNI plugins and config, Mesos and Marathon where \
present, and every unit active with no restarts. KVM is used when a short probe boot \
proves it works, TCG otherwise. Serial logs, overlays and agent sockets stay in the run \
directory. Exit 0 only when every host is healthy.\n\nExamples:\n  kiln boot dist --all\n  \
kiln boot dist --host node1 --keep\n  kiln boot dist --all --json | jq '.hosts[] | {name, healthy}'"
    )]
    Boot {
        /// The output directory of `kiln build`.
        dist: PathBuf,
        /// Boot only this host (repeatable).
        #[arg(long = "host", value_name = "NAME", conflicts_with = "all")]
        hosts: Vec<String>,
        /// Boot every host of the build (the default when no --host is given).
        #[arg(long)]
        all: bool,
        /// Print the result as JSON on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
        /// Leave the VMs running; prints their PIDs, consoles and agent sockets.
        #[arg(long)]
        keep: bool,
        /// Seconds to wait for every check to pass.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Accelerator: auto (KVM if a probe boot works, else TCG), kvm or tcg.
        #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
        accel: String,
        /// Memory per VM in MiB.
        #[arg(long, default_value_t = 2048)]
        memory: u32,
        /// Where overlays, serial logs and agent sockets go (default: a new dir under $TMPDIR).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Serve a build over HTTP for network provisioning: the PXE tree, cloud-init seeds,
    /// root images, kickstarts and OCI blobs.
    #[command(
        after_help = "Serves DIST/pxe/ (boot.ipxe, per-MAC iPXE, PXELINUX and GRUB configs, \
kernels, initramfs and root images by digest), DIST/cloud-init/HOST/ at its nocloud-net paths \
(meta-data, user-data, network-config; vendor-data empty), DIST/kickstart/ (GET /kickstart/ \
with Anaconda's X-RHN-Provisioning-MAC-0 header picks the host's kickstart), DIST/boot/ and \
DIST/oci/. Range (206/416), ETag (the digest for content-addressed files) and If-None-Match \
(304); one log line per request on stderr. A host's seed and kickstart are served only at \
that host's own paths; the server refuses to start when a private file (e.g. mode 0600) \
sits on a shared path. Prints the DHCP and iPXE settings to use at start. Stops on SIGINT \
or SIGTERM.\n\nExamples:\n  kiln serve dist --listen 10.0.0.5:8080\n  \
kiln serve dist --listen 127.0.0.1:8080 &  curl -r 0-99 http://127.0.0.1:8080/pxe/boot.ipxe"
    )]
    Serve {
        /// The output directory of `kiln build`.
        dist: PathBuf,
        /// Address to listen on, IP:PORT (the host part of provision.url, usually).
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
    /// Push every image of a build to a registry (OCI distribution API).
    #[command(
        after_help = "Images go to REGISTRY/PREFIX/NAME:TAG for every tag of the spec \
(images.tags). Blobs the registry has are skipped, shared layers are mounted across \
repositories, transient errors are retried. Credentials come from ~/.docker/config.json \
(or $DOCKER_CONFIG).\n\nExamples:\n  kiln push dist --to registry.example.com/mesos\n  \
kiln push dist --to 127.0.0.1:5000/kiln --insecure\n  docker pull 127.0.0.1:5000/kiln/demo-master-agent:latest"
    )]
    Push {
        /// The output directory of `kiln build`.
        dist: PathBuf,
        /// Destination `REGISTRY/PREFIX`.
        #[arg(long)]
        to: String,
        /// Plain HTTP (a registry without TLS).
        #[arg(long)]
        insecure: bool,
    },
    /// Resolve every source of a spec and write kiln.lock beside it (URL and sha256 of each).
    #[command(
        after_help = "Fetches what is not cached yet (first fetches record their digest), keeps \
digests already pinned, and drops entries the spec no longer uses. Commit kiln.lock with the \
spec; `--locked` builds then refuse anything not in it.\n\nExamples:\n  kiln lock cluster.toml\n  \
kiln lock cluster.toml --mirror http://mirror.local/kiln   # air-gapped: upstream URLs via a mirror"
    )]
    Lock {
        /// The cluster spec (default: the built-in demo; kiln.lock goes to the current dir).
        spec: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Fill the cache with every artifact of a spec ahead of a build (e.g. before going offline).
    #[command(
        after_help = "Unpinned sources are recorded in kiln.lock and reported.\n\nExamples:\n  \
kiln fetch cluster.toml --cache /srv/kiln-cache\n  kiln fetch cluster.toml --locked   # fetch exactly what kiln.lock pins"
    )]
    Fetch {
        /// The cluster spec (default: the built-in demo).
        spec: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Manage the artifact cache.
    #[command(subcommand)]
    Cache(CacheCommand),
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
        #[command(flatten)]
        plan: PlanArgs,
    },
}

/// The hidden `generate-docs` subcommand. It is added to the parser only, so the man pages and
/// completions generated from [`Cli`] do not show it.
const GENERATE_DOCS: &str = "generate-docs";

fn main() -> ExitCode {
    let matches = Cli::command()
        .subcommand(
            clap::Command::new(GENERATE_DOCS)
                .hide(true)
                .about("Write the spec reference, man pages and shell completions into DIR")
                .arg(
                    clap::Arg::new("dir")
                        .value_name("DIR")
                        .required(true)
                        .value_parser(clap::value_parser!(PathBuf)),
                ),
        )
        .get_matches();
    if let Some((GENERATE_DOCS, m)) = matches.subcommand() {
        let dir = m.get_one::<PathBuf>("dir").cloned().unwrap_or_default();
        return match gendocs::write_all(Cli::command(), &dir) {
            Ok(files) => {
                eprintln!("wrote {} file(s) under {}", files.len(), dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing {}: {e}", dir.display());
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
    let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT].map(|e| e.raw_os_error());
    let disk_full = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .find(|io| io.raw_os_error().is_some_and(|c| full.contains(&c)));
    if let Some(io) = disk_full {
        let os = io.to_string();
        text = if text.contains(&os) {
            text.replacen(&os, &format!("disk full: {os}"), 1)
        } else {
            format!("{text} (disk full)")
        };
    }
    text
}

/// A usage error (exit code 2) that is not clap's: e.g. a spec file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Loads and validates a spec, printing warnings; `--strict` turns them into a rejection.
fn load(
    spec: Option<&Path>,
    strict: bool,
    plan: &PlanArgs,
) -> anyhow::Result<kiln_pipeline::validate::Loaded> {
    let src = kiln_pipeline::read_spec(spec).map_err(|e| -> anyhow::Error {
        match e {
            kiln_pipeline::ReadSpecError::NotUtf8(d) => Rejected {
                diagnostics: vec![*d],
            }
            .into(),
            kiln_pipeline::ReadSpecError::Io(e) => {
                let name = spec.map(|p| p.display().to_string()).unwrap_or_default();
                Usage(format!(
                    "cannot read spec {name}: {e} (`kiln init {name}` writes an example)"
                ))
                .into()
            }
        }
    })?;
    let loaded = kiln_pipeline::validate::load_with(&src, &plan.options())?;
    if strict && !loaded.warnings.is_empty() {
        let mut diagnostics = loaded.warnings.clone();
        for d in &mut diagnostics {
            d.severity = Severity::Error;
        }
        return Err(Rejected { diagnostics }.into());
    }
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Init { file, force } => {
            if file.as_os_str() == "-" {
                std::io::stdout().write_all(kiln_pipeline::DEMO_SPEC.as_bytes())?;
                return Ok(());
            }
            if file.exists() && !force {
                anyhow::bail!(
                    "{} already exists; pass --force to overwrite it",
                    file.display()
                );
            }
            std::fs::write(&file, kiln_pipeline::DEMO_SPEC)
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!(
                "wrote {}; next: kiln check {}",
                file.display(),
                file.display()
            );
            Ok(())
        }
        Command::Check {
            spec,
            json,
            strict,
            plan,
        } => {
            let kiln_pipeline::validate::Loaded { plan, warnings } =
                load(spec.as_deref(), strict, &plan)?;
            let rendered =
                kiln_pipeline::components::render(&plan).context("rendering the plan")?;
            let report = kiln_pipeline::report::build(&plan, &warnings, &rendered);
            let out = if json {
                let mut s = serde_json::to_string_pretty(&report)?;
                s.push('\n');
                s
            } else {
                kiln_pipeline::report::text(&report)
            };
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        Command::Schema => {
            std::io::stdout().write_all(kiln_pipeline::schema_json().as_bytes())?;
            Ok(())
        }
        Command::Build {
            spec,
            output,
            zstd,
            threads,
            archives,
            strict,
            plan,
            sources,
        } => {
            let plan = load(spec.as_deref(), strict, &plan)?.plan;
            let rendered =
                kiln_pipeline::components::render(&plan).context("rendering the plan")?;
            let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v.parse().map_err(|_| {
                    Usage(format!(
                        "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
                    ))
                })?,
                Err(_) => kiln_pipeline::stages::DEFAULT_EPOCH,
            };
            // Refuse a foreign output directory before any download.
            kiln_pipeline::publish::replaceable(&output, kiln_pipeline::stages::REPORT, "build")
                .with_context(|| format!("writing {}", output.display()))?;
            let mut src_opts = sources.options(spec.as_deref());
            src_opts.source_date_epoch = epoch;
            let resolved =
                kiln_pipeline::sources::resolve(&plan, &spec_dir(spec.as_deref()), &src_opts)
                    .context("resolving sources")?;
            report_recorded(&resolved);
            let opts = kiln_pipeline::stages::BuildOptions {
                dist: output.clone(),
                source_date_epoch: epoch,
                compression: if zstd {
                    kiln_layers::Compression::Zstd { level: 3 }
                } else {
                    kiln_layers::Compression::default()
                },
                threads,
                archives,
                layer_cache: Some(src_opts.cache_dir.join("layers")),
            };
            let built =
                kiln_pipeline::stages::build(&plan, &rendered, &resolved, &opts, &mut |m| {
                    eprintln!("  {m}")
                })
                .with_context(|| format!("building {}", output.display()))?;
            let report = &built.report;
            if built.unchanged {
                eprintln!(
                    "nothing changed: {} is up to date (spec, sources and options as in its build report)",
                    output.display()
                );
                return Ok(());
            }
            for img in &report.images {
                eprintln!(
                    "{} {}:{} {}",
                    img.kind,
                    img.repository,
                    img.tags.join(","),
                    img.manifest_digest
                );
            }
            eprintln!(
                "wrote {} image(s) to {} ({} layer(s) compressed, {} from the layer cache)",
                report.images.len(),
                output.display(),
                built.layers_compressed,
                built.layers_cached
            );
            Ok(())
        }
        Command::Boot {
            dist,
            hosts,
            all: _,
            json,
            keep,
            timeout,
            accel,
            memory,
            run_dir,
        } => {
            use kiln_vm::AccelChoice;
            let mut opts = kiln_vm::BootOptions::new(&dist);
            opts.hosts = hosts;
            opts.keep = keep;
            opts.timeout = std::time::Duration::from_secs(timeout);
            opts.memory_mib = memory;
            opts.run_dir = run_dir;
            opts.accel = match accel.as_str() {
                "kvm" => AccelChoice::Kvm,
                "tcg" => AccelChoice::Tcg,
                _ => AccelChoice::Auto,
            };
            let run = kiln_vm::boot(&opts, &mut |m| eprintln!("  {m}")).map_err(|e| {
                if e.is_usage() {
                    anyhow::Error::from(Usage(e.to_string()))
                } else {
                    anyhow::Error::from(e).context(format!("booting {}", dist.display()))
                }
            })?;
            let report = &run.report;
            let table = kiln_vm::health::table(&report.hosts);
            if json {
                eprint!("{table}");
                let mut s = serde_json::to_string_pretty(report)?;
                s.push('\n');
                std::io::stdout().write_all(s.as_bytes())?;
            } else {
                print!("{table}");
            }
            for (host, fw) in &report.forwards {
                let list: Vec<String> = fw
                    .iter()
                    .map(|f| format!("{} -> {}", f.host, f.guest_port))
                    .collect();
                if !list.is_empty() {
                    eprintln!("{host}: ports on this machine: {}", list.join(", "));
                }
            }
            for vm in &run.kept {
                eprintln!(
                    "kept {}: pid {}, console {}, agent {}",
                    vm.name,
                    vm.pid,
                    vm.serial_log.display(),
                    vm.qga_socket.display()
                );
            }
            if !run.kept.is_empty() {
                // Dropping a kept VM would stop it.
                std::mem::forget(run.kept);
            }
            eprintln!("run directory {}", report.run_dir.display());
            if report.healthy {
                eprintln!(
                    "all {} host(s) healthy in {:.0} s",
                    report.hosts.len(),
                    report.elapsed_secs
                );
                Ok(())
            } else {
                anyhow::bail!("unhealthy: {}", report.unhealthy().join(", "))
            }
        }
        Command::Serve { dist, listen } => {
            use std::sync::Arc;
            // Before any thread starts: every thread inherits the mask, one waits for them.
            kiln_serve::signals::block().context("blocking SIGINT and SIGTERM")?;
            let opts = kiln_serve::ServeOptions {
                dist: dist.clone(),
                listen,
            };
            let server = kiln_serve::Server::bind(&opts)
                .with_context(|| format!("serving {}", dist.display()))?;
            eprint!("{}", server.settings());
            let stop = server.stop_handle();
            std::thread::spawn(move || {
                if let Ok(sig) = kiln_serve::signals::wait() {
                    eprintln!("kiln serve: {sig}, stopping");
                }
                stop.stop();
            });
            server.run(Arc::new(|line: &str| eprintln!("{line}")));
            eprintln!("kiln serve: stopped");
            Ok(())
        }
        Command::Push { dist, to, insecure } => {
            let target = kiln_pipeline::push::PushTarget::parse(&to, insecure)
                .map_err(|e| Usage(e.to_string()))?;
            let mut progress = progress::Bars::new();
            let pushed = kiln_pipeline::push::push_dist(&dist, &target, &mut progress)?;
            progress.finish();
            for p in &pushed {
                let r = &p.report;
                eprintln!(
                    "pushed {} {} ({} uploaded, {} mounted, {} already there, {} bytes)",
                    p.reference,
                    r.digest,
                    r.blobs_uploaded,
                    r.blobs_mounted,
                    r.blobs_skipped,
                    r.bytes_uploaded
                );
            }
            Ok(())
        }
        Command::Lock {
            spec,
            plan,
            sources,
        } => {
            let plan = load(spec.as_deref(), false, &plan)?.plan;
            let opts = sources.options(spec.as_deref());
            let (resolved, lock) =
                kiln_pipeline::sources::lock(&plan, &spec_dir(spec.as_deref()), &opts)?;
            report_recorded(&resolved);
            eprintln!(
                "locked {} artifact(s) in {}",
                lock.artifacts.len(),
                opts.lock_path.display()
            );
            Ok(())
        }
        Command::Fetch {
            spec,
            plan,
            sources,
        } => {
            let plan = load(spec.as_deref(), false, &plan)?.plan;
            let mut opts = sources.options(spec.as_deref());
            opts.progress = true;
            let resolved =
                kiln_pipeline::sources::resolve(&plan, &spec_dir(spec.as_deref()), &opts)?;
            report_recorded(&resolved);
            eprintln!(
                "{} artifact(s) in the cache {}",
                resolved.lock.len(),
                opts.cache_dir.display()
            );
            Ok(())
        }
        Command::Cache(CacheCommand::Import { files, cache }) => {
            let dir = cache.unwrap_or_else(kiln_pipeline::sources::default_cache_dir);
            let c = kiln_pipeline::sources::cache::Cache::open(&dir)?;
            for f in &files {
                let digest = c
                    .import(f)
                    .with_context(|| format!("importing {}", f.display()))?;
                println!("{digest}  {}", f.display());
            }
            Ok(())
        }
        Command::Render {
            spec,
            output,
            strict,
            plan,
        } => {
            let kiln_pipeline::validate::Loaded { plan, warnings } =
                load(spec.as_deref(), strict, &plan)?;
            let rendered =
                kiln_pipeline::components::render(&plan).context("rendering the plan")?;
            let mut json = serde_json::to_string_pretty(&kiln_pipeline::report::build(
                &plan, &warnings, &rendered,
            ))?;
            json.push('\n');
            kiln_pipeline::treedir::publish(&rendered, &json, &output)
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

/// What goes into the plan besides the spec: flags shared by every command that loads one.
#[derive(clap::Args, Debug, Clone, Default)]
struct PlanArgs {
    /// Leave upstream components out of the plan, with their units and ports: `mesos`,
    /// `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their
    /// releases). The plan and the build report list what was left out; nothing stands in.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["mesos", "marathon", "calico", "upstream"])]
    leave_out: Vec<String>,
}

impl PlanArgs {
    fn options(&self) -> kiln_pipeline::validate::LoadOptions {
        use kiln_pipeline::plan::Upstream;
        let mut leave_out = Vec::new();
        for name in &self.leave_out {
            match name.as_str() {
                "upstream" => leave_out.extend(Upstream::ALL),
                "mesos" => leave_out.push(Upstream::Mesos),
                "marathon" => leave_out.push(Upstream::Marathon),
                _ => leave_out.push(Upstream::Calico),
            }
        }
        kiln_pipeline::validate::LoadOptions { leave_out }
    }
}

/// Where sources come from: flags shared by `lock`, `fetch` and `build`.
#[derive(clap::Args, Debug, Clone, Default)]
struct SourceArgs {
    /// Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Use only the cache; fail listing every missing artifact.
    #[arg(long)]
    offline: bool,
    /// Read upstream URLs from a mirror: https://HOST/PATH becomes MIRROR/HOST/PATH.
    #[arg(long, value_name = "URL|DIR")]
    mirror: Option<String>,
    /// Refuse any artifact that kiln.lock does not list.
    #[arg(long)]
    locked: bool,
}

impl SourceArgs {
    fn options(&self, spec: Option<&Path>) -> kiln_pipeline::sources::SourceOptions {
        let mut o = kiln_pipeline::sources::SourceOptions::new(&spec_dir(spec));
        if let Some(c) = &self.cache {
            o.cache_dir = c.clone();
        }
        o.offline = self.offline;
        o.mirror = self.mirror.clone();
        o.locked = self.locked;
        o.progress = true;
        o
    }
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Add files to the cache by their sha256 (for air-gapped sites and --offline builds).
    #[command(
        after_help = "Prints `sha256:<hex>  FILE` per file. A build finds an artifact by the digest \
pinned in the spec or kiln.lock, whatever the file was called.\n\nExamples:\n  \
kiln cache import etcd-v3.4.23-linux-amd64.tar.gz docker-20.10.24.tgz\n  \
kiln cache import --cache /srv/kiln-cache *.deb"
    )]
    Import {
        /// Files to add.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
}

/// The directory a spec's relative paths and kiln.lock are resolved against.
fn spec_dir(spec: Option<&Path>) -> PathBuf {
    spec.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Reports digests recorded for sources that had none pinned.
fn report_recorded(r: &kiln_pipeline::sources::Resolved) {
    for repaired in &r.repaired {
        eprintln!("warning: {repaired}");
    }
    for e in &r.recorded {
        eprintln!(
            "recorded {} {} as sha256:{} (no digest was pinned)",
            e.component, e.origin, e.sha256
        );
    }
}
