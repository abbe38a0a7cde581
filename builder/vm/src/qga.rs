//! A client of the QEMU guest agent (`qemu-ga`, Debian package `qemu-guest-agent`) over the
//! unix socket QEMU exposes for the guest's `org.qemu.guest_agent.0` virtio-serial port.
//!
//! The protocol is JSON commands and answers on a byte stream that survives reconnects: answers
//! meant for an earlier client may still be queued. [`Agent::connect`] therefore first sends
//! `0xFF` (resets the agent's parser; qemu-ga 7.2 answers it with a parse error, which is
//! skipped) and `guest-sync-delimited` with a fresh id, then discards everything up to the
//! `0xFF` that precedes the answer carrying that id. Every call has a deadline.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The name of the virtio-serial port the guest agent listens on.
pub const CHANNEL: &str = "org.qemu.guest_agent.0";

/// Why talking to a guest agent failed.
#[derive(Debug, thiserror::Error)]
pub enum QgaError {
    #[error("connecting to the guest agent socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the guest agent: {0}")]
    Io(#[from] std::io::Error),
    #[error("the guest agent did not answer {command} within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("the guest agent closed the connection")]
    Closed,
    #[error("the guest agent refused {command}: {class}: {desc}")]
    Refused {
        command: String,
        class: String,
        desc: String,
    },
    #[error("unexpected answer from the guest agent to {command}: {answer}")]
    Protocol { command: String, answer: String },
}

/// `Result` with a [`QgaError`].
pub type Result<T, E = QgaError> = std::result::Result<T, E>;

/// What a command run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A connection to one guest agent.
#[derive(Debug)]
pub struct Agent {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Deadline of one command's answer.
    timeout: Duration,
}

impl Agent {
    /// Connects to the agent's socket and synchronises; `timeout` bounds the handshake and
    /// each later command's answer.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Agent> {
        let stream = UnixStream::connect(socket).map_err(|source| QgaError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        stream.set_write_timeout(Some(timeout))?;
        let mut agent = Agent {
            stream,
            buf: Vec::new(),
            timeout,
        };
        agent.sync()?;
        Ok(agent)
    }

    /// `guest-sync-delimited` with a fresh id: afterwards the next answer is ours.
    fn sync(&mut self) -> Result<()> {
        let id = sync_id();
        let command = "guest-sync-delimited";
        let mut msg = vec![0xFF];
        msg.extend(
            json!({"execute": command, "arguments": {"id": id}})
                .to_string()
                .bytes(),
        );
        self.stream.write_all(&msg)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            // Everything before the delimiter is stale.
            while let Some(i) = self.buf.iter().position(|&b| b == 0xFF) {
                self.buf.drain(..=i);
                if let Some(v) = self.try_parse() {
                    if v.get("return").and_then(Value::as_u64) == Some(id) {
                        return Ok(());
                    }
                }
            }
            self.fill(deadline, command)?;
        }
    }

    /// Parses one JSON value at the start of the buffer (after whitespace), removing it; skips
    /// a line that is not JSON. `None` when more bytes are needed.
    fn try_parse(&mut self) -> Option<Value> {
        loop {
            let start = self.buf.iter().position(|b| !b.is_ascii_whitespace())?;
            self.buf.drain(..start);
            if self.buf.first() == Some(&0xFF) {
                return None;
            }
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    return Some(v);
                }
                Some(Err(e)) if e.is_eof() => return None,
                _ => {
                    // Garbage: drop up to the next line (or the whole buffer).
                    let cut = self
                        .buf
                        .iter()
                        .position(|&b| b == b'\n' || b == 0xFF)
                        .map_or(self.buf.len(), |i| i + usize::from(self.buf[i] == b'\n'));
                    self.buf.drain(..cut.max(1));
                }
            }
        }
    }

    /// Reads more bytes, up to `deadline`.
    fn fill(&mut self, deadline: Instant, command: &str) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = || QgaError::Timeout {
            command: command.to_string(),
            timeout: self.timeout,
        };
        if left.is_zero() {
            return Err(timeout());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(QgaError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(timeout())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs one command and returns its `return` value.
    pub fn call(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.stream.write_all(line.as_bytes())?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(v) = self.try_parse() {
                if let Some(r) = v.get("return") {
                    return Ok(r.clone());
                }
                if let Some(e) = v.get("error") {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    return Err(QgaError::Refused {
                        command: command.into(),
                        class: s("class"),
                        desc: s("desc"),
                    });
                }
                // An event or something else: not our answer.
                continue;
            }
            self.fill(deadline, command)?;
        }
    }

    /// `guest-ping`.
    pub fn ping(&mut self) -> Result<()> {
        self.call("guest-ping", None).map(drop)
    }

    /// Runs `path args…` in the guest with its output captured (`guest-exec`), polling
    /// `guest-exec-status` until it exits or `timeout` passes (the process is then left
    /// running: the agent cannot kill it; wrap commands in `timeout` when they may hang).
    pub fn exec(&mut self, path: &str, args: &[&str], timeout: Duration) -> Result<ExecOutput> {
        let command = "guest-exec";
        let r = self.call(
            command,
            Some(json!({"path": path, "arg": args, "capture-output": true})),
        )?;
        let Some(pid) = r.get("pid").and_then(Value::as_i64) else {
            return Err(QgaError::Protocol {
                command: command.into(),
                answer: r.to_string(),
            });
        };
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let s = self.call("guest-exec-status", Some(json!({ "pid": pid })))?;
            if s.get("exited").and_then(Value::as_bool) == Some(true) {
                return decode_status(&s);
            }
            if Instant::now() >= deadline {
                return Err(QgaError::Timeout {
                    command: format!("{command} {path}"),
                    timeout,
                });
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

fn decode_status(s: &Value) -> Result<ExecOutput> {
    let int = |k: &str| {
        s.get(k)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    let data = |k: &str| -> Result<Vec<u8>> {
        match s.get(k).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| QgaError::Protocol {
                    command: "guest-exec-status".into(),
                    answer: format!("{k} is not base64: {e}"),
                }),
        }
    };
    Ok(ExecOutput {
        exit_code: int("exitcode"),
        signal: int("signal"),
        stdout: data("out-data")?,
        stderr: data("err-data")?,
    })
}

/// A sync id that differs between calls and processes.
fn sync_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Below 2^53 so every JSON implementation keeps it exact.
    ((u64::from(std::process::id()) << 32)
        ^ u64::from(nanos)
        ^ COUNTER.fetch_add(1, Ordering::Relaxed))
        & ((1 << 53) - 1)
}

#[cfg(test)]
#[path = "qga_tests.rs"]
mod tests;
