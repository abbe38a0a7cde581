//! Crash-safe publishing (issue 9, item 4): `kiln render` and `kiln build` killed with SIGKILL
//! at every point of the swap leave the output holding the complete old or the complete new
//! output, and the next run succeeds and leaves no staging directory behind.
//!
//! The binary stops at a named point when `KILN_TEST_PAUSE_AT` names it (it prints `kiln-test:
//! paused at POINT` and sleeps, until killed or until `KILN_TEST_RESUME_FILE` exists), so the
//! kill lands exactly there; `KILN_TEST_NO_EXCHANGE=1` takes the two-rename fallback of
//! filesystems without `RENAME_EXCHANGE`. Builds of one output are serialised by its lock
//! (issue 18, item 15).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::workspace::{build_args, fixture_workspace};
use crate::common::{kiln, kiln_code};
use kiln_pipeline::sources::cache::sha256_hex;

/// Every entry under `dir`: relative path → sha256 of a file, `-> TARGET` of a symlink, `dir`.
/// `None` when `dir` does not exist.
fn snapshot(dir: &Path) -> Option<BTreeMap<String, String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &p, out);
            } else if m.is_symlink() {
                out.insert(rel, format!("-> {}", fs::read_link(&p).unwrap().display()));
            } else {
                out.insert(rel, sha256_hex(&fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    fs::symlink_metadata(dir).ok()?;
    walk(dir, dir, &mut out);
    Some(out)
}

/// Entries of `parent` that publishing leaves only while it runs (`NAME.kiln-…`, old kiln's
/// `.NAME.kiln-new-…`).
fn leftovers(parent: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kiln-"))
        .collect();
    v.sort();
    v
}

/// `kiln ARGS` with `env`, stderr piped.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .env_remove("KILN_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("running kiln")
}

/// A `kiln` process stopped at a pause point; killed (SIGKILL) and reaped when dropped, so a
/// failing test leaves no process behind.
struct Paused(Child);

impl Paused {
    /// Kills it with SIGKILL and waits for it.
    fn kill(self) {}
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `kiln ARGS` until it pauses at `point` (its stderr read up to the marker).
fn run_until(args: &[&str], point: &str, env: &[(&str, &str)]) -> Paused {
    let mut env = env.to_vec();
    env.push(("KILN_TEST_PAUSE_AT", point));
    let mut child = Paused(spawn(args, &env));
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let marker = format!("kiln-test: paused at {point}");
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait().unwrap();
            panic!("kiln {args:?} ended ({status}) before pausing at {point}:\n{seen}");
        }
        if line.trim_end() == marker {
            return child;
        }
        seen.push_str(&line);
    }
}

/// Runs `kiln ARGS` until it pauses at `point` and kills it there with SIGKILL.
fn kill_at(args: &[&str], point: &str, env: &[(&str, &str)]) {
    run_until(args, point, env).kill();
}

/// Where the output must be after a kill at each point: the old output before the swap, the
/// new one after it. Killed between the fallback's two renames, the name is missing until the
/// next run puts the old output back.
const POINTS: &[(&str, Expect)] = &[
    ("staged", Expect::Old),
    ("swap", Expect::Old),
    ("between-renames", Expect::Missing),
    ("after-swap", Expect::New),
    ("removing-old", Expect::New),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Old,
    New,
    Missing,
}

/// Alternates between two inputs (`args(i)` makes the output `outputs[i]`), killing a run at
/// every point and checking the output after the kill and after the next, complete, run.
fn kill_at_every_point(
    out: &Path,
    outputs: &[BTreeMap<String, String>; 2],
    args: &dyn Fn(usize) -> Vec<String>,
) {
    let parent = out.parent().unwrap();
    let mut current = 0;
    for exchange in [true, false] {
        let env: &[(&str, &str)] = if exchange {
            &[]
        } else {
            &[("KILN_TEST_NO_EXCHANGE", "1")]
        };
        for &(point, expect) in POINTS {
            if exchange && point == "between-renames" {
                continue;
            }
            let target = 1 - current;
            let a = args(target);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            kill_at(&a, point, env);
            let after = snapshot(out);
            let want = match expect {
                Expect::Old => Some(&outputs[current]),
                Expect::New => Some(&outputs[target]),
                Expect::Missing => None,
            };
            assert!(
                after.as_ref() == want,
                "killed at {point} (exchange: {exchange}): the output is not the {expect:?} one"
            );
            // The next run succeeds, publishes the new output whole, and cleans up.
            kiln_code(&a, 0);
            assert_eq!(
                snapshot(out).as_ref(),
                Some(&outputs[target]),
                "after {point}"
            );
            assert_eq!(leftovers(parent), Vec::<String>::new(), "after {point}");
            current = target;
        }
    }
}

