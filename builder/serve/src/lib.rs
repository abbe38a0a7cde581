//! `kiln serve DIST --listen ADDR`: an HTTP/1.1 server for network provisioning — the PXE
//! tree, cloud-init seeds at their nocloud-net paths, root images, kickstarts and OCI blobs.
//!
//! - What is served and which paths are a host's own: [`tree`]. The server refuses to start
//!   when a private file sits on a shared path.
//! - **A host's own paths go only to the host.** `cloud-init/HOST/*`,
//!   `cloud-init/HOST-cidata.iso` and `kickstart/HOST.ks` (also by Anaconda's MAC header) are
//!   answered only to a peer at HOST's address from the spec (`pxe/hosts.json`, or the boot
//!   manifest), and `403` to anyone else; the PXE tree carries DHCP reservations
//!   (`pxe/dhcp/`) that give each MAC that address. [`ServeOptions::trust_any_peer`] turns
//!   this off for labs and NAT (QEMU's user network shows every guest as one address). It
//!   does not stop a client on the same L2 that takes over a host's address or MAC.
//! - **Slow and idle clients cannot lock others out**: one thread takes connections in and
//!   reads request heads without blocking (`conns.rs`); each head must arrive whole within
//!   [`Limits::head_timeout`] of the accept (a trickle of bytes does not extend it); one
//!   address holds at most [`Limits::per_peer`] connections; at the overall cap the oldest
//!   unfinished head is dropped for a newcomer. A whole head is answered on a thread of its
//!   own. [`Server::bind`] raises the soft `RLIMIT_NOFILE` to the hard limit and sizes the
//!   overall cap to the descriptors there are.
//! - Files are opened below the root's descriptor without following symbolic links, in one
//!   step (`openat2`, see [`Tree::open_file`]).
//! - `Range` (one range: 206, 416 when unsatisfiable; a last-pos beyond the length or beyond
//!   2^64 means "to the end", RFC 9110 §14.1.2), `ETag` (the digest for content-addressed
//!   files, `sha256:HEX`; a sha256 of the bytes for small files, size and mtime for large
//!   ones), `If-None-Match` (304), `HEAD`, a `Content-Type` per kind.
//! - One log line per request (method, path, status, bytes, peer), every field escaped
//!   ([`http::log_escape`]): no request can write a second line or a control byte.
//! - `Server::stop` (and SIGINT/SIGTERM through [`signals`]) ends the accept loop; requests
//!   in flight finish.

mod conns;
pub mod http;
pub mod signals;
pub mod tree;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustix::io::Errno;
use sha2::{Digest, Sha256};

pub use tree::{Access, Route, Served, Tree, TreeError};

/// Files up to this size get a sha256 ETag computed per request; larger ones size+mtime.
const HASHED_ETAG_MAX: u64 = 4 << 20;
/// Longest a write of a response may block: a client that reads nothing for this long is
/// dropped (a slow reader holds one thread and one of its address's connections meanwhile).
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Log lines waiting for the log's thread; beyond, the accept loop drops (and counts) them.
const LOG_QUEUE: usize = 16 * 1024;
/// Descriptors kept out of the connection budget: the listener, stdio, and slack.
const FD_RESERVE: u64 = 64;

/// The DHCP reservation files of the PXE tree, relative to the output directory.
pub const DHCP_RESERVATIONS: [&str; 2] =
    ["pxe/dhcp/dhcpd-hosts.conf", "pxe/dhcp/dnsmasq-hosts.conf"];

/// Errors of `kiln serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error(
        "{dist}: pxe/hosts.json gives no address for host(s) {}, so their seeds and kickstarts \
         could not be bound to them (it was written by an older kiln): rebuild {dist} with this \
         kiln, or pass --trust-any-peer to serve them to anyone",
        hosts.join(", ")
    )]
    NoAddress { dist: String, hosts: Vec<String> },
}

/// Limits that keep slow, idle and greedy clients from locking others out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head must arrive within this time of the accept (however the bytes
    /// trickle in); then `408` and the connection is closed.
    pub head_timeout: Duration,
    /// Connections one peer address may hold at once; more get `503` at once.
    pub per_peer: usize,
    /// Connections held at once in all (lowered to what the descriptor limit allows).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // iPXE, cloud-init's fetcher and Anaconda send their head in one segment; 5 s is
            // ample on a provisioning network and keeps a slot taken by a silent client short.
            head_timeout: Duration::from_secs(5),
            // A booting host fetches one file at a time; 64 leaves room for many hosts behind
            // one NAT address (and a lab's user network) while capping one greedy address.
            per_peer: 64,
            max_connections: 4096,
        }
    }
}

