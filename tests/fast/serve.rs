//! `kiln serve` against a fixture output directory: ranges, ETags and 304, 404s, path
//! traversal, the kickstart MAC header, content types, nocloud-net paths, refusing to start
//! when a private file sits on a shared path, and the binary's start-up text and clean stop on
//! SIGTERM. Requests are written by hand on a `TcpStream`, so the test sees exactly what the
//! server sends.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
          {"name":"h1","mac":"52:54:00:00:00:01","address":"127.0.0.11","profile":"agent","ipxe":"mac/52-54-00-00-00-01.ipxe"},
          {"name":"h2","mac":"52:54:00:00:00:02","address":"127.0.0.12","profile":"agent","ipxe":"mac/52-54-00-00-00-02.ipxe"}]}"#,
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
    start_with(ServeOptions::new(dist, "127.0.0.1:0".parse().unwrap()))
}

fn start_with(opts: ServeOptions) -> Running {
    let server = Server::bind(&opts).unwrap();
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

/// h1's and h2's addresses in the fixture's hosts.json (all of 127/8 is loopback on Linux).
const H1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const H2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

/// A connection to `addr` from the loopback address `from`: the server sees `from` as the
/// peer (std cannot choose a client's source address).
fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    rustix::net::connect(&fd, &addr).unwrap_or_else(|e| panic!("{from} -> {addr}: {e}"));
    TcpStream::from(fd)
}

fn request(addr: SocketAddr, raw: &str) -> Resp {
    request_on(TcpStream::connect(addr).unwrap(), raw)
}

/// `raw` sent from the loopback address `from`.
fn request_from(from: Ipv4Addr, addr: SocketAddr, raw: &str) -> Resp {
    request_on(connect_from(from, addr), raw)
}

