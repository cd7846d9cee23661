"""A/B comparison of two source trees on the speed ratios of ``bench_detect_speed.py``, interleaved.

The machine is shared: each side runs ``--repeat`` times in alternation (A, B, A, B, …) in fresh
processes, so load hits both alike; best and median of each ratio are printed per side.

Usage: ``python bench/bench_detect_ab.py OLD_SRC NEW_SRC --size 4096 --dir DIR [--repeat 3] [--skip-workers]``
(``OLD_SRC``/``NEW_SRC``: folders holding the ``tuban`` package, e.g. ``git archive HEAD~1 src | tar -x``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-workers", action="store_true")
    args = ap.parse_args()
    res: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for i in range(args.repeat):
        for side, src in (("A", args.old), ("B", args.new)):
            cmd = [sys.executable, str(HERE / "bench_detect_speed.py"), "--size", str(args.size), "--dir", args.dir,
                   "--ratios-only"] + (["--skip-workers"] if args.skip_workers else [])
            env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                m = re.match(r"RATIO (.+?) = ([0-9.]+)", line)
                if m:
                    res[side].setdefault(m.group(1), []).append(float(m.group(2)))
                if line.startswith(("decode only", "end to end")):
                    print(f"  [{side} {i + 1}] {line}", flush=True)
    for side, src in (("A", args.old), ("B", args.new)):
        for name, v in res[side].items():
            print(f"{side} ({src}) {name}: best {max(v):.2f}, median {statistics.median(v):.2f}, all "
                  f"{', '.join(f'{x:.2f}' for x in v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
