"""The automatic threshold on pairs WITHOUT change: what Otsu alone flags, and what the no-change floor leaves.

Each pair: fields of five covers, identical on both dates, with independent 4 % sensor noise per date
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

import numpy as np

warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)  # rasterio + affine 3

COVERS = np.array([[400, 700, 400, 3500], [600, 900, 800, 2800], [900, 1100, 1200, 2500],
                   [1300, 1600, 1900, 2600], [500, 800, 600, 3000]], np.float32)


def write_pair(folder: Path, size: int, seed: int, *, site: bool) -> tuple[str, str]:
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cover = ((yy // 64) * 7 + (xx // 128) * 3) % 5
    paths = []
    for name in ("before", "after"):
        arr = COVERS[cover].transpose(2, 0, 1) * (1 + 0.04 * rng.standard_normal((4, size, size)))
        if site and name == "after":
            arr[:, 200:240, 300:340] = COVERS[3][:, None, None] * 1.3
        prof = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16", "crs": "EPSG:32650",
                "transform": Affine(10, 0, 500000, 0, -10, 4000000), "tiled": True, "blockxsize": 512,
                "blockysize": 512}
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **prof) as dst:
            for i, role in enumerate(("blue", "green", "red", "nir")):
                dst.set_band_description(i + 1, role)
            dst.write(np.clip(arr, 1, 65000).astype("uint16"))
        paths.append(str(path))
    return paths[0], paths[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1536)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()

    import tuban.raster.change as change
    from tuban.detect.engine import detect

    floor = change.NULL_FLOOR_Z
    scene_ha = args.size**2 * 100 / 1e4
    print(f"{args.size}² pairs, {scene_ha:,.0f} ha each")
    for seed in (int(s) for s in args.seeds.split(",")):
        for site in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                before, after = write_pair(Path(tmp), args.size, seed, site=site)
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
