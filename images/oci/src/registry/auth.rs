//! Registry credentials (Docker's `config.json`) and the `WWW-Authenticate` challenge flow
//! (Basic, and Bearer tokens fetched from the challenge's realm).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kiln_layers::IoError;
use serde::Deserialize;

use crate::{Error, Result};

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Where Docker keeps its client config: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// `https://host:port/v1/` → `host:port`; Docker Hub's aliases → `docker.io`.
fn normalize_registry(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// Looks up `registry` (`host[:port]`) in a Docker client config file. A missing file means no
/// credentials; an unreadable or malformed one is an error. `credsStore`/`credHelpers` are not
/// consulted.
pub fn credentials_from_docker_config(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::at("reading docker config", path)(e).into()),
    };
    let config: DockerConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::json(format!("parsing {}", path.display()), e))?;
    let wanted = normalize_registry(registry);
    let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| normalize_registry(k) == wanted)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = BASE64.decode(auth.trim()).map_err(|e| {
            Error::Auth(format!(
                "{}: auth for {registry} is not base64: {e}",
                path.display()
            ))
        })?;
        let decoded = String::from_utf8(decoded).map_err(|_| {
            Error::Auth(format!(
                "{}: auth for {registry} is not UTF-8",
                path.display()
            ))
        })?;
        let (user, pass) = decoded.split_once(':').ok_or_else(|| {
            Error::Auth(format!(
                "{}: auth for {registry} is not user:password",
                path.display()
            ))
        })?;
        return Ok(Some(Credentials {
            username: user.into(),
            password: pass.into(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters (`realm`, `service`, `scope`, …), names lower-cased.
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` header value (RFC 7235): one or more challenges, each a scheme
/// followed by comma-separated `name=value` or `name="quoted, value"` parameters.
pub fn parse_www_authenticate(header: &str) -> Result<Vec<Challenge>> {
    let bad = |why: &str| Error::Auth(format!("malformed WWW-Authenticate {header:?}: {why}"));
    let mut challenges: Vec<Challenge> = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t' || chars[*i] == ',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !matches!(chars[*i], ' ' | '\t' | ',' | '=' | '"') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            return Err(bad("expected a token"));
        }
        // `word=` is a parameter of the current challenge; a bare word starts a new one.
        let mut j = i;
        while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' {
            let current = challenges
                .last_mut()
                .ok_or_else(|| bad("parameter before scheme"))?;
            i = j + 1;
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(bad("unterminated quoted string")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(c) = chars.get(i + 1) {
                                v.push(*c);
                            }
                            i += 2;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                v
            } else {
                token(&mut i)
            };
            current.params.insert(word.to_ascii_lowercase(), value);
        } else {
            challenges.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    if challenges.is_empty() {
        return Err(bad("no challenge"));
    }
    Ok(challenges)
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Authorization state of one client: credentials and the header currently in use.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    pub(crate) credentials: Option<Credentials>,
    /// `Authorization` header value to send, once a challenge told us which.
    pub(crate) header: Option<String>,
    /// Every scope asked for so far; a new token covers all of them.
    scopes: BTreeSet<String>,
}

impl AuthState {
    pub(crate) fn new(credentials: Option<Credentials>) -> Self {
        AuthState {
            credentials,
            header: None,
            scopes: BTreeSet::new(),
        }
    }

    /// Answers a 401: picks Bearer (fetching a token) or Basic from the challenges.
    pub(crate) fn answer(
        &mut self,
        agent: &ureq::Agent,
        www_authenticate: &str,
        scopes: &[String],
    ) -> Result<()> {
        let challenges = parse_www_authenticate(www_authenticate)?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .params
                .get("realm")
                .ok_or_else(|| Error::Auth("Bearer challenge without realm".into()))?;
            if let Some(scope) = bearer.params.get("scope") {
                self.scopes
                    .extend(scope.split(' ').filter(|s| !s.is_empty()).map(String::from));
            }
            self.scopes.extend(scopes.iter().cloned());
            let mut req = agent.get(realm);
            if let Some(service) = bearer.params.get("service") {
                req = req.query("service", service);
            }
            for scope in &self.scopes {
                req = req.query("scope", scope);
            }
            if let Some(c) = &self.credentials {
                req = req.set("Authorization", &c.basic_header());
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(code, r)) => {
                    let body = r.into_string().unwrap_or_default();
                    return Err(Error::Auth(format!(
                        "token endpoint {realm} answered {code}: {}",
                        body.trim()
                    )));
                }
                Err(e) => return Err(Error::Auth(format!("token endpoint {realm}: {e}"))),
            };
            let token: TokenResponse = serde_json::from_reader(resp.into_reader().take_limit())
                .map_err(|e| Error::json(format!("parsing token from {realm}"), e))?;
            let token = token
                .token
                .or(token.access_token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::Auth(format!("token endpoint {realm} returned no token")))?;
            self.header = Some(format!("Bearer {token}"));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let creds = self.credentials.as_ref().ok_or_else(|| {
                Error::Auth(
                    "registry asks for Basic auth but no credentials were found (docker login?)"
                        .into(),
                )
            })?;
            self.header = Some(creds.basic_header());
            return Ok(());
        }
        Err(Error::Auth(format!(
            "unsupported challenge {www_authenticate:?}"
        )))
    }
}

/// Bounded reads of small JSON answers.
trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(1 << 20)
    }
}
impl<R: std::io::Read> TakeLimit for R {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_quoted_commas() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .expect("parse");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example/token");
        assert_eq!(c[0].params["service"], "registry.example");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn parses_several_challenges_and_unquoted_values() {
        let c = parse_www_authenticate(
            r#"Basic realm="Registry Realm", Bearer realm=http://x/t , error="insufficient_scope""#,
        )
        .expect("parse");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].params["realm"], "http://x/t");
        assert_eq!(c[1].params["error"], "insufficient_scope");
    }

    #[test]
    fn rejects_malformed_challenges() {
        assert!(parse_www_authenticate("").is_err());
        assert!(parse_www_authenticate("realm=x").is_err());
        assert!(parse_www_authenticate(r#"Bearer realm="unterminated"#).is_err());
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let auth = BASE64.encode("alice:s3cr:et");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .expect("write");
        let c = credentials_from_docker_config(&path, "127.0.0.1:5000")
            .expect("read")
            .expect("found");
        assert_eq!(c.username, "alice");
        assert_eq!(c.password, "s3cr:et");
        assert!(credentials_from_docker_config(&path, "docker.io")
            .expect("read")
            .is_some());
        assert!(credentials_from_docker_config(&path, "other:1")
            .expect("read")
            .is_none());
        assert!(!format!("{c:?}").contains("s3cr"));
        assert!(
            credentials_from_docker_config(&dir.path().join("absent"), "x")
                .expect("ok")
                .is_none()
        );
    }
}
