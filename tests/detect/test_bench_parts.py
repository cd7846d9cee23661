"""``bench/bench_detect_parts.py`` names the engine's stage functions: after a refactor a stage it no longer finds
would print 0 calls, or its parts would be counted twice. Run it on a small pair and check the accounting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_detect_parts.py"
LINE = re.compile(r"^( *)(\S.*?)\s+([0-9.]+) CPU-s\s+([0-9.]+) %\s+\((\d+) calls\)$")


@pytest.mark.slow
def test_every_stage_is_found_and_counted_once(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--size", "1024", "--tile-size", "256", "--repeat", "1",
                          "--dir", str(tmp_path)], capture_output=True, text=True, check=True, timeout=600).stdout
    run = re.search(r"^run: ([0-9.]+) s wall, ([0-9.]+) CPU-s", out, re.MULTILINE)
    assert run is not None, out
    total = float(run.group(2))
    stages = [(len(m.group(1)) // 2 - 1, m.group(2), float(m.group(3)), int(m.group(5)))
              for m in map(LINE.match, out.splitlines()) if m]
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_detect_parts
    finally:
        sys.path.remove(str(BENCH.parent))
    assert [s[1] for s in stages] == [name.rpartition("/")[2] for name, _m, _a in bench_detect_parts.STAGES]
    assert all(calls > 0 for *_rest, calls in stages), out  # every stage's function is still called
    top = [cpu for depth, _n, cpu, _c in stages if depth == 0]
    assert sum(top) <= total + 0.05, out  # the top-level stages do not overlap
    # a stage's parts run inside it, on its thread: together they never exceed it
    parent = None
    children: dict[str, float] = {}
    own: dict[str, float] = {}
    for depth, name, cpu, _calls in stages:
        if depth == 0:
            parent = name
            own[name] = cpu
        else:
            assert parent is not None
            children[parent] = children.get(parent, 0.0) + cpu
    assert all(children[p] <= own[p] + 0.01 for p in children), out
    assert re.search(r"decoding \(reads less validity\) [0-9.]+ % of the CPU", out)
