//! Helpers: tool checks, layer blobs, a local registry process, a fault-injecting proxy.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use kiln_images::oci::MEDIA_TYPE_LAYER_GZIP;
use kiln_images::store::sha256_digest;
use kiln_images::{BlobStore, Layer};

pub const EPOCH: i64 = 1_700_000_000;

/// Panics with a clear message when `bin` is not installed.
pub fn require_tool(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{bin}` not found on PATH: install it with `apt-get install -y {package}`"
    );
}

/// Runs a command, panics with its output on failure, returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(&'static str, u32),
    File(&'static str, u32, Vec<u8>),
    Symlink(&'static str, &'static str),
}

/// Builds a deterministic gzip layer from `entries` and stores it.
pub fn make_layer(store: &BlobStore, entries: &[Entry]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(EPOCH as u64);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                builder
                    .append_data(&mut h, p, std::io::empty())
                    .expect("dir");
            }
            Entry::File(p, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                builder
                    .append_data(&mut h, p, data.as_slice())
                    .expect("file");
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                builder.append_link(&mut h, p, target).expect("symlink");
            }
        }
    }
    let tar = builder.into_inner().expect("tar");
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    let blob = gz.finish().expect("gzip");
    let (digest, size) = store.put_bytes(&blob).expect("store layer");
    Layer {
        digest,
        diff_id: sha256_digest(&tar),
        size,
        media_type: MEDIA_TYPE_LAYER_GZIP.into(),
    }
}

/// A base layer with a setuid binary, a symlink and nested dirs; plus two small app layers.
pub fn sample_layers(store: &BlobStore) -> (Layer, Layer, Layer) {
    let base = make_layer(
        store,
        &[
            Entry::Dir("bin/", 0o755),
            Entry::File("bin/tool", 0o4755, b"#!/bin/sh\necho tool\n".to_vec()),
            Entry::Symlink("bin/alias", "tool"),
            Entry::Dir("etc/", 0o755),
            Entry::File("etc/config", 0o640, b"key=value\n".to_vec()),
        ],
    );
    let a = make_layer(
        store,
        &[
            Entry::Dir("srv/", 0o755),
            Entry::File("srv/a.txt", 0o644, b"image a\n".to_vec()),
        ],
    );
    let b = make_layer(
        store,
        &[
            Entry::Dir("srv/", 0o755),
            Entry::File("srv/b.txt", 0o600, b"image b\n".to_vec()),
        ],
    );
    (base, a, b)
}

/// A layer holding Debian's static busybox as /bin/busybox (package busybox-static).
pub fn busybox_layer(store: &BlobStore) -> Layer {
    let path = Path::new("/bin/busybox");
    assert!(
        path.is_file(),
        "/bin/busybox not found: install it with `apt-get install -y busybox-static`"
    );
    let data = std::fs::read(path).expect("read busybox");
    make_layer(
        store,
        &[
            Entry::Dir("bin/", 0o755),
            Entry::File("bin/busybox", 0o755, data),
            Entry::Symlink("bin/sh", "busybox"),
            Entry::Dir("tmp/", 0o1777),
        ],
    )
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits (bounded) until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// Debian's docker-registry on 127.0.0.1, filesystem storage in a temp dir, no auth; killed on
/// drop. Its access log (stdout) is kept for counting requests.
pub struct Registry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Self {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let stdout = std::fs::File::create(dir.path().join("access.log")).expect("log");
        let stderr = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn docker-registry");
        let reg = Registry { port, child, dir };
        wait_for_port(port, Duration::from_secs(20));
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Access log so far (stdout) plus the app log (stderr).
    pub fn access_log(&self) -> String {
        let a = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let b = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        a + &b
    }

    /// Access-log lines of blob upload requests (start, chunk or finish) in `log`.
    pub fn upload_requests(log: &str) -> usize {
        log.lines()
            .filter(|l| {
                (l.contains("\"POST /v2/")
                    || l.contains("\"PATCH /v2/")
                    || l.contains("\"PUT /v2/"))
                    && l.contains("/blobs/uploads/")
            })
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Close the connection without reading anything.
    Drop,
    /// Forward this many request bytes, then cut both sides.
    CutAfter(usize),
    /// Answer 503 without contacting the registry.
    Reply503,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`, applying `plan(connection_index)`.
pub struct Proxy {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub faults: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16, plan: fn(usize) -> Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(AtomicUsize::new(0));
        let (s, c, f) = (stop.clone(), connections.clone(), faults.clone());
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = c.fetch_add(1, Ordering::Relaxed);
                        let fault = plan(n);
                        if fault != Fault::Pass {
                            f.fetch_add(1, Ordering::Relaxed);
                        }
                        thread::spawn(move || handle_conn(client, upstream, fault));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            connections,
            faults,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn handle_conn(mut client: TcpStream, upstream: u16, fault: Fault) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    match fault {
        Fault::Drop => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::Reply503 => {
            let mut buf = [0u8; 1024];
            let _ = client.read(&mut buf);
            let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(60)));
    let limit = match fault {
        Fault::CutAfter(n) => Some(n),
        _ => None,
    };
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let back = thread::spawn(move || pump(s2, c2, None));
    pump(client, server, limit);
    let _ = back.join();
}

/// Copies `from` → `to` until EOF, or until `limit` bytes, then cuts both connections.
fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<usize>) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if total + n >= l => {
                let _ = to.write_all(&buf[..l - total]);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
            _ => n,
        };
        total += n;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Docker CLI with an engine behind it, or a panic saying what is missing.
pub fn require_docker() {
    require_tool("docker", "docker.io");
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "no Docker Engine reachable (`docker info` failed): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run docker: {e}"),
    }
}

/// Removes Docker images by reference on drop.
pub struct DockerCleanup(pub Vec<String>);

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", r]).output();
        }
    }
}

/// Temp dir path helper.
pub fn sub(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}