/// Two specs that render differently: the demo and the demo with another Marathon port.
fn two_specs(dir: &Path) -> [PathBuf; 2] {
    let a = dir.join("a.toml");
    let b = dir.join("b.toml");
    kiln_code(&["init", a.to_str().unwrap()], 0);
    let text = fs::read_to_string(&a).unwrap();
    let changed = text.replacen("port = 8080", "port = 8090", 1);
    assert_ne!(changed, text);
    fs::write(&b, changed).unwrap();
    [a, b]
}

#[test]
fn render_killed_at_every_point_of_the_swap_leaves_old_or_new() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = two_specs(tmp.path());
    let out = tmp.path().join("out");
    let args = |i: usize| {
        vec![
            "render".to_string(),
            specs[i].display().to_string(),
            "-o".into(),
            out.display().to_string(),
        ]
    };
    let mut outputs = Vec::new();
    for i in [1, 0] {
        let a = args(i);
        kiln_code(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0);
        outputs.push(snapshot(&out).unwrap());
    }
    outputs.reverse();
    assert_ne!(outputs[0], outputs[1]);
    let outputs: [_; 2] = outputs.try_into().unwrap();
    kill_at_every_point(&out, &outputs, &args);
}

/// Kills at instants spread over a whole run, not only at the named points.
#[test]
fn render_killed_at_any_instant_leaves_old_or_new() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = two_specs(tmp.path());
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let render = |i: usize| ["render", specs[i].to_str().unwrap(), "-o", o];
    kiln_code(&render(1), 0);
    let new = snapshot(&out).unwrap();
    kiln_code(&render(0), 0);
    let old = snapshot(&out).unwrap();
    for i in 0..30u64 {
        let target = 1 - (i as usize % 2);
        let mut child = spawn(&render(target), &[]);
        std::thread::sleep(Duration::from_micros(i * 1_700));
        let _ = child.kill();
        child.wait().unwrap();
        let now = snapshot(&out).expect("the output disappeared");
        assert!(now == old || now == new, "killed after {} µs", i * 1_700);
        kiln_code(&render(target), 0);
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    }
}

/// [`two_specs`] for builds: the fixture workspace with its own spec and `b.toml`, which differs in one setting
/// (`zookeeper.tick_time`), so their builds differ.
fn two_build_specs() -> (tempfile::TempDir, [PathBuf; 2]) {
    let (tmp, spec) = fixture_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let changed = text.replacen("[zookeeper]\n", "[zookeeper]\ntick_time = 3000\n", 1);
    assert_ne!(changed, text);
    let specs = [spec.clone(), spec.with_file_name("b.toml")];
    fs::write(&specs[1], changed).unwrap();
    (tmp, specs)
}