fn get_from(from: Ipv4Addr, addr: SocketAddr, path: &str, extra: &str) -> Resp {
    request_from(
        from,
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
}

fn request_on(mut s: TcpStream, raw: &str) -> Resp {
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
        // h1's own files from h1's address.
        let r = get_from(H1, a, path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
    }
    // A host's own files are not for shared caches; content-addressed ones are immutable.
    assert_eq!(
        get_from(H1, a, "/cloud-init/h1/meta-data", "").header("cache-control"),
        Some("no-store")
    );
    assert!(get(a, &root, "")
        .header("cache-control")
        .unwrap()
        .contains("immutable"));
    let blob = get(a, &format!("/oci/blobs/sha256/{ROOT_HEX}"), "");
    assert_eq!(blob.body, b"blob");
    assert_eq!(blob.header("etag"), Some(etag.as_str()));

    let ranged = format!("GET {root} 206 100 127.0.0.1:");
    let head = "HEAD /pxe/boot.ipxe 200 0 ";
    let log = log_until(&s, |log| {
        log.iter().any(|l| l.starts_with(&ranged)) && log.iter().any(|l| l.starts_with(head))
    });
    assert!(log.iter().any(|l| l.starts_with(&ranged)), "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with(head)), "{log:#?}");
}

#[test]
fn serve_finds_seeds_and_kickstarts_only_at_their_hosts_paths() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let a = s.addr;
    // Each from the host's own address (see host_a_cannot_read_host_b_seed for others).
    for f in ["meta-data", "user-data", "network-config"] {
        let r = get_from(H2, a, &format!("/cloud-init/h2/{f}"), "");
        assert_eq!(r.status, 200, "{f}");
        assert_eq!(r.body, format!("{f} of h2 SECRET-h2\n").as_bytes());
    }
    // cloud-init asks for vendor-data; a seed without one answers empty.
    let r = get_from(H1, a, "/cloud-init/h1/vendor-data", "");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(get(a, "/cloud-init/nohost/vendor-data", "").status, 404);

    // Anaconda's MAC header picks the host's kickstart; none or an unknown MAC gets nothing.
    let r = get_from(
        H2,
        a,
        "/kickstart/",
        "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:02\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("kickstart of h2"));
    let r = get_from(
        H1,
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
    let err = Server::bind(&ServeOptions::new(
        tmp.path(),
        "127.0.0.1:0".parse().unwrap(),
    ))
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
        .args([
            "serve",
            tmp.path().to_str().unwrap(),
            "--max-per-peer",
            "7",
            "--listen",
        ])
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
        "BIOS, iPXE       filename \"undionly.kpxe\", then for iPXE (user-class \"iPXE\"): \
         \"http://10.0.0.5:8080/pxe/boot.ipxe\"",
        "UEFI HTTP boot: \"http://10.0.0.5:8080/pxe/ipxe.efi\"",
        "chain http://10.0.0.5:8080/pxe/boot.ipxe",
        "GET /pxe/boot.ipxe 200 20 127.0.0.1:",
        "limits: a whole request head within 5 s of connecting; 7 connections per address",
        "host files: cloud-init/HOST/ (and by MAC, cloud-init/mac/MAC/), \
         cloud-init/HOST-cidata.iso and kickstart/HOST.ks are served only to HOST's address",
        "SIGTERM, stopping",
        "kiln serve: stopped",
    ] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }
}

/// Waits (up to 30 s) until `s` has logged `n` lines; returns them.
fn log_lines(s: &Running, n: usize) -> Vec<String> {
    log_until(s, |log| log.len() >= n)
}

/// Waits (up to 30 s) until `s`'s log satisfies `done` (a line is written after its answer is
/// sent, so a client can read the answer before the line is there); returns it.
fn log_until(s: &Running, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = s.log.lock().unwrap().clone();
        if done(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
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

#[test]
fn log_line_escapes_newlines_and_escape_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let forged = "GET /cloud-init/h1/user-data 200 99 10.0.0.1:1";
    let requests = [
        // A newline in the path: a second, forged log line.
        format!(
            "GET /pxe/boot.ipxe%0a{} HTTP/1.1\r\nHost: x\r\n\r\n",
            forged.replace(' ', "%20")
        ),
        // Escape sequences for the operator's terminal: clear the screen, set its title,
        // and the 8-bit CSI (U+009B) some terminals take.
        "GET /pxe/%1b[2J%1b]0;owned%07%c2%9b31m HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        // Raw control bytes in the method and the target, and a carriage return.
        "G\x1b[1mET /pxe/\x1b[8mboot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "GET /pxe/a\rGET%20/forged HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        // A space in the path must not shift the fields after it.
        "GET /pxe/a%20200%201 HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        // Refused heads are logged too.
        "GET /pxe/%0a\x1b HTTP/2\r\n\r\n".into(),
    ];
    for raw in &requests {
        let _ = request(s.addr, raw);
    }
    let log = log_lines(&s, requests.len());
    assert_eq!(log.len(), requests.len(), "one line per request: {log:#?}");
    for line in &log {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "a control character in {line:?}"
        );
        assert!(!line.starts_with("GET /cloud-init/"), "{line:?}");
        // METHOD PATH STATUS BYTES PEER [(why)]
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f.len() >= 5, "{line:?}");
        assert!(
            f[2].parse::<u16>().is_ok(),
            "status is the third field: {line:?}"
        );
        assert!(
            f[4].starts_with("127.0.0.1:"),
            "peer is the fifth field: {line:?}"
        );
    }
    let all = log.join("\n");
    assert!(
        all.contains("/pxe/boot.ipxe%0AGET%20/cloud-init/h1/user-data%20200"),
        "{all}"
    );
    assert!(
        all.contains("/pxe/%1B[2J%1B]0;owned%07%C2%9B31m 404"),
        "{all}"
    );
    assert!(all.contains("G%1B[1mET /pxe/%1B[8mboot.ipxe 405"), "{all}");
    assert!(all.contains("/pxe/a%0DGET%20/forged 404"), "{all}");
    assert!(all.contains("GET /pxe/a%20200%201 404"), "{all}");
}

#[test]
fn symlink_swapped_during_request_is_never_followed() {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    fixture_dist(&dist);
    // Outside the served tree: what a swapped-in link would lead to.
    let outside = tmp.path().join("outside");
    fs::create_dir_all(outside.join("d")).unwrap();
    let secret = b"TOP-SECRET-OUTSIDE-THE-TREE\n";
    fs::write(outside.join("secret"), secret).unwrap();
    fs::write(outside.join("d/file"), secret).unwrap();
    // pxe/race is a file and pxe/racedir a directory; beside each, a link to the outside
    // that a thread exchanges with it (renameat2 RENAME_EXCHANGE: atomic) in a loop, so a
    // request may see either at any step.
    fs::write(dist.join("pxe/race"), b"public\n").unwrap();
    fs::create_dir(dist.join("pxe/racedir")).unwrap();
    fs::write(dist.join("pxe/racedir/file"), b"public\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), dist.join("pxe/.race-alt")).unwrap();
    std::os::unix::fs::symlink(outside.join("d"), dist.join("pxe/.racedir-alt")).unwrap();
    let s = start(&dist);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dist) = (stop.clone(), dist.clone());
        std::thread::spawn(move || {
            let pairs = [
                (dist.join("pxe/race"), dist.join("pxe/.race-alt")),
                (dist.join("pxe/racedir"), dist.join("pxe/.racedir-alt")),
            ];
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (a, b) in &pairs {
                    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).unwrap();
                }
                swaps += 1;
            }
            swaps
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let (mut public, mut missing, mut leaked) = (0, 0, 0);
                for n in 0..1000 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let path = if (n + i) % 2 == 0 {
                        "/pxe/race"
                    } else {
                        "/pxe/racedir/file"
                    };
                    let r = get(addr, path, "");
                    if r.body.windows(secret.len()).any(|w| w == secret) {
                        leaked += 1;
                    } else if r.status == 200 {
                        assert_eq!(r.body, b"public\n");
                        public += 1;
                    } else {
                        assert_eq!(r.status, 404, "{path}");
                        missing += 1;
                    }
                }
                (public, missing, leaked)
            })
        })
        .collect();
    let (mut public, mut missing, mut leaked) = (0, 0, 0);
    for c in clients {
        let (p, m, l) = c.join().unwrap();
        public += p;
        missing += m;
        leaked += l;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert_eq!(
        leaked,
        0,
        "a file outside the tree was served through a swapped-in link \
         ({leaked} of {} requests; {swaps} swaps)",
        public + missing + leaked
    );
    // Both sides of the swap were seen: the requests did race with it.
    assert!(
        public > 0 && missing > 0,
        "public {public}, 404 {missing}, swaps {swaps}"
    );
}

