//! The local HTTP server and artifact fixtures of the sources tests: tarballs, a `.deb`, an
//! `.rpm` and single binaries served from 127.0.0.1 (nothing reaches the internet).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use kiln_layers::{Entry, FileTree};
use kiln_test_support::require_tool;
use sha2::{Digest, Sha256};

pub fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `(path, Range header)` of every request the server saw.
type RequestLog = Mutex<Vec<(String, Option<String>)>>;

/// How the server answers for one path.
#[derive(Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    /// Close the connection at this offset of the file (Content-Length still announces all).
    pub cut_at: Option<usize>,
    /// Cut only the first request for the path.
    pub cut_once: bool,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 with Range support and fault injection.
pub struct Server {
    pub port: u16,
    pub files: Arc<Mutex<HashMap<String, Served>>>,
    /// `(path, range header)` of every request.
    pub log: Arc<RequestLog>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Served>>> = Arc::default();
        let log: Arc<RequestLog> = Arc::default();
        let (f, l) = (files.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, l) = (f.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &f, &l);
                });
            }
        });
        Server { port, files, log }
    }

    pub fn put(&self, path: &str, s: Served) {
        self.files.lock().unwrap().insert(path.to_string(), s);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self, path: &str) -> Vec<Option<String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

pub fn serve(
    mut conn: TcpStream,
    files: &Mutex<HashMap<String, Served>>,
    log: &RequestLog,
) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push((path.clone(), range.clone()));
    let served = {
        let mut all = files.lock().unwrap();
        let s = all.get(&path).cloned();
        if let Some(x) = all.get_mut(&path) {
            if x.cut_once {
                x.cut_at = None;
            }
        }
        s
    };
    let Some(s) = served else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let body = &s.body[start.min(s.body.len())..];
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len(),
            s.body.len() - 1,
            s.body.len()
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n", body.len())
    };
    conn.write_all(head.as_bytes())?;
    let n = s
        .cut_at
        .map_or(body.len(), |c| c.saturating_sub(start).min(body.len()));
    conn.write_all(&body[..n])?;
    conn.flush()?;
    Ok(())
}

/// Fixture artifacts, generated once per test.
pub struct Fixtures {
    pub dir: tempfile::TempDir,
    /// etcd-v3.4.23-linux-amd64/{etcd,etcdctl,README.md}, gzip.
    pub tarball: Vec<u8>,
    /// A .deb (dpkg-deb, xz) with /usr/bin/dockerd and /usr/bin/docker.
    pub deb: Vec<u8>,
    /// An .rpm (rpmbuild) with /opt/cni/bin/calico-ipam.
    pub rpm: Vec<u8>,
    /// A single binary (a shell script).
    pub binary: Vec<u8>,
}

pub fn script(name: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho {name}\n").into_bytes()
}

/// `t` as a gzip-compressed tarball, as a release tarball is served.
pub fn tar_gz(t: &FileTree) -> Vec<u8> {
    let mut tar = Vec::new();
    kiln_layers::write_tar(t, 0, &mut tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

pub fn make_fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let mut t = FileTree::new();
    t.insert(
        "/etcd-v3.4.23-linux-amd64/etcd",
        Entry::file(script("etcd"), 0o755),
    )
    .unwrap();
    t.insert(
        "/etcd-v3.4.23-linux-amd64/etcdctl",
        Entry::file(script("etcdctl"), 0o755),
    )
    .unwrap();
    t.insert(
        "/etcd-v3.4.23-linux-amd64/README.md",
        Entry::file("docs", 0o644),
    )
    .unwrap();
    let tarball = tar_gz(&t);

    require_tool("dpkg-deb", "dpkg");
    let root = dir.path().join("debroot");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("DEBIAN/control"), "Package: kiln-fixture-docker\nVersion: 20.10.24-1\nArchitecture: amd64\nMaintainer: kiln <kiln@example.invalid>\nDescription: fixture\n").unwrap();
    for b in ["dockerd", "docker"] {
        std::fs::write(root.join("usr/bin").join(b), script(b)).unwrap();
        set_mode(&root.join("usr/bin").join(b), 0o755);
    }
    let deb_path = dir.path().join("docker.deb");
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    require_tool("rpmbuild", "rpm");
    let top = dir.path().join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = "Name: kiln-fixture-ipam\nVersion: 1.11.8\nRelease: 1\nSummary: fixture\nLicense: MIT\nBuildArch: x86_64\n\
%description\nfixture\n%install\nmkdir -p %{buildroot}/opt/cni/bin\nprintf '#!/bin/sh\\necho calico-ipam\\n' > %{buildroot}/opt/cni/bin/calico-ipam\nchmod 0755 %{buildroot}/opt/cni/bin/calico-ipam\n\
%files\n/opt/cni/bin/calico-ipam\n";
    std::fs::write(top.join("SPECS/ipam.spec"), spec).unwrap();
    let out = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args([
            "--define",
            "__os_install_post %{nil}",
            "--define",
            "_build_id_links none",
            "--nodeps",
            "-bb",
        ])
        .arg(top.join("SPECS/ipam.spec"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rpm_path = top.join("RPMS/x86_64/kiln-fixture-ipam-1.11.8-1.x86_64.rpm");
    Fixtures {
        tarball,
        deb: std::fs::read(&deb_path).unwrap(),
        rpm: std::fs::read(&rpm_path).unwrap(),
        binary: script("calico"),
        dir,
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
