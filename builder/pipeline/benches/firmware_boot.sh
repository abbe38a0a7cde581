#!/usr/bin/env bash
# Benchmark (issue 21): the built-in demo host booted to healthy by `kiln boot --json` on each
# firmware — SeaBIOS (syslinux), OVMF (the UKI from the EFI system partition) and OVMF with
# Secure Boot enforcing and a TPM — from one signed build (a `kiln keys` set made for the run).
# The firmwares take turns, RUNS rounds (default 3), so a slow moment of the machine does not
# fall on one firmware only. Mesos, Marathon and Calico are left out (`--leave-out upstream`:
# their upstream artifacts cannot be fetched here).
#
#   builder/pipeline/benches/firmware_boot.sh          # KILN=path/to/kiln to skip the build
#
# Columns: firmware, round, the run's all-healthy time (from the VM's start to the last
# check's first pass), and the host's own timeline: kernel start, switch-root, healthy. Then
# the median of each firmware and its ratio to BIOS. Needs virt-fw-vars (PyPI virt-firmware,
# which ./dev test installs into target/virt-firmware) and swtpm.
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${RUNS:-3}
if [ -z "${KILN:-}" ]; then
  cargo build --release --locked -q -p kiln-cli
  KILN=$(realpath "${CARGO_TARGET_DIR:-target}/release/kiln")
fi
export PATH="$PATH:$(realpath -m "${CARGO_TARGET_DIR:-target}/virt-firmware/bin")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$KILN" init "$work/demo.toml" 2>/dev/null
"$KILN" keys "$work/keys" 2>/dev/null
printf '\n[boot.secure_boot]\nkey = "keys/db.key"\ncert = "keys/db.crt"\npk_cert = "keys/PK.crt"\nkek_cert = "keys/KEK.crt"\n' \
  >>"$work/demo.toml"
echo "==> building the demo, signed (not timed)" >&2
"$KILN" build "$work/demo.toml" --leave-out upstream -o "$work/dist" >/dev/null 2>"$work/log" \
  || { cat "$work/log" >&2; exit 1; }

rows=()
for round in $(seq "$runs"); do
  for fw in bios uefi uefi-secure; do
    out="$work/$fw-$round.json"
    echo "==> round $round: kiln boot --firmware $fw" >&2
    args=(--firmware "$fw")
    [ "$fw" = uefi-secure ] && args+=(--tpm)
    "$KILN" boot "$work/dist" --all --json "${args[@]}" >"$out" || true
    rows+=("$(python3 - "$out" "$fw" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = r["hosts"][0]
t = h.get("timeline") or {}
last = max((c["passed_after_secs"] or 0) for x in r["hosts"] for c in x["checks"])
s = lambda v: "-" if v is None else f"{v:.1f}"
print("\t".join([sys.argv[2], sys.argv[3], f"{last:.1f}" if r["healthy"] else "unhealthy",
                 s(t.get("kernel_secs")), s(t.get("switch_root_secs")), s(t.get("healthy_secs"))]))
PY
)")
  done
done

printf '%s\n' "${rows[@]}" >"$work/rows.tsv"
python3 - "$work/rows.tsv" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| firmware | round | all healthy after | kernel | switch-root | host healthy |")
print("|---|---|---|---|---|---|")
for r in rows:
    cells = [c if c in ("-", "unhealthy") else c + " s" for c in r[2:]]
    print("| " + " | ".join([r[0], r[1]] + cells) + " |")
print()
print("| firmware | median all healthy | median kernel start | vs BIOS (all healthy) |")
print("|---|---|---|---|")
def median(fw, col):
    v = [float(r[col]) for r in rows if r[0] == fw and r[col] not in ("-", "unhealthy")]
    return statistics.median(v) if v else None
bios = median("bios", 2)
for fw in ("bios", "uefi", "uefi-secure"):
    m, k = median(fw, 2), median(fw, 3)
    ratio = "-" if m is None or not bios else "%+.0f %%" % ((m / bios - 1) * 100)
    show = lambda v: "-" if v is None else "%.1f s" % v
    print("| %s | %s | %s | %s |" % (fw, show(m), show(k), ratio))
PY
