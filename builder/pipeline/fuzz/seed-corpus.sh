#!/bin/sh
# Fills corpus/load_render/ with the valid specs kiln ships (the demo and the test specs) and
# the invalid-spec corpus, so the fuzzer starts from real specs rather than from nothing.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/load_render
cp ../demo/cluster.toml corpus/load_render/demo.toml
for f in ../../tests/fixtures/specs/*.toml ../../tests/fixtures/invalid/*.toml; do
    cp "$f" "corpus/load_render/$(basename "$(dirname "$f")")-$(basename "$f")"
done
echo "$(ls corpus/load_render | wc -l) seeds in corpus/load_render"
