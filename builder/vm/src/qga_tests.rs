//! The client against the real agent: Debian's `qemu-ga` listening on a unix socket on this
//! machine (the commands then run here, as the test's user).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use super::*;

/// A `qemu-ga -m unix-listen` on a socket in a temporary directory, killed on drop.
struct LocalAgent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn local_agent() -> LocalAgent {
    let qemu_ga = ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| kiln_test_support::require_tool("qemu-ga", "qemu-guest-agent"));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qga.sock");
    let child = Command::new(qemu_ga)
        .args(["-m", "unix-listen", "-p"])
        .arg(&socket)
        .arg("-t")
        .arg(dir.path())
        .arg("-f")
        .arg(dir.path().join("qga.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "qemu-ga made no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    LocalAgent {
        child,
        socket,
        _dir: dir,
    }
}

const T: Duration = Duration::from_secs(10);

#[test]
fn pings_and_runs_commands_with_their_output_and_exit_code() {
    let a = local_agent();
    let mut agent = Agent::connect(&a.socket, T).unwrap();
    agent.ping().unwrap();
    let out = agent
        .exec(
            "/bin/sh",
            &["-c", "printf 'out\\0put'; echo err >&2; exit 3"],
            T,
        )
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stdout, b"out\0put");
    assert_eq!(out.stderr_text(), "err\n");
    assert!(!out.success());
    let out = agent.exec("/bin/true", &[], T).unwrap();
    assert!(out.success(), "{out:?}");
}

#[test]
fn a_command_that_outlives_its_timeout_is_reported() {
    let a = local_agent();
    let mut agent = Agent::connect(&a.socket, T).unwrap();
    let e = agent
        .exec("/bin/sleep", &["5"], Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(e, QgaError::Timeout { .. }), "{e}");
    // The connection still works.
    agent.ping().unwrap();
}

#[test]
fn a_missing_program_is_refused_by_the_agent() {
    let a = local_agent();
    let mut agent = Agent::connect(&a.socket, T).unwrap();
    let e = agent.exec("/nonexistent/kiln", &[], T).unwrap_err();
    assert!(matches!(e, QgaError::Refused { .. }), "{e}");
    agent.ping().unwrap();
}

/// Answers left over from an earlier client are skipped by the sync handshake.
#[test]
fn reconnecting_after_an_abandoned_command_syncs_past_stale_answers() {
    let a = local_agent();
    {
        let mut s = UnixStream::connect(&a.socket).unwrap();
        s.write_all(b"{\"execute\":\"guest-info\"}\n{\"execute\":\"guest-ping\"}\n")
            .unwrap();
    }
    for _ in 0..3 {
        let mut agent = Agent::connect(&a.socket, T).unwrap();
        agent.ping().unwrap();
        let info = agent.call("guest-info", None).unwrap();
        assert!(info.get("version").is_some(), "{info}");
    }
}

#[test]
fn no_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Agent::connect(&dir.path().join("none"), T).unwrap_err();
    assert!(matches!(e, QgaError::Connect { .. }), "{e}");
}

/// A tiny HTTP server on 127.0.0.1: answers `connections` connections with `answer`, each
/// once its whole request is read, and returns the requests.
fn http_server(
    connections: usize,
    answer: &'static [u8],
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (mut c, _) = listener.accept().unwrap();
                // The whole request before answering: closing with unread bytes sends a
                // reset, and the client may lose the answer with it.
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                c.write_all(answer).unwrap();
                String::from_utf8_lossy(&req).into_owned()
            })
            .collect()
    });
    (port, server)
}

/// The probes `kiln boot` runs in guests, run here through the agent against a tiny HTTP
/// server on 127.0.0.1.
#[test]
fn the_http_probe_reads_status_and_body_through_bash() {
    let a = local_agent();
    let (port, server) = http_server(
        1,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"etcdserver\":\"3.4.23\"}",
    );
    let mut agent = Agent::connect(&a.socket, T).unwrap();
    let probe = kiln_dist::boot_manifest::Probe::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/version".into(),
        status: 200,
        body_contains: Some("etcdserver".into()),
    };
    let r = crate::health::run_probe(&mut agent, &probe);
    assert!(r.ok, "{r:?}");
    let req = server.join().unwrap();
    assert!(req[0].starts_with("GET /version HTTP/1.0\r\n"), "{req:?}");
    // Nothing listens any more: a failure that says so.
    let r = crate::health::run_probe(&mut agent, &probe);
    assert!(!r.ok, "{r:?}");
}

/// A host's probes run as one batch (one `guest-exec` per round) give each probe the result it
/// gets alone: output without a final newline, stderr, exit codes and failures stay with their
/// own probe.
#[test]
fn a_batch_of_probes_gives_each_the_result_it_gets_alone() {
    use kiln_dist::boot_manifest::Probe;
    let a = local_agent();
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present");
    std::fs::write(&present, "x").unwrap();
    // No newline at the end of the body.
    let (port, server) = http_server(2, b"HTTP/1.1 503 Unavailable\r\n\r\nnot yet");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let probes = [
        Probe::File {
            path: present.to_str().unwrap().into(),
        },
        Probe::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/health".into(),
            status: 200,
            body_contains: None,
        },
        Probe::File {
            path: dir.path().join("missing").to_str().unwrap().into(),
        },
        Probe::ZkSrvr {
            host: "127.0.0.1".into(),
            port: closed,
        },
        Probe::Executable {
            path: "/bin/sh".into(),
        },
    ];
    let mut agent = Agent::connect(&a.socket, T).unwrap();
    let refs: Vec<&Probe> = probes.iter().collect();
    let batch = crate::health::run_probes(&mut agent, &refs);
    let alone: Vec<_> = probes
        .iter()
        .map(|p| crate::health::run_probe(&mut agent, p))
        .collect();
    server.join().unwrap();
    assert_eq!(batch, alone);
    let oks: Vec<bool> = batch.iter().map(|r| r.ok).collect();
    assert_eq!(oks, [true, false, false, false, true], "{batch:#?}");
    assert_eq!(batch[1].detail, "HTTP 503 not yet");
    assert!(batch[2].detail.ends_with("missing missing"), "{batch:#?}");
    assert!(batch[3].detail.contains("refused"), "{batch:#?}");
}
