//! The HTTP side of the distribution API: one agent, authorization, retries with backoff.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use kiln_layers::IoError;

use super::auth::{credentials_from_docker_config, docker_config_path, AuthState, Credentials};
use crate::{Error, Result};

/// How often and how long to retry connection errors, 5xx and 429 answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request (or per upload session), including the first.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each.
    pub initial_backoff: Duration,
    /// Cap of one wait.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Wait before attempt `attempt` (1-based retry count), or `None` when retries are used up.
    pub(crate) fn backoff(&self, attempt: u32, started: Instant) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        (started.elapsed() + wait <= self.max_total).then_some(wait)
    }
}

/// Options of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// Plain `http://` instead of `https://`.
    pub insecure: bool,
    /// Credentials; when `None` they are looked up in the Docker config.
    pub credentials: Option<Credentials>,
    /// Docker client config to read (default `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for reading or writing one socket operation.
    pub io_timeout: Duration,
}

impl ClientOptions {
    /// Defaults for `registry` (https, Docker config credentials, default retries).
    pub fn new(registry: &str) -> Self {
        ClientOptions {
            registry: registry.into(),
            insecure: false,
            credentials: None,
            docker_config: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// A request body that can be replayed (after a 401 or for a retry).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    fn reader(&self) -> Result<Box<dyn Read + '_>> {
        Ok(match *self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(b) => Box::new(b),
            Body::File { path, offset, len } => {
                let mut f = File::open(path).map_err(IoError::at("opening blob", path))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(IoError::at("seeking in blob", path))?;
                Box::new(io::BufReader::with_capacity(256 * 1024, f).take(len))
            }
        })
    }
}

/// A blocking OCI distribution API client for one registry.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    auth: Mutex<AuthState>,
    pub(crate) retry: RetryPolicy,
    retries: AtomicU64,
}

/// Whether an error is worth another attempt (connection trouble, server-side failures).
pub(crate) fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Transport { .. } => true,
        // Without a path: a stream or socket (a file's error names its path).
        Error::Io(e) => e.path.is_none(),
        Error::Registry { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

impl Client {
    /// Creates a client; reads credentials from the Docker config unless given.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        let credentials = match opts.credentials {
            Some(c) => Some(c),
            None => match opts.docker_config.or_else(docker_config_path) {
                Some(path) => credentials_from_docker_config(&path, &opts.registry)?,
                None => None,
            },
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(opts.connect_timeout)
            .timeout_read(opts.io_timeout)
            .timeout_write(opts.io_timeout)
            .user_agent(concat!("kiln-images/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if opts.insecure { "http" } else { "https" };
        Ok(Client {
            agent,
            base: format!("{scheme}://{}", opts.registry),
            registry: opts.registry,
            auth: Mutex::new(AuthState::new(credentials)),
            retry: opts.retry,
            retries: AtomicU64::new(0),
        })
    }

    /// `host[:port]` of the registry.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Requests retried so far (connection errors, 5xx, 429).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub(crate) fn note_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// `base/v2/<path>`, or a `Location` from the registry made absolute.
    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v2/{path}", self.base)
        }
    }

    /// Sends one request. 401 answers are handled (challenge, token, one replay); with `retry`,
    /// transport errors, 5xx and 429 are retried with backoff. Any other status is returned as
    /// a response for the caller to judge.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        scopes: &[String],
        retry: bool,
    ) -> Result<ureq::Response> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut auth_rounds = 0u32;
        loop {
            let result = self.send_once(method, url, headers, body);
            let err = match result {
                Ok(resp) if resp.status() == 401 && auth_rounds < 2 => {
                    auth_rounds += 1;
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
                    if challenge.is_empty() {
                        return Err(Error::Auth(format!(
                            "{method} {url}: 401 without WWW-Authenticate"
                        )));
                    }
                    self.auth
                        .lock()
                        .map_err(|_| Error::Auth("auth state poisoned".into()))?
                        .answer(&self.agent, &challenge, scopes)?;
                    continue;
                }
                Ok(resp) if resp.status() == 401 => {
                    return Err(Error::Auth(format!(
                        "{method} {url}: still unauthorized after authenticating"
                    )));
                }
                Ok(resp) if retry && (resp.status() >= 500 || resp.status() == 429) => {
                    status_error(method, url, resp)
                }
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            attempt += 1;
            match self.retry.backoff(attempt, started) {
                Some(wait) if retry && is_retryable(&err) => {
                    self.note_retry();
                    thread::sleep(wait);
                }
                _ => return Err(err),
            }
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let auth = self
            .auth
            .lock()
            .map_err(|_| Error::Auth("auth state poisoned".into()))?
            .header
            .clone();
        if let Some(h) = auth {
            req = req.set("Authorization", &h);
        }
        let result = match body {
            Body::Empty if method == "GET" || method == "HEAD" => req.call(),
            _ => {
                let len = body.len().to_string();
                req.set("Content-Length", &len).send(body.reader()?)
            }
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(_, resp)) => Ok(resp),
            Err(ureq::Error::Transport(t)) => Err(Error::Transport {
                method: method.into(),
                url: url.into(),
                reason: t.to_string(),
            }),
        }
    }
}

/// Turns an unexpected response into [`Error::Registry`] with the start of its body.
pub(crate) fn status_error(method: &str, url: &str, resp: ureq::Response) -> Error {
    let status = resp.status();
    let mut body = String::new();
    let _ = resp.into_reader().take(2048).read_to_string(&mut body);
    Error::Registry {
        method: method.into(),
        url: url.into(),
        status,
        body: body.trim().to_string(),
    }
}

/// Returns the response if its status is one of `ok`, else an error.
pub(crate) fn expect_status(
    method: &str,
    url: &str,
    resp: ureq::Response,
    ok: &[u16],
) -> Result<ureq::Response> {
    if ok.contains(&resp.status()) {
        Ok(resp)
    } else {
        Err(status_error(method, url, resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            max_total: Duration::from_secs(10),
        };
        let now = Instant::now();
        assert_eq!(p.backoff(1, now), Some(Duration::from_millis(100)));
        assert_eq!(p.backoff(2, now), Some(Duration::from_millis(200)));
        assert_eq!(p.backoff(3, now), Some(Duration::from_millis(250)));
        assert_eq!(p.backoff(4, now), None);
        let tight = RetryPolicy {
            max_total: Duration::from_millis(50),
            ..p
        };
        assert_eq!(tight.backoff(1, now), None);
    }
}
