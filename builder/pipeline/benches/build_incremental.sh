#!/usr/bin/env bash
# Benchmark: cold, no-change and one-config-change builds of the Debian-base spec, side by
# side in one run (issue 9). Prints a Markdown table; with --readme, also writes it into
# docs/contributing/benchmarks.md between the bench markers.
#
#   builder/pipeline/benches/build_incremental.sh [--readme]
#
# "cold" means: the mmdebstrap base is already in the source cache (it is cached by its
# inputs and built once per machine; building it is mmdebstrap's time, not kiln's), the layer
# cache is empty and there is no previous output. CACHE (default target/bench-cache) keeps
# the base between runs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
readme=false
[ "${1:-}" = --readme ] && readme=true

cargo build --release --locked -q -p kiln-cli
kiln=${CARGO_TARGET_DIR:-target}/release/kiln
cache=${CACHE:-${CARGO_TARGET_DIR:-target}/bench-cache}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fixtures/specs/debian.toml "$work/spec.toml"

# Make sure the base is in the cache (not timed).
"$kiln" fetch "$work/spec.toml" --cache "$cache" >/dev/null 2>&1
rm -rf "$cache/layers"

calc() { python3 -c "print($1)"; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }; e=$(date +%s.%N); calc "round($e - $s, 1)"; }

cold=$(secs "$kiln" build "$work/spec.toml" -o "$work/dist" --cache "$cache")
nochange=$(secs "$kiln" build "$work/spec.toml" -o "$work/dist" --cache "$cache")
grep -q "nothing changed" "$work/log" || { echo "no-change build did not say so" >&2; exit 1; }
sed -i 's/^\[zookeeper\]$/[zookeeper]\ntick_time = 3000/' "$work/spec.toml"
onechange=$(secs "$kiln" build "$work/spec.toml" -o "$work/dist" --cache "$cache")
compressed=$(grep -o '[0-9]* to compress' "$work/log" || true)
size_dist=$(du -sb "$work/dist" | cut -f1)
size_oci=$(du -sb "$work/dist/oci" | cut -f1)

table=$(cat <<TABLE
| build of tests/fixtures/specs/debian.toml (2 hosts, Debian base ~1.2 GB) | seconds | goal |
|---|---|---|
| cold (base in the source cache, empty layer cache, no output) | $cold | no slower than before (68 s measured before the layer cache) |
| no change | $nochange | ≤ 3 |
| one config value changed (\`zookeeper.tick_time\`; ${compressed:-?}) | $onechange | ≤ 10 |

dist/ holds $(numfmt --to=iec "$size_dist") for an OCI layout of $(numfmt --to=iec "$size_oci") ($(calc "round($size_dist / $size_oci, 2)")×). Measured on $(nproc) cores, $(date -u +%Y-%m-%d).
TABLE
)
echo "$table"
if $readme; then
  python3 builder/pipeline/benches/bench_block.py build_incremental "$table"
fi
