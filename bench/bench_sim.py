"""Benchmark the scene generator: wall time and peak memory (RSS) of a large scene.

Runs ``make_scene`` in a child process (so its peak RSS is its own) and, as the
baseline in the same run, a child that writes the same pixels as random uint16 through
rasterio (tiled DEFLATE GeoTIFF, same tile loop) without rendering anything. Prints
the ratio of the two and checks the peak RSS bound (2 GB by default).

    .venv/bin/python bench/bench_sim.py --size 10000 --sensor gf2
    .venv/bin/python bench/bench_sim.py --size 40000 --sensor gf2 --resolution 1   # the 40k × 40k case
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

CHILD_SIM = """
import sys, time, json
from tuban.sim import make_scene
t = time.perf_counter()
s = make_scene(sys.argv[1], seed=7, size=int(sys.argv[2]), sensor=sys.argv[3],
               resolution=float(sys.argv[4]) or None, landcover=False)
print(json.dumps({"seconds": time.perf_counter() - t, "sites": len(s.truth)}))
"""

CHILD_BASE = """
import sys, time, json, math
import numpy as np, rasterio
from rasterio.windows import Window
from tuban.sim.spectra import SENSORS
from tuban.sim.writer import TILE
n, sensor = int(sys.argv[2]), SENSORS[sys.argv[3]]
rng = np.random.default_rng(0)
t = time.perf_counter()
for date in ("before", "after"):
    for b in sensor.bands:
        m = math.ceil(n / b.resolution_factor)
        with rasterio.open(f"{sys.argv[1]}/{date}_{b.name}.tif", "w", driver="GTiff", width=m, height=m, count=1,
                           dtype="uint16", tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                           BIGTIFF="IF_SAFER") as dst:
            step = TILE // b.resolution_factor
            for r in range(0, m, step):
                for c in range(0, m, step):
                    h, w = min(step, m - r), min(step, m - c)
                    dst.write(rng.integers(500, 3000, (1, h, w), dtype=np.uint16), window=Window(c, r, w, h))
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def _child(code: str, *args: str) -> tuple[dict, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all waited children: run the big one last or alone
    return json.loads(out.stdout.strip().splitlines()[-1]), max(peak_kb, before) / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--sensor", default="gf2", choices=("s2", "gf2"))
    ap.add_argument("--resolution", type=float, default=0.0, help="pixel size in m (default: the sensor's)")
    ap.add_argument("--max-rss-mb", type=float, default=2048.0)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_sim_") as tmp:
        sim, sim_rss = _child(CHILD_SIM, f"{tmp}/scene", str(args.size), args.sensor, str(args.resolution))
        print(f"sim: {args.size}×{args.size} {args.sensor}: {sim['seconds']:.1f} s, peak RSS {sim_rss:.0f} MB, "
              f"{sim['sites']} sites, {args.size ** 2 / sim['seconds'] / 1e6:.2f} Mpx/s")
        if not args.skip_baseline:
            t = time.perf_counter()
            base, _ = _child(CHILD_BASE, tmp, str(args.size), args.sensor)
            del t
            print(f"baseline (random uint16, tiled DEFLATE GeoTIFF, same pixels): {base['seconds']:.1f} s")
            print(f"ratio sim / baseline: {sim['seconds'] / base['seconds']:.2f}")
    ok = sim_rss < args.max_rss_mb
    print(f"peak RSS {'within' if ok else 'ABOVE'} {args.max_rss_mb:.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
