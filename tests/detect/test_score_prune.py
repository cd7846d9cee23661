"""The score computed only near pixels that could pass the threshold (``fused.components(prune=…)``) gives
the cleaned mask of the whole score, and the smoothed score on it, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tuban.raster import fused

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")


def _blobs(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """A smooth random field with ``n`` bright blobs of a few pixels to a few tens (float32, 0 … ~1)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    f = np.zeros(shape, np.float32)
    for _ in range(n):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(1.5, 12)
        f += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)).astype(np.float32)
    return np.minimum(f, 1)


def _stacks(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint16 before / after stacks (5 bands, the last SWIR) whose differences range from noise to strong
    change in blobs, and a ``use`` mask with holes."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.3, (5, 1, 1)).astype(np.float32) * (1 + 0.03 * rng.normal(size=(5, *shape)))
    change = _blobs(rng, shape, 6)
    before = base * (1 + 0.02 * rng.normal(size=base.shape))
    after = base * (1 + 0.02 * rng.normal(size=base.shape))
    after[:3] += 0.25 * change  # brighter visible bands, NIR down: bare soil where vegetation was
    after[3] -= 0.1 * change
    after[4] += 0.2 * change
    use = rng.random(shape) > 0.02
    to_dn = lambda v: np.clip(np.rint(v * 10000), 1, 60000).astype(np.uint16)  # noqa: E731
    return to_dn(before), to_dn(after), use


def _mask(score: np.ndarray, threshold: float, use: np.ndarray, boxes: list | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """As ``kernel._tile_score_mask``: smooth (the computed ``boxes`` only, when given), threshold, clean."""
    from tuban.detect import kernel
    from tuban.raster.change import get_method

    method = get_method("construction", ("blue", "green", "red", "nir"))
    if boxes is None or boxes == [(0, *score.shape[:1], 0, score.shape[1])]:
        smooth, boxes = kernel._smooth(score, method), None
    else:
        smooth = kernel._smooth_boxes(score, method, boxes, None)
    m = kernel._clean(fused.threshold(smooth, threshold, use, boxes=boxes))
    return smooth, m & use.view(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("box", [None, (9, 290, 14, 397)])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_pruned_score_gives_the_same_mask_and_smoothed_score_on_it(seed, box, dtype) -> None:
    """uint16 DN (rounding margin from the type's range) and float32 reflectance (from the values, NaN
    at invalid pixels skipped)."""
    from tuban.detect import kernel

    b, a, use = _stacks(seed, (300, 410))
    scale = 1e-4
    if dtype == "float32":
        b, a, scale = b * np.float32(1e-4), a * np.float32(1e-4), 1.0
        b[:, ~use] = np.nan
    lay = fused.FusedLayout(0, (0, 1, 2), nir=3, red=2, green=1, blue=0, swir1=4)
    st = (np.full(5, 0.15, np.float32), np.full(5, 12.0, np.float32))
    comps = fused.components(b, a, st, st, use, lay, cell=8, scale_b=scale, scale_a=scale)
    cs = tuple(np.array(v, np.float32) for v in zip(*[(np.median(c), 1 / (np.median(np.abs(c - np.median(c))) + 1e-6))
                                                       for c in comps], strict=True))
    kw = {"cell": 8, "scale_b": scale, "scale_a": scale, "comp_stats": cs, "box": box}
    whole = fused.components(b, a, st, st, use, lay, **kw)
    sub = use if box is None else use[box[0] : box[1], box[2] : box[3]]
    w_smooth, _ = _mask(whole, 0.0, sub)
    margin = 2 * (int(np.ceil(4 * 1.5)) + 1) + 2 * kernel.MORPH_RADIUS
    pruned_somewhere = False
    # thresholds from where nearly every pixel passes to where a few blobs' cores do
    for q in (50, 90, 99, 99.9):
        thr = float(np.percentile(w_smooth, q))
        done: list = []
        part = fused.components(b, a, st, st, use, lay, **kw, prune=(thr, margin), computed=done)
        if q == 50:  # the bound flags most blocks: it gives up and computes the whole
            assert done == [(0, whole.shape[0], 0, whole.shape[1])]
        for y0, y1, x0, x1 in done:  # columns start on multiples of 32 (for the boxed smoothing)
            assert x0 % 32 == 0
            assert 0 <= y0 < y1 <= whole.shape[0]
            assert x0 < x1 <= whole.shape[1]
        want_smooth, want = _mask(whole, thr, sub)
        got_smooth, got = _mask(part, thr, sub, done)
        np.testing.assert_array_equal(got, want)
        assert want.any()
        on = want.astype(bool)
        np.testing.assert_array_equal(got_smooth[on], want_smooth[on])
        # the raw score is exact on the boxes computed (and not written far from them)
        computed = np.zeros(whole.shape, bool)
        for y0, y1, x0, x1 in done:
            computed[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(part[computed], whole[computed])
        pruned_somewhere |= bool(np.count_nonzero(whole[~computed]))
    assert pruned_somewhere  # the test exercised skipped blocks


def test_prune_bound_is_none_where_it_cannot_be_given() -> None:
    assert fused.prune_bound(0.0, 0.3, 3.0) == -1.0
    assert fused.prune_bound(-2.0, 0.3, 3.0) == -1.0
    assert fused.prune_bound(float("nan"), 0.3, 3.0) == -1.0
    assert fused.prune_bound(5.0, 0.3, 0.0) == -1.0
    assert fused.prune_bound(5.0, -10.0, 1.0) == -1.0  # (sqrt(s) + 10) · 1 ≥ 10 > 5 for every pixel
    b = fused.prune_bound(5.0, 0.3, 2.0)
    # sqrt(b) standardised is under the threshold by the margin
    assert 0 < (np.sqrt(b) - 0.3) * 2.0 < 5.0 - 1e-3 * (5.0 + 0.6 + 1.0) + 1e-6


@pytest.mark.parametrize("factor", [0.05, 1.0, 1.5])
def test_tile_pieces_with_pruning_equal_those_without(tmp_path, monkeypatch, factor) -> None:
    """Whole runs of tiles (threshold lowered and raised around the scene's own) give the same pieces, byte
    for byte, with the score computed everywhere (no bound)."""
    from test_score_box import _assert_same_pieces, _planned

    from tuban.detect import kernel

    p, stats = _planned(tmp_path, shape=(300, 260), seed=5, baseline=False, tile_size=128)
    stats = dataclasses.replace(stats, threshold=stats.threshold * factor)
    pruned = [kernel.tile_pieces(p.job, t, stats) for t in p.tiles]
    method = p.job.change_method()
    skipped = 0
    for t in p.tiles:  # how much of the raw score the bound let go of (0 there, nonzero computed)
        blk = kernel._read(p.job, t, method, p.job.halo)  # (the background of each call its own)
        full = kernel._fused_run(p.job, blk, method, stats, score=True)
        part = kernel._fused_run(p.job, blk, method, stats, score=True, prune=True)
        skipped += int(np.count_nonzero(full[part == 0]))
    assert skipped > 0 if factor >= 1 else skipped == 0
    monkeypatch.setattr(fused, "prune_bound", lambda *a: -1.0)
    whole = [kernel.tile_pieces(p.job, t, stats) for t in p.tiles]
    assert sum(len(r["geoms"]) for r in whole) > 0
    for x, y in zip(pruned, whole, strict=True):
        _assert_same_pieces(x, y)


@pytest.mark.parametrize("shape", [(700, 903), (257, 640), (64, 97)])
def test_smoothing_only_the_computed_boxes_equals_smoothing_the_whole_on_them(shape) -> None:
    """``kernel._smooth_boxes`` (boxes starting on columns that are multiples of 32, as the pruned score's
    do) gives OpenCV's whole-array Gaussian on every box, bit for bit, right edge included (the score is 0
    around them, and the result is not written off them)."""
    from tuban.detect import kernel
    from tuban.raster.change import get_method

    method = get_method("construction", ("blue", "green", "red", "nir"))
    assert method.smooth > 0
    rng = np.random.default_rng(shape[1])
    score = rng.random(shape, dtype=np.float32) * 50
    score[rng.random(shape) < 0.5] = 0
    whole = kernel._smooth(score, method)
    h, w = shape
    for _ in range(50):
        boxes = []
        for y0 in range(0, h, 40):  # disjoint boxes: one per band of rows, of random columns
            x0 = int(rng.integers(0, (w - 1) // 32 + 1)) * 32
            x1 = int(rng.integers(x0 + 1, w + 1)) if rng.random() < 0.7 else w
            boxes.append((y0, min(y0 + int(rng.integers(1, 41)), h), x0, x1))
        got = kernel._smooth_boxes(score, method, boxes, None)
        on = np.zeros(shape, bool)
        for y0, y1, x0, x1 in boxes:
            on[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(got[on], whole[on])


def test_background_for_a_pruned_score_computes_only_the_rows_it_reads() -> None:
    """The background computed for a pruned score (9×9 medians on the rows its boxes read, 4 more each
    side) equals the whole background on those rows, bit for bit; the score from it equals the score
    computed with its own background; a score it was not computed for is refused."""
    b, a, use = _stacks(3, (300, 410))
    lay = fused.FusedLayout(0, (0, 1, 2), nir=3, red=2, green=1, blue=0, swir1=4)
    st = (np.full(5, 0.15, np.float32), np.full(5, 12.0, np.float32))
    kw = {"cell": 8, "row": 5, "col": 11, "scale_b": 1e-4, "scale_a": 1e-4}
    comps = fused.components(b, a, st, st, use, lay, **kw)
    cs = tuple(np.array(v, np.float32) for v in zip(*[(np.median(c), 1 / (np.median(np.abs(c - np.median(c))) + 1e-6))
                                                       for c in comps], strict=True))
    box = (9, 290, 14, 397)
    whole = fused.components(b, a, st, st, use, lay, **kw, comp_stats=cs, box=box)
    thr = float(np.percentile(whole, 99.9))
    prune = (thr, 16)
    full = fused.background(b, a, st, st, use, **kw)
    lazy = fused.background(b, a, st, st, use, **kw, comp_stats=cs, box=box, prune=prune)
    rmap = lazy[3]
    need = rmap >= 0
    assert need.any()
    assert not need.all()  # rows were left out
    np.testing.assert_array_equal(full[3], np.arange(full[0].shape[1]))
    np.testing.assert_array_equal(lazy[0][:, rmap[need]], full[0][:, need])
    for got, want in zip(lazy[1:3], full[1:3], strict=True):
        np.testing.assert_array_equal(got, want)
    d1: list = []
    d2: list = []
    s1 = fused.components(b, a, st, st, use, lay, **kw, comp_stats=cs, box=box, prune=prune, background=lazy,
                          computed=d1)
    s2 = fused.components(b, a, st, st, use, lay, **kw, comp_stats=cs, box=box, prune=prune, computed=d2)
    assert d1 == d2
    assert len(d1) > 1
    for y0, y1, x0, x1 in d1:
        np.testing.assert_array_equal(s1[y0:y1, x0:x1], s2[y0:y1, x0:x1])
        np.testing.assert_array_equal(s1[y0:y1, x0:x1], whole[y0:y1, x0:x1])
    with pytest.raises(ValueError, match="background rows"):
        fused.components(b, a, st, st, use, lay, **kw, comp_stats=cs, box=box, background=lazy)
