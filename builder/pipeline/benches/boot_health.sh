#!/usr/bin/env bash
# Benchmark (issues 10, 20): seconds from QEMU start to healthy, per host and per run, for the
# built-in demo (one master-agent host), the cluster spec (1 master + 1 agent) and the same
# spec with two more masters (3 masters + 1 agent: a ZooKeeper and etcd ensemble of three),
# booted by `kiln boot --json`. Mesos, Marathon and Calico are left out (`--leave-out
# upstream`: their upstream artifacts cannot be fetched here), so the figures cover etcd,
# ZooKeeper, Docker, firewalld, kiln's identity unit and the base's own units.
#
# Columns: the run's all-healthy time (from the first VM's start) and its goal (issue 20), then
# the host's own boot from its QEMU start (`kiln boot`'s timeline): kernel start, switch-root,
# healthy, and the unit that came up last. The clusters boot twice, with their VMs started
# together (the default) and staggered, to show which is faster.
#
#   builder/pipeline/benches/boot_health.sh [--readme]
#
# Each accelerator that works is measured: TCG always; KVM only when its probe boot reaches
# the kernel (on the project machines it does not: `kiln boot --accel auto` says why and the
# KVM row says "not usable"). Boot outputs come from kiln's cache when the images are
# unchanged (CACHE, default kiln's own); the build is not timed. With --readme, the table is
# written into docs/contributing/benchmarks.md between the boot-bench markers.
set -euo pipefail
cd "$(dirname "$0")/../../.."
readme=false
[ "${1:-}" = --readme ] && readme=true

cargo build --release --locked -q -p kiln-cli
kiln=$(realpath "${CARGO_TARGET_DIR:-target}/release/kiln")
cache_args=()
[ -n "${CACHE:-}" ] && cache_args=(--cache "$CACHE")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp tests/fixtures/specs/cluster.toml "$work/cluster.toml"
# 3 masters + 1 agent: the cluster spec with m2 and m3 beside m1.
python3 - "$work/cluster.toml" "$work/cluster3.toml" <<'PY'
import sys
s = open(sys.argv[1]).read()
m1 = '[[hosts]]\nname = "m1"\nroles = ["master"]\naddress = "10.88.0.11/24"\nmac = "52:54:00:88:00:11"\n'
assert m1 in s, "tests/fixtures/specs/cluster.toml: m1 is not as this benchmark expects"
more = "".join(m1.replace("m1", f"m{i}").replace("0.11/", f"0.1{i}/").replace(":00:11", f":00:1{i}") + "\n"
               for i in (2, 3))
open(sys.argv[2], "w").write(s.replace(m1, m1 + "\n" + more))
PY
echo "==> building the demo and the cluster specs (not timed)" >&2
for spec in demo cluster cluster3; do
  arg=()
  [ "$spec" != demo ] && arg=("$work/$spec.toml")
  "$kiln" build "${arg[@]}" --leave-out upstream -o "$work/$spec" "${cache_args[@]}" \
    >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
done

# One `kiln boot --json` run of DIST → table rows: spec, start, accel, host, role, the run's
# all-healthy time and its goal, then the host's own timeline.
rows() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
spec, start = sys.argv[2], sys.argv[4]
roles = {h["name"]: h["profile"] for h in json.load(open(sys.argv[3] + "/boot/manifest.json"))["hosts"]}
# Issue 20's goals, TCG on the project machine: the demo host 60 s; the 1+1 cluster 90 s
# (its agent 45 s on its own); the 3+1 cluster 150 s.
goals = {"demo": 60, "cluster": 90, "cluster3": 150}
def secs(v):
    return "-" if v is None else f"{v:.0f} s"
all_ok = r["healthy"]
# All healthy: the last check's first pass, from the first VM's start (kiln boot then confirms
# with one more full round and reads the timelines; its elapsed_secs includes those).
last = max((c["passed_after_secs"] or 0) for h in r["hosts"] for c in h["checks"])
for h in r["hosts"]:
    t = h.get("timeline") or {}
    role = roles.get(h["name"], "?")
    cells = [spec, start, str(r.get("cpus", "?")), r["accel"], h["name"], role]
    cells.append(f'{last:.0f} s' if all_ok else "unhealthy")
    goal = goals[spec]
    own = t.get("healthy_secs")
    if role == "agent" and spec == "cluster":
        cells.append(f"{goal} s (agent 45 s: {'met' if own is not None and own <= 45 else 'missed'})")
    else:
        cells.append(f"{goal} s ({'met' if all_ok and last <= goal else 'missed'})")
    cells += [secs(t.get("kernel_secs")), secs(t.get("switch_root_secs")),
              secs(own), t.get("slowest_unit") or ""]
    print("| " + " | ".join(cells) + " |")
PY
}

boot() { # SPEC ACCEL START [kiln boot args]
  local spec=$1 accel=$2 start=$3 out
  shift 3
  out="$work/$spec-$accel-$start$(printf '%s' "$@" | tr -c 'a-z0-9' '-').json"
  echo "==> kiln boot $spec --accel $accel --start $start $*" >&2
  "$kiln" boot "$work/$spec" --all --json --accel "$accel" --start "$start" "$@" >"$out" || true
  cp "$out" "$work/last.json"
  rows "$out" "$spec" "$work/$spec" "$start"
}

table="| spec | start | vCPUs | accel | host | role | all healthy after | goal | kernel | switch-root | host healthy | last unit up |
|---|---|---|---|---|---|---|---|---|---|---|---|"
# auto: KVM when its probe boot works, else TCG (the report says which, and why).
table+=$'\n'"$(boot demo auto together)"
accel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accel"])' "$work/last.json")
why=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accel_reason"])' "$work/last.json")
# The demo's one VM on one vCPU, as `kiln boot` gave every VM before issue 20.
table+=$'\n'"$(boot demo "$accel" together --cpus 1)"
accels=("$accel")
[ "$accel" = kvm ] && accels+=(tcg)
for a in "${accels[@]}"; do
  [ "$a" = tcg ] && [ "$accel" = kvm ] && table+=$'\n'"$(boot demo tcg together)"
  for spec in cluster cluster3; do
    for start in together staggered; do
      table+=$'\n'"$(boot "$spec" "$a" "$start")"
    done
  done
done
if [ "$accel" != kvm ]; then
  table+=$'\n'"| all | | | kvm | | | not usable: ${why//|/\\|} | | | | | |"
fi

echo "$table"
if $readme; then
  python3 - "$table" <<'PY'
import re, sys
p = "docs/contributing/benchmarks.md"
s = open(p).read()
start, end = "<!-- boot-bench:start -->", "<!-- boot-bench:end -->"
if start not in s:
    sys.exit("docs/contributing/benchmarks.md has no boot-bench markers")
s = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + sys.argv[1] + "\n" + end, s, flags=re.S)
open(p, "w").write(s)
PY
fi
