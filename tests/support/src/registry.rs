//! Debian's `docker-registry` on 127.0.0.1, and the port helpers it needs.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{require_tool, tempdir};

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
#[derive(Debug)]
pub struct Registry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// [`Registry::start`] on a given port (for guests that must find it at a fixed address);
    /// panics, saying so, when something already listens there.
    pub fn start_on(port: u16) -> Self {
        require_tool("docker-registry", "docker-registry");
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!("this test runs a registry on 127.0.0.1:{port}, which is taken ({e}): free it");
        }
        let dir = tempdir();
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

    /// `127.0.0.1:PORT`.
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
