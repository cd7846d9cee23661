"""``evaluate``: pixel- and object-level precision, recall and F1 of patches against a truth raster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tuban.errors import InputError, InputNotFoundError

__all__ = ["evaluate", "evaluate_masks", "read_truth"]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def evaluate_masks(pred: np.ndarray, truth: np.ndarray, *, min_object_px: int = 1,
                   valid: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of boolean masks on one grid.

    Pixel level: TP/FP/FN counts. Object level: a truth object (4-connected, ≥ ``min_object_px``) is found
    when any predicted pixel overlaps it (recall); a predicted object is right when it overlaps any truth
    object (precision).
    """
    from scipy import ndimage as ndi

    pred, truth = pred.astype(bool), truth.astype(bool)
    if valid is not None:
        pred, truth = pred & valid, truth & valid
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    out: dict[str, Any] = {"pixel": {**_prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn,
                                     "predicted_fraction": float(pred.mean()), "truth_fraction": float(truth.mean())}}
    tl, tn = ndi.label(truth)
    sizes = np.bincount(tl.ravel(), minlength=tn + 1)
    big = np.flatnonzero(sizes >= min_object_px)
    big = big[big > 0]
    hit = np.zeros(tn + 1, bool)
    hit[np.unique(tl[pred])] = True
    found = int(hit[big].sum())
    pl, pn = ndi.label(pred)
    phit = np.zeros(pn + 1, bool)
    phit[np.unique(pl[truth])] = True
    right = int(phit[1:].sum())
    r = found / len(big) if len(big) else 0.0
    p = right / pn if pn else 0.0
    out["object"] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                     "truth_objects": len(big), "found": found, "predicted_objects": int(pn),
                     "min_object_px": int(min_object_px)}
    return out


def read_truth(path: str | Path, *, change_value: int | None = None, grid: str | Path | None = None):
    """The truth raster as a boolean mask, with its transform and CRS (from ``grid`` when it has none)."""
    from tuban.raster.scene import quiet_open

    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"truth raster {str(p)!r} does not exist")
    with quiet_open(p) as src:  # tuban's errors for unreadable or crafted files, no warning for a PNG label
        arr = src.read(1)
        transform, crs = src.transform, src.crs
    if grid is not None:
        if not Path(grid).exists():
            raise InputNotFoundError(f"--grid raster {str(grid)!r} does not exist")
        with quiet_open(grid) as ref:
            if (ref.height, ref.width) != arr.shape:
                raise InputError(f"--grid {grid} is {ref.height}×{ref.width} but the truth is {arr.shape[0]}×{arr.shape[1]}")
            transform, crs = ref.transform, ref.crs
    if crs is None:
        raise InputError(f"truth raster {p} has no georeference", hint="pass --grid REF, a raster on the same grid")
    if change_value is None:
        vals = np.unique(arr)
        change_value = int(vals.max()) if vals.size else 1
    return arr == change_value, transform, crs


def evaluate(pred: Any, truth: str | Path, *, change_value: int | None = None, grid: str | Path | None = None,
             mmu_ha: float = 0.04) -> dict[str, Any]:
    """Compare predicted patches (GeoDataFrame or vector file) with a truth raster; returns a JSON-able dict."""
    from rasterio import features

    from tuban.detect.engine import _ha_factor
    from tuban.raster.grid import Grid

    if not hasattr(pred, "geometry"):
        from tuban.io.reader import read_vector

        pp = Path(pred)
        if not pp.exists():
            raise InputNotFoundError(f"predicted patches {str(pp)!r} do not exist")
        # the project's reader: its allowlist, limits and errors; a run without patches wrote an empty layer
        pred = read_vector(pp, layer="patches" if pp.suffix.lower() == ".gpkg" else None, allow_empty=True)
    mask, transform, crs = read_truth(truth, change_value=change_value, grid=grid)
    if pred.crs is not None and crs is not None and not pred.crs.equals(crs):
        pred = pred.to_crs(crs)
    geoms = [g for g in pred.geometry if g is not None and not g.is_empty]
    pm = (features.rasterize(((g, 1) for g in geoms), out_shape=mask.shape, transform=transform, dtype="uint8")
          .astype(bool) if geoms else np.zeros(mask.shape, bool))
    g = Grid(crs.to_wkt(), tuple(transform)[:6], mask.shape[1], mask.shape[0])
    px_ha = _ha_factor(g) * g.res[0] * g.res[1]
    out = evaluate_masks(pm, mask, min_object_px=max(1, int(np.ceil(mmu_ha / px_ha - 1e-9))))
    out["patches"] = len(geoms)
    return out
