//! Downloads: HTTP(S) with retries and exponential backoff, resume through `Range` requests
//! when a transfer breaks, progress on a terminal (plain lines otherwise), and `--mirror`
//! rewriting of upstream URLs.
//!
//! A download goes to `CACHE/partial/<key>.part` (locked with `flock` so two builds never
//! write one partial file; the second uses a private temporary file) and is moved into the
//! blob store only after its digest was checked ([`super::cache::Cache::adopt`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_layers::IoError;

use super::cache::Cache;
use super::{Error, Result};

/// Retry and timeout settings for HTTP.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Attempts per download, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Timeout of one read from the socket.
    pub read_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Where an upstream URL is read from after `--mirror`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(String),
    File(PathBuf),
}

/// Applies `--mirror`: `https://HOST/PATH` → `MIRROR/HOST/PATH`. A mirror that is not an
/// http(s) URL is a directory (`file://` prefix optional).
pub fn mirrored(url: &str, mirror: Option<&str>) -> Location {
    let Some(m) = mirror else {
        return Location::Http(url.to_string());
    };
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    if m.starts_with("http://") || m.starts_with("https://") {
        Location::Http(format!("{}/{rest}", m.trim_end_matches('/')))
    } else {
        let dir = m.strip_prefix("file://").unwrap_or(m);
        let mut p = PathBuf::from(dir);
        for part in rest
            .split('/')
            .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        {
            p.push(part);
        }
        Location::File(p)
    }
}

/// Reports download progress: a live line on a terminal, else a line per start and end.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    tty: bool,
    last: Instant,
}

impl Progress {
    fn start(&mut self, label: &str, total: Option<u64>, from: u64) {
        if self.enabled && !self.tty {
            let resume = if from > 0 {
                format!(" (resuming at {from} bytes)")
            } else {
                String::new()
            };
            let size = total.map(|t| format!(", {t} bytes")).unwrap_or_default();
            eprintln!("fetching {label}{size}{resume}");
        }
    }
    fn update(&mut self, label: &str, done: u64, total: Option<u64>) {
        if !(self.enabled && self.tty) || self.last.elapsed() < Duration::from_millis(150) {
            return;
        }
        self.last = Instant::now();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let line = match total {
            Some(t) if t > 0 => format!(
                "{label}  {:.1}/{:.1} MiB {:>3}%",
                mib(done),
                mib(t),
                done * 100 / t
            ),
            _ => format!("{label}  {:.1} MiB", mib(done)),
        };
        eprint!("\r\x1b[2K{line}");
        let _ = io::stderr().flush();
    }
    fn finish(&mut self, label: &str, size: u64) {
        if !self.enabled {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("fetched {label} ({size} bytes)");
    }
}

/// An HTTP downloader with one connection pool.
#[derive(Debug)]
pub struct Downloader {
    agent: ureq::Agent,
    opts: HttpOptions,
    progress: std::cell::RefCell<Progress>,
}

enum Attempt {
    Done(u64),
    Retry(String),
}

impl Downloader {
    /// A downloader; `progress` turns on reporting to stderr.
    pub fn new(opts: &HttpOptions, progress: bool) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(opts.connect_timeout)
            .timeout_read(opts.read_timeout)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        Downloader {
            agent,
            opts: opts.clone(),
            progress: std::cell::RefCell::new(Progress {
                enabled: progress,
                tty: io::stderr().is_terminal(),
                last: Instant::now(),
            }),
        }
    }