/// Whether the server has closed `c` or answered on it (data or the end is there to read),
/// rather than still holding it open; reads nothing.
fn answered(c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let r = match c.peek(&mut [0u8; 1]) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    c.set_nonblocking(false).unwrap();
    r
}

/// All the server sends on `c` until it closes it.
fn reply(mut c: TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn trickling_clients_do_not_starve_a_booting_host() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    // A head deadline longer than the test, so that every slow client is surely still held
    // while the GETs are timed (the deadline has a test of its own).
    let mut opts = ServeOptions::new(tmp.path(), "127.0.0.1:0".parse().unwrap());
    opts.limits.head_timeout = Duration::from_secs(120);
    let s = start_with(opts);
    let a = s.addr;
    let peer = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    // 500 idle connections (50 from each of 127.0.0.2-11) that never send a byte...
    let mut idle = Vec::new();
    for i in 0..500 {
        idle.push(connect_from(peer(2 + (i % 10) as u8), a));
    }
    // ...and 200 (50 from each of 127.0.0.21-24) that send one byte of a request head every
    // 100 ms, each within any per-read timeout, never finishing it.
    let mut trickling = Vec::new();
    for i in 0..200 {
        trickling.push(connect_from(peer(21 + (i % 4) as u8), a));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Vec<TcpStream> {
            let head = b"GET /pxe/boot.ipxe HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut at = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for c in &mut trickling {
                    let _ = c.write_all(&head[at % head.len()..][..1]);
                }
                at += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            trickling
        })
    };
    // Let the server take them all in (its accept queue and its loop), then boot a host:
    // h1 fetches its boot script from its own address.
    std::thread::sleep(Duration::from_millis(500));
    let mut took = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let r = get_from(H1, a, "/pxe/boot.ipxe", "");
        took.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, b"#!ipxe\necho fixture\n");
    }
    took.sort();
    let median = took[took.len() / 2];
    eprintln!("GET with 700 slow clients held: median {median:?} of {took:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let trickling = trickler.join().unwrap();
    // They were all held meanwhile, not turned away.
    let dropped = idle
        .iter()
        .chain(trickling.iter())
        .filter(|c| answered(c))
        .count();
    assert_eq!(dropped, 0, "slow clients were closed or answered");
    assert!(
        median < Duration::from_millis(100),
        "a GET took {median:?} (median of {took:?}) while 700 slow clients were connected"
    );

    // One address opening many connections gets 64 of them; the rest are answered 503 at
    // once, and other addresses are still served.
    let mut held: Vec<TcpStream> = (0..300).map(|_| connect_from(peer(30), a)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    while refused < 300 - 64 && Instant::now() < deadline {
        let (done, open): (Vec<TcpStream>, Vec<TcpStream>) = held.into_iter().partition(answered);
        for c in done {
            let r = reply(c);
            assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
            refused += 1;
        }
        held = open;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(refused, 300 - 64, "refused of 300 from one address");
    assert_eq!(held.len(), 64);
    let r = get_from(H2, a, "/pxe/boot.ipxe", "");
    assert_eq!(r.status, 200);
    let refusal = |l: &String| {
        l.starts_with("- - 503 0 127.0.0.30:")
            && l.ends_with("(this address holds 64 connections already)")
    };
    let log = log_until(&s, |log| log.iter().any(refusal));
    assert!(log.iter().any(refusal), "{:#?}", &log[..log.len().min(20)]);
}

#[test]
fn trickled_request_head_is_cut_at_its_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let mut opts = ServeOptions::new(tmp.path(), "127.0.0.1:0".parse().unwrap());
    opts.limits.head_timeout = Duration::from_secs(1);
    let s = start_with(opts);
    let started = Instant::now();
    let idle = TcpStream::connect(s.addr).unwrap();
    let mut slow = TcpStream::connect(s.addr).unwrap();
    // A byte every 50 ms: within any per-read timeout, never a whole head.
    let head =
        b"GET /pxe/boot.ipxe HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = None;
    for b in head.iter().cycle() {
        if slow.write_all(&[*b]).is_err() || answered(&slow) {
            cut = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cut = cut.expect("a client trickling its head was never cut off");
    assert!(
        cut >= Duration::from_secs(1),
        "cut after {cut:?}, before its deadline"
    );
    // The trickler's own reply may be lost to a reset (it kept sending after the close);
    // the silent one reads it whole.
    let r = reply(slow);
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{r}"
    );
    let r = reply(idle);
    assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
    let log = log_lines(&s, 2);
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("- - 408 0 127.0.0.1:")
                && l.ends_with("(no whole request head within 1 s)"))
            .count(),
        2,
        "{log:#?}"
    );
}