/// `kiln build` publishes through the same code: killed at every point, `dist/` is the old or
/// the new build (every file, `SHA256SUMS` included), and the next build succeeds.
#[test]
fn build_killed_at_every_point_of_the_swap_leaves_old_or_new() {
    let (tmp, specs) = two_build_specs();
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let args = |i: usize| {
        build_args(&specs[i], &dist, cache.to_str().unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut outputs = Vec::new();
    for i in [1, 0] {
        let a = args(i);
        kiln_code(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0);
        outputs.push(snapshot(&dist).unwrap());
    }
    outputs.reverse();
    assert_ne!(outputs[0]["SHA256SUMS"], outputs[1]["SHA256SUMS"]);
    let outputs: [_; 2] = outputs.try_into().unwrap();
    kill_at_every_point(&dist, &outputs, &args);
}

/// A `kiln` process whose stderr is read on: up to a marker line, then by a thread (so that
/// the process never blocks on, or dies of, a full or closed pipe).
struct Running {
    child: Child,
    /// What stderr said up to the marker.
    seen: String,
    rest: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `kiln ARGS` with `env` and reads its stderr until a line contains `marker`.
    fn until(args: &[&str], env: &[(&str, &str)], marker: &str) -> Running {
        let mut child = spawn(args, env);
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("kiln {args:?} ended ({status}) before saying {marker:?}:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains(marker) {
                break;
            }
        }
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            rest
        });
        Running {
            child,
            seen,
            rest: Some(rest),
        }
    }

    /// Waits for it to end; its exit code and everything its stderr said.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let rest = self.rest.take().unwrap().join().unwrap();
        (status.code(), format!("{}{rest}", self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Regression (issue 18, item 15): two `kiln build`s into one output at once both reported
/// success, and the one that swapped last won. A build holds the output's lock from start to
/// end: the second waits for the first, saying so with the first's PID, and then builds on its
/// output (its own spec: its output; the same spec: "nothing changed"). Each output is whole,
/// the final one is exactly one build's, and `--no-wait` refuses instead of waiting.
#[test]
fn concurrent_builds_into_one_output_are_serialised() {
    let (tmp, specs) = two_build_specs();
    let cache = tmp.path().join("cache");
    let args = |i: usize, dist: &Path| -> Vec<String> {
        build_args(&specs[i], dist, cache.to_str().unwrap())
            .into_iter()
            .map(String::from)
            .collect()
    };
    // Each spec's output, built alone.
    let alone: Vec<_> = (0..2)
        .map(|i| {
            let dir = tmp.path().join(format!("alone-{i}"));
            let a = args(i, &dir);
            kiln_code(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0);
            snapshot(&dir).unwrap()
        })
        .collect();
    assert_ne!(alone[0]["SHA256SUMS"], alone[1]["SHA256SUMS"]);

    let dist = tmp.path().join("dist");
    for (round, second_spec) in [(0, 1), (1, 0)] {
        let resume = tmp.path().join(format!("resume-{round}"));
        let first_args = args(0, &dist);
        let first_args: Vec<&str> = first_args.iter().map(String::as_str).collect();
        let first = Running::until(
            &first_args,
            &[
                ("KILN_TEST_PAUSE_AT", "staged"),
                ("KILN_TEST_RESUME_FILE", resume.to_str().unwrap()),
            ],
            "kiln-test: paused at staged",
        );
        let stage = leftovers(tmp.path())
            .into_iter()
            .find(|n| n.contains(".kiln-stage-"))
            .unwrap();
        assert_eq!(
            snapshot(&tmp.path().join(stage)).as_ref(),
            Some(&alone[0]),
            "round {round}: the first build's staged output is not whole"
        );
        let before = snapshot(&dist);

        let second_args = args(second_spec, &dist);
        let second_args: Vec<&str> = second_args.iter().map(String::as_str).collect();
        let waiting = format!(
            "waiting for another kiln build to finish writing {} (pid {})",
            dist.display(),
            first.child.id()
        );
        let second = Running::until(&second_args, &[], &waiting);
        // It waits, and writes nothing meanwhile.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            snapshot(&dist),
            before,
            "round {round}: written while waiting"
        );
        // Asked not to wait, a third refuses, naming the output and the build holding it.
        let mut no_wait = second_args.clone();
        no_wait.push("--no-wait");
        let (_, err) = kiln_code(&no_wait, 1);
        let busy = format!(
            "another kiln build is writing {} (pid {})",
            dist.display(),
            first.child.id()
        );
        assert!(err.contains(&busy), "round {round}: {err}");
        assert_eq!(snapshot(&dist), before, "round {round}: --no-wait wrote");

        fs::write(&resume, "").unwrap();
        let (code, err) = first.finish();
        assert_eq!(
            code,
            Some(0),
            "round {round}: the first build failed:\n{err}"
        );
        let (code, err) = second.finish();
        assert_eq!(
            code,
            Some(0),
            "round {round}: the second build failed:\n{err}"
        );
        assert_eq!(
            err.matches("waiting for another kiln build").count(),
            1,
            "{err}"
        );
        if second_spec == 0 {
            // The first build's output is the second's, found complete.
            assert!(err.contains("nothing changed"), "round {round}: {err}");
        } else {
            assert!(err.contains("wrote "), "round {round}: {err}");
        }
        assert_eq!(
            snapshot(&dist).as_ref(),
            Some(&alone[second_spec]),
            "round {round}: the output is not exactly the last build's"
        );
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "round {round}");
    }
}

/// A build killed while it holds the output's lock (here with its output staged) does not
/// block the next one: the kernel dropped the lock with the process. The next build does not
/// wait, removes what the dead one left and publishes.
#[test]
fn a_crashed_builds_output_lock_does_not_block_the_next() {
    let (tmp, spec) = fixture_workspace();
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let args = build_args(&spec, &dist, cache.to_str().unwrap());
    let first = run_until(&args, "staged", &[]);
    let staged = leftovers(tmp.path());
    // dist.kiln-lock-ID, dist.kiln-output-lock, dist.kiln-stage-ID
    assert_eq!(staged.len(), 3, "{staged:?}");
    assert!(staged.contains(&"dist.kiln-output-lock".to_string()));
    first.kill();
    assert_eq!(leftovers(tmp.path()), staged);

    let (_, err) = kiln_code(&args, 0);
    assert!(!err.contains("waiting"), "{err}");
    assert!(snapshot(&dist).unwrap().contains_key("SHA256SUMS"));
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    let (_, err) = kiln_code(&args, 0);
    assert!(err.contains("nothing changed"), "{err}");
}

/// A live render keeps its staging directory while another render of the same output runs.
#[test]
fn a_live_renders_staging_directory_survives_a_concurrent_render() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let first = run_until(&["render", "-o", o], "swap", &[]);
    let staged = leftovers(tmp.path());
    assert_eq!(staged.len(), 2, "{staged:?}");
    kiln_code(&["render", "-o", o], 0);
    assert_eq!(leftovers(tmp.path()), staged);
    first.kill();
    kiln_code(&["render", "-o", o], 0);
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert!(kiln(&["render", "-o", o]).status.success());
}
