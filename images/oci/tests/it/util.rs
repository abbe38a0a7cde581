//! Helpers of the kiln-images tests: layer blobs and a fault-injecting proxy. Tool checks, the
//! local registry and Docker are in `kiln-test-support`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use kiln_layers::Digest;
use kiln_oci::oci::MEDIA_TYPE_LAYER_GZIP;
use kiln_oci::{BlobStore, Layer};

pub const EPOCH: i64 = 1_700_000_000;

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
        diff_id: Digest::sha256_of(&tar),
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
    let data = kiln_test_support::busybox();
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
