#!/usr/bin/env bash
# Benchmark (issue 18, item 18): a first build of a real cluster's size through `kiln build`
# itself — the built-in demo turned into 3 masters and 1,000 agents with a PXE tree — into a
# new output directory, with the boot outputs already in the cache: every host's cloud-init
# seed and seed volume (ISO), identity archive and PXE configs, the role images from the
# layer cache, the boot outputs copied from the boot cache. Goal: at most 60 s on 2 cores.
#
#   builder/pipeline/benches/build_scale.sh [--readme]
#
# Not timed: building kiln (release), the Debian base (mmdebstrap, once per machine: it is
# cached by its inputs in CACHE) and the warm-up build that fills the layer and boot caches.
# Mesos, Marathon and Calico are left out (`--leave-out upstream`: their upstream artifacts
# cannot be fetched here); they would add layers from the layer cache, not work per host.
# CACHE (default target/bench-cache) keeps the base between runs; AGENTS (default 1000)
# changes the cluster's size. The load average is recorded before and after, as the machine
# may be shared. With --readme, the table is written into docs/contributing/benchmarks.md
# between the bench:build_scale markers.
set -euo pipefail
cd "$(dirname "$0")/../../.."
readme=false
[ "${1:-}" = --readme ] && readme=true
agents=${AGENTS:-1000}

cargo build --release --locked -q -p kiln-cli
kiln=$(realpath "${CARGO_TARGET_DIR:-target}/release/kiln")
cache=$(realpath -m "${CACHE:-${CARGO_TARGET_DIR:-target}/bench-cache}")
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-build-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The demo, with its one host replaced by 3 masters and $agents agents on a /16, and a PXE
# tree (provision.url).
"$kiln" init "$work/spec.toml" >/dev/null
python3 - "$work/spec.toml" "$agents" <<'PY'
import re, sys
path, agents = sys.argv[1], int(sys.argv[2])
s = open(path).read()
s = re.sub(r"\n\[\[hosts\]\].*?\n\n", "\n", s, count=1, flags=re.S)
def host(name, roles, i):
    return (f'[[hosts]]\nname = "{name}"\nroles = {roles}\n'
            f'address = "10.10.{i // 250}.{i % 250 + 2}/16"\n'
            f'mac = "52:54:00:10:{i // 256:02x}:{i % 256:02x}"\ngateway = "10.10.255.254"\n'
            f'dns = ["10.10.255.253"]\n\n')
hosts = [host(f"m{n}", '["master"]', n) for n in range(1, 4)]
hosts += [host(f"a{n}", '["agent"]', 3 + n) for n in range(1, agents + 1)]
s += "\n[provision]\nurl = \"http://10.10.255.250:8080/\"\n\n" + "".join(hosts)
open(path, "w").write(s)
PY

run() { # LOG ARGS…
  local log=$1
  shift
  "$@" >"$log.out" 2>"$log" || { cat "$log" >&2; exit 1; }
}
echo "==> warm-up build: Debian base (once per machine), layers, boot outputs (not timed)" >&2
run "$work/warm.log" "$kiln" build "$work/spec.toml" --leave-out upstream -o "$work/warm" \
  --cache "$cache"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "==> timed: a first build into a new output, boot outputs cached" >&2
start=$(date +%s.%N)
/usr/bin/time -f '%e %U %S %M' -o "$work/time" \
  "$kiln" build "$work/spec.toml" --leave-out upstream -o "$work/dist" --cache "$cache" \
  >/dev/null 2>"$work/timed.log" || { cat "$work/timed.log" >&2; exit 1; }
end=$(date +%s.%N)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
read -r wall user sys rss_kb <"$work/time"
grep -c "unchanged (boot cache)" "$work/timed.log" >/dev/null ||
  { echo "the timed build did not take its boot outputs from the cache" >&2; cat "$work/timed.log" >&2; exit 1; }

hosts=$((agents + 3))
isos=$(find "$work/dist/cloud-init" -name '*-cidata.iso' | wc -l)
pxe=$(find "$work/dist/pxe" -type f ! -path '*/sha256/*' | wc -l)
files=$(find "$work/dist" -type f | wc -l)
size=$(du -sh "$work/dist" | cut -f1)
apparent=$(du -sh --apparent-size "$work/dist" | cut -f1)
cache_line=$(grep '^cache: ' "$work/timed.log" | sed "s| in $cache | in CACHE |" || true)

table=$(cat <<TABLE
| build of the demo as 3 masters + $agents agents, PXE tree, boot outputs cached, into a new output | value |
|---|---|
| wall clock | **$(printf %.1f "$wall") s** (goal ≤ 60) |
| CPU (user + system) | $(python3 -c "print(round($user + $sys, 1))") s |
| peak RSS | $((rss_kb / 1024)) MiB |
| written | $files files: $isos seed volumes, $pxe PXE configs, seeds, identity archives, 2 roles' boot outputs; $size on disk ($apparent apparent) |
| load average (1, 5, 15 min) before → after | $load_before → $load_after |

\`$cache_line\`. Measured on $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC, release build, CACHE on the machine's ext4.
TABLE
)
echo "$table"
if $readme; then
  python3 builder/pipeline/benches/bench_block.py build_scale "$table"
fi
