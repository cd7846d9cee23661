"""Per-window work: read → masks → standardise → score → mask → pieces of patches.

Every function here receives paths and parameters (a :class:`Job`) and a window, opens what it needs and
returns plain arrays, so it runs the same serially, in a local Dask cluster or on remote workers.

Scene statistics come from one pass over sample windows (:func:`sample_block`, returning the blocks) and
:func:`scene_stats` (band statistics → components → component statistics → scores → threshold), so the
statistics read each sample pixel once and never hold more than the sample in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuban.raster import fused
from tuban.raster.change import (
    _Q_LIM,
    _Q_STEP,
    BACKGROUND_CELLS,
    BlockContext,
    ChangeMethod,
    auto_threshold,
    get_method,
    robust_stats,
)
from tuban.raster.grid import (
    BufferPool,
    EdgeColumns,
    Grid,
    Window,
    give_back,
    pooled_empty,
    read_block,
    small_pages,
)
from tuban.raster.indices import INDICES
from tuban.raster.scene import Scene

__all__ = [
    "Job",
    "Stats",
    "assemble_tile",
    "date_keys",
    "finish_patches",
    "release_process_state",
    "sample_band_values",
    "sample_block",
    "sample_blocks",
    "sample_component_values",
    "sample_score_values",
    "scene_stats",
    "stats_from_values",
    "submit_tile",
    "tile_pieces",
    "with_background",
]

MORPH_RADIUS = 1  # 3×3 opening then closing
SAMPLE_STEP = 2  # every 2nd row and column of the sample windows


@dataclass(frozen=True)
class Job:
    """What every task needs: scenes (paths), grid, method name, parameters.

    ``cell``: background cell size in pixels (≈ 80 m on the ground, see :func:`background_cell`);
    ``gdal_threads``: threads inside a task for GDAL decoding (``GDAL_NUM_THREADS``): ``"1"`` in Dask
    workers (one core per worker, so N workers use N cores); in a serial run each date decodes on its own
    thread with :func:`tuban.detect.engine.serial_decode_threads` (OpenCV always runs on one thread);
    ``min_area``, ``simplify``: the minimum mapping unit and the simplification tolerance in the grid's CRS units
    (the plan converts ``--mmu-ha`` and the tolerance in pixels), used where patches are finished
    (:func:`finish_patches`: by each tile for its whole patches, at the end for the unions across seams).
    """

    before: Scene
    after: Scene
    grid: Grid
    method: str | None = None
    baseline: Scene | None = None
    masks: bool = True
    water: bool = False
    cell: int = 8
    gdal_threads: str = "1"
    min_area: float = 0.0  # the minimum mapping unit in CRS units² (patches and holes below it are dropped)
    simplify: float = 0.0  # topology-preserving simplification tolerance in CRS units (0: none)
    #: columns where the bands of tiles meet (:func:`tuban.detect.tiles.band_edges`): a process reading tiles
    #: itself (a Dask worker, a thread) keeps the columns there for the next band (:func:`_process_edges`)
    edges: tuple[int, ...] = ()
    #: bytes of the largest block of one band among the dates' files (a block of GDAL's cache; 0: unknown)
    block_bytes: int = 0

    def change_method(self) -> ChangeMethod:
        avail = set(self.before.roles) & set(self.after.roles)
        if self.baseline is not None:
            avail &= set(self.baseline.roles)
        return get_method(self.method, tuple(sorted(avail)))

    @property
    def score_halo(self) -> int:
        """Context pixels the score needs around a core window."""
        return self.change_method().context_halo(self.cell)

    @property
    def halo(self) -> int:
        """Context pixels a tile needs: the score's plus the morphology's (opening + closing)."""
        return self.score_halo + 2 * MORPH_RADIUS + 1


def background_cell(metres_per_pixel: float, *, cell_m: float = 80.0) -> int:
    """Background cell size in pixels: ``cell_m`` on the ground, between 2 and 32 pixels."""
    if not np.isfinite(metres_per_pixel) or metres_per_pixel <= 0:
        return 8
    return int(min(32, max(2, round(cell_m / metres_per_pixel))))


@dataclass
class Stats:
    """Scene-wide statistics: per date and band (median, MAD), per component (median, MAD), threshold."""

    bands: dict[str, tuple[float, float]] = field(default_factory=dict)
    components: dict[str, tuple[float, float]] = field(default_factory=dict)
    threshold: float = float("nan")
    #: how the threshold was set: "manual", "otsu" or "no-change floor" (:func:`tuban.raster.change.auto_threshold`)
    threshold_rule: str = "otsu"


class _Scaled(Mapping):
    """Bands of one date by role, as float32 reflectance: uint16 DN are converted (× scale, float32) only
    when a band is asked for (masks, patch means), so the fused kernels read the DN themselves."""

    def __init__(self, data: np.ndarray, roles: tuple[str, ...], scale: float):
        self.data, self.roles, self.scale = data, {r: i for i, r in enumerate(roles)}, np.float32(scale)
        self._f: dict[str, np.ndarray] = {}

    def __getitem__(self, role: str) -> np.ndarray:
        if role not in self._f:
            v = self.data[self.roles[role]]
            self._f[role] = v * self.scale if v.dtype == np.uint16 else v
        return self._f[role]

    def take(self, role: str, win: tuple[slice, slice], px: np.ndarray) -> np.ndarray:
        """``self[role][win].ravel()[px]`` without converting the whole band."""
        if role in self._f or self.data.dtype != np.uint16:
            return self[role][win].ravel()[px]
        return self.data[self.roles[role]][win].ravel()[px] * self.scale

    def __iter__(self):
        return iter(self.roles)

    def __len__(self) -> int:
        return len(self.roles)


@dataclass
class Block:
    """A window read for one task: raw reflectance per date and role, stacks of the method's roles, masks."""

    raw: dict[str, _Scaled]
    stack: dict[str, np.ndarray]  # float32 reflectance, or uint16 DN (× ``scale`` of the date)
    use: np.ndarray  # observable and not excluded
    unobservable: np.ndarray
    win: Window
    core: Window
    scale: dict[str, float] = field(default_factory=dict)
    #: the fused kernels' background rows per earlier date (``b``, and ``0`` with a baseline), when computed
    #: where the block was assembled (:func:`assemble_tile` with ``stats``); else computed by the kernels
    background: dict[str, np.ndarray] = field(default_factory=dict)
    #: with them, per background cell the bounds of the score's pruning and the rows computed
    #: (``fused.background_rows``)
    cells: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    def stack_f32(self, key: str) -> np.ndarray:
        """The stack of date ``key`` as float32 reflectance."""
        s = self.stack[key]
        return s * np.float32(self.scale.get(key, 1.0)) if s.dtype == np.uint16 else s


