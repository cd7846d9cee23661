"""OSCD accuracy: tuban's default detector against the classical baseline, in the same run.

Baseline: change-vector magnitude of six bands (B02 B03 B04 B08 B11 B12) standardised per date
(mean / std), Otsu threshold, no post-processing — pixel F1 0.37 Hong Kong, 0.09 Paris.
Ours: ``tuban.detect.engine.detect`` with its defaults (MMU 0.04 ha), rasterised on the label grid.

Usage: ``python bench/bench_detect_accuracy.py [--data DIR] [--tile-size N] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    root = os.environ.get("TUBAN_SHARED_DATA") or str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return Path(root) / "oscd"


def baseline(city: Path, truth: np.ndarray) -> np.ndarray:
    import rasterio
    from rasterio.warp import Resampling, reproject

    from tuban.raster.change import otsu_threshold

    ref = glob.glob(str(city / "imgs_1" / "*_B04.tif"))[0]
    with rasterio.open(ref) as s:
        tr, crs, shape = s.transform, s.crs, s.shape
    z = []
    for d in ("imgs_1", "imgs_2"):
        arr = np.zeros((6, *shape), np.float32)
        for i, b in enumerate(("B02", "B03", "B04", "B08", "B11", "B12")):
            with rasterio.open(glob.glob(str(city / d / f"*_{b}.tif"))[0]) as s:
                reproject(rasterio.band(s, 1), arr[i], dst_transform=tr, dst_crs=crs, resampling=Resampling.bilinear)
        z.append((arr - arr.mean((1, 2), keepdims=True)) / arr.std((1, 2), keepdims=True))
    mag = np.sqrt(((z[1] - z[0]) ** 2).sum(0))
    from skimage.filters import threshold_otsu

    _ = otsu_threshold  # the same Otsu as the engine on unclipped data
    return mag > threshold_otsu(mag)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data")
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--method", default=None)
    ap.add_argument("--json")
    args = ap.parse_args()
    from tuban.detect.engine import detect
    from tuban.detect.evaluate import evaluate, evaluate_masks, read_truth

    root = data_dir(args.data)
    report = {}
    for name in ("hongkong", "paris"):
        city = root / name
        truth_path = city / "cm" / f"{name}-cm.tif"
        grid_ref = glob.glob(str(city / "imgs_1" / "*_B04.tif"))[0]
        truth, _, _ = read_truth(truth_path, change_value=2, grid=grid_ref)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = evaluate_masks(baseline(city, truth), truth, min_object_px=4)
        t1 = time.perf_counter()
        res = detect(city / "imgs_1", city / "imgs_2", tile_size=args.tile_size, method=args.method)
        ours = evaluate(res.patches, truth_path, change_value=2, grid=grid_ref)
        t2 = time.perf_counter()
        report[name] = {"baseline": base, "tuban": ours, "threshold": res.threshold, "method": res.method,
                        "unobservable_fraction": res.unobservable_fraction}
        b, o = base["pixel"], ours["pixel"]
        print(f"{name:9s} baseline  pixel F1 {b['f1']:.3f} P {b['precision']:.3f} R {b['recall']:.3f} "
              f"area {b['predicted_fraction']:.4f}  object recall {base['object']['recall']:.3f}  ({t1 - t0:.1f} s)")
        print(f"{name:9s} tuban     pixel F1 {o['f1']:.3f} P {o['precision']:.3f} R {o['recall']:.3f} "
              f"area {o['predicted_fraction']:.4f}  object recall (≥ MMU) {ours['object']['recall']:.3f} "
              f"of {ours['object']['truth_objects']}  patches {ours['patches']}  ({t2 - t1:.1f} s)")
        print(f"{name:9s} ratio F1 tuban / baseline = {o['f1'] / max(b['f1'], 1e-9):.2f}  "
              f"(truth area {o['truth_fraction']:.4f}, unobservable {res.unobservable_fraction:.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