#[test]
fn trust_any_peer_serves_every_host_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let mut opts = ServeOptions::new(tmp.path(), "127.0.0.1:0".parse().unwrap());
    opts.trust_any_peer = true;
    let s = start_with(opts);
    for (path, extra, want) in h2_files() {
        let r = get_from(H1, s.addr, &path, extra);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(String::from_utf8_lossy(&r.body), want, "{path}");
    }
    let log = log_lines(&s, 1);
    assert!(
        log[0].starts_with("WARNING: --trust-any-peer: every host's seed"),
        "{log:#?}"
    );
}

#[test]
fn hosts_json_without_addresses_is_refused_unless_every_peer_is_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    // As an older kiln wrote it.
    let p = tmp.path().join("pxe/hosts.json");
    let text = fs::read_to_string(&p).unwrap();
    let text = text
        .replace(r#""address":"127.0.0.11","#, "")
        .replace(r#""address":"127.0.0.12","#, "");
    fs::write(&p, text).unwrap();
    let opts = ServeOptions::new(tmp.path(), "127.0.0.1:0".parse().unwrap());
    let err = Server::bind(&opts).unwrap_err().to_string();
    assert!(
        err.contains("gives no address for host(s) h1, h2")
            && err.contains("rebuild")
            && err.contains("--trust-any-peer"),
        "{err}"
    );
    let mut opts = opts;
    opts.trust_any_peer = true;
    assert!(Server::bind(&opts).is_ok());
}

/// h2's own paths, and the text each holds.
fn h2_files() -> Vec<(String, &'static str, String)> {
    let mut v: Vec<(String, &'static str, String)> = ["meta-data", "user-data", "network-config"]
        .iter()
        .map(|f| {
            (
                format!("/cloud-init/h2/{f}"),
                "",
                format!("{f} of h2 SECRET-h2\n"),
            )
        })
        .collect();
    v.push(("/cloud-init/h2-cidata.iso".into(), "", "iso".into()));
    v.push((
        "/kickstart/h2.ks".into(),
        "",
        "# kickstart of h2\nrootpw --iscrypted SECRET-h2\n".into(),
    ));
    // Anaconda's inst.ks.sendmac: the kickstart by MAC.
    v.push((
        "/kickstart/".into(),
        "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:02\r\n",
        "# kickstart of h2\nrootpw --iscrypted SECRET-h2\n".into(),
    ));
    v
}

#[test]
fn host_a_cannot_read_host_b_seed() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let a = s.addr;
    // h1 (and any other address) asks for h2's seed, seed ISO and kickstart: by name, with
    // a range, with HEAD, and with a forged MAC header naming h2.
    for from in [H1, Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 99)] {
        for (path, extra, _) in h2_files() {
            for extra in [extra.to_string(), format!("{extra}Range: bytes=0-\r\n")] {
                let r = get_from(from, a, &path, &extra);
                assert_eq!(r.status, 403, "{from} GET {path} {extra:?}");
                assert!(
                    !String::from_utf8_lossy(&r.body).contains("h2"),
                    "{from} {path}: {}",
                    String::from_utf8_lossy(&r.body)
                );
            }
            let head = request_from(
                from,
                a,
                &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
            );
            assert_eq!(head.status, 403, "{from} HEAD {path}");
        }
        // Not even whether h2 has a vendor-data.
        assert_eq!(
            get_from(from, a, "/cloud-init/h2/vendor-data", "").status,
            403
        );
    }
    let log = log_lines(&s, 1);
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /cloud-init/h2/user-data 403 0 127.0.0.11:")),
        "{log:#?}"
    );
}

#[test]
fn host_b_reads_its_own_seed_iso_and_kickstart() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_dist(tmp.path());
    let s = start(tmp.path());
    let a = s.addr;
    for (path, extra, want) in h2_files() {
        let r = get_from(H2, a, &path, extra);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(String::from_utf8_lossy(&r.body), want, "{path}");
    }
    assert_eq!(
        get_from(H2, a, "/cloud-init/h2/vendor-data", "").status,
        200
    );
    // h2 cannot take h1's by sending h1's MAC either.
    let r = get_from(
        H2,
        a,
        "/kickstart/",
        "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:01\r\n",
    );
    assert_eq!(r.status, 403);
    // Shared paths are everyone's.
    for from in [H1, H2, Ipv4Addr::new(127, 0, 0, 99)] {
        assert_eq!(get_from(from, a, "/pxe/boot.ipxe", "").status, 200);
        assert_eq!(get_from(from, a, "/pxe/hosts.json", "").status, 200);
    }
}
