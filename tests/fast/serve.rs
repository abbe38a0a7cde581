//! `kiln serve` against a fixture output directory: ranges, ETags and 304, 404s, path
//! traversal, the kickstart MAC header, content types, nocloud-net paths, refusing to start
//! when a private file sits on a shared path, and the binary's start-up text and clean stop on
//! SIGTERM. Requests are written by hand on a `TcpStream`, so the test sees exactly what the
//! server sends.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_serve::{ServeOptions, Server, TreeError};

const ROOT_HEX: &str = "4b1c4e6a1f2d0c9e8b7a69584736251403f2e1d0c9b8a7968574635241302010";

/// A small output directory as `kiln build` lays it out, with two hosts.
fn fixture_dist(dir: &Path) {
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    w(
        "pxe/hosts.json",
        br#"{"cluster":"st","url":"http://10.0.0.5:8080","hosts":[
          {"name":"h1","mac":"52:54:00:00:00:01","profile":"agent","ipxe":"mac/52-54-00-00-00-01.ipxe"},
          {"name":"h2","mac":"52:54:00:00:00:02","profile":"agent","ipxe":"mac/52-54-00-00-00-02.ipxe"}]}"#,
        0o644,
    );
    w("pxe/boot.ipxe", b"#!ipxe\necho fixture\n", 0o644);
    w("pxe/mac/52-54-00-00-00-01.ipxe", b"#!ipxe\n", 0o644);
    w(
        "pxe/pxelinux.cfg/01-52-54-00-00-00-01",
        b"DEFAULT kiln\n",
        0o644,
    );
    let root: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    w(&format!("pxe/sha256/{ROOT_HEX}"), &root, 0o644);
    for h in ["h1", "h2"] {
        for f in ["meta-data", "user-data", "network-config"] {
            w(
                &format!("cloud-init/{h}/{f}"),
                format!("{f} of {h} SECRET-{h}\n").as_bytes(),
                0o600,
            );
        }
        w(&format!("cloud-init/{h}-cidata.iso"), b"iso", 0o600);
        w(
            &format!("kickstart/{h}.ks"),
            format!("# kickstart of {h}\nrootpw --iscrypted SECRET-{h}\n").as_bytes(),
            0o600,
        );
    }
    w(
        "oci/index.json",
        br#"{"schemaVersion":2,"manifests":[]}"#,
        0o644,
    );
    w(&format!("oci/blobs/sha256/{ROOT_HEX}"), b"blob", 0o644);
    w("identity/h1.tar", b"not served", 0o644);
}

/// A running server on 127.0.0.1 and its log lines; stopped on drop.
struct Running {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stop: kiln_serve::StopHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(dist: &Path) -> Running {
    let server = Server::bind(&ServeOptions {
        dist: dist.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
    })
    .unwrap();
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let thread = std::thread::spawn(move || {
        server.run(Arc::new(move |line: &str| {
            l.lock().unwrap().push(line.into())
        }));
    });
    Running {
        addr,
        log,
        stop,
        thread: Some(thread),
    }
}

/// A response: status, headers (lowercase names), body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    }
}