    /// Fetches `url` (upstream; `mirror` applied here) into the cache, checking `expected`
    /// (`(hex, pinned_by)`) before the blob is stored. Returns `(hex, size)`.
    pub fn fetch_into(
        &self,
        cache: &Cache,
        url: &str,
        mirror: Option<&str>,
        expected: Option<(&str, &str)>,
    ) -> Result<(String, u64)> {
        match mirrored(url, mirror) {
            Location::File(p) => {
                let f = File::open(&p).map_err(|e| Error::Download {
                    url: url.into(),
                    reason: format!("mirror file {}: {e}", p.display()),
                })?;
                cache.put_reader(f, expected, url)
            }
            Location::Http(real) => {
                let part = cache.partial_path(&real);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&part)
                    .map_err(IoError::at("opening partial download", &part))?;
                // Another build downloading the same URL holds the lock: do not share its
                // file; download privately instead.
                let locked =
                    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                        .is_ok()
                        && still_at(&f, &part);
                let private;
                let (file, path): (File, PathBuf) = if locked {
                    (f, part.clone())
                } else {
                    drop(f);
                    private = tempfile::Builder::new()
                        .prefix(".dl-")
                        .tempfile_in(part.parent().unwrap_or(cache.root()))
                        .map_err(IoError::at("creating temporary file in", cache.root()))?;
                    let (file, path) = private
                        .keep()
                        .map_err(|e| IoError::at("keeping temporary file", &part)(e.error))?;
                    (file, path)
                };
                let r = self.download(&real, url, &file, &path);
                let r = r.and_then(|_| cache.adopt(&path, expected, url));
                if r.is_err() && !path.exists() {
                    // adopt removed a mismatching file: nothing to clean.
                } else if r.is_err() && !locked {
                    let _ = fs::remove_file(&path);
                }
                drop(file);
                r
            }
        }
    }

    /// Downloads `url` into `file` (opened for append at `path`), resuming from its current
    /// length with `Range` when the server supports it.
    fn download(&self, url: &str, label: &str, file: &File, path: &Path) -> Result<u64> {
        let started = Instant::now();
        let mut last_error = String::new();
        for attempt in 0..self.opts.attempts.max(1) {
            if attempt > 0 {
                let wait = self
                    .opts
                    .initial_backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(self.opts.max_backoff);
                tracing::info!("retrying {url} in {wait:?}: {last_error}");
                std::thread::sleep(wait);
            }
            match self.attempt(url, label, file, path) {
                Ok(Attempt::Done(n)) => return Ok(n),
                Ok(Attempt::Retry(why)) => last_error = why,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Download {
            url: url.into(),
            reason: format!(
                "{last_error} (gave up after {} attempts in {:.1?})",
                self.opts.attempts.max(1),
                started.elapsed()
            ),
        })
    }

    fn attempt(&self, url: &str, label: &str, file: &File, path: &Path) -> Result<Attempt> {
        let have = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut req = self.agent.get(url);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if have > 0 => {
                // The partial file is not a prefix the server recognises: start over.
                file.set_len(0).map_err(IoError::at("truncating", path))?;
                return Ok(Attempt::Retry("server refused the resume range".into()));
            }
            Err(ureq::Error::Status(code, r)) if code >= 500 || code == 429 || code == 408 => {
                return Ok(Attempt::Retry(format!("HTTP {code} {}", r.status_text())))
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(Error::Download {
                    url: url.into(),
                    reason: format!("HTTP {code} {}", r.status_text()),
                })
            }
            Err(ureq::Error::Transport(t)) => return Ok(Attempt::Retry(t.to_string())),
        };
        let len: Option<u64> = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse().ok());
        let mut offset = have;
        if resp.status() == 206 {
            let start = resp
                .header("Content-Range")
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if start != Some(have) {
                file.set_len(0).map_err(IoError::at("truncating", path))?;
                return Ok(Attempt::Retry("server answered a different range".into()));
            }
        } else {
            // A full answer (the server ignores ranges): start over.
            file.set_len(0).map_err(IoError::at("truncating", path))?;
            offset = 0;
        }
        let total = len.map(|l| l + offset);
        self.progress.borrow_mut().start(label, total, offset);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = offset;
        let mut out = file;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.write_all(&buf[..n])
                        .map_err(IoError::at("writing", path))?;
                    done += n as u64;
                    self.progress.borrow_mut().update(label, done, total);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.flush().map_err(IoError::at("writing", path))?;
                    return Ok(Attempt::Retry(format!(
                        "transfer broke at {done} bytes: {e}"
                    )));
                }
            }
        }
        out.flush().map_err(IoError::at("writing", path))?;
        if let Some(t) = total {
            if done != t {
                return Ok(Attempt::Retry(format!(
                    "truncated download: got {done} of {t} bytes"
                )));
            }
        }
        self.progress.borrow_mut().finish(label, done);
        Ok(Attempt::Done(done))
    }
}

/// Whether `path` still names the open file `f`. Another build may have finished the same
/// download and moved the partial file into the store between our `open` and our `flock`:
/// the lock is then on the store's blob, which must not be written to.
fn still_at(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a partial file another build moved into the store after our `open` must
    /// not be written to (two builds sharing a cache failed, and could have corrupted a blob).
    #[test]
    fn a_partial_file_moved_away_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let f = File::create(&part).unwrap();
        assert!(still_at(&f, &part));
        fs::rename(&part, dir.path().join("blob")).unwrap();
        assert!(!still_at(&f, &part));
        File::create(&part).unwrap();
        assert!(
            !still_at(&f, &part),
            "a new file at the same path is another file"
        );
    }

    #[test]
    fn mirror_rewrites() {
        let u = "https://github.com/etcd-io/etcd/releases/download/v3.4.23/etcd.tar.gz";
        assert_eq!(mirrored(u, None), Location::Http(u.into()));
        assert_eq!(
            mirrored(u, Some("http://127.0.0.1:8000/m/")),
            Location::Http("http://127.0.0.1:8000/m/github.com/etcd-io/etcd/releases/download/v3.4.23/etcd.tar.gz".into())
        );
        assert_eq!(
            mirrored(u, Some("file:///srv/m")),
            Location::File(
                "/srv/m/github.com/etcd-io/etcd/releases/download/v3.4.23/etcd.tar.gz".into()
            )
        );
        assert_eq!(
            mirrored("http://x/../../etc/passwd", Some("/m")),
            Location::File("/m/x/etc/passwd".into())
        );
    }
}
