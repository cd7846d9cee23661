"""Per-window work: read → masks → standardise → score → mask → pieces of patches.

Every function here receives paths and parameters (a :class:`Job`) and a window, opens what it needs and
returns plain arrays, so it runs the same serially, in a local Dask cluster or on remote workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuban.raster.change import ChangeMethod, get_method
from tuban.raster.grid import Grid, Window, read_block
from tuban.raster.indices import INDICES
from tuban.raster.scene import Scene

__all__ = ["Job", "Stats", "sample_bands", "sample_components", "sample_scores", "tile_pieces"]

MORPH_RADIUS = 1  # 3×3 opening then closing
SAMPLE_STEP = 2  # every 2nd row and column of the sample windows


@dataclass(frozen=True)
class Job:
    """What every task needs: scenes (paths), grid, method name, parameters."""

    before: Scene
    after: Scene
    grid: Grid
    method: str | None = None
    baseline: Scene | None = None
    masks: bool = True
    water: bool = False
    halo: int = 16

    def change_method(self) -> ChangeMethod:
        avail = set(self.before.roles) & set(self.after.roles)
        if self.baseline is not None:
            avail &= set(self.baseline.roles)
        return get_method(self.method, tuple(sorted(avail)))


@dataclass
class Stats:
    """Scene-wide statistics: per date and band (median, MAD), per component (median, MAD), threshold."""

    bands: dict[str, tuple[float, float]] = field(default_factory=dict)
    components: dict[str, tuple[float, float]] = field(default_factory=dict)
    threshold: float = float("nan")


@dataclass
class _Block:
    raw: dict[str, dict[str, np.ndarray]]
    stack: dict[str, np.ndarray]
    use: np.ndarray  # observable and not excluded
    unobservable: np.ndarray
    win: Window


def _read(job: Job, core: Window, method: ChangeMethod, halo: int) -> _Block:
    from tuban.detect.tiles import expand
    from tuban.raster import masks

    win = expand(core, job.grid, halo)
    dates = {"b": job.before, "a": job.after}
    if job.baseline is not None:
        dates["0"] = job.baseline
    extra = [r for r in ("blue", "green", "red", "nir", "swir1") if r not in method.roles]
    raw: dict[str, dict[str, np.ndarray]] = {}
    stack: dict[str, np.ndarray] = {}
    valid = np.ones((win.height, win.width), bool)
    cloudy = np.zeros_like(valid)
    water = np.ones_like(valid)
    for key, scene in dates.items():
        roles = method.roles + tuple(r for r in extra if r in scene.bands)
        data, ok = read_block(scene, roles, job.grid, win)
        valid &= ok
        raw[key] = {r: data[i] for i, r in enumerate(roles)}
        stack[key] = data[: len(method.roles)]
        bands = raw[key]
        if job.masks and scene.scale is not None and {"blue", "green", "red"} <= set(bands):
            cloudy |= masks.cloud_mask(bands["blue"], bands["green"], bands["red"])
        if job.water and {"green", "nir"} <= set(bands):
            water &= masks.water_mask(bands["green"], bands["nir"], bands.get("swir1"))
        else:
            water[:] = False
    if job.masks and job.before.scale is not None and "nir" in raw["b"] and "nir" in raw["a"]:
        cloudy |= masks.shadow_mask(raw["b"]["nir"], raw["a"]["nir"], raw["b"].get("swir1"), raw["a"].get("swir1"))
    unobs = ~valid | cloudy
    return _Block(raw, stack, ~unobs & ~water, unobs, win)


def _crop(arr: np.ndarray, core: Window, win: Window) -> np.ndarray:
    r, c = core.row - win.row, core.col - win.col
    return arr[..., r : r + core.height, c : c + core.width]


def _sample_mask(core: Window, use: np.ndarray) -> np.ndarray:
    rows = (np.arange(core.row, core.row + core.height) % SAMPLE_STEP) == 0
    cols = (np.arange(core.col, core.col + core.width) % SAMPLE_STEP) == 0
    return use & rows[:, None] & cols[None, :]


def sample_bands(job: Job, core: Window) -> dict[str, np.ndarray]:
    """Sampled band values (key ``date:role``) of the observable pixels of ``core``."""
    method = job.change_method()
    blk = _read(job, core, method, 0)
    sel = _sample_mask(core, blk.use)
    return {f"{k}:{r}": blk.stack[k][i][sel] for k in blk.stack for i, r in enumerate(method.roles)}


def _standardise(blk: _Block, method: ChangeMethod, stats: Stats) -> dict[str, np.ndarray]:
    z = {}
    for k, arr in blk.stack.items():
        med = np.array([stats.bands[f"{k}:{r}"][0] for r in method.roles], np.float32)[:, None, None]
        mad = np.array([stats.bands[f"{k}:{r}"][1] for r in method.roles], np.float32)[:, None, None]
        z[k] = (arr - med) / mad
    return z


def _components(blk: _Block, method: ChangeMethod, stats: Stats) -> dict[str, np.ndarray]:
    z = _standardise(blk, method, stats)
    return method.components(blk.raw["b"], blk.raw["a"], z["b"], z["a"], blk.raw.get("0"), z.get("0"))


def sample_components(job: Job, core: Window, stats: Stats) -> dict[str, np.ndarray]:
    """Sampled raw change components of ``core`` (for their scene-wide standardisation)."""
    method = job.change_method()
    blk = _read(job, core, method, method.halo)
    comps = _components(blk, method, stats)
    sel = _sample_mask(core, _crop(blk.use, core, blk.win))
    return {k: _crop(v, core, blk.win)[sel] for k, v in comps.items()}


def _score(blk: _Block, method: ChangeMethod, stats: Stats) -> np.ndarray:
    import cv2

    comps = _components(blk, method, stats)
    zc = {k: (v - np.float32(stats.components[k][0])) / np.float32(stats.components[k][1]) for k, v in comps.items()}
    score = np.asarray(method.combine(zc), np.float32)
    score[~blk.use] = 0
    if method.smooth > 0:
        score = cv2.GaussianBlur(score, (0, 0), method.smooth, borderType=cv2.BORDER_REPLICATE)
        score[~blk.use] = 0
    return score


def sample_scores(job: Job, core: Window, stats: Stats) -> np.ndarray:
    """Sampled scores of ``core`` (for the automatic threshold)."""
    method = job.change_method()
    blk = _read(job, core, method, method.halo + 4)
    score = _score(blk, method, stats)
    return _crop(score, core, blk.win)[_sample_mask(core, _crop(blk.use, core, blk.win))]


def change_mask(score: np.ndarray, threshold: float) -> np.ndarray:
    """``score > threshold`` cleaned by a 3×3 opening and closing (uint8 0/1)."""
    import cv2

    m = (score > threshold).astype(np.uint8)
    k = np.ones((2 * MORPH_RADIUS + 1,) * 2, np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)


#: per-piece sums carried across seams: pixels, score, index before, index after, masked px, bbox px
SUMS = ("n", "score", "idx_before", "idx_after", "masked", "box")


def tile_pieces(job: Job, core: Window, stats: Stats) -> dict[str, object]:
    """Patch pieces of one tile: WKB polygons (core only), per-piece sums, seam flags, unobservable count."""
    import cv2
    import shapely
    from rasterio import features

    method = job.change_method()
    blk = _read(job, core, method, job.halo)
    score = _score(blk, method, stats)
    mask = change_mask(score, stats.threshold)
    mask[~blk.use] = 0
    m = _crop(mask, core, blk.win)
    s = _crop(score, core, blk.win)
    unobs = _crop(blk.unobservable, core, blk.win)
    n_lab, lab = cv2.connectedComponents(m, connectivity=4, ltype=cv2.CV_32S)
    out: dict[str, object] = {"wkb": [], "sums": np.zeros((0, len(SUMS))), "seam": np.zeros(0, bool),
                              "unobservable_px": int(unobs.sum()), "pixels": int(m.size)}
    if n_lab <= 1:
        return out
    idx_name = "ndvi" if {"nir", "red"} <= set(blk.raw["b"]) else "vari"
    ib = _crop(INDICES[idx_name][1](blk.raw["b"]), core, blk.win)
    ia = _crop(INDICES[idx_name][1](blk.raw["a"]), core, blk.win)
    flat = lab.ravel()
    sums = np.zeros((n_lab, len(SUMS)))
    sums[:, 0] = np.bincount(flat, minlength=n_lab)
    sums[:, 1] = np.bincount(flat, s.ravel().astype(np.float64), n_lab)
    sums[:, 2] = np.bincount(flat, ib.ravel().astype(np.float64), n_lab)
    sums[:, 3] = np.bincount(flat, ia.ravel().astype(np.float64), n_lab)
    _, _, st, _ = cv2.connectedComponentsWithStats(m, connectivity=4, ltype=cv2.CV_32S)
    integral = cv2.integral(unobs.astype(np.uint8))
    x, y, w, h = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    sums[:, 4] = integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]
    sums[:, 5] = w * h
    g = job.grid
    seam = np.zeros(n_lab, bool)
    if core.row > 0:
        seam[np.unique(lab[0])] = True
    if core.col > 0:
        seam[np.unique(lab[:, 0])] = True
    if core.row + core.height < g.height:
        seam[np.unique(lab[-1])] = True
    if core.col + core.width < g.width:
        seam[np.unique(lab[:, -1])] = True
    from affine import Affine

    tr = Affine(*g.window_transform(core))
    geoms, labels = [], []
    for geom, value in features.shapes(lab, mask=lab > 0, connectivity=4, transform=tr):
        geoms.append(shapely.geometry.shape(geom))
        labels.append(int(value))
    labels_arr = np.asarray(labels)
    out["wkb"] = list(shapely.to_wkb(np.asarray(geoms, dtype=object)))
    out["sums"] = sums[labels_arr]
    out["seam"] = seam[labels_arr]
    return out
