#!/usr/bin/env bash
# Benchmark (issue 10): seconds from QEMU start to all-healthy, per host and role, for the
# built-in demo (one master-agent host) and the two-host cluster spec (a master and an agent,
# started one after the other), booted by `kiln boot --json`. Mesos, Marathon and Calico are
# left out (`--leave-out upstream`: their upstream artifacts cannot be fetched here), so the
# figures cover etcd, ZooKeeper, Docker, firewalld, cloud-init and the base's own units.
# The last four columns are the host's own boot from its QEMU start (`kiln boot`'s timeline):
# kernel start, switch-root, healthy, and the unit that came up last.
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
echo "==> building the demo and the cluster spec (not timed)" >&2
for spec in demo cluster; do
  arg=()
  [ "$spec" = cluster ] && arg=("$work/cluster.toml")
  "$kiln" build "${arg[@]}" --leave-out upstream -o "$work/$spec" "${cache_args[@]}" \
    >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
done

# One `kiln boot --json` run of DIST → table rows: spec, accel, host, role, seconds from the
# first VM's start to the host's last check passing, that check.
rows() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
roles = {h["name"]: h["profile"] for h in json.load(open(sys.argv[3] + "/boot/manifest.json"))["hosts"]}
def secs(v):
    return "-" if v is None else f"{v:.0f} s"
for h in r["hosts"]:
    cells = [sys.argv[2], r["accel"], h["name"], roles.get(h["name"], "?")]
    t = h.get("timeline") or {}
    if h["healthy"]:
        last = max(h["checks"], key=lambda c: c["passed_after_secs"])
        cells += [f'{last["passed_after_secs"]:.0f} s', last["id"]]
    else:
        cells += ["unhealthy", ""]
    # The host's own boot, from its QEMU start (kiln boot's timeline).
    cells += [secs(t.get("kernel_secs")), secs(t.get("switch_root_secs")),
              secs(t.get("healthy_secs")), t.get("slowest_unit") or ""]
    print("| " + " | ".join(cells) + " |")
PY
}

boot() { # SPEC ACCEL
  echo "==> kiln boot $1 --accel $2" >&2
  "$kiln" boot "$work/$1" --all --json --accel "$2" >"$work/$1-$2.json" || true
  rows "$work/$1-$2.json" "$1" "$work/$1"
}

table="| spec | accel | host | role | all healthy after | last check to pass | kernel | switch-root | host healthy | last unit up |
|---|---|---|---|---|---|---|---|---|---|"
# auto: KVM when its probe boot works, else TCG (the report says which, and why).
auto=$(boot demo auto)
table+=$'\n'"$auto"
accel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accel"])' "$work/demo-auto.json")
why=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accel_reason"])' "$work/demo-auto.json")
table+=$'\n'"$(boot cluster "$accel")"
if [ "$accel" = kvm ]; then
  table+=$'\n'"$(boot demo tcg)"$'\n'"$(boot cluster tcg)"
else
  table+=$'\n'"| demo, cluster | kvm | | | not usable: ${why//|/\\|} | | | | | |"
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