@dataclass
class _DateRead:
    """One date of a window: its bands (uint16 DN or float32), validity, cloud flags and water (or None)."""

    data: np.ndarray
    roles: tuple[str, ...]
    valid: np.ndarray
    cloudy: np.ndarray | None
    water: np.ndarray | None
    scale: float


def _read_date(job: Job, scene: Scene, method: ChangeMethod, win: Window, buffers: BufferPool | None = None,
               edges: EdgeColumns | None = None) -> _DateRead:
    """Read one date of ``win`` and its own masks (QA or spectral clouds, water); the bands into an array
    from ``buffers`` when given, the columns at band edges through ``edges`` (this date's reader's)."""
    from tuban.raster import masks

    extra = [r for r in ("blue", "green", "red", "nir", "swir1") if r not in method.roles]
    roles = method.roles + tuple(r for r in extra if r in scene.bands)
    data, ok = read_block(scene, roles, job.grid, win, threads=job.gdal_threads, keep_u16=_fused(method),
                          buffers=buffers, edges=edges)
    scale = float(scene.scale) if data.dtype == np.uint16 and scene.scale is not None else 1.0
    bands = _Scaled(data, roles, scale)
    cloudy = None
    test = cloud_test(job, scene)
    if test == "qa":  # the sensor's own flags: Landsat QA_PIXEL bits, Sentinel-2 L2A classes or MSK_CLASSI
        flags = masks.cloud_flags(scene.bands)
        qa, _ = read_block(scene, flags, job.grid, win, threads=job.gdal_threads, resampling="nearest",
                           scaled=False)
        cloudy = masks.flag_cloud_mask(flags, qa)
    elif test == "spectral":
        # one pass over the stack (uint16 DN × scale, or reflectance): no float32 copies of the bands
        cloudy = masks.cloud_mask_stack(data, bands.roles, scale=scale)
    water = None
    if job.water:  # in one pass over the stack, into a mask buffer (given back once the block combines it)
        water = (masks.water_mask_stack(data, bands.roles, scale=scale,
                                        out=pooled_empty(ok.shape, np.bool_, buffers, "masks"))
                 if {"green", "nir"} <= set(bands) else np.zeros(ok.shape, bool))
    return _DateRead(data, roles, ok, cloudy, water, scale)


def cloud_test(job: Job, scene: Scene) -> str:
    """How a date's clouds are found: ``"qa"`` (the sensor's own flags, :func:`masks.cloud_flags`: Landsat
    ``QA_PIXEL``, Sentinel-2 L2A's scene classification, Sentinel-2's ``MSK_CLASSI`` layers), ``"spectral"``
    (bright and white in blue/green/red reflectance: needs the scene's reflectance scale), ``"none"``
    (neither: a DN scene without a scale, or no visible bands), ``"off"`` (masks turned off)."""
    from tuban.raster import masks

    if not job.masks:
        return "off"
    if masks.cloud_flags(scene.bands):
        return "qa"
    if scene.scale is not None and {"blue", "green", "red"} <= set(scene.bands):
        return "spectral"
    return "none"


def cloud_tests(job: Job) -> dict[str, str]:
    """:func:`cloud_test` of each date of ``job``, by date key (see :func:`date_keys`)."""
    return {k: cloud_test(job, s) for k, s in _dates(job).items()}


def _dates(job: Job) -> dict[str, Scene]:
    """The scenes of a run by date key: ``b`` (before), ``a`` (after) and ``0`` (baseline, when given)."""
    dates = {"b": job.before, "a": job.after}
    if job.baseline is not None:
        dates["0"] = job.baseline
    return dates


def date_keys(job: Job) -> tuple[str, ...]:
    """The date keys of a run, in date order (see :func:`submit_tile`)."""
    return tuple(_dates(job))


def _read(job: Job, core: Window, method: ChangeMethod, halo: int,
          edges: Mapping[str, EdgeColumns] | None = None, buffers: BufferPool | None = None) -> Block:
    """The window ``core`` + ``halo`` of every date, with the masks, the dates one after the other on this
    thread (:func:`submit_tile` reads them on a thread each); ``edges``: per date, the columns kept at band
    edges; ``buffers``: where the block's arrays come from (see :func:`release`)."""
    from tuban.detect.tiles import expand

    win = expand(core, job.grid, halo)
    return _assemble(job, core, method, win,
                     {k: _read_date(job, s, method, win, buffers, edges.get(k) if edges else None)
                      for k, s in _dates(job).items()}, buffers)


_EDGES: dict[tuple, dict[str, EdgeColumns]] = {}
_EDGES_LOCK = threading.Lock()
#: this process's buffers for tile tasks that read their own block (Dask workers, the threads executor): the
#: same arrays tile after tile instead of a fresh mapping for each (a 2048 tile's bands, 37 MB a date, are
#: above glibc's largest mmap threshold), let go with :func:`release_process_state`
_BUFFERS = BufferPool()


def _process_edges(job: Job) -> dict[str, EdgeColumns] | None:
    """This process's :class:`EdgeColumns` per date for ``job``'s band edges (a Dask worker reads its strip
    of tiles in the visiting order, so most windows starting left of an edge find its columns; one that does
    not, e.g. a tile stolen by another worker, decodes them). Those of another job are let go first."""
    if not job.edges:
        return None
    key = (tuple((k, tuple(sorted((r, b.path, b.index) for r, b in s.bands.items()))) for k, s in _dates(job).items()),
           job.grid, job.halo, job.edges)
    with _EDGES_LOCK:
        got = _EDGES.get(key)
        if got is None:
            _release()
            got = _EDGES[key] = {k: EdgeColumns(job.edges, 2 * job.halo, job.grid.height) for k in _dates(job)}
        return got


def release_process_state() -> None:
    """Let go of what this process keeps for tile tasks, the edge columns (:func:`_process_edges`) and the
    pooled buffers: run by the executors at the end of their tiles, here or on every Dask worker."""
    with _EDGES_LOCK:
        _release()
    _BUFFERS.clear()


def _release() -> None:
    for kept in _EDGES.values():
        for e in kept.values():
            e.close()
    _EDGES.clear()


