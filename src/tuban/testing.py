"""Truth and scoring helpers for tests, benchmarks and the demo (public).

::

    from tuban.testing import make_scene, score_patches, compliance_confusion
    scene = make_scene(tmp_path, seed=0, size="tiny")
    scores = score_patches(detected, scene.active_truth(), grid=scene)
    table = compliance_confusion(analysed, scene.truth)

Scores compare polygons in the truth's (projected) CRS: *pixel* metrics rasterise both
sides on the scene grid (or compare areas when no grid is given); *object* metrics
count a truth patch as found when predicted patches cover at least ``min_overlap`` of
it, and a predicted patch as correct when at least ``min_overlap`` of it lies on truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from tuban.sim import Scene, load_scene, make_scene

__all__ = [
    "PatchScores",
    "assert_scene_consistent",
    "compliance_confusion",
    "confusion_accuracy",
    "false_alarm_sources",
    "load_scene",
    "make_scene",
    "match_patches",
    "score_patches",
]


@dataclass(frozen=True)
class PatchScores:
    """Pixel (area) and object scores of predicted patches against truth."""

    pixel_precision: float
    pixel_recall: float
    pixel_f1: float
    pixel_iou: float
    object_precision: float
    object_recall: float
    object_f1: float
    n_pred: int
    n_truth: int
    n_found: int
    n_correct: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"pixel P {self.pixel_precision:.2f} R {self.pixel_recall:.2f} F1 {self.pixel_f1:.2f} "
                f"IoU {self.pixel_iou:.2f}; objects P {self.object_precision:.2f} R {self.object_recall:.2f} "
                f"F1 {self.object_f1:.2f} ({self.n_found}/{self.n_truth} found, {self.n_correct}/{self.n_pred} correct)")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _geoms(gdf: gpd.GeoDataFrame, crs: Any) -> np.ndarray:
    if len(gdf) and gdf.crs is not None and crs is not None and gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    g = gdf.geometry.to_numpy()
    return g[~(shapely.is_missing(g) | shapely.is_empty(g))] if len(g) else g


def _pixel(pred: np.ndarray, truth: np.ndarray, grid: Scene | None) -> tuple[float, float, float]:
    """(true positive, predicted, truth) amounts: pixels on the grid, else square metres."""
    if grid is None:
        pu, tu = shapely.union_all(pred), shapely.union_all(truth)
        return pu.intersection(tu).area, pu.area, tu.area
    from rasterio import features

    shape = (grid.height, grid.width)
    p = features.rasterize(((g, 1) for g in pred), out_shape=shape, transform=grid.transform, dtype="uint8") \
        if len(pred) else np.zeros(shape, np.uint8)
    t = features.rasterize(((g, 1) for g in truth), out_shape=shape, transform=grid.transform, dtype="uint8") \
        if len(truth) else np.zeros(shape, np.uint8)
    return float((p & t).sum()), float(p.sum()), float(t.sum())


def score_patches(
    pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, grid: Scene | None = None, min_overlap: float = 0.3
) -> PatchScores:
    """Pixel and object scores of ``pred`` against ``truth`` (reprojected to the truth's CRS)."""
    crs = truth.crs
    tg, pg = _geoms(truth, crs), _geoms(pred, crs)
    tp, n_p, n_t = _pixel(pg, tg, grid)
    prec = tp / n_p if n_p else 0.0
    rec = tp / n_t if n_t else 0.0
    iou = tp / (n_p + n_t - tp) if (n_p + n_t - tp) > 0 else 0.0
    pu = shapely.union_all(pg) if len(pg) else shapely.Polygon()
    tu = shapely.union_all(tg) if len(tg) else shapely.Polygon()
    found = int(sum(shapely.area(shapely.intersection(tg, pu)) >= min_overlap * shapely.area(tg))) if len(tg) else 0
    correct = int(sum(shapely.area(shapely.intersection(pg, tu)) >= min_overlap * shapely.area(pg))) if len(pg) else 0
    op = correct / len(pg) if len(pg) else 0.0
    orc = found / len(tg) if len(tg) else 0.0
    return PatchScores(prec, rec, _f1(prec, rec), iou, op, orc, _f1(op, orc), len(pg), len(tg), found, correct)


def match_patches(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, min_overlap: float = 0.3) -> pd.DataFrame:
    """One row per truth patch: the predicted patch (row position) overlapping it most, or -1.

    Columns: ``truth`` (position), ``pred`` (position or -1), ``overlap`` (share of the truth patch).
    """
    tg = truth.geometry.to_numpy()
    p = pred.to_crs(truth.crs) if len(pred) and pred.crs is not None and pred.crs != truth.crs else pred
    pg = p.geometry.to_numpy()
    rows = []
    tree = shapely.STRtree(pg) if len(pg) else None
    for i, g in enumerate(tg):
        best, share = -1, 0.0
        if tree is not None and g is not None:
            for j in tree.query(g, predicate="intersects"):
                s = shapely.intersection(g, pg[j]).area / g.area if g.area else 0.0
                if s > share:
                    best, share = int(j), s
        rows.append({"truth": i, "pred": best if share >= min_overlap else -1, "overlap": share})
    return pd.DataFrame(rows, columns=["truth", "pred", "overlap"])


def compliance_confusion(
    pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, column: str = "BYD", min_overlap: float = 0.3
) -> pd.DataFrame:
    """Confusion table of ``column`` (rows: truth, columns: predicted; ``(missed)``/``(false)`` margins).

    Truth patches without a value (completed sites) are left out. Predicted patches that
    match no truth patch are counted in the ``(false)`` row.
    """
    t = truth[truth[column].notna().to_numpy()].reset_index(drop=True)
    m = match_patches(pred, t, min_overlap=min_overlap)
    pv = pred[column].to_numpy() if len(pred) else np.array([], dtype=object)
    truth_vals = t[column].astype(str).to_list()
    pred_vals = [str(pv[j]) if j >= 0 else "(missed)" for j in m["pred"]]
    used = set(int(j) for j in m["pred"] if j >= 0)
    if len(pred):
        p = pred.to_crs(t.crs) if pred.crs is not None and pred.crs != t.crs else pred
        tu = shapely.union_all(t.geometry.to_numpy()) if len(t) else shapely.Polygon()
        for j, g in enumerate(p.geometry.to_numpy()):
            if j not in used and (g is None or shapely.intersection(g, tu).area < min_overlap * g.area):
                truth_vals.append("(false)")
                pred_vals.append(str(pv[j]))
    table = pd.crosstab(pd.Series(truth_vals, name="truth"), pd.Series(pred_vals, name="predicted"))
    return table


def confusion_accuracy(table: pd.DataFrame) -> float:
    """Share of truth patches (not ``(false)``) whose predicted value equals the truth."""
    rows = [r for r in table.index if r != "(false)"]
    total = int(table.loc[rows].to_numpy().sum()) if rows else 0
    hits = sum(int(table.loc[r, r]) for r in rows if r in table.columns)
    return hits / total if total else 0.0


def assert_scene_consistent(scene: Scene) -> None:
    """Raise AssertionError when a scene's truth, registry and expected table disagree."""
    from tuban.sim.rules import expected_change, expected_compliance

    truth = scene.truth
    assert truth["QDNM"].is_unique, "QDNM must be unique within the round"
    exp = expected_compliance(truth, scene.scopes)
    got = truth["BYD"].where(truth["BYD"].notna(), None).to_list()
    want = exp["BYD"].where(exp["BYD"].notna(), None).to_list()
    assert got == want, f"BYD differs from the rules: {got} != {want}"
    assert list(expected_change(truth, scene.previous)) == truth["QDTYPE"].to_list()
    assert np.allclose(truth["EAREA"].to_numpy(float), exp["EAREA"].to_numpy(float), atol=1e-3)
    ids = set(scene.scopes["SWC_P_ID"]) if len(scene.scopes) else set()
    for prid in truth["PRID"].dropna():
        assert prid in ids, f"PRID {prid} not in the registry"


#: land-cover classes that farming moves between (the harvest / ploughing / rotation trap)
_FARM = ("CROP_GREEN", "CROP_YOUNG", "CROP_STUBBLE", "CROP_PLOUGHED", "GRASS", "ORCHARD", "GREENHOUSE")


def false_alarm_sources(pred: gpd.GeoDataFrame, scene: Scene, *, edge_px: int = 2) -> pd.DataFrame:
    """Where the false alarms of ``pred`` come from, by trap (one row per source).

    A predicted pixel off the active truth (grown by ``edge_px`` pixels: boundary pixels
    are counted as ``edge``) is put down to, in this order: ``cloud`` / ``cloud_shadow`` /
    ``water_level`` (the scene's trap polygons), ``completed site`` (an earlier site now
    hardened or revegetated), ``farming`` (a crop, grass or orchard class on both dates:
    harvest, ploughing, rotation), else ``other: BEFORE→AFTER`` land-cover classes.
    Columns: ``source``, ``pixels``, ``share`` (of all false-alarm pixels) and ``patches``
    (predicted patches off truth whose largest false-alarm source it is).
    """
    import rasterio
    from rasterio import features
    from scipy import ndimage as ndi

    from tuban.sim.spectra import Surface

    shape = (scene.height, scene.width)

    def burn(geoms: Any, values: Any = None) -> np.ndarray:
        geoms = [g for g in geoms if g is not None and not g.is_empty]
        if not geoms:
            return np.zeros(shape, np.int32)
        vals = values if values is not None else [1] * len(geoms)
        return features.rasterize(list(zip(geoms, vals, strict=True)), out_shape=shape, transform=scene.transform,
                                  dtype="int32")

    p = pred.to_crs(scene.crs) if len(pred) and pred.crs is not None and pred.crs != scene.crs else pred
    labels = burn(p.geometry.to_numpy(), list(range(1, len(p) + 1)))
    truth = burn(scene.active_truth().geometry.to_numpy()) > 0
    near = ndi.binary_dilation(truth, iterations=edge_px) if edge_px else truth
    fa = (labels > 0) & ~truth
    cause = np.full(shape, "", dtype=object)
    cause[fa & near] = "edge"
    traps = scene.traps
    for name in ("cloud", "cloud_shadow", "baseline_cloud", "baseline_cloud_shadow", "water_level"):
        sel = traps[traps["trap"] == name].geometry.to_numpy() if len(traps) and "trap" in traps else []
        m = (burn(sel) > 0) & fa & (cause == "")
        cause[m] = name
    done = scene.truth[~scene.truth["active"].to_numpy()].geometry.to_numpy()
    cause[(burn(done) > 0) & fa & (cause == "")] = "completed site"
    with rasterio.open(scene.root / "landcover_before.tif") as ds:
        lb = ds.read(1)
    with rasterio.open(scene.root / "landcover_after.tif") as ds:
        la = ds.read(1)
    farm = np.isin(lb, [int(Surface[n]) for n in _FARM]) & np.isin(la, [int(Surface[n]) for n in _FARM])
    cause[farm & fa & (cause == "")] = "farming"
    rest = fa & (cause == "")
    if rest.any():
        names = {int(s): s.name.lower() for s in Surface}
        pairs = lb[rest].astype(np.int32) * 256 + la[rest]
        cause[rest] = [f"other: {names.get(int(v) // 256, '?')}→{names.get(int(v) % 256, '?')}" for v in pairs]
    srcs, counts = np.unique(cause[fa].astype(str), return_counts=True)
    total = max(1, int(fa.sum()))
    # the largest source of each predicted patch that is off truth (object-level false alarm)
    tu = shapely.union_all(scene.active_truth().geometry.to_numpy())
    off = [j + 1 for j, g in enumerate(p.geometry.to_numpy())
           if g is not None and shapely.intersection(g, tu).area < 0.3 * g.area]
    lab_fa = labels[fa]
    cause_fa = cause[fa].astype(str)
    per_patch: dict[str, int] = {}
    for j in off:
        c = cause_fa[lab_fa == j]
        if c.size:
            u, n = np.unique(c, return_counts=True)
            key = str(u[int(np.argmax(n))])
            per_patch[key] = per_patch.get(key, 0) + 1
    out = pd.DataFrame({"source": srcs, "pixels": counts.astype(int)})
    out["share"] = out["pixels"] / total
    out["patches"] = [per_patch.get(s, 0) for s in out["source"]]
    return out.sort_values("pixels", ascending=False).reset_index(drop=True)
