//! `kiln serve`: serve a build over HTTP for network provisioning.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

/// Serve a build over HTTP for network provisioning: the PXE tree, cloud-init seeds,
/// root images, kickstarts and OCI blobs.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Serves DIST/pxe/ (boot.ipxe, per-MAC iPXE, PXELINUX and GRUB configs, \
kernels, initramfs and root images by digest), DIST/cloud-init/HOST/ at its nocloud-net paths \
(meta-data, user-data, network-config; vendor-data empty), DIST/kickstart/ (GET /kickstart/ \
with Anaconda's X-RHN-Provisioning-MAC-0 header picks the host's kickstart), DIST/boot/ and \
DIST/oci/. Range (206/416), ETag (the digest for content-addressed files) and If-None-Match \
(304); one log line per request on stderr, control bytes escaped. A host's seed, seed ISO and \
kickstart are served only at that host's own paths and only to the host's address from the \
spec (403 to anyone else); DIST/pxe/dhcp/ holds DHCP reservations (ISC dhcpd, dnsmasq) that \
give each host's MAC that address. The server refuses to start when a private file (e.g. \
mode 0600) sits on a shared path. A request head must arrive whole within 5 s; one address \
holds at most --max-per-peer connections. Prints the DHCP and iPXE settings to use at \
start. Stops on SIGINT or SIGTERM.\n\nExamples:\n  kiln serve dist --listen 10.0.0.5:8080\n  \
kiln serve dist --listen 127.0.0.1:8080 &  curl -r 0-99 http://127.0.0.1:8080/pxe/boot.ipxe\n  \
kiln serve dist --listen 127.0.0.1:28080 --trust-any-peer   # QEMU user network: guests \
appear as 127.0.0.1"
)]
pub(crate) struct ServeArgs {
    /// The output directory of `kiln build`.
    dist: PathBuf,
    /// Address to listen on, IP:PORT (the host part of provision.url, usually).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Serve every host's seed, seed ISO and kickstart (SSH keys, root's password hash) to
    /// any client, not only to the host's own address. For labs and NAT, where hosts do not
    /// reach the server from their spec addresses (QEMU's user network shows every guest as
    /// one address); logged as a warning.
    #[arg(long)]
    trust_any_peer: bool,
    /// Connections one client address may hold at once; more are answered 503 at once.
    /// Raise it when many hosts reach the server through one NAT address.
    #[arg(long, default_value_t = kiln_serve::Limits::default().per_peer as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_per_peer: u64,
}

impl ServeArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let ServeArgs {
            dist,
            listen,
            trust_any_peer,
            max_per_peer,
        } = self;
        // Before any thread starts: every thread inherits the mask, one waits for them.
        kiln_serve::signals::block().context("blocking SIGINT and SIGTERM")?;
        let mut opts = kiln_serve::ServeOptions::new(dist.clone(), listen);
        opts.trust_any_peer = trust_any_peer;
        opts.limits.per_peer = usize::try_from(max_per_peer).unwrap_or(usize::MAX);
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
}