def _assemble(job: Job, core: Window, method: ChangeMethod, win: Window, got: Mapping[str, Any],
              buffers: BufferPool | None = None) -> Block:
    """The :class:`Block` of ``win`` from each date's read (a :class:`_DateRead`, or a future of one):
    validity, clouds and water of the dates combined in date order, then the shadows of the pair;
    ``buffers``: where the block's masks go (the dates' validity goes back there once combined)."""
    import cv2

    from tuban.raster import masks

    # OpenCV on one thread: in a serial run the reader threads decode while the kernels run, and OpenCV's
    # spinning pool only competed with them (measured: same or less wall, ~5 % less CPU)
    cv2.setNumThreads(1)
    shape = (win.height, win.width)
    raw: dict[str, _Scaled] = {}
    stack: dict[str, np.ndarray] = {}
    scales: dict[str, float] = {}
    # the first date's validity becomes the block's (its reader's buffer, written by nobody else): the other
    # dates' are combined into it and go back before any other mask is taken; clouds get a mask only where
    # some date has them, and that mask becomes the block's usable pixels. So a block being assembled holds
    # two masks at most (with water, its dates' too), and a run without clouds fills and combines none
    reads = [d if isinstance(d, _DateRead) else d.result() for d in (got[key] for key in _dates(job))]
    valid: np.ndarray | None = None
    for d in reads:  # in date order, as before: the masks combine the same way
        if valid is None and d.valid.shape == shape and d.valid.dtype == np.bool_ and d.valid.flags.writeable \
                and d.valid.flags.c_contiguous:
            valid = d.valid
        else:
            if valid is None:
                valid = _filled(shape, True, buffers)
            valid &= d.valid
            give_back(buffers, d.valid)
    cloudy: np.ndarray | None = None
    water: np.ndarray | None = None
    for key, d in zip(_dates(job), reads, strict=True):
        if d.cloudy is not None:
            if cloudy is None:
                cloudy = _filled(shape, False, buffers)
            cloudy |= d.cloudy
        if d.water is not None:
            if water is None:
                water = _filled(shape, job.water, buffers)
            water &= d.water
            give_back(buffers, d.water)
        scales[key] = d.scale
        raw[key] = _Scaled(d.data, d.roles, d.scale)
        stack[key] = d.data[: len(method.roles)]
    if job.masks and job.before.scale is not None and "nir" in raw["b"] and "nir" in raw["a"]:
        rb, ra = raw["b"].roles, raw["a"].roles
        swir = (rb["swir1"], ra["swir1"]) if "swir1" in rb and "swir1" in ra else None
        if cloudy is None:
            cloudy = _filled(shape, False, buffers)
        cloudy |= masks.shadow_mask_stack(raw["b"].data, raw["a"].data, (rb["nir"], ra["nir"]), swir,
                                          scale_b=float(raw["b"].scale), scale_a=float(raw["a"].scale))
    assert valid is not None  # a job has two dates at least
    unobs = np.logical_not(valid, out=valid)  # ~valid | cloudy
    if cloudy is not None:
        unobs |= cloudy
    if water is None and job.water:  # no date's water known: every pixel counts as water, as before
        water = _filled(shape, True, buffers)
    if water is None:  # the clouds' mask (else a new one) holds the usable pixels
        use = np.logical_not(unobs, out=cloudy if cloudy is not None else pooled_empty(shape, np.bool_, buffers,
                                                                                        "masks"))
    else:
        give_back(buffers, cloudy)
        use = np.logical_or(unobs, water, out=water)  # ~unobs & ~water, i.e. ~(unobs | water)
        np.logical_not(use, out=use)
    return Block(raw, stack, use, unobs, win, core, scales)


def _filled(shape: tuple[int, int], value: bool, buffers: BufferPool | None) -> np.ndarray:
    """A block's mask of ``shape`` (from ``buffers``' masks), every pixel ``value``."""
    out = pooled_empty(shape, np.bool_, buffers, "masks")
    out.fill(value)
    return out


def _crop(arr: np.ndarray, core: Window, win: Window) -> np.ndarray:
    r, c = core.row - win.row, core.col - win.col
    return arr[..., r : r + core.height, c : c + core.width]


def _sample_mask(core: Window, use: np.ndarray) -> np.ndarray:
    rows = (np.arange(core.row, core.row + core.height) % SAMPLE_STEP) == 0
    cols = (np.arange(core.col, core.col + core.width) % SAMPLE_STEP) == 0
    return use & rows[:, None] & cols[None, :]


def sample_block(job: Job, core: Window) -> Block:
    """A sample window with the context its score needs (for :func:`scene_stats`)."""
    method = job.change_method()
    return _read(job, core, method, job.score_halo)


def _standardise(blk: Block, method: ChangeMethod, stats: Stats) -> dict[str, np.ndarray]:
    z = {}
    for k in blk.stack:
        arr = blk.stack_f32(k)
        med = np.array([stats.bands[f"{k}:{r}"][0] for r in method.roles], np.float32)[:, None, None]
        inv = np.array([1 / stats.bands[f"{k}:{r}"][1] for r in method.roles], np.float32)[:, None, None]
        out = arr - med
        out *= inv
        z[k] = out
    return z


def _fused(method: ChangeMethod) -> bool:
    return method.layout is not None and fused.available()


def _band_stats(stats: Stats, key: str, method: ChangeMethod) -> tuple[np.ndarray, np.ndarray]:
    med = np.array([stats.bands[f"{key}:{r}"][0] for r in method.roles], np.float32)
    inv = np.array([1 / stats.bands[f"{key}:{r}"][1] for r in method.roles], np.float32)
    return med, inv


