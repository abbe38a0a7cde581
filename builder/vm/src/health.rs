//! Running a host's checks in the guest through its agent, waiting until all pass, and the
//! health report (`kiln boot`'s table and `--json`).
//!
//! Probes are shell commands, all of a host's in one `guest-exec` per round ([`run_probes`]):
//! HTTP and ZooKeeper through bash's `/dev/tcp` (a minbase image has bash but no curl),
//! `docker info` and `docker inspect` (once `docker.service` is active), `systemctl show`,
//! `test`. Each runs under `timeout`, so a probe of an address that drops packets cannot hang.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::qga::{Agent, QgaError};
use kiln_dist::boot_manifest::{Check, Probe};

/// Seconds a probe command may take in the guest.
const PROBE_SECS: u64 = 10;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    /// One line: what was seen (`Mode: leader`, `HTTP 503`, `activating/start, 2 restarts`).
    pub detail: String,
}

impl ProbeResult {
    fn new(ok: bool, detail: impl Into<String>) -> Self {
        ProbeResult {
            ok,
            detail: detail.into(),
        }
    }
}

/// `'…'`-quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Before a Docker probe: the daemon's unit must be up. Until it is, the Docker CLI (a large
/// Go program, seconds of TCG CPU per run) would only wait on the socket or fail.
const DOCKER_UP: &str = "systemctl is-active -q docker.service || \
    { echo \"docker.service not active yet: $(systemctl is-active docker.service)\" >&2; exit 3; }; ";

/// The bash script of a probe.
fn script(probe: &Probe) -> String {
    match probe {
        Probe::Http {
            host, port, path, ..
        } => format!(
            "exec 3<>/dev/tcp/{host}/{port} || exit 7; printf {} >&3; cat <&3",
            sh_quote(&format!(
                "GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n"
            ))
        ),
        Probe::ZkSrvr { host, port } => {
            format!("exec 3<>/dev/tcp/{host}/{port} || exit 7; printf srvr >&3; cat <&3")
        }
        Probe::DockerInfo { .. } => format!("{DOCKER_UP}docker info 2>&1"),
        Probe::Container { name } => format!(
            "{DOCKER_UP}docker inspect -f '{{{{.State.Status}}}}' {} 2>&1",
            sh_quote(name)
        ),
        Probe::Executable { path } => {
            let p = sh_quote(path);
            format!("test -f {p} && test -x {p}")
        }
        Probe::File { path } => format!("test -f {}", sh_quote(path)),
        Probe::Unit { unit } => format!(
            "systemctl show -p ActiveState,SubState,NRestarts,Result {} 2>&1",
            sh_quote(unit)
        ),
        Probe::HostLink { mac, address } => format!(
            // busybox (on every bootable image) when the image has no iproute2.
            "command -v ip >/dev/null || ip() {{ busybox ip \"$@\"; }}; \
             for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = {m} ] && i=${{d##*/}}; done; \
             [ -n \"$i\" ] || {{ echo no NIC with MAC {m}; exit 1; }}; \
             ip link set \"$i\" up || exit 1; \
             ip -o -4 addr show dev \"$i\" | grep -q ' {a} ' || ip addr add {a} dev \"$i\" || exit 1; \
             ip -o -4 addr show dev \"$i\" | grep -q ' {a} ' && echo \"$i {a}\"",
            m = sh_quote(mac),
            a = address,
        ),
        Probe::SecureBoot => format!(
            "tail -c 1 /sys/firmware/efi/efivars/SecureBoot-{EFI_GLOBAL} | od -An -tu1"
        ),
        Probe::Pcr { index, .. } => format!("cat /sys/class/tpm/tpm0/pcr-sha256/{index}"),
    }
}

/// The vendor GUID of the UEFI global variables (`SecureBoot`, `SetupMode`, …).
const EFI_GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Runs one probe in the guest.
pub fn run_probe(agent: &mut Agent, probe: &Probe) -> ProbeResult {
    run_probes(agent, &[probe])
        .pop()
        .unwrap_or_else(|| ProbeResult::new(false, "no result"))
}

/// The line that starts each probe's output in a batch (on stdout and on stderr), followed by
/// the probe's index, and the one that ends it on stdout, followed by its exit code. Each is
/// printed after a newline of its own, so output without a final newline stays apart.
const BEGIN: &str = "@@kiln-probe@@";
const END: &str = "@@kiln-probe-exit@@";