/// What to serve where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub dist: PathBuf,
    /// `IP:PORT` (port 0: any free port).
    pub listen: SocketAddr,
    /// Serve every host's own paths (seeds with SSH keys and password hashes, seed ISOs,
    /// kickstarts) to any peer, not only to the host's address: for labs and NAT, where hosts
    /// do not reach the server from their own addresses. Loudly logged.
    pub trust_any_peer: bool,
    pub limits: Limits,
}

impl ServeOptions {
    /// `dist` on `listen`, each host's own paths bound to its address, default limits.
    pub fn new(dist: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        ServeOptions {
            dist: dist.into(),
            listen,
            trust_any_peer: false,
            limits: Limits::default(),
        }
    }
}

/// A bound server, not yet accepting.
#[derive(Debug)]
pub struct Server {
    tree: Arc<Tree>,
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    trust_any_peer: bool,
    /// As in effect (the overall cap fitted to the descriptor limit).
    limits: Limits,
    /// The soft descriptor limit after raising it.
    nofile: Option<u64>,
}

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl StopHandle {
    /// Ends the accept loop (wakes it with a connection of its own).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_secs(1));
    }
}

/// Where to connect to reach a listener bound to `addr` (an unspecified address is reached
/// on loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (every held connection is a descriptor,
/// and a served file another; the usual soft limit of 1024 would be what breaks first) and
/// returns the soft limit then in effect (`None`: unlimited).
fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                },
            )
            .is_ok()
        {
            return Some(max);
        }
    }
    lim.current
}

