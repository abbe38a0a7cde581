//! Benchmark: validate and render a cluster of 5 masters and 9,995 agents.
//!
//! `cargo bench -p kiln-pipeline --bench render_scale` prints a markdown table of wall-clock times for
//! parsing + validation, rendering every tree, and writing them with `kiln render`'s writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Instant;

use kiln_pipeline::diag::SpecSource;

fn spec(masters: usize, agents: usize) -> String {
    let mut s = String::from("[cluster]\nname = \"scale\"\ndomain = \"scale.example\"\n\n");
    for i in 0..masters + agents {
        let (name, role) = if i < masters {
            (format!("m{i}"), "master")
        } else {
            (format!("a{i}"), "agent")
        };
        let n = i + 2; // 10.0.0.1 is the gateway
        let _ = write!(
            s,
            "[[hosts]]\nname = \"{name}\"\nroles = [\"{role}\"]\naddress = \"10.{}.{}.{}/8\"\nmac = \"02:00:00:{:02x}:{:02x}:{:02x}\"\ngateway = \"10.0.0.1\"\n\n",
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255,
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255
        );
    }
    s
}

fn main() {
    let (masters, agents) = (5, 9_995);
    let text = spec(masters, agents);
    let src = SpecSource {
        name: "scale.toml".into(),
        text,
    };
    let mut rows = Vec::new();
    let t = Instant::now();
    let kiln_pipeline::validate::Loaded { plan, warnings } =
        kiln_pipeline::validate::load(&src).unwrap_or_else(|r| panic!("{r}"));
    rows.push(("parse + validate + plan", t.elapsed()));
    let t = Instant::now();
    let rendered = kiln_pipeline::components::render(&plan).expect("renders");
    rows.push(("render all trees", t.elapsed()));
    let entries: usize = rendered
        .profiles
        .values()
        .chain(rendered.hosts.values())
        .map(|t| t.len())
        .sum();
    let json =
        serde_json::to_string_pretty(&kiln_pipeline::report::build(&plan, &warnings, &rendered))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    kiln_pipeline::treedir::publish(&rendered, &json, &dir.path().join("out")).unwrap();
    rows.push(("write render dir (plan.json + trees)", t.elapsed()));
    println!(
        "{} masters + {} agents, {} profiles, {} hosts, {entries} entries, spec {} KiB",
        masters,
        agents,
        rendered.profiles.len(),
        rendered.hosts.len(),
        src.text.len() / 1024
    );
    println!("\n| step | seconds |\n|---|---|");
    for (step, d) in rows {
        println!("| {step} | {:.2} |", d.as_secs_f64());
    }
}
