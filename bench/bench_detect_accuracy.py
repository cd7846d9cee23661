"""Accuracy on real labelled pairs: tuban's default detector against the classical baseline, in the same run.

OSCD (Sentinel-2): baseline = change-vector magnitude of six bands (B02 B03 B04 B08 B11 B12) standardised per
date (mean / std), Otsu threshold, no post-processing — pixel F1 0.37 Hong Kong, 0.09 Paris. Ours:
``tuban.detect.engine.detect`` with its defaults (MMU 0.04 ha), rasterised on the label grid.

DSIFN-CD samples (very high resolution RGB from six Chinese cities, no georeference): the RGB-only path. Each
256² pair is written as a GeoTIFF at an assumed pixel size (``--dsifn-pixel-m``, 2 m: the dataset gives none,
and the MMU in hectares depends on it) and run with the defaults (method ``rgb``); baseline = the same CVA on
the three bands. Their labels mark every land-cover change (9–65 % of a tile), while tuban's methods keep
construction-like change (vegetation loss, brightening), so its recall there is lower by design; the pooled
numbers say how the RGB path does on real imagery, not a target.

Usage: ``python bench/bench_detect_accuracy.py [--data DIR] [--tile-size N] [--json OUT] [--dsifn-pixel-m M]``.
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
    """:func:`cva_otsu` of an OSCD city's six bands, each date read onto the B04 grid (bilinear)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    ref = glob.glob(str(city / "imgs_1" / "*_B04.tif"))[0]
    with rasterio.open(ref) as s:
        tr, crs, shape = s.transform, s.crs, s.shape
    stacks = []
    for d in ("imgs_1", "imgs_2"):
        arr = np.zeros((6, *shape), np.float32)
        for i, b in enumerate(("B02", "B03", "B04", "B08", "B11", "B12")):
            with rasterio.open(glob.glob(str(city / d / f"*_{b}.tif"))[0]) as s:
                reproject(rasterio.band(s, 1), arr[i], dst_transform=tr, dst_crs=crs, resampling=Resampling.bilinear)
        stacks.append(arr)
    return cva_otsu(*stacks)


def cva_otsu(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The classical baseline: change-vector magnitude of bands standardised per date, Otsu threshold."""
    from skimage.filters import threshold_otsu

    z = [(a - a.mean((1, 2), keepdims=True)) / a.std((1, 2), keepdims=True) for a in (before, after)]
    mag = np.sqrt(((z[1] - z[0]) ** 2).sum(0))
    return mag > threshold_otsu(mag)


def dsifn(root: Path, tmp: Path, pixel_m: float) -> dict:
    """Pooled pixel precision/recall/F1 of tuban's RGB path and of the baseline on the DSIFN-CD samples."""
    import rasterio
    from affine import Affine
    from PIL import Image
    from rasterio import features

    from tuban.detect.engine import detect

    transform = Affine(pixel_m, 0.0, 500000.0, 0.0, -pixel_m, 3800000.0)
    counts = {"tuban": np.zeros(3), "baseline": np.zeros(3)}  # true positives, predicted, truth
    for a_png in sorted((root / "A").glob("*.png")):
        stacks, paths = [], []
        for d in ("A", "B"):
            arr = np.asarray(Image.open(root / d / a_png.name).convert("RGB")).transpose(2, 0, 1)
            stacks.append(arr.astype(np.float32))
            paths.append(tmp / f"{d}_{a_png.stem}.tif")
            with rasterio.open(paths[-1], "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=3,
                               dtype="uint8", crs="EPSG:32650", transform=transform) as dst:
                dst.write(arr)
                dst.descriptions = ("red", "green", "blue")
        truth = np.asarray(Image.open(root / "label" / a_png.name).convert("L")) > 127
        res = detect(*paths)
        ours = (features.rasterize(((g, 1) for g in res.patches.geometry), out_shape=truth.shape,
                                   transform=transform, dtype="uint8").astype(bool)
                if len(res.patches) else np.zeros(truth.shape, bool))
        for key, pred in (("tuban", ours), ("baseline", cva_otsu(*stacks))):
            counts[key] += ((pred & truth).sum(), pred.sum(), truth.sum())
    out = {}
    for key, (tp, pred, true) in counts.items():
        p, r = tp / max(pred, 1), tp / max(true, 1)
        out[key] = {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12),
                    "predicted_fraction": pred / (len(list((root / "A").glob("*.png"))) * truth.size)}
    out["truth_fraction"] = counts["tuban"][2] / (len(list((root / "A").glob("*.png"))) * truth.size)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data")
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--method", default=None)
    ap.add_argument("--json")
    ap.add_argument("--dsifn-pixel-m", type=float, default=2.0,
                    help="pixel size assumed for the ungeoreferenced DSIFN-CD samples (the MMU depends on it)")
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
    samples = root.parent / "dsifn_cd_samples"
    if samples.is_dir():
        import tempfile

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            report["dsifn"] = d = dsifn(samples, Path(tmp), args.dsifn_pixel_m)
        for key in ("baseline", "tuban"):
            m = d[key]
            print(f"dsifn     {key:9s} pooled pixel F1 {m['f1']:.3f} P {m['precision']:.3f} R {m['recall']:.3f} "
                  f"area {m['predicted_fraction']:.3f}")
        print(f"dsifn     {len(list((samples / 'A').glob('*.png')))} RGB pairs at an assumed {args.dsifn_pixel_m} m, "
              f"truth area {d['truth_fraction']:.3f} (all land-cover change)  ({time.perf_counter() - t0:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