fn request(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(all[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Resp {
        status,
        headers,
        body: all[split + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
}

#[test]
fn serve_answers_ranges_etags_and_content_types() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let a = s.addr;
    let root = format!("/pxe/sha256/{ROOT_HEX}");

    let r = get(a, &root, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10_000);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"sha256:{ROOT_HEX}\"").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    let r = get(a, &root, "Range: bytes=100-199\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(
        r.body,
        (100..200u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
    let r = get(a, &root, "Range: bytes=-10\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body.len(), 10);
    let r = get(a, &root, "Range: bytes=9000-\r\n");
    assert_eq!((r.status, r.body.len()), (206, 1000));
    for bad in ["bytes=10000-", "bytes=50-10", "bytes=abc"] {
        let r = get(a, &root, &format!("Range: {bad}\r\n"));
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"), "{bad}");
    }
    // Several ranges are served whole (allowed; multipart is not needed).
    assert_eq!(get(a, &root, "Range: bytes=0-1,5-6\r\n").status, 200);

    let etag = format!("\"sha256:{ROOT_HEX}\"");
    let r = get(a, &root, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = get(a, "/pxe/boot.ipxe", "");
    let small = r.header("etag").unwrap().to_string();
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        get(
            a,
            "/pxe/boot.ipxe",
            &format!("If-None-Match: \"x\", {small}\r\n")
        )
        .status,
        304
    );
    assert_eq!(
        get(a, "/pxe/boot.ipxe", "If-None-Match: \"x\"\r\n").status,
        200
    );

    let head = request(a, "HEAD /pxe/boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("20"));
    assert!(head.body.is_empty());

    for (path, ctype) in [
        (
            "/pxe/pxelinux.cfg/01-52-54-00-00-00-01",
            "text/plain; charset=utf-8",
        ),
        (
            "/pxe/mac/52-54-00-00-00-01.ipxe",
            "text/plain; charset=utf-8",
        ),
        ("/pxe/hosts.json", "application/json"),
        ("/cloud-init/h1/user-data", "text/plain; charset=utf-8"),
        ("/cloud-init/h1-cidata.iso", "application/x-iso9660-image"),
        ("/kickstart/h1.ks", "text/plain; charset=utf-8"),
        ("/oci/index.json", "application/vnd.oci.image.index.v1+json"),
    ] {
        let r = get(a, path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
    }
    // A host's own files are not for shared caches; content-addressed ones are immutable.
    assert_eq!(
        get(a, "/cloud-init/h1/meta-data", "").header("cache-control"),
        Some("no-store")
    );
    assert!(get(a, &root, "")
        .header("cache-control")
        .unwrap()
        .contains("immutable"));
    let blob = get(a, &format!("/oci/blobs/sha256/{ROOT_HEX}"), "");
    assert_eq!(blob.body, b"blob");
    assert_eq!(blob.header("etag"), Some(etag.as_str()));

    let log = s.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("GET {root} 206 100 127.0.0.1:"))),
        "{log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.starts_with("HEAD /pxe/boot.ipxe 200 0 ")));
}

#[test]
fn serve_finds_seeds_and_kickstarts_only_at_their_hosts_paths() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let a = s.addr;
    for f in ["meta-data", "user-data", "network-config"] {
        let r = get(a, &format!("/cloud-init/h2/{f}"), "");
        assert_eq!(r.status, 200, "{f}");
        assert_eq!(r.body, format!("{f} of h2 SECRET-h2\n").as_bytes());
    }
    // cloud-init asks for vendor-data; a seed without one answers empty.
    let r = get(a, "/cloud-init/h1/vendor-data", "");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(get(a, "/cloud-init/nohost/vendor-data", "").status, 404);

    // Anaconda's MAC header picks the host's kickstart; none or an unknown MAC gets nothing.
    let r = get(
        a,
        "/kickstart/",
        "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:02\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("kickstart of h2"));
    let r = get(
        a,
        "/kickstart",
        "X-RHN-Provisioning-MAC-0: ens3 52-54-00-00-00-01\r\n",
    );
    assert!(String::from_utf8_lossy(&r.body).contains("kickstart of h1"));
    assert_eq!(get(a, "/kickstart/", "").status, 404);
    assert_eq!(
        get(
            a,
            "/kickstart/",
            "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:99\r\n"
        )
        .status,
        404
    );

    // Not served: other parts of dist/, directories, missing files.
    for path in [
        "/identity/h1.tar",
        "/cloud-init/",
        "/cloud-init/h1/",
        "/pxe/",
        "/pxe/mac/52-54-00-00-00-99.ipxe",
        "/",
        "/build-report.json",
    ] {
        assert_eq!(get(a, path, "").status, 404, "{path}");
    }
    // Traversal, however spelled, is refused.
    for path in [
        "/pxe/../cloud-init/h1/user-data",
        "/pxe/%2e%2e/identity/h1.tar",
        "/pxe/..%2f..%2fetc/passwd",
        "/cloud-init/h1/./user-data",
        "/pxe//boot.ipxe",
        "/pxe/a%5c..%5cb",
        "/pxe/%00",
        "http://x/pxe/../identity/h1.tar",
    ] {
        let r = get(a, path, "");
        assert_eq!(r.status, 400, "{path}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("SECRET"),
            "{path}"
        );
    }
    assert_eq!(get(a, "/pxe/%zz", "").status, 400);
    assert_eq!(
        request(a, "DELETE /pxe/boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n").status,
        405
    );
    // A symbolic link is never followed.
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("pxe/passwd")).unwrap();
    assert_eq!(get(a, "/pxe/passwd", "").status, 404);
}

#[test]
fn serve_refuses_to_start_when_a_shared_path_holds_a_private_file() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    // A seed copied where every host would get it.
    let leaked = tmp.path().join("pxe/user-data");
    fs::copy(tmp.path().join("cloud-init/h1/user-data"), &leaked).unwrap();
    fs::set_permissions(&leaked, fs::Permissions::from_mode(0o600)).unwrap();
    let err = Server::bind(&ServeOptions {
        dist: tmp.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
    })
    .unwrap_err();
    match &err {
        kiln_serve::ServeError::Tree(TreeError::Exposed { paths, .. }) => {
            assert_eq!(paths, &["pxe/user-data (mode 0600)".to_string()]);
        }
        other => panic!("{other}"),
    }
    // A seed directory of a host the build does not know is not that host's own either.
    fs::remove_file(&leaked).unwrap();
    let stray = tmp.path().join("cloud-init/ghost/user-data");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, "x").unwrap();
    fs::set_permissions(&stray, fs::Permissions::from_mode(0o600)).unwrap();
    let (_, stderr) = crate::common::kiln_code(
        &[
            "serve",
            tmp.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        1,
    );
    assert!(
        stderr.contains("cloud-init/ghost/user-data (mode 0600)"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to serve"), "{stderr}");
}

#[test]
fn kiln_serve_prints_dhcp_settings_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let port = kiln_test_support::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", tmp.path().to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    kiln_test_support::wait_for_port(port, Duration::from_secs(20));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(addr, "/pxe/boot.ipxe", "").status, 200);
    let pid = child.id().to_string();
    kiln_test_support::run(Command::new("kill").args(["-TERM", &pid]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    for want in [
        "kiln serve: cluster st, 2 host(s)",
        "next-server   127.0.0.1",
        "filename      \"http://10.0.0.5:8080/pxe/boot.ipxe\"",
        "chain http://10.0.0.5:8080/pxe/boot.ipxe",
        "GET /pxe/boot.ipxe 200 20 127.0.0.1:",
        "SIGTERM, stopping",
        "kiln serve: stopped",
    ] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }
}

#[test]
fn range_end_beyond_u64_means_to_the_end() {
    // RFC 9110 §14.1.2: a last-pos at or beyond the representation's length is replaced by
    // length - 1, however many digits it has; a suffix longer than the representation is
    // all of it. Only a first-pos beyond the end is unsatisfiable.
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let root = format!("/pxe/sha256/{ROOT_HEX}");
    for (range, want) in [
        ("bytes=0-99999999999999999999", "bytes 0-9999/10000"),
        (
            "bytes=9990-340282366920938463463374607431768211456",
            "bytes 9990-9999/10000",
        ),
        ("bytes=0-18446744073709551615", "bytes 0-9999/10000"),
        ("bytes=-99999999999999999999", "bytes 0-9999/10000"),
    ] {
        let r = get(s.addr, &root, &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range"), Some(want), "{range}");
        let start: usize = want[6..want.find('-').unwrap()].parse().unwrap();
        assert_eq!(r.body.len(), 10_000 - start, "{range}");
        assert_eq!(r.body[0], (start % 251) as u8, "{range}");
    }
    for range in [
        "bytes=99999999999999999999-",
        "bytes=99999999999999999999-99999999999999999999",
        "bytes=10000-99999999999999999999",
    ] {
        let r = get(s.addr, &root, &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"), "{range}");
    }
}