/// Runs `probes` in the guest with one `guest-exec`: one shell that runs each probe's script
/// in turn, under its own `timeout`, and marks where each one's stdout and stderr begin and
/// what it exited with. One process tree per host and round instead of one per check: under
/// TCG every `guest-exec` (the agent's fork, a shell, the status polls) cost guest CPU and
/// wall time, paid once per check and round.
pub fn run_probes(agent: &mut Agent, probes: &[&Probe]) -> Vec<ProbeResult> {
    if probes.is_empty() {
        return Vec::new();
    }
    let mut batch = String::new();
    for (i, p) in probes.iter().enumerate() {
        let _ = writeln!(
            batch,
            "printf '\\n{BEGIN} {i}\\n'; printf '\\n{BEGIN} {i}\\n' >&2; \
             timeout {PROBE_SECS} bash -c {} </dev/null; printf '\\n{END} %d\\n' $?",
            sh_quote(&script(p)),
        );
    }
    let timeout = Duration::from_secs(PROBE_SECS * probes.len() as u64 + 5);
    let out = match agent.exec("/bin/sh", &["-c", &batch], timeout) {
        Ok(o) => o,
        Err(e) => {
            let why = e.to_string();
            return probes
                .iter()
                .map(|_| ProbeResult::new(false, why.clone()))
                .collect();
        }
    };
    let outs = sections(&out.stdout_text());
    let errs = sections(&out.stderr_text());
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let Some((text, code)) = outs.get(&i).and_then(|t| t.rsplit_once(END)) else {
                return ProbeResult::new(
                    false,
                    format!(
                        "did not run: the batch ended (exit code {:?})",
                        out.exit_code
                    ),
                );
            };
            let text = text.strip_suffix('\n').unwrap_or(text);
            let code = code.trim().parse::<i32>().ok();
            judge(p, text, errs.get(&i).map_or("", |e| e.as_str()), code)
        })
        .collect()
}

/// A batch's stream cut at its [`BEGIN`] lines: what each probe wrote, by index. The newline
/// printed before the next marker is not the probe's.
fn sections(stream: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let marker = format!("\n{BEGIN} ");
    let mut parts = stream.split(&marker);
    parts.next(); // before the first marker: nothing of a probe's
    for part in parts {
        let (index, body) = part.split_once('\n').unwrap_or((part, ""));
        if let Ok(i) = index.parse::<usize>() {
            out.insert(i, body.to_string());
        }
    }
    out
}

/// What one probe's output means.
fn judge(probe: &Probe, text: &str, stderr: &str, code: Option<i32>) -> ProbeResult {
    let success = code == Some(0);
    let first_err = || {
        let line = stderr
            .lines()
            .chain(text.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        match code {
            Some(124) => format!("timed out after {PROBE_SECS} s"),
            Some(c) if line.is_empty() => format!("exit code {c}"),
            _ => line,
        }
    };
    match probe {
        Probe::Http {
            status,
            body_contains,
            ..
        } => {
            if !success && text.is_empty() {
                return ProbeResult::new(false, first_err());
            }
            let got = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u16>().ok());
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let short: String = body.trim().chars().take(80).collect();
            match got {
                Some(s) if s != *status => ProbeResult::new(false, format!("HTTP {s} {short}")),
                None => ProbeResult::new(false, format!("not HTTP: {}", first_line(text))),
                Some(s) => match body_contains {
                    Some(want) if !body.contains(want.as_str()) => {
                        ProbeResult::new(false, format!("HTTP {s}, body lacks {want}: {short}"))
                    }
                    _ => ProbeResult::new(true, format!("HTTP {s} {short}")),
                },
            }
        }
        Probe::ZkSrvr { .. } => match text.lines().find(|l| l.starts_with("Mode: ")) {
            Some(m) => {
                let mode = m.trim_start_matches("Mode: ").trim();
                let ok = matches!(mode, "standalone" | "leader" | "follower");
                ProbeResult::new(ok, m.trim())
            }
            None if text.trim().is_empty() => ProbeResult::new(false, first_err()),
            None => ProbeResult::new(false, first_line(text)),
        },
        Probe::DockerInfo { cluster_store } => {
            if !success {
                return ProbeResult::new(false, first_err());
            }
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("Cluster Store:"));
            match (cluster_store, line) {
                (None, _) => ProbeResult::new(true, "docker info ok"),
                (Some(want), Some(l)) => {
                    let got = l.trim_start_matches("Cluster Store:").trim();
                    ProbeResult::new(got == want, l)
                }
                (Some(_), None) => ProbeResult::new(false, "docker info shows no Cluster Store"),
            }
        }
        Probe::Container { .. } => {
            let state = text.trim();
            ProbeResult::new(success && state == "running", first_line(state))
        }
        Probe::Executable { path } | Probe::File { path } => {
            if success {
                ProbeResult::new(true, format!("{path} present"))
            } else {
                ProbeResult::new(false, format!("{path} missing"))
            }
        }
        Probe::HostLink { .. } => {
            if success {
                ProbeResult::new(true, first_line(text.trim()))
            } else {
                ProbeResult::new(false, first_err())
            }
        }
        Probe::SecureBoot => match text.trim() {
            "1" => ProbeResult::new(true, "Secure Boot on"),
            "0" => ProbeResult::new(false, "Secure Boot off"),
            _ => ProbeResult::new(false, first_err()),
        },
        Probe::Pcr { index, sha256 } => {
            let got = text.trim().to_ascii_lowercase();
            if !success || got.is_empty() {
                ProbeResult::new(false, first_err())
            } else if got == sha256.to_ascii_lowercase() {
                ProbeResult::new(true, format!("PCR {index} = {got} (as built)"))
            } else {
                ProbeResult::new(false, format!("PCR {index} = {got}, built for {sha256}"))
            }
        }
        Probe::Unit { .. } => {
            let props: BTreeMap<&str, &str> =
                text.lines().filter_map(|l| l.split_once('=')).collect();
            let get = |k| props.get(k).copied().unwrap_or("?");
            // Only services restart (and have `NRestarts` and `Result`); a target, mount or
            // socket is checked by its state alone.
            let service = props.contains_key("NRestarts");
            let restarts = get("NRestarts");
            let ok = success && get("ActiveState") == "active" && (!service || restarts == "0");
            let detail = if props.is_empty() {
                first_err()
            } else if service {
                format!(
                    "{}/{}, {restarts} restart(s), result {}",
                    get("ActiveState"),
                    get("SubState"),
                    get("Result")
                )
            } else {
                format!("{}/{}", get("ActiveState"), get("SubState"))
            };
            ProbeResult::new(ok, detail)
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

/// A check's outcome in the report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckHealth {
    pub id: String,
    pub about: String,
    /// `ok` or `failed`.
    pub status: CheckStatus,
    pub detail: String,
    /// Seconds from the start of the run until the check first passed.
    pub passed_after_secs: Option<f64>,
}

/// Whether a check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Failed,
}

