//! A booted host's timeline, read in the guest once its checks are done: when the kernel
//! started (after firmware and boot loader), when the initramfs' `/init` ran, when systemd
//! started in the verified root (the switch-root), when each of kiln's units became active,
//! when each check first passed, and `systemd-analyze critical-chain` of the unit that came
//! up last. Every time is in seconds after the host's QEMU process started.
//!
//! The guest's clock starts with its kernel; the build host's with QEMU. One agent call reads
//! the guest's uptime: the host time at the middle of that call minus the uptime is when the
//! kernel started (the call's own length, a fraction of a second under TCG, bounds the error).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::health::sh_quote;
use super::qga::Agent;

/// The kernel's line when it hands over to the initramfs (init/main.c `run_init_process`).
const RUN_INIT: &str = "Run /init as init process";

/// A unit and when it became active.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitTime {
    pub unit: String,
    /// `None`: never active.
    pub active_secs: Option<f64>,
}

/// A check and when it first passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckTime {
    pub id: String,
    pub first_ok_secs: Option<f64>,
}

/// One host's boot, in seconds after its QEMU started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Firmware, boot loader and loading the kernel: when the kernel's clock started.
    pub kernel_secs: f64,
    /// When the kernel ran the initramfs' `/init` (from the kernel log).
    pub initramfs_secs: Option<f64>,
    /// When systemd started in the real root (`UserspaceTimestampMonotonic`).
    pub switch_root_secs: Option<f64>,
    /// When systemd considered the boot finished (`FinishTimestampMonotonic`), if it has.
    pub boot_finished_secs: Option<f64>,
    /// kiln's units, in the order the plan lists them.
    pub units: Vec<UnitTime>,
    pub checks: Vec<CheckTime>,
    /// When the last check first passed: the host was healthy from then on.
    pub healthy_secs: Option<f64>,
    /// The unit that became active last.
    pub slowest_unit: Option<String>,
    /// `systemd-analyze critical-chain` of that unit.
    pub critical_chain: String,
}

/// What the guest reported, before it is put on the host's clock.
#[derive(Debug, Default, PartialEq)]
struct GuestTimes {
    uptime: f64,
    /// Seconds since the kernel started.
    initramfs: Option<f64>,
    switch_root: Option<f64>,
    finished: Option<f64>,
    units: Vec<(String, Option<f64>)>,
}

/// The script printing what [`parse`] reads: `uptime S`, `kernel LINE`, `manager PROP=VALUE`
/// lines and `unit NAME USEC` lines.
fn script(units: &[String]) -> String {
    let names: Vec<String> = units.iter().map(|u| sh_quote(u)).collect();
    format!(
        "read up _ < /proc/uptime; echo \"uptime $up\"; \
         dmesg 2>/dev/null | grep -m1 -F {run} | sed 's/^/kernel /'; \
         systemctl show -p UserspaceTimestampMonotonic -p FinishTimestampMonotonic | sed 's/^/manager /'; \
         for u in {names}; do echo \"unit $u $(systemctl show -P ActiveEnterTimestampMonotonic \"$u\")\"; done",
        run = sh_quote(RUN_INIT),
        names = names.join(" "),
    )
}

/// Microseconds since boot as seconds; `0` (never) as `None`.
fn usecs(v: &str) -> Option<f64> {
    match v.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(u) => Some(u as f64 / 1e6),
    }
}

