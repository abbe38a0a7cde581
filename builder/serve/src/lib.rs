//! `kiln serve DIST --listen ADDR`: an HTTP/1.1 server for network provisioning — the PXE
//! tree, cloud-init seeds at their nocloud-net paths, root images, kickstarts and OCI blobs —
//! over std's `TcpListener`, a thread per connection.
//!
//! - What is served and which paths are a host's own: [`tree`]. The server refuses to start
//!   when a private file sits on a shared path.
//! - `Range` (one range: 206, 416 when unsatisfiable), `ETag` (the digest for
//!   content-addressed files, `sha256:HEX`; a sha256 of the bytes for small files, size and
//!   mtime for large ones), `If-None-Match` (304), `HEAD`, a `Content-Type` per kind.
//! - One log line per request (method, path, status, bytes, peer).
//! - `Server::stop` (and SIGINT/SIGTERM through [`signals`]) ends the accept loop; requests
//!   in flight finish.

pub mod http;
pub mod signals;
pub mod tree;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

pub use tree::{Route, Served, Tree, TreeError};

/// Connections served at once; more get 503.
const MAX_CONNECTIONS: usize = 128;
/// Files up to this size get a sha256 ETag computed per request; larger ones size+mtime.
const HASHED_ETAG_MAX: u64 = 4 << 20;

/// Errors of `kiln serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
}

/// What to serve where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub dist: PathBuf,
    /// `IP:PORT` (port 0: any free port).
    pub listen: SocketAddr,
}

/// A bound server, not yet accepting.
#[derive(Debug)]
pub struct Server {
    tree: Arc<Tree>,
    listener: TcpListener,
    stop: Arc<AtomicBool>,
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

impl Server {
    /// Checks the tree ([`Tree::open`]) and binds `opts.listen`.
    pub fn bind(opts: &ServeOptions) -> Result<Server, ServeError> {
        let tree = Tree::open(&opts.dist)?;
        let listener = TcpListener::bind(opts.listen).map_err(|source| ServeError::Listen {
            addr: opts.listen.to_string(),
            source,
        })?;
        Ok(Server {
            tree: Arc::new(tree),
            listener,
            stop: Arc::new(AtomicBool::new(false)),
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

    /// A handle that stops [`Server::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
            addr: self.local_addr(),
        }
    }

    /// What an operator sets in DHCP and iPXE to boot from this server (printed at start).
    pub fn settings(&self) -> String {
        settings(&self.tree, self.local_addr())
    }

    /// Accepts connections until stopped; `log` gets one line per request.
    pub fn run(self, log: Arc<dyn Fn(&str) + Send + Sync>) {
        let active = Arc::new(AtomicUsize::new(0));
        for conn in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else { continue };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                let _ = respond_status(&stream, 503, "too many connections\n");
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (tree, log, active) = (self.tree.clone(), log.clone(), active.clone());
            std::thread::spawn(move || {
                if let Some(line) = serve_one(&tree, stream) {
                    log(&line);
                }
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Let requests in flight finish (at most a few seconds).
        for _ in 0..50 {
            if active.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
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
        "DHCP settings for network boot:\n\
         \x20 next-server   {here}   (a TFTP server with iPXE: undionly.kpxe for BIOS, ipxe.efi \
         for UEFI; or DIST/pxe itself, which holds boot.ipxe)\n\
         \x20 filename      \"undionly.kpxe\" (BIOS) / \"ipxe.efi\" (UEFI, arch 7 or 9) for \
         plain PXE clients, then for iPXE (user-class \"iPXE\" / option 175):\n\
         \x20 filename      \"{base}/pxe/boot.ipxe\"\n\
         iPXE chain URL: chain {base}/pxe/boot.ipxe\n\
         PXELINUX: {base}/pxe/pxelinux.cfg/01-MAC (lpxelinux.0 for HTTP); GRUB: \
         {base}/pxe/grub/grub.cfg-01-MAC\n\
         cloud-init seeds: {base}/cloud-init/HOST/ (kiln.seed= in the PXE configs)   kickstart: \
         inst.ks={base}/kickstart/ inst.ks.sendmac\n"
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
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nServer: kiln\r\n\r\n{body}",
        http::reason(status),
        body.len()
    )?;
    stream.flush()
}

/// Serves one request on `stream`; returns its log line.
fn serve_one(tree: &Tree, stream: TcpStream) -> Option<String> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(300)));
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let req = match http::read_request(&stream) {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) | Err(_) => return None,
        Ok(Err(http::BadRequest(why))) => {
            let _ = respond_status(&stream, 400, &format!("{why}\n"));
            return Some(format!("- - 400 0 {peer} ({why})"));
        }
    };
    // Status 0: the connection failed while answering.
    let (status, bytes) = answer(tree, &req, &stream).unwrap_or_default();
    let _ = stream.shutdown(Shutdown::Write);
    Some(format!(
        "{} {} {status} {bytes} {peer}",
        req.method, req.path
    ))
}

/// Answers `req`; returns (status, body bytes sent).
fn answer(tree: &Tree, req: &http::Request, stream: &TcpStream) -> io::Result<(u16, u64)> {
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        respond_status(stream, 405, "only GET and HEAD\n")?;
        return Ok((405, 0));
    }
    let macs: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-rhn-provisioning-mac-"))
        .map(|(_, v)| v.as_str())
        .collect();
    match tree.route(&req.path, &macs) {
        Route::Refused(why) => {
            respond_status(stream, 400, &format!("refused: {why}\n"))?;
            Ok((400, 0))
        }
        Route::NotFound => {
            respond_status(stream, 404, "not found\n")?;
            Ok((404, 0))
        }
        Route::Empty => {
            let mut s = stream;
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\
                 Server: kiln\r\n\r\n"
            )?;
            Ok((200, 0))
        }
        Route::File { rel, digest } => send_file(tree, req, &rel, digest.as_deref(), stream, head),
    }
}

fn send_file(
    tree: &Tree,
    req: &http::Request,
    rel: &str,
    digest: Option<&str>,
    stream: &TcpStream,
    head: bool,
) -> io::Result<(u16, u64)> {
    let path = tree.root.join(rel);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(_) => {
            respond_status(stream, 404, "not found\n")?;
            return Ok((404, 0));
        }
    };
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
        write!(s, "HTTP/1.1 304 Not Modified\r\n{common}\r\n")?;
        return Ok((304, 0));
    }
    let ctype = tree::content_type(rel);
    let (status, start, count) = match http::range(req.header("range"), len) {
        http::RangeAsk::Whole => {
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n{common}\r\n"
            )?;
            (200, 0, len)
        }
        http::RangeAsk::Part { start, end } => {
            let n = end - start + 1;
            write!(
                s,
                "HTTP/1.1 206 Partial Content\r\nContent-Type: {ctype}\r\nContent-Length: {n}\r\n\
                 Content-Range: bytes {start}-{end}/{len}\r\n{common}\r\n"
            )?;
            (206, start, n)
        }
        http::RangeAsk::Unsatisfiable => {
            write!(
                s,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                 Content-Length: 0\r\n{common}\r\n"
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