/// One host's health.
#[derive(Debug, Clone, Serialize)]
pub struct HostHealth {
    pub name: String,
    pub healthy: bool,
    pub checks: Vec<CheckHealth>,
    /// The serial console log.
    pub serial_log: PathBuf,
    /// The guest agent socket.
    pub qga_socket: PathBuf,
    /// The last lines of the console, when unhealthy.
    pub console_tail: Vec<String>,
    /// `journalctl -u UNIT -n 30` of each failing unit, when unhealthy and the agent answers.
    pub journals: BTreeMap<String, String>,
    /// The boot's timeline, read in the guest after the checks (when it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<super::timeline::Timeline>,
}

/// A host being watched.
#[derive(Debug)]
pub struct Watched {
    pub name: String,
    pub qga_socket: PathBuf,
    pub serial_log: PathBuf,
    pub checks: Vec<Check>,
}

/// Runs every check of every host until all pass in one round, or `timeout` runs out. Checks
/// that passed are not re-run while waiting; the last round re-runs all of them, so a unit that
/// restarted in between is caught. `progress` gets a line per host whenever its state changes.
pub fn wait_healthy(
    hosts: &[Watched],
    started: Instant,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Vec<HostHealth> {
    let deadline = Instant::now() + timeout;
    let mut state: Vec<Vec<(ProbeResult, Option<f64>)>> = hosts
        .iter()
        .map(|h| {
            h.checks
                .iter()
                .map(|_| (ProbeResult::new(false, "not run yet"), None))
                .collect()
        })
        .collect();
    let mut last_line: Vec<String> = vec![String::new(); hosts.len()];
    let mut full_round = false;
    loop {
        for (i, h) in hosts.iter().enumerate() {
            let results = &mut state[i];
            match Agent::connect(&h.qga_socket, Duration::from_secs(5)) {
                Ok(mut agent) => {
                    let due: Vec<usize> = (0..h.checks.len())
                        .filter(|&c| full_round || !results[c].0.ok)
                        .collect();
                    let probes: Vec<&Probe> = due.iter().map(|&c| &h.checks[c].probe).collect();
                    let found = run_probes(&mut agent, &probes);
                    let now = started.elapsed().as_secs_f64();
                    for (c, r) in due.into_iter().zip(found) {
                        let (slot, passed) = &mut results[c];
                        if r.ok && passed.is_none() {
                            *passed = Some(now);
                        }
                        *slot = r;
                    }
                }
                Err(e) => {
                    let why = agent_down(&e);
                    for (r, _) in results.iter_mut() {
                        *r = ProbeResult::new(false, why.clone());
                    }
                }
            }
            let line = progress_line(h, results);
            if line != last_line[i] {
                progress(&line);
                last_line[i] = line;
            }
        }
        let all_ok = state.iter().flatten().all(|(r, _)| r.ok);
        if all_ok && full_round {
            break;
        }
        // Confirm with a full round once everything has passed.
        full_round = all_ok;
        if Instant::now() >= deadline {
            break;
        }
        if !all_ok {
            std::thread::sleep(Duration::from_secs(2).min(deadline - Instant::now()));
        }
    }
    hosts
        .iter()
        .zip(state)
        .map(|(h, results)| report(h, results))
        .collect()
}

fn agent_down(e: &QgaError) -> String {
    match e {
        QgaError::Connect { .. } => "VM not running (no guest agent socket)".into(),
        _ => format!("guest agent not answering yet ({e})"),
    }
}

fn progress_line(h: &Watched, results: &[(ProbeResult, Option<f64>)]) -> String {
    let ok = results.iter().filter(|(r, _)| r.ok).count();
    let mut line = format!("{}: {ok}/{} ok", h.name, results.len());
    let waiting: Vec<String> = h
        .checks
        .iter()
        .zip(results)
        .filter(|(_, (r, _))| !r.ok)
        .take(4)
        .map(|(c, (r, _))| format!("{} ({})", c.id, r.detail))
        .collect();
    if !waiting.is_empty() {
        let _ = write!(line, ", waiting: {}", waiting.join(", "));
        let more = results.len() - ok - waiting.len();
        if more > 0 {
            let _ = write!(line, " and {more} more");
        }
    }
    line
}

fn report(h: &Watched, results: Vec<(ProbeResult, Option<f64>)>) -> HostHealth {
    let checks: Vec<CheckHealth> = h
        .checks
        .iter()
        .zip(results)
        .map(|(c, (r, passed))| CheckHealth {
            id: c.id.clone(),
            about: c.about.clone(),
            status: if r.ok {
                CheckStatus::Ok
            } else {
                CheckStatus::Failed
            },
            detail: r.detail,
            passed_after_secs: passed.map(|s| (s * 10.0).round() / 10.0),
        })
        .collect();
    let healthy = checks.iter().all(|c| c.status == CheckStatus::Ok);
    let mut out = HostHealth {
        name: h.name.clone(),
        healthy,
        checks,
        serial_log: h.serial_log.clone(),
        qga_socket: h.qga_socket.clone(),
        console_tail: Vec::new(),
        journals: BTreeMap::new(),
        timeline: None,
    };
    if !healthy {
        out.console_tail = super::qemu::tail(&h.serial_log, 40);
        out.journals = journals(h, &out.checks);
    }
    out
}

/// `journalctl -u UNIT -n 30 --no-pager` of each failing unit check, when the agent answers.
fn journals(h: &Watched, checks: &[CheckHealth]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(mut agent) = Agent::connect(&h.qga_socket, Duration::from_secs(5)) else {
        return out;
    };
    for c in checks.iter().filter(|c| c.status == CheckStatus::Failed) {
        let Some(unit) = c.id.strip_prefix("unit:") else {
            continue;
        };
        let r = agent.exec(
            "/bin/sh",
            &[
                "-c",
                "exec journalctl -u \"$0\" -n 30 --no-pager 2>&1",
                unit,
            ],
            Duration::from_secs(20),
        );
        let text = match r {
            Ok(o) => o.stdout_text(),
            Err(e) => format!("(journalctl failed: {e})"),
        };
        out.insert(unit.to_string(), text);
    }
    out
}

/// The health table: host, check, status, detail.
pub fn table(hosts: &[HostHealth]) -> String {
    let rows: Vec<[String; 4]> = hosts
        .iter()
        .flat_map(|h| {
            h.checks.iter().map(|c| {
                [
                    h.name.clone(),
                    c.id.clone(),
                    match c.status {
                        CheckStatus::Ok => "ok".into(),
                        CheckStatus::Failed => "FAILED".into(),
                    },
                    c.detail.clone(),
                ]
            })
        })
        .collect();
    let header = ["HOST", "CHECK", "STATUS", "DETAIL"].map(String::from);
    let mut widths = [0usize; 3];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> ProbeResult {
        let probe = Probe::Unit { unit: "x".into() };
        judge(&probe, text, "", Some(0))
    }

    #[test]
    fn a_service_passes_active_without_restarts() {
        let ok = "ActiveState=active\nSubState=running\nNRestarts=0\nResult=success\n";
        assert!(unit(ok).ok);
        let restarted = "ActiveState=active\nSubState=running\nNRestarts=2\nResult=success\n";
        let r = unit(restarted);
        assert!(!r.ok);
        assert_eq!(r.detail, "active/running, 2 restart(s), result success");
        assert!(!unit("ActiveState=activating\nSubState=start\nNRestarts=0\nResult=success\n").ok);
    }

    #[test]
    fn a_target_passes_by_its_state_alone() {
        // `systemctl show` of a target has neither NRestarts nor Result.
        let r = unit("ActiveState=active\nSubState=active\n");
        assert!(r.ok);
        assert_eq!(r.detail, "active/active");
        assert!(!unit("ActiveState=inactive\nSubState=dead\n").ok);
    }
}
