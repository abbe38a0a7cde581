"""Replaces the block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in
docs/contributing/benchmarks.md with TABLE. Run from the repository root:
    python3 builder/pipeline/benches/bench_block.py NAME TABLE
"""
import re
import sys

name, table = sys.argv[1], sys.argv[2]
p = "docs/contributing/benchmarks.md"
s = open(p).read()
start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
if start not in s:
    sys.exit(f"{p} has no bench:{name} markers")
block = f"{start}\n{table}\n{end}"
s = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: block, s, flags=re.S)
open(p, "w").write(s)
