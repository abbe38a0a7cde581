//! The command line: help, init, check (text and JSON), schema drift, exit codes.

use crate::common::{fixture, kiln_code, tests_dir};
use kiln_test_support::snapshot;

#[test]
fn every_command_explains_itself_with_an_example() {
    for cmd in [
        &["--help"][..],
        &["init", "--help"],
        &["check", "--help"],
        &["schema", "--help"],
        &["render", "--help"],
    ] {
        let (out, _) = kiln_code(cmd, 0);
        assert!(
            out.contains("Example"),
            "kiln {cmd:?} has no example:\n{out}"
        );
    }
    let (out, _) = kiln_code(&["--help"], 0);
    assert!(
        out.contains("Exit codes: 0 ok, 1 failure, 2 usage or spec error"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    kiln_code(&["check", "--no-such-flag"], 2);
    kiln_code(&["frobnicate"], 2);
    let (_, err) = kiln_code(&["check", "/nonexistent/cluster.toml"], 2);
    assert!(err.contains("/nonexistent/cluster.toml"), "{err}");
}

#[test]
fn init_writes_the_demo_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cluster.toml");
    let f = file.to_str().unwrap();
    kiln_code(&["init", f], 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[[hosts]]") && text.starts_with("# kiln cluster spec"));
    std::fs::write(&file, "edited").unwrap();
    let (_, err) = kiln_code(&["init", f], 1);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "edited");
    kiln_code(&["init", f, "--force"], 0);
    let (stdout, _) = kiln_code(&["init", "-"], 0);
    assert_eq!(stdout, text);
    // What init writes is what check and render use by default.
    let (a, _) = kiln_code(&["check", f], 0);
    let (b, _) = kiln_code(&["check"], 0);
    assert_eq!(a, b);
}

#[test]
fn check_prints_each_host_role_units_ports_and_files() {
    let (out, _) = kiln_code(&["check"], 0);
    for want in [
        "host node1 (node1.kiln.test)",
        "roles      master, agent",
        "zookeeper.service",
        "calico-node.service",
        "5050/tcp",
        "/etc/zookeeper/conf/zoo.cfg",
        "/var/lib/zookeeper/myid",
        "/opt/cni/bin/calico-ipam",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn check_json_has_the_resolved_plan() {
    let spec = fixture("specs/three-two.toml");
    let (out, _) = kiln_code(&["check", spec.to_str().unwrap(), "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let plan = &v["plan"];
    assert_eq!(plan["mesos"]["master"]["quorum"], 2);
    assert_eq!(
        plan["mesos"]["zk"],
        "zk://10.0.0.11:2181,10.0.0.12:2181,10.0.0.13:2181/mesos"
    );
    assert_eq!(plan["etcd"]["access"], "gateway");
    assert_eq!(
        plan["calico"]["node"]["image"]["runs_as"],
        "10.0.0.5:5000/kiln/calico/node:v2.6.12"
    );
    let profiles: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(profiles, ["agent", "master"]);
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    assert_eq!(hosts[2]["zk_id"], 3);
    assert_eq!(hosts[3]["profile"], "agent");
    assert!(hosts[3]["identity_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/etc/kiln/identity.env"));
}

#[test]
fn schema_is_committed_and_current() {
    let (out, _) = kiln_code(&["schema"], 0);
    snapshot::assert_file(
        &tests_dir().join("../docs/reference/kiln-spec.schema.json"),
        &out,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["additionalProperties"], false,
        "unknown top-level keys must be refused"
    );
}

#[test]
fn warnings_fail_only_with_strict() {
    let spec = fixture("specs/three-two.toml");
    let s = spec.to_str().unwrap();
    kiln_code(&["check", s, "--strict"], 0);
    let tmp = tempfile::tempdir().unwrap();
    let even = tmp.path().join("even.toml");
    let text = std::fs::read_to_string(&spec).unwrap().replacen(
        "roles = [\"agent\"]",
        "roles = [\"master\"]",
        1,
    );
    std::fs::write(&even, text).unwrap();
    let (_, err) = kiln_code(&["check", even.to_str().unwrap()], 0);
    assert!(
        err.contains("warning: even ZooKeeper ensemble of 4 masters"),
        "{err}"
    );
    let (_, err) = kiln_code(&["check", even.to_str().unwrap(), "--strict"], 2);
    assert!(err.contains("error: even ZooKeeper ensemble"), "{err}");
}

/// Asserts that no control byte but a line break reaches the terminal.
fn assert_no_control_bytes(stderr: &str) {
    let bad: Vec<u8> = stderr
        .bytes()
        .filter(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
        .collect();
    assert!(bad.is_empty(), "control bytes {bad:x?} in:\n{stderr:?}");
}

/// The demo spec with line 11 (`name = "demo"`) replaced, written to DIR/NAME.
fn demo_with_name(dir: &std::path::Path, name: &str, value: &[u8]) -> std::path::PathBuf {
    let demo = kiln_pipeline::DEMO_SPEC;
    assert_eq!(demo.lines().nth(10), Some("name = \"demo\""));
    let mut bytes = Vec::new();
    for (i, line) in demo.split_inclusive('\n').enumerate() {
        if i == 10 {
            bytes.extend_from_slice(b"name = \"");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\"\n");
        } else {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn escape_sequences_in_a_spec_are_shown_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    // Escapes TOML decodes into control characters, echoed by validation.
    let decoded = demo_with_name(
        tmp.path(),
        "decoded.toml",
        br"de\u001b[31mmo\u001b]0;x\u0007",
    );
    let (_, err) = kiln_code(&["check", decoded.to_str().unwrap()], 2);
    assert_no_control_bytes(&err);
    assert!(
        err.contains(r#"invalid cluster name "de\u{1b}[31mmo\u{1b}]0;x\u{7}""#),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:11:8", decoded.display())),
        "{err}"
    );
    // Raw control bytes in the file: a TOML error whose source line is escaped, the caret
    // still under the escape.
    let raw = demo_with_name(tmp.path(), "raw.toml", b"de\x1b[2J\x1b]0;x\x07mo");
    let (_, err) = kiln_code(&["check", raw.to_str().unwrap()], 2);
    assert_no_control_bytes(&err);
    assert!(
        err.contains(&format!("--> {}:11:11", raw.display())),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("11 | ")).unwrap();
    assert_eq!(lines[at], r#"11 | name = "de\u{1b}[2J\u{1b}]0;x\u{7}mo""#);
    let caret = lines[at + 1].find('^').unwrap();
    assert!(lines[at][caret..].starts_with(r"\u{1b}"), "{err}");
    assert!(err.contains("help: "), "{err}");
}

#[test]
fn a_megabyte_value_gives_a_diagnostic_of_a_few_hundred_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = demo_with_name(tmp.path(), "big.toml", "x".repeat(1 << 20).as_bytes());
    let (_, err) = kiln_code(&["check", spec.to_str().unwrap()], 2);
    assert!(err.len() < 1000, "{} bytes of stderr:\n{err}", err.len());
    assert!(
        err.contains(&format!("--> {}:11:8", spec.display())),
        "{err}"
    );
    assert!(err.contains("error: invalid cluster name \"xxx"), "{err}");
    assert!(err.contains("xxx…"), "{err}");
    assert!(err.contains("help: "), "{err}");
}

#[test]
fn a_spec_that_is_not_utf8_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    // "démo" saved as Latin-1.
    let spec = demo_with_name(tmp.path(), "latin1.toml", b"d\xe9mo");
    let offset = kiln_pipeline::DEMO_SPEC.find("name = \"demo\"").unwrap() + "name = \"d".len();
    let (_, err) = kiln_code(&["check", spec.to_str().unwrap()], 2);
    assert_no_control_bytes(&err);
    assert!(
        err.contains(&format!(
            "error: the spec is not valid UTF-8: \\xe9 at byte offset {offset} (line 11, column 10)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:11:10", spec.display())),
        "{err}"
    );
    assert!(err.contains("11 | name = \"d\\xe9mo\""), "{err}");
    assert!(err.contains("help: save the file as UTF-8"), "{err}");
}

/// Writes the generated reference (man pages, completions, the spec reference, the schema)
/// into `dir`: what `./dev gen` writes into `docs/reference`.
fn generate_docs(dir: &std::path::Path) {
    kiln_gendocs::write_all(dir).unwrap();
}

#[test]
fn generated_docs_are_committed_and_current() {
    let tmp = tempfile::tempdir().unwrap();
    generate_docs(tmp.path());
    let tree = snapshot::read_tree(tmp.path());
    // docs/reference holds exactly the generated files, byte for byte; its index is written
    // by hand.
    snapshot::assert_dir_except(
        &tests_dir().join("../docs/reference"),
        &tree,
        &["README.md"],
    );
    let generated: Vec<String> = tree.into_keys().collect();
    for want in [
        "spec.md",
        "man/kiln.1",
        "man/kiln-check.1",
        "man/kiln-cache-import.1",
        "completions/kiln.bash",
        "completions/_kiln",
        "completions/kiln.fish",
    ] {
        assert!(
            generated.iter().any(|g| g == want),
            "no {want} in {generated:?}"
        );
    }
    for rel in &generated {
        let text = std::fs::read_to_string(tmp.path().join(rel)).unwrap();
        // The generator is not part of `kiln`: no page names its old hidden command.
        assert!(!text.contains("generate-docs") || rel == "spec.md", "{rel}");
        // No date: the page is the same whenever and wherever it is generated.
        if let Some(th) = text.lines().find(|l| l.starts_with(".TH ")) {
            let name = rel.trim_start_matches("man/").trim_end_matches(".1");
            let version = env!("CARGO_PKG_VERSION");
            assert_eq!(
                th,
                format!(".TH {name} 1  \"kiln {version}\" \"kiln manual\"")
            );
        }
    }
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(tmp.path().join("completions/kiln.bash"))
        .status()
        .unwrap();
    assert!(status.success(), "bash -n rejects completions/kiln.bash");
}

/// Dotted paths of every property of `node` (`hosts[].mac`), following `$ref`s; shared
/// definitions are walked once, under `<name>`.
fn schema_keys(
    defs: &serde_json::Value,
    node: &serde_json::Value,
    path: &str,
    seen: &mut Vec<String>,
    out: &mut Vec<(String, bool)>,
) {
    if let Some(name) = node["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        if !seen.iter().any(|s| s == name) {
            seen.push(name.to_string());
            schema_keys(defs, &defs[name], path, seen, out);
            seen.pop();
        }
        return;
    }
    for alts in ["allOf", "anyOf", "oneOf"] {
        for alt in node[alts].as_array().into_iter().flatten() {
            schema_keys(defs, alt, path, seen, out);
        }
    }
    if node["items"].is_object() {
        schema_keys(defs, &node["items"], &format!("{path}[]"), seen, out);
    }
    for (k, v) in node["properties"].as_object().into_iter().flatten() {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        out.push((p.clone(), v["description"].is_string()));
        schema_keys(defs, v, &p, seen, out);
    }
}

#[test]
fn every_key_is_described_and_in_the_reference() {
    let (out, _) = kiln_code(&["schema"], 0);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys = Vec::new();
    schema_keys(
        &schema["definitions"],
        &schema,
        "",
        &mut Vec::new(),
        &mut keys,
    );
    assert!(keys.len() > 100, "{keys:?}");
    let undescribed: Vec<&str> = keys
        .iter()
        .filter(|(_, described)| !described)
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(
        undescribed.is_empty(),
        "keys without a description (add a /// doc comment in builder/spec/src/types.rs): {undescribed:?}"
    );
    let reference = std::fs::read_to_string(tests_dir().join("../docs/reference/spec.md")).unwrap();
    for (key, _) in &keys {
        // Source tables are documented once, as `<source>.KEY`.
        let shown = match key.split_once(".source.") {
            Some((_, rest)) => format!("<source>.{rest}"),
            None => key.clone(),
        };
        if shown.contains(".also[].") {
            continue;
        }
        assert!(
            reference.contains(&format!("## `{shown}`\n")),
            "{key} is not in docs/reference/spec.md"
        );
    }
}

/// The README's "What runs where" table is the generated one (issue 8: generated from the
/// demo's plan, not written by hand).
#[test]
fn readme_what_runs_where_is_generated() {
    let root = crate::common::tests_dir().join("..");
    let table = std::fs::read_to_string(root.join("docs/reference/what-runs-where.md")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's What runs where table differs from docs/reference/what-runs-where.md: copy it over after `./dev gen`"
    );
}

/// Issue 8, item 2: `kiln check` lists exactly what runs, and the base units each profile
/// masks: Debian's etcd.service where the host has no member, Docker and containerd where no
/// Docker runs.
#[test]
fn check_lists_the_masked_base_units_per_profile() {
    let checked = |spec: &str| kiln_code(&["check", fixture(spec).to_str().unwrap()], 0).0;
    let section = |out: &str, name: &str| {
        let start = out
            .find(&format!("\nprofile {name} "))
            .unwrap_or_else(|| panic!("no profile {name}:\n{out}"));
        let rest = &out[start + 1..];
        rest[..rest.find("\nprofile ").unwrap_or(rest.len())].to_string()
    };
    let masked = |s: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("masked (never run): "))
            .unwrap_or_default()
            .split(' ')
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let out = checked("specs/three-two.toml");
    let agent = section(&out, "agent");
    assert!(
        masked(&agent).contains(&"etcd.service".to_string()),
        "{agent}"
    );
    assert!(agent.contains("etcd-gateway.service"), "{agent}");
    let master = section(&out, "master");
    assert!(!masked(&master).contains(&"etcd.service".to_string()));
    // Marathon's container brings Docker to these masters: only the socket kiln's dockerd
    // binds itself is masked.
    // (The base's idle units are masked everywhere: `boot_path.rs`.)
    let idle: Vec<&str> = kiln_pipeline::components::IDLE_UNITS
        .iter()
        .map(|(u, _)| *u)
        .collect();
    let own: Vec<String> = masked(&master)
        .into_iter()
        .filter(|u| !idle.contains(&u.as_str()))
        .collect();
    assert_eq!(own, ["docker.socket", "mesos-slave.service"], "{master}");
    // dcos-large's masters run Marathon's tarball: no Docker there.
    let out = checked("specs/dcos-large.toml");
    let master = section(&out, "master");
    for unit in ["docker.service", "containerd.service"] {
        assert!(masked(&master).contains(&unit.to_string()), "{master}");
    }
}