fn parse(out: &str) -> GuestTimes {
    let mut t = GuestTimes::default();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("uptime ") {
            t.uptime = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("kernel [") {
            t.initramfs = v.split(']').next().and_then(|s| s.trim().parse().ok());
        } else if let Some(v) = line.strip_prefix("manager UserspaceTimestampMonotonic=") {
            t.switch_root = usecs(v);
        } else if let Some(v) = line.strip_prefix("manager FinishTimestampMonotonic=") {
            t.finished = usecs(v);
        } else if let Some(v) = line.strip_prefix("unit ") {
            let (name, at) = v.split_once(' ').unwrap_or((v, ""));
            t.units.push((name.to_string(), usecs(at)));
        }
    }
    t
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

/// Reads the timeline of the host behind `agent`, whose QEMU started at `qemu_started`.
/// `units` are kiln's units of the host; `checks` each check's id and when it first passed
/// (seconds after `run_started`). `None` when the guest does not answer.
pub fn read(
    agent: &mut Agent,
    qemu_started: Instant,
    run_started: Instant,
    units: &[String],
    checks: &[(String, Option<f64>)],
) -> Option<Timeline> {
    let before = qemu_started.elapsed().as_secs_f64();
    let out = agent
        .exec("/bin/sh", &["-c", &script(units)], Duration::from_secs(30))
        .ok()?;
    let after = qemu_started.elapsed().as_secs_f64();
    let g = parse(&out.stdout_text());
    if g.uptime <= 0.0 {
        return None;
    }
    // The host time of the guest's uptime reading is within the call; its middle is closest.
    let kernel = ((before + after) / 2.0 - g.uptime).max(0.0);
    let at = |s: Option<f64>| s.map(|s| round(kernel + s));
    // Check times are on the run's clock, which started before (or with) this host's QEMU.
    let shift = qemu_started
        .saturating_duration_since(run_started)
        .as_secs_f64();
    let checks: Vec<CheckTime> = checks
        .iter()
        .map(|(id, t)| CheckTime {
            id: id.clone(),
            first_ok_secs: t.map(|t| round((t - shift).max(0.0))),
        })
        .collect();
    let healthy_secs = checks
        .iter()
        .map(|c| c.first_ok_secs)
        .try_fold(0.0f64, |m, t| t.map(|t| m.max(t)));
    let units: Vec<UnitTime> = g
        .units
        .iter()
        .map(|(u, t)| UnitTime {
            unit: u.clone(),
            active_secs: at(*t),
        })
        .collect();
    let slowest_unit = units
        .iter()
        .filter_map(|u| u.active_secs.map(|t| (t, &u.unit)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, u)| u.clone());
    let critical_chain = slowest_unit
        .as_ref()
        .and_then(|u| {
            agent
                .exec(
                    "/bin/sh",
                    &[
                        "-c",
                        "exec systemd-analyze critical-chain --no-pager \"$0\" 2>&1 | head -n 40",
                        u,
                    ],
                    Duration::from_secs(30),
                )
                .ok()
        })
        .map(|o| o.stdout_text())
        .unwrap_or_default();
    Some(Timeline {
        kernel_secs: round(kernel),
        initramfs_secs: at(g.initramfs),
        switch_root_secs: at(g.switch_root),
        boot_finished_secs: at(g.finished),
        units,
        checks,
        healthy_secs: healthy_secs.map(round),
        slowest_unit,
        critical_chain,
    })
}

/// The timelines as a table: one row per host and phase, with its time.
pub fn table(hosts: &[(&str, &Timeline)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("HOST  PHASE  AT (s after QEMU start)\n");
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}"));
    for (name, t) in hosts {
        let mut rows: Vec<(String, Option<f64>)> = vec![
            ("kernel started".into(), Some(t.kernel_secs)),
            ("initramfs /init".into(), t.initramfs_secs),
            ("switch-root (systemd)".into(), t.switch_root_secs),
        ];
        rows.extend(
            t.units
                .iter()
                .map(|u| (format!("{} active", u.unit), u.active_secs)),
        );
        rows.push(("boot finished (systemd)".into(), t.boot_finished_secs));
        rows.push(("healthy (last check ok)".into(), t.healthy_secs));
        for (phase, at) in rows {
            let _ = writeln!(out, "{name}  {phase}  {}", secs(at));
        }
        if let Some(u) = &t.slowest_unit {
            let _ = writeln!(out, "{name}  critical chain of {u}:");
            for l in t.critical_chain.lines() {
                let _ = writeln!(out, "{name}    {l}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_times_are_parsed() {
        let out = "uptime 57.31\nkernel [    2.104913] Run /init as init process\n\
                   manager UserspaceTimestampMonotonic=9812345\nmanager FinishTimestampMonotonic=0\n\
                   unit etcd.service 30500000\nunit marathon.service \n";
        let g = parse(out);
        assert_eq!(
            g,
            GuestTimes {
                uptime: 57.31,
                initramfs: Some(2.104913),
                switch_root: Some(9.812345),
                finished: None,
                units: vec![
                    ("etcd.service".into(), Some(30.5)),
                    ("marathon.service".into(), None),
                ],
            }
        );
    }

    #[test]
    fn the_script_quotes_unit_names() {
        let s = script(&["a.service".into(), "b'c.service".into()]);
        assert!(
            s.contains("for u in 'a.service' 'b'\\''c.service'; do"),
            "{s}"
        );
    }
}
