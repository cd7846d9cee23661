"""The automatic threshold on pairs WITHOUT change: what Otsu alone flags, and what the no-change floor leaves.

Each pair (`tuban.sim.fields.field_pair`, tiled): fields of five covers, identical on both dates, with independent 4 % sensor noise per date
(4-band uint16 GeoTIFFs, 10 m), and optionally one 40×40 px field turned to bare soil. Both detections run in
this process on the same files: ``otsu only`` with the floor switched off
(``tuban.raster.change.NULL_FLOOR_Z = -inf``), then the shipped rule. Printed per pair: the rule that set the
threshold, patches, flagged area and its share of the scene.

    .venv/bin/python bench/bench_detect_nochange.py [--size 1536] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)  # rasterio + affine 3

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1536)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()

    import tuban.raster.change as change
    from tuban.detect.engine import detect
    from tuban.sim.fields import field_pair

    floor = change.NULL_FLOOR_Z
    scene_ha = args.size**2 * 100 / 1e4
    print(f"{args.size}² pairs, {scene_ha:,.0f} ha each")
    for seed in (int(s) for s in args.seeds.split(",")):
        for site in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                before, after = field_pair(Path(tmp), args.size, seed=seed, site=site, tiled=True)
                for label, z in (("otsu only", float("-inf")), ("shipped", floor)):
                    change.NULL_FLOOR_Z = z
                    try:
                        res = detect(before, after)
                    finally:
                        change.NULL_FLOOR_Z = floor
                    area = float(res.patches["QAREA"].sum()) if len(res.patches) else 0.0
                    print(f"seed {seed} {'one 16 ha site' if site else 'no change':14s} {label:9s} "
                          f"rule {res.stats.threshold_rule:15s} threshold {res.threshold:7.3f} "
                          f"patches {len(res.patches):6d}  area {area:9.2f} ha = {area / scene_ha:6.2%}")


if __name__ == "__main__":
    main()