def _comp_stats(stats: Stats, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    med = np.array([stats.components[k][0] for k in names], np.float32)
    inv = np.array([1 / stats.components[k][1] for k in names], np.float32)
    return med, inv


def _fused_run(job: Job, blk: Block, method: ChangeMethod, stats: Stats, *, score: bool,
               box: tuple[int, int, int, int] | None = None, out: np.ndarray | None = None,
               prune: bool = False, computed: list | None = None) -> np.ndarray:
    """Fused kernels: components (n, h, w), or with ``score`` the gated (unsmoothed) score (h, w), into
    ``out`` when given; with ``box`` (rows and columns within the block) only that part; with ``prune``
    (and no baseline date), only near pixels that could pass the threshold (:func:`prune_margin`), the
    boxes computed appended to ``computed`` (the whole result's when nothing was left out)."""
    lay = method.layout
    assert lay is not None
    kw: dict[str, Any] = {"box": box, **_background_kw(job, blk)}
    cs = _comp_stats(stats, lay.names) if score else None
    after = _band_stats(stats, "a", method)
    sc = blk.scale
    if "0" not in blk.stack:
        return fused.components(blk.stack["b"], blk.stack["a"], _band_stats(stats, "b", method), after, blk.use,
                                lay, comp_stats=cs, scale_b=sc.get("b", 1.0), scale_a=sc.get("a", 1.0),
                                background=_bg(blk, "b"), out=out if score else None,
                                prune=_prune(stats, method) if prune and score else None,
                                computed=computed, **kw)
    # baseline: each component the weaker of (after vs before) and (after vs baseline)
    c = fused.components(blk.stack["b"], blk.stack["a"], _band_stats(stats, "b", method), after, blk.use, lay,
                         scale_b=sc.get("b", 1.0), scale_a=sc.get("a", 1.0), background=_bg(blk, "b"), **kw)
    np.minimum(c, fused.components(blk.stack["0"], blk.stack["a"], _band_stats(stats, "0", method), after,
                                   blk.use, lay, scale_b=sc.get("0", 1.0), scale_a=sc.get("a", 1.0),
                                   background=_bg(blk, "0"), **kw), out=c)
    if cs is None:
        return c
    use = blk.use if box is None else blk.use[box[0] : box[1], box[2] : box[3]]
    if computed is not None:
        computed.append((0, use.shape[0], 0, use.shape[1]))
    return fused.combine(c, cs, use, out=out)


def _bg(blk: Block, key: str) -> tuple[np.ndarray, ...] | None:
    """The background of date ``key`` when the block has it (:func:`with_background`)."""
    return (blk.background[key], *blk.cells[key]) if key in blk.background else None


def _background_kw(job: Job, blk: Block) -> dict[str, Any]:
    return {"cell": job.cell, "row": blk.win.row, "col": blk.win.col, "size": BACKGROUND_CELLS, "q_step": _Q_STEP,
            "q_lim": _Q_LIM}


def with_background(job: Job, blk: Block, stats: Stats, buffers: BufferPool | None = None) -> Block:
    """``blk`` with the fused kernels' background rows computed (:attr:`Block.background`): the part of a
    tile's score that needs only the block and the band statistics, so the thread that assembles blocks can
    take it off the kernels' thread. The same arrays the kernels would compute; without a baseline date,
    only the rows the tile's pruned score reads (:func:`tile_pieces` only)."""
    method = job.change_method()
    if not _fused(method):
        return blk
    after = _band_stats(stats, "a", method)
    lay = method.layout
    assert lay is not None
    # a tile without a baseline has its score pruned (:func:`_tile_score_mask`): only the rows that reads
    pruned: dict[str, Any] = {} if "0" in blk.stack else {
        "comp_stats": _comp_stats(stats, lay.names), "box": _tile_box(blk, method), "prune": _prune(stats, method)}
    for key in [k for k in ("b", "0") if k in blk.stack]:
        rows, *rest = fused.background(blk.stack[key], blk.stack["a"], _band_stats(stats, key, method), after,
                                       blk.use, scale_b=blk.scale.get(key, 1.0), scale_a=blk.scale.get("a", 1.0),
                                       buffers=buffers, **pruned, **_background_kw(job, blk))
        blk.background[key], blk.cells[key] = rows, tuple(rest)
    return blk


def _components(job: Job, blk: Block, method: ChangeMethod, stats: Stats) -> dict[str, np.ndarray]:
    if _fused(method):
        c = _fused_run(job, blk, method, stats, score=False)
        return {k: c[i] for i, k in enumerate(method.layout.names)}  # type: ignore[union-attr]
    z = _standardise(blk, method, stats)
    ctx = BlockContext(blk.win.row, blk.win.col, job.cell, blk.use)
    return method.components(blk.raw["b"], blk.raw["a"], z["b"], z["a"], blk.raw.get("0"), z.get("0"), ctx=ctx)


def _smooth(score: np.ndarray, method: ChangeMethod, dst: np.ndarray | None = None) -> np.ndarray:
    """The score smoothed (into ``dst`` when given, same shape and dtype); itself without smoothing."""
    import cv2

    if method.smooth > 0:
        score = cv2.GaussianBlur(score, (0, 0), method.smooth, dst=dst, borderType=cv2.BORDER_REPLICATE)
    return score


def _smooth_boxes(score: np.ndarray, method: ChangeMethod, boxes: list[tuple[int, int, int, int]],
                  dst: np.ndarray | None) -> np.ndarray:
    """:func:`_smooth` of a score computed only on ``boxes`` (``fused.components``' ``computed``), on those
    boxes only (nothing passes the threshold elsewhere, and nothing else is read there: the result is not
    written off the boxes): each box with the Gaussian's radius of context around it, its first column taken
    down to a multiple of 32 of the score. OpenCV's result at a pixel then equals the whole array's bit for
    bit (``tests/detect/test_score_prune.py``); a box starting elsewhere differed by an ulp at the right
    edge, where the vectorised loop's last step lands differently."""
    import cv2

    if method.smooth <= 0:
        return score
    out = np.empty_like(score) if dst is None else dst
    r = _gauss_radius(method)
    h, w = score.shape
    for y0, y1, x0, x1 in boxes:
        ey0, ey1, ex0, ex1 = max(y0 - r, 0), min(y1 + r, h), max(x0 - r, 0) // 32 * 32, min(x1 + r, w)
        part = cv2.GaussianBlur(score[ey0:ey1, ex0:ex1], (0, 0), method.smooth, borderType=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = part[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
    return out


def _combine(comps: dict[str, np.ndarray], blk: Block, method: ChangeMethod, stats: Stats) -> np.ndarray:
    if _fused(method):
        names = method.layout.names  # type: ignore[union-attr]
        score = fused.combine(np.stack([comps[k] for k in names]), _comp_stats(stats, names), blk.use)
        score = _smooth(score, method)
        score[~blk.use] = 0
        return score
    zc = {}
    for k, v in comps.items():
        med, mad = stats.components[k]
        out = v - np.float32(med)
        out *= np.float32(1 / mad)
        zc[k] = out
    score = np.asarray(method.combine(zc), np.float32)
    score[~blk.use] = 0
    score = _smooth(score, method)
    score[~blk.use] = 0
    return score


def _gauss_radius(method: ChangeMethod) -> int:
    """Pixels on each side the score's Gaussian reads (OpenCV's ``round(8σ + 1) | 1`` taps, rounded up); 0
    without smoothing."""
    return int(np.ceil(4 * method.smooth)) + 1 if method.smooth > 0 else 0


def score_margin(method: ChangeMethod) -> int:
    """Pixels around a tile's core on which its score must be computed for an exact cleaned mask of the
    core: the Gaussian's radius (OpenCV: ``round(8σ + 1) | 1`` taps) plus the opening and closing
    (two erosions / dilations each of ``MORPH_RADIUS``)."""
    return _gauss_radius(method) + 4 * MORPH_RADIUS


def prune_margin(method: ChangeMethod) -> int:
    """Pixels around those whose raw score could pass the threshold on which the raw score must be exact:
    the smoothed score passes the threshold only within the Gaussian's radius of them, the closing adds
    pixels within ``MORPH_RADIUS`` of those, and the smoothed score on all these needs the raw score
    within the Gaussian's radius again (``fused.components``' ``prune``)."""
    return 2 * _gauss_radius(method) + 2 * MORPH_RADIUS


def _prune(stats: Stats, method: ChangeMethod) -> tuple[float, int]:
    """``fused.components``' ``prune`` of a tile's score: the one with which :func:`with_background` plans
    the background rows and :func:`_tile_score_mask` computes the score."""
    return stats.threshold, prune_margin(method)


def _tile_box(blk: Block, method: ChangeMethod) -> tuple[int, int, int, int]:
    """The box a tile's score is computed on (:func:`_tile_score_mask`; :func:`with_background` plans for it)."""
    return _score_box(blk, score_margin(method))


def _score_box(blk: Block, margin: int) -> tuple[int, int, int, int]:
    """The core grown by ``margin`` px, within the block: (y0, y1, x0, x1) in block coordinates."""
    r, c = blk.core.row - blk.win.row, blk.core.col - blk.win.col
    return (max(r - margin, 0), min(r + blk.core.height + margin, blk.win.height),
            max(c - margin, 0), min(c + blk.core.width + margin, blk.win.width))


def _tile_score_mask(job: Job, blk: Block, method: ChangeMethod, stats: Stats, buffers: BufferPool | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed score and the cleaned change mask (uint8, C-contiguous) of a tile's core, the mask 0 off
    ``use``.

    Fused kernels: the per-pixel work (score, Gaussian, threshold, opening/closing) runs only on the core
    plus :func:`score_margin` (the full halo is context for the background cells): the same core, bit
    for bit, as computing the whole block (``tests/detect/test_score_box.py``). ``buffers``: where those
    arrays come from, all of the score's role (the caller gives back the two arrays returned; the unsmoothed
    score goes back here). The mask and the opening's spare take the unsmoothed score's buffer once the
    smoothing is done (its pages are written already), so a tile's computation takes no mask of the blocks'
    role: how many of those are written at once depends on the blocks in flight only, not on when a tile's
    kernels run relative to the reads (a 32k² run met one more of them than an 8k² one)."""
    if not _fused(method):
        score = _combine(_components(job, blk, method, stats), blk, method, stats)
        mask = change_mask(score, stats.threshold)
        mask[~blk.use] = 0
        return _crop(score, blk.core, blk.win), np.ascontiguousarray(_crop(mask, blk.core, blk.win))
    box = _tile_box(blk, method)
    use = blk.use[box[0] : box[1], box[2] : box[3]]
    shape = (box[1] - box[0], box[3] - box[2])
    done: list[tuple[int, int, int, int]] = []
    raw = _fused_run(job, blk, method, stats, score=True, box=box, out=pooled_empty(shape, np.float32, buffers, "score"),
                     prune=True, computed=done)
    dst = pooled_empty(shape, np.float32, buffers, "score") if method.smooth > 0 else None
    whole = done == [(0, shape[0], 0, shape[1])]
    score = _smooth(raw, method, dst) if whole else _smooth_boxes(raw, method, done, dst)
    if score is not raw:
        give_back(buffers, raw)
    pair = pooled_empty((2, *shape), np.uint8, buffers, "score")  # the mask, the opening's spare
    mask = fused.threshold(score, stats.threshold, use, out=pair[0], boxes=None if whole else done)
    mask = _clean(mask, pair[1])
    np.bitwise_and(mask, use.view(np.uint8), out=mask)
    sub = Window(blk.win.row + box[0], blk.win.col + box[2], box[1] - box[0], box[3] - box[2])
    core = _crop(mask, blk.core, sub)
    m = pair[1].reshape(-1)[: core.size].reshape(core.shape)  # the core's mask, contiguous, in the spare
    np.copyto(m, core)
    return _crop(score, blk.core, sub), m


def _samples(blocks: list[Block]) -> list[np.ndarray]:
    return [_sample_mask(b.core, _crop(b.use, b.core, b.win)) for b in blocks]


def _scaled(v: np.ndarray, scale: float) -> np.ndarray:
    return v * np.float32(scale) if v.dtype == np.uint16 else v


def _band_values(job: Job, blocks: list[Block], sels: list[np.ndarray]) -> dict[str, np.ndarray]:
    method = job.change_method()
    out: dict[str, np.ndarray] = {}
    for k in blocks[0].stack if blocks else ():
        for i, r in enumerate(method.roles):
            out[f"{k}:{r}"] = np.concatenate(
                [_scaled(_crop(b.stack[k][i], b.core, b.win)[s], b.scale.get(k, 1.0))
                 for b, s in zip(blocks, sels, strict=True)])
    return out


def _comp_values(blocks: list[Block], comps: list[dict[str, np.ndarray]],
                 sels: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([_crop(c[k], b.core, b.win)[s] for c, b, s in zip(comps, blocks, sels, strict=True)])
            for k in (comps[0] if comps else ())}


def _score_values(job: Job, blocks: list[Block], comps: list[dict[str, np.ndarray]], stats: Stats,
                  sels: list[np.ndarray]) -> np.ndarray:
    method = job.change_method()
    scores = [_crop(_combine(c, b, method, stats), b.core, b.win)[s]
              for c, b, s in zip(comps, blocks, sels, strict=True)]
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def _reduce(parts: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Robust statistics of per-key values split over ordered chunks (concatenated in order first), the keys
    on the machine's cores: the medians' partitions release the GIL (8 keys of 750 000 values: 0.15 s → 0.08 s
    on 2 cores), and where this runs, the client of a Dask run, the workers wait for it."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    parts = [p for p in parts if p]
    keys = list(parts[0]) if parts else []

    def one(k: str) -> tuple[float, float]:
        return robust_stats(np.concatenate([p[k] for p in parts]))

    if len(keys) < 2:
        return {k: one(k) for k in keys}
    with ThreadPoolExecutor(min(len(keys), os.cpu_count() or 1), thread_name_prefix="tuban-stats") as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))


def sample_blocks(job: Job, cores: list[Window]) -> list[Block]:
    """Several sample windows read in one task (a Dask worker keeps them for the steps below)."""
    return [sample_block(job, c) for c in cores]


def sample_band_values(job: Job, blocks: list[Block]) -> dict[str, np.ndarray]:
    """Step 1 on a worker: the sampled band values of its blocks (a few MB, not the blocks)."""
    return _band_values(job, blocks, _samples(blocks))


def sample_component_values(job: Job, blocks: list[Block], stats: Stats) -> dict[str, np.ndarray]:
    """Step 2: the sampled change components, given the band statistics."""
    method = job.change_method()
    return _comp_values(blocks, [_components(job, b, method, stats) for b in blocks], _samples(blocks))


def sample_score_values(job: Job, blocks: list[Block], stats: Stats) -> np.ndarray:
    """Step 3: the sampled (smoothed) scores, given band and component statistics (for the threshold)."""
    method = job.change_method()
    comps = [_components(job, b, method, stats) for b in blocks]
    return _score_values(job, blocks, comps, stats, _samples(blocks))


def stats_from_values(band_values: list[dict[str, np.ndarray]], comp_values: list[dict[str, np.ndarray]] | None = None,
                      score_values: list[np.ndarray] | None = None, *, threshold: float | None = None,
                      stats: Stats | None = None) -> Stats:
    """Statistics from the sampled values of ordered chunks of the sample windows (same as :func:`scene_stats`)."""
    st = stats or Stats()
    if not st.bands:
        st.bands = _reduce(band_values)
    if comp_values is not None:
        st.components = _reduce(comp_values)
    if threshold is not None:
        st.threshold, st.threshold_rule = float(threshold), "manual"
    elif score_values is not None:
        sample = np.concatenate(score_values) if score_values else np.zeros(0, np.float32)
        st.threshold, st.threshold_rule = auto_threshold(sample)
    return st


def scene_stats(job: Job, blocks: list[Block], *, threshold: float | None = None) -> Stats:
    """Scene-wide statistics and threshold from the sample blocks (their cores, every 2nd pixel)."""
    method = job.change_method()
    sels = _samples(blocks)
    stats = stats_from_values([_band_values(job, blocks, sels)])
    comps = [_components(job, b, method, stats) for b in blocks]
    stats = stats_from_values([], [_comp_values(blocks, comps, sels)], threshold=threshold, stats=stats)
    if threshold is not None:
        return stats
    return stats_from_values([], None, [_score_values(job, blocks, comps, stats, sels)], stats=stats)


def change_mask(score: np.ndarray, threshold: float) -> np.ndarray:
    """``score > threshold`` cleaned by a 3×3 opening and closing (uint8 0/1)."""
    return _clean((score > threshold).astype(np.uint8))


def _clean(m: np.ndarray, spare: np.ndarray | None = None) -> np.ndarray:
    """A 3×3 opening then closing of the uint8 mask ``m``; with ``spare`` (same shape and dtype) the opening
    goes there and the closing back into ``m``, so no array is allocated."""
    import cv2

    k = np.ones((2 * MORPH_RADIUS + 1,) * 2, np.uint8)
    opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, k, dst=spare, borderType=cv2.BORDER_REPLICATE)
    return cv2.morphologyEx(opened, cv2.MORPH_CLOSE, k, dst=m if spare is not None else None,
                            borderType=cv2.BORDER_REPLICATE)


#: per-piece sums carried across seams: pixels, score, index before, index after, masked px and footprint px
#: of the piece grown by one pixel (its masked share)
SUMS = ("n", "score", "idx_before", "idx_after", "masked", "footprint")


def _runs(m: np.ndarray, *, gap: int = 16) -> list[tuple[int, int, int, int]]:
    """Windows ``(r0, r1, c0, c1)`` covering every nonzero pixel of ``m``: runs of rows holding some,
    merged across gaps under ``gap`` (≥ 3) rows, each cropped to its columns. A 4-connected patch lies in
    one run (it cannot cross an empty row), so labelling or vectorising the runs equals doing the whole."""
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return []
    cut = np.flatnonzero(np.diff(rows) > gap) + 1
    out = []
    for rr in np.split(rows, cut):
        r0, r1 = int(rr[0]), int(rr[-1]) + 1
        cols = np.flatnonzero(m[r0:r1].any(axis=0))
        out.append((r0, r1, int(cols[0]), int(cols[-1]) + 1))
    return out


def _label(m: np.ndarray, runs: list[tuple[int, int, int, int]], buffers: BufferPool | None = None
           ) -> tuple[int, np.ndarray]:
    """4-connected labels of ``m`` (``n`` including the background 0, int32 labels), labelled run by run: a
    4-connected piece lies in one run (:func:`_runs`), and the runs of a tile with a few % change cover a
    fraction of it (labelling the whole 1024² tile took 1.6 ms)."""
    import cv2

    lab = pooled_empty(m.shape, np.int32, buffers, "labels", sparse=True)
    # written and read only in each run grown by one pixel (the pieces' sums read the labels' 3×3
    # neighbourhood; runs lie > gap rows apart; the seams are read in the runs, :func:`_seams`). The rest, most
    # of a tile, is never touched: clearing it wrote 16.8 MB a 2048 tile, memory bandwidth the workers share;
    # its frame alone (a column at each end of every row) wrote most of the buffer's pages
    for r0, r1, c0, c1 in runs:
        lab[max(r0 - 1, 0) : r1 + 1, max(c0 - 1, 0) : c1 + 1] = 0
    n = 1
    for r0, r1, c0, c1 in runs:
        part = m[r0:r1, c0:c1]
        spare = buffers.take(part.shape, np.int32, "runs") if buffers is not None else None  # else cv2's own
        k, sub = cv2.connectedComponents(part, labels=spare, connectivity=4, ltype=cv2.CV_32S)
        if k > 1:  # the run's labels after those of the runs before; 0 (where m is) stays 0
            np.add(sub, np.int32(n - 1), out=lab[r0:r1, c0:c1], where=part.view(np.bool_))
            n += k - 1
        give_back(buffers, spare)
    return n, lab


def _seams(lab: np.ndarray, n_lab: int, runs: list[tuple[int, int, int, int]], core: Window, grid: Grid
           ) -> np.ndarray:
    """Which labels (of ``n_lab``) touch a side of the core that another tile continues: read in the
    ``runs`` (:func:`_label` writes nothing else)."""
    h, w = lab.shape
    seam = np.zeros(n_lab, bool)
    top, left = core.row > 0, core.col > 0
    bottom, right = core.row + core.height < grid.height, core.col + core.width < grid.width
    for r0, r1, c0, c1 in runs:
        if top and r0 == 0:
            seam[lab[0, c0:c1]] = True
        if bottom and r1 == h:
            seam[lab[h - 1, c0:c1]] = True
        if left and c0 == 0:
            seam[lab[r0:r1, 0]] = True
        if right and c1 == w:
            seam[lab[r0:r1, w - 1]] = True
    return seam


def submit_tile(job: Job, core: Window, readers: Mapping[str, Any], buffers: BufferPool | None = None, *,
                halo: int | None = None, edges: Mapping[str, EdgeColumns] | None = None) -> dict[str, Any]:
    """Queue the reads of one window's dates (``core`` + ``halo``, default the tile halo) on their reader
    threads (``readers``: an executor per key of :func:`date_keys`) and return their futures, for
    :func:`assemble_tile`; ``buffers``: where the bands are read into (see :func:`release`); ``edges``: per
    date, the columns kept at band edges (used on that date's thread only). A date's thread goes straight
    on to the next window queued for it, whoever assembles this one."""
    from tuban.detect.tiles import expand

    method = job.change_method()
    win = expand(core, job.grid, job.halo if halo is None else halo)
    return {k: readers[k].submit(_read_date, job, s, method, win, buffers, edges.get(k) if edges else None)
            for k, s in _dates(job).items()}


def assemble_tile(job: Job, core: Window, parts: Mapping[str, Any], *, halo: int | None = None,
                  stats: Stats | None = None, buffers: BufferPool | None = None) -> Block:
    """The window's :class:`Block` from the futures of :func:`submit_tile`: the I/O half of
    :func:`tile_pieces` (with ``halo=job.score_halo``, what :func:`sample_block` gives); with ``stats``, its
    background rows too (:func:`with_background`)."""
    from tuban.detect.tiles import expand

    blk = _assemble(job, core, job.change_method(), expand(core, job.grid, job.halo if halo is None else halo),
                    parts, buffers)
    return blk if stats is None else with_background(job, blk, stats, buffers)


def release(blk: Block, buffers: BufferPool) -> None:
    """Hand the arrays of a tile read into ``buffers`` (:func:`submit_tile`, :func:`assemble_tile`) back once
    nothing uses the block: bands, masks, background rows."""
    buffers.give(*(r.data for r in blk.raw.values()), blk.use, blk.unobservable, *blk.background.values())


#: rasterio's polygonize (``features.shapes``) is not safe in several threads of one process at once: it
#: sometimes warns NotGeoreferencedWarning on its in-memory dataset (test_threads_give_the_serial_result, about
#: 1 run in 8). Only the ``threads > 1`` executor runs tiles concurrently in one process.
_POLYGONIZE_LOCK = threading.Lock()


def tile_pieces(job: Job, core: Window, stats: Stats, blk: Block | None = None,
                buffers: BufferPool | None = None) -> dict[str, object]:
    """Patch pieces of one tile: polygons (core only; shapely, an object array), per-piece sums, seam flags,
    unobservable count.

    ``blk``: the tile already read (:func:`assemble_tile`, e.g. on a reader thread); read here when ``None``.
    ``buffers``: where the tile's working arrays (score, masks, labels) come from; all go back before the
    return (the pieces hold none of them). A block read here comes from those buffers too, or from this
    process's (:func:`release_process_state`) when none are given, and goes back here.
    """
    method = job.change_method()
    if blk is not None:
        return _tile_pieces(job, core, stats, blk, method, buffers)
    pool = _BUFFERS if buffers is None else buffers
    with small_pages():  # a worker's tile buffers are touched once, then reused (grid.small_pages)
        read = _read(job, core, method, job.halo, _process_edges(job), pool)
        try:
            return _tile_pieces(job, core, stats, read, method, pool)
        finally:
            release(read, pool)  # read here: its arrays go back here too


def _tile_pieces(job: Job, core: Window, stats: Stats, blk: Block, method: ChangeMethod,
                 buffers: BufferPool | None) -> dict[str, object]:
    score, m = _tile_score_mask(job, blk, method, stats, buffers)
    try:
        return _pieces(job, core, blk, score, m, buffers)
    finally:
        give_back(buffers, score, m)


def _pieces(job: Job, core: Window, blk: Block, score: np.ndarray, m: np.ndarray, buffers: BufferPool | None
            ) -> dict[str, object]:
    """:func:`tile_pieces` from the tile's score and cleaned mask (of its core)."""
    unobs = _crop(blk.unobservable, core, blk.win)
    out: dict[str, object] = {"geoms": np.zeros(0, object), "sums": np.zeros((0, len(SUMS))),
                              "seam": np.zeros(0, bool), "unobservable_px": int(np.count_nonzero(unobs)),
                              "pixels": int(m.size)}
    if not m.any():
        return out
    runs = _runs(m)
    n_lab, lab = _label(m, runs, buffers)
    try:
        idx_name = "ndvi" if {"nir", "red"} <= set(blk.raw["b"]) else "vari"
        if fused.available():
            sums = _piece_sums_fused(blk, core, lab, n_lab, score, runs, idx_name)
        else:
            sums = _piece_sums_numpy(blk, core, lab, n_lab, score, runs, idx_name)
        seam = _seams(lab, n_lab, runs, core, job.grid)
        geoms, labels = _polygons(lab, runs, job.grid.window_transform(core), buffers)
    finally:
        give_back(buffers, lab)
    sums, seam = sums[labels], seam[labels]
    # pieces off the seams are whole patches: finished here (the same per-patch steps as the merged ones
    # in the end), so the run holds their simplified polygons only, and fewer of them
    geoms, kept = finish_patches(geoms, job.min_area, job.simplify, which=~seam)
    out["geoms"] = geoms
    out["sums"] = sums[kept]
    out["seam"] = seam[kept]
    return out


def finish_patches(geoms: np.ndarray, min_area: float, tolerance: float, *, which: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The per-patch steps of a run's output: holes under ``min_area`` filled, then topology-preserving
    simplification (``tolerance``, 0: none) of the patches of at least ``min_area``.

    ``which``: a mask of the patches these steps apply to (the others are kept as they are); ``None``: all.
    Returns the patches that are kept, the finished ones simplified, and a mask of which of ``geoms`` they
    are."""
    import shapely

    keep = np.ones(len(geoms), bool)
    idx = np.arange(len(geoms)) if which is None else np.flatnonzero(which)
    if not idx.size:
        return geoms[keep], keep
    filled = np.asarray([_fill_small_holes(g, min_area) for g in geoms[idx]], dtype=object)
    big = shapely.area(filled) >= min_area * (1 - 1e-9)
    keep[idx[~big]] = False
    done = filled[big]
    if tolerance > 0 and done.size:
        done = shapely.simplify(done, tolerance, preserve_topology=True)
    out = geoms.copy()
    out[idx[big]] = done
    return out[keep], keep


def _fill_small_holes(geom, min_area: float):
    import shapely

    if geom.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([_fill_small_holes(p, min_area) for p in geom.geoms])
    if not len(geom.interiors):
        return geom
    holes = [r for r in geom.interiors if shapely.Polygon(r).area >= min_area]
    return shapely.Polygon(geom.exterior, holes)


def _polygons(lab: np.ndarray, runs: list[tuple[int, int, int, int]], transform: tuple[float, ...],
              buffers: BufferPool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The polygon of every label of ``lab`` (4-connected pieces, all inside ``runs``) and its label.

    :func:`tuban.raster.vectorize.label_polygons` (numba: the same polygons as GDAL's, byte for byte, at
    1.9 ms instead of 25 ms for a 1024² tile with 5 % change); without numba, GDAL's polygonize on each run
    (faster than the kernel's pure-Python form)."""
    if fused.available():
        from tuban.raster.vectorize import label_polygons

        return label_polygons(lab, runs, transform, buffers)
    import rasterio
    import shapely
    from affine import Affine
    from rasterio import features

    a, b, c, d, e, f = transform
    geoms, labels = [], []
    with _POLYGONIZE_LOCK, rasterio.Env():  # one GDAL environment for the tile, not one per call
        for r0, r1, c0, c1 in runs:
            sub = lab[r0:r1, c0:c1]
            tr = Affine(a, b, c + a * c0 + b * r0, d, e, f + d * c0 + e * r0)
            for geom, value in features.shapes(sub, mask=sub > 0, connectivity=4, transform=tr):
                geoms.append(shapely.geometry.shape(geom))
                labels.append(int(value))
    return np.asarray(geoms, dtype=object), np.asarray(labels, dtype=np.int64)


def _piece_sums_fused(blk: Block, core: Window, lab: np.ndarray, n_lab: int, score: np.ndarray,
                      runs: list[tuple[int, int, int, int]], idx_name: str) -> np.ndarray:
    """:data:`SUMS` per label in one numba pass over the runs (same numbers as :func:`_piece_sums_numpy`)."""
    roles = INDICES[idx_name][0]  # ndvi: nir, red; vari: green, red, blue (the kernel's order)
    rb, ra = blk.raw["b"], blk.raw["a"]
    return fused.piece_sums(lab, n_lab, score, blk.unobservable, rb.data, ra.data,
                            tuple(rb.roles[r] for r in roles), tuple(ra.roles[r] for r in roles),
                            scale_b=float(rb.scale), scale_a=float(ra.scale), kind=0 if idx_name == "ndvi" else 1,
                            offset=(core.row - blk.win.row, core.col - blk.win.col), windows=runs)


def _piece_sums_numpy(blk: Block, core: Window, lab: np.ndarray, n_lab: int, score: np.ndarray,
                      runs: list[tuple[int, int, int, int]], idx_name: str) -> np.ndarray:
    """:data:`SUMS` per label from the runs with numpy (the reference of :func:`tuban.raster.fused.piece_sums`)."""
    import cv2

    fn, roles = INDICES[idx_name][1], INDICES[idx_name][0]
    unobs = _crop(blk.unobservable, core, blk.win)
    m = lab
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("lp", "s", "ib", "ia", "lg", "ug")}
    for r0, r1, c0, c1 in runs:  # only the windows holding patches are scanned
        sub = lab[r0:r1, c0:c1]
        px = np.flatnonzero(sub)
        parts["lp"].append(sub.ravel()[px])
        parts["s"].append(score[r0:r1, c0:c1].ravel()[px])
        r_off, c_off = core.row - blk.win.row, core.col - blk.win.col
        win = (slice(r0 + r_off, r1 + r_off), slice(c0 + c_off, c1 + c_off))
        for key, date in (("ib", "b"), ("ia", "a")):
            parts[key].append(fn({r: blk.raw[date].take(r, win, px) for r in roles}))
        # masked share of each patch grown by one pixel (clouds, nodata next to or inside the patch); runs
        # are ≥ 3 rows apart, so their one-pixel margins never overlap
        g0, g1, h0, h1 = max(r0 - 1, 0), min(r1 + 1, m.shape[0]), max(c0 - 1, 0), min(c1 + 1, m.shape[1])
        grown = cv2.dilate(lab[g0:g1, h0:h1].astype(np.float32), np.ones((3, 3), np.uint8)).ravel()
        gp = np.flatnonzero(grown)
        parts["lg"].append(grown[gp].astype(np.int64))
        parts["ug"].append(unobs[g0:g1, h0:h1].ravel()[gp])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    lp = cat["lp"]
    sums = np.zeros((n_lab, len(SUMS)))
    sums[:, 0] = np.bincount(lp, minlength=n_lab)
    sums[:, 1] = np.bincount(lp, cat["s"].astype(np.float64), n_lab)
    sums[:, 2] = np.bincount(lp, cat["ib"].astype(np.float64), n_lab)
    sums[:, 3] = np.bincount(lp, cat["ia"].astype(np.float64), n_lab)
    sums[:, 4] = np.bincount(cat["lg"], cat["ug"].astype(np.float64), n_lab)
    sums[:, 5] = np.bincount(cat["lg"], minlength=n_lab)
    return sums