impl Server {
    /// Checks the tree ([`Tree::open`]), raises the descriptor limit (see [`Limits`]) and
    /// binds `opts.listen`.
    pub fn bind(opts: &ServeOptions) -> Result<Server, ServeError> {
        let tree = Tree::open(&opts.dist)?;
        let unbound = tree.hosts_without_address();
        if !opts.trust_any_peer && !unbound.is_empty() {
            return Err(ServeError::NoAddress {
                dist: opts.dist.display().to_string(),
                hosts: unbound.iter().map(|h| h.to_string()).collect(),
            });
        }
        let nofile = raise_nofile();
        let mut limits = opts.limits;
        limits.per_peer = limits.per_peer.max(1);
        if let Some(n) = nofile {
            // A connection being answered holds its socket and the file it sends.
            let fit = usize::try_from(n.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX);
            limits.max_connections = limits.max_connections.min(fit);
        }
        limits.max_connections = limits.max_connections.max(1);
        let listener = TcpListener::bind(opts.listen).map_err(|source| ServeError::Listen {
            addr: opts.listen.to_string(),
            source,
        })?;
        Ok(Server {
            tree: Arc::new(tree),
            listener,
            stop: Arc::new(AtomicBool::new(false)),
            trust_any_peer: opts.trust_any_peer,
            limits,
            nofile,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The served tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The limits in effect (the overall cap fitted to the descriptor limit).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A handle that stops [`Server::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
            addr: self.local_addr(),
        }
    }

    /// What an operator sets in DHCP and iPXE to boot from this server, and who gets which
    /// files (printed at start).
    pub fn settings(&self) -> String {
        let mut s = settings(&self.tree, self.local_addr());
        s += &format!(
            "limits: a whole request head within {} s of connecting; {} connections per \
             address, {} in all (file descriptors: {})\n",
            self.limits.head_timeout.as_secs_f64(),
            self.limits.per_peer,
            self.limits.max_connections,
            self.nofile
                .map_or("unlimited".to_string(), |n| n.to_string()),
        );
        if self.trust_any_peer {
            s += TRUST_ANY_PEER_WARNING;
            s.push('\n');
        } else {
            s += "host files: cloud-init/HOST/ (and by MAC, cloud-init/mac/MAC/), \
                  cloud-init/HOST-cidata.iso and kickstart/HOST.ks are served only to HOST's address from the spec (403 to anyone else): give \
                  each host that address by DHCP";
            let dhcp: Vec<&str> = DHCP_RESERVATIONS
                .iter()
                .copied()
                .filter(|rel| self.tree.root.join(rel).is_file())
                .collect();
            if dhcp.is_empty() {
                s += "\n";
            } else {
                s += &format!(
                    " (reservations: {}; see the provisioning guide)\n",
                    dhcp.iter()
                        .map(|rel| format!("{}/{rel}", self.tree.root.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        s
    }

    /// Accepts connections until stopped; `log` gets one line per request (and the warning
    /// of [`ServeOptions::trust_any_peer`] first), on a thread of its own: a log that writes
    /// slowly (a stalled terminal or pipe) never holds up the accept loop.
    pub fn run(self, log: Arc<dyn Fn(&str) + Send + Sync>) {
        let (tx, rx) = mpsc::sync_channel::<String>(LOG_QUEUE);
        let writer = {
            let log = log.clone();
            std::thread::Builder::new()
                .name("kiln-serve-log".into())
                .spawn(move || rx.iter().for_each(|line| log(&line)))
        };
        let Ok(writer) = writer else {
            log("kiln serve: cannot start a thread for the log; stopping");
            return;
        };
        if self.trust_any_peer {
            let _ = tx.send(TRUST_ANY_PEER_WARNING.to_string());
        }
        let active = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(Ctx {
            tree: self.tree.clone(),
            trust_any_peer: self.trust_any_peer,
            log: tx.clone(),
        });
        let mut ready = |head: conns::Head| {
            active.fetch_add(1, Ordering::SeqCst);
            let (ctx, active_t) = (ctx.clone(), active.clone());
            let spawned = std::thread::Builder::new()
                .name("kiln-serve".into())
                .spawn(move || {
                    respond(&ctx, head);
                    drop(ctx);
                    active_t.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                // No thread to answer on: the head (and its connection) is dropped with the
                // closure, and the client sees the connection close.
                active.fetch_sub(1, Ordering::SeqCst);
            }
        };
        // The accept loop never waits for the log: when the queue is full, lines are counted
        // and the count is logged once there is room again.
        let dropped = AtomicUsize::new(0);
        let accept_log = |line: &str| {
            let n = dropped.load(Ordering::Relaxed);
            if n > 0
                && tx
                    .try_send(format!(
                        "kiln serve: {n} log line(s) dropped: the log did not keep up"
                    ))
                    .is_ok()
            {
                dropped.fetch_sub(n, Ordering::Relaxed);
            }
            if tx.try_send(line.to_string()).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        };
        if let Err(e) = conns::run(
            &self.listener,
            &self.stop,
            &self.limits,
            &accept_log,
            &mut ready,
        ) {
            let _ = tx.send(format!(
                "kiln serve: waiting for connections: {e}; stopping"
            ));
        }
        // Let requests in flight finish (at most a few seconds).
        for _ in 0..50 {
            if active.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop((ctx, tx));
        // Every line is written before returning, unless a request is still hanging on (then
        // its thread holds the log open and the writer is left to finish with it).
        if active.load(Ordering::SeqCst) == 0 {
            let _ = writer.join();
        }
    }
}

/// Logged (and printed) when every peer is trusted.
const TRUST_ANY_PEER_WARNING: &str = "WARNING: --trust-any-peer: every host's seed (SSH keys, \
     root's password hash), seed ISO and kickstart is served to ANY client that asks for it by \
     name or MAC; use this only where the network is yours alone (a lab, a NAT whose hosts all \
     appear as one address)";

/// What a request's thread needs.
struct Ctx {
    tree: Arc<Tree>,
    trust_any_peer: bool,
    /// To the log's thread.
    log: SyncSender<String>,
}

/// Answers one whole head on its connection and logs it.
fn respond(ctx: &Ctx, head: conns::Head) {
    let conns::Head {
        stream,
        peer,
        slot,
        request,
    } = head;
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let peer_s = http::log_escape(&peer.to_string());
    let line = match request {
        Err(http::BadRequest(why)) => {
            let _ = respond_status(&stream, 400, &format!("{why}\n"));
            format!("- - 400 0 {peer_s} ({why})")
        }
        Ok(req) => {
            // Status 0: the connection failed while answering.
            let (status, bytes, why) =
                answer(ctx, &req, peer.ip(), &stream).unwrap_or((0, 0, None));
            let _ = stream.shutdown(Shutdown::Write);
            let mut line = format!(
                "{} {} {status} {bytes} {peer_s}",
                http::log_escape(&req.method),
                http::log_escape(&req.path)
            );
            if let Some(why) = why {
                line += &format!(" ({why})");
            }
            line
        }
    };
    drop(stream);
    drop(slot);
    let _ = ctx.log.send(line);
}

/// The DHCP/iPXE settings text for `tree` served on `addr`.
pub fn settings(tree: &Tree, addr: SocketAddr) -> String {
    let here = if addr.ip().is_unspecified() {
        "<this machine's address>".to_string()
    } else {
        addr.ip().to_string()
    };
    let base = tree
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{here}:{}", addr.port()));
    let mut s = format!(
        "kiln serve: cluster {}, {} host(s), serving {} on http://{addr}/\n",
        tree.cluster,
        tree.hosts.len(),
        tree.root.display()
    );
    if tree.url.is_none() {
        s += "  (this build has no provision.url, so no pxe/ tree: seeds, kickstarts, root \
              images and blobs only)\n";
    }
    s += &format!(
        "DHCP settings for network boot (DIST/pxe is the TFTP root; the loaders are in it):\n\
         \x20 next-server   {here}   (TFTP: serve DIST/pxe; HTTP: this server)\n\
         \x20 BIOS, iPXE       filename \"undionly.kpxe\", then for iPXE (user-class \"iPXE\"): \
         \"{base}/pxe/boot.ipxe\"\n\
         \x20 BIOS, PXELINUX   filename \"lpxelinux.0\" (reads pxelinux.cfg/01-MAC)\n\
         \x20 UEFI, iPXE       filename \"ipxe.efi\" (arch 7), then \"{base}/pxe/boot.ipxe\"; \
         UEFI HTTP boot: \"{base}/pxe/ipxe.efi\" (vendor class \"HTTPClient\")\n\
         \x20 UEFI, GRUB       filename \"grub/x86_64-efi/core.efi\" (reads grub/grub.cfg-MAC; not \
         with Secure Boot)\n\
         iPXE chain URL: chain {base}/pxe/boot.ipxe   (UEFI iPXE boots each role's network UKI)\n\
         cloud-init seeds: {base}/cloud-init/HOST/, by MAC {base}/cloud-init/mac/MAC/   \
         kickstart: inst.ks={base}/kickstart/ inst.ks.sendmac\n"
    );
    if let Some(url) = &tree.url {
        let listen_url = format!("http://{here}:{}", addr.port());
        if !addr.ip().is_unspecified() && url.trim_end_matches('/') != listen_url {
            s += &format!(
                "note: the PXE configs point at provision.url {url}, not at {listen_url}: \
                 hosts reach this server there only through a proxy or forward\n"
            );
        }
    }
    s
}

fn respond_status(mut stream: &TcpStream, status: u16, body: &str) -> io::Result<()> {
    stream.write_all(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nServer: kiln\r\n\r\n{body}",
            http::reason(status),
            body.len()
        )
        .as_bytes(),
    )?;
    stream.flush()
}

/// Whether an error opening a served file means there is no such file to serve (missing, a
/// symbolic link on the way, a file where a directory should be, not a regular file).
fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            Errno::from_io_error(e),
            Some(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NAMETOOLONG | Errno::XDEV)
        )
}

/// Answers `req` from `peer`; returns (status, body bytes sent, why, for the log).
fn answer(
    ctx: &Ctx,
    req: &http::Request,
    peer: IpAddr,
    stream: &TcpStream,
) -> io::Result<(u16, u64, Option<String>)> {
    let tree = &ctx.tree;
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        respond_status(stream, 405, "only GET and HEAD\n")?;
        return Ok((405, 0, None));
    }
    let macs: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-rhn-provisioning-mac-"))
        .map(|(_, v)| v.as_str())
        .collect();
    let (rel, digest) = match tree.route(&req.path, &macs) {
        Route::Refused(why) => {
            respond_status(stream, 400, &format!("refused: {why}\n"))?;
            return Ok((400, 0, None));
        }
        Route::NotFound => {
            respond_status(stream, 404, "not found\n")?;
            return Ok((404, 0, None));
        }
        Route::File { rel, digest } => (rel, digest),
    };
    // Before the file is looked at: another host's path reveals nothing, not even whether
    // it exists.
    if let Access::Denied(host) = tree.may_read(&rel, peer, ctx.trust_any_peer) {
        respond_status(
            stream,
            403,
            "forbidden: a host's own files are served only to that host's address\n",
        )?;
        let at = tree
            .hosts
            .iter()
            .find(|h| h.name == host)
            .and_then(|h| h.address)
            .map_or("no address".to_string(), |a| a.to_string());
        let why = format!(
            "{}'s own path; {} is {at}",
            http::log_escape(host),
            http::log_escape(host)
        );
        return Ok((403, 0, Some(why)));
    }
    let file = match tree.open_file(&rel) {
        Ok(f) => f,
        // cloud-init asks for vendor-data, which a seed may lack: an empty answer.
        Err(e) if not_found(&e) && tree::is_vendor_data(&rel) && tree.owner(&rel).is_some() => {
            let mut s = stream;
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  Content-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\
                  Server: kiln\r\n\r\n",
            )?;
            return Ok((200, 0, None));
        }
        Err(e) if not_found(&e) => {
            respond_status(stream, 404, "not found\n")?;
            return Ok((404, 0, None));
        }
        Err(e) => {
            respond_status(stream, 500, "cannot open the file\n")?;
            // `rel` comes from the request: escaped like the path.
            let why = format!("opening {}: {e}", http::log_escape(&rel));
            return Ok((500, 0, Some(why)));
        }
    };
    let (status, sent) = send_file(tree, req, &rel, file, digest.as_deref(), stream, head)?;
    Ok((status, sent, None))
}

/// Sends `file` (opened at `rel`) as `req` asks: whole, a range, or 304.
fn send_file(
    tree: &Tree,
    req: &http::Request,
    rel: &str,
    mut file: File,
    digest: Option<&str>,
    stream: &TcpStream,
    head: bool,
) -> io::Result<(u16, u64)> {
    let meta = file.metadata()?;
    let len = meta.len();
    let etag = match digest {
        Some(hex) => format!("\"sha256:{hex}\""),
        None if len <= HASHED_ETAG_MAX => {
            let mut h = Sha256::new();
            io::copy(&mut (&file).take(len), &mut h)?;
            file.seek(SeekFrom::Start(0))?;
            format!("\"sha256:{}\"", hex::encode(h.finalize()))
        }
        None => {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("W/\"{len:x}-{mtime:x}\"")
        }
    };
    // A host's own files (seeds, kickstarts) are not for shared caches.
    let cache = if tree.owner(rel).is_some() {
        "no-store"
    } else if digest.is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let common = format!(
        "ETag: {etag}\r\nAccept-Ranges: bytes\r\nCache-Control: {cache}\r\n\
         Connection: close\r\nServer: kiln\r\n"
    );
    let mut s = stream;
    if http::none_match(req.header("if-none-match"), &etag) {
        s.write_all(format!("HTTP/1.1 304 Not Modified\r\n{common}\r\n").as_bytes())?;
        return Ok((304, 0));
    }
    let ctype = tree::content_type(rel);
    let (status, start, count) = match http::range(req.header("range"), len) {
        http::RangeAsk::Whole => {
            s.write_all(
                format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n{common}\r\n"
            )
                .as_bytes(),
            )?;
            (200, 0, len)
        }
        http::RangeAsk::Part { start, end } => {
            let n = end - start + 1;
            s.write_all(
                format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: {ctype}\r\nContent-Length: {n}\r\n\
                 Content-Range: bytes {start}-{end}/{len}\r\n{common}\r\n"
            )
                .as_bytes(),
            )?;
            (206, start, n)
        }
        http::RangeAsk::Unsatisfiable => {
            s.write_all(
                format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                 Content-Length: 0\r\n{common}\r\n"
                )
                .as_bytes(),
            )?;
            return Ok((416, 0));
        }
    };
    if head {
        return Ok((status, 0));
    }
    file.seek(SeekFrom::Start(start))?;
    let sent = io::copy(&mut file.take(count), &mut s)?;
    s.flush()?;
    Ok((status, sent))
}
