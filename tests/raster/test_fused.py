"""The fused numba kernels equal the numpy reference (tuban.raster.change) on random inputs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tuban import jit
from tuban.raster import fused
from tuban.raster.change import BlockContext, get_method

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")


def _stack(rng: np.random.Generator, nb: int, h: int, w: int) -> np.ndarray:
    base = rng.random((nb, 1, 1), dtype=np.float32) * 0.2 + 0.05
    return (base + rng.random((nb, h, w), dtype=np.float32) * 0.15).astype(np.float32)


def _stats(rng: np.random.Generator, nb: int) -> tuple[np.ndarray, np.ndarray]:
    return (rng.random(nb, dtype=np.float32) * 0.1 + 0.1).astype(np.float32), \
        (rng.random(nb, dtype=np.float32) * 10 + 5).astype(np.float32)


def _z(raw: np.ndarray, st: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    out = raw - st[0][:, None, None]
    out *= st[1][:, None, None]
    return out


CASES = [  # method, roles, shape, cell, row, col
    ("construction", ("blue", "green", "red", "nir"), (61, 83), 8, 13, 21),
    ("construction", ("blue", "green", "red", "nir", "swir1", "swir2"), (70, 64), 5, 0, 3),
    ("construction", ("blue", "green", "red", "nir", "swir1"), (1, 40), 4, 7, 0),
    ("construction", ("blue", "green", "red", "nir"), (33, 1), 8, 0, 0),
    ("rgb", ("red", "green", "blue"), (57, 66), 6, 2, 9),
]


@pytest.mark.parametrize(("name", "avail", "shape", "cell", "row", "col"), CASES)
def test_fused_components_and_score_equal_the_numpy_reference(name, avail, shape, cell, row, col) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((name, shape, cell)).encode()))
    m = get_method(name, avail)
    nb = len(m.roles)
    b, a = _stack(rng, nb, *shape), _stack(rng, nb, *shape)
    a[:, : shape[0] // 2, : shape[1] // 3] += 0.2  # a changed site
    sb, sa = _stats(rng, nb), _stats(rng, nb)
    use = rng.random(shape) > 0.15
    ctx = BlockContext(row, col, cell, use)
    ref = m.components({r: b[i] for i, r in enumerate(m.roles)}, {r: a[i] for i, r in enumerate(m.roles)},
                       _z(b, sb), _z(a, sa), ctx=ctx)
    assert m.layout is not None
    got = fused.components(b, a, sb, sa, use, m.layout, cell=cell, row=row, col=col)
    assert got.shape == (len(ref), *shape)
    assert list(ref) == list(m.layout.names)
    for i, k in enumerate(m.layout.names):
        np.testing.assert_allclose(got[i][use], ref[k][use], rtol=1e-5, atol=2e-5, err_msg=k)
        assert (got[i][~use] == 0).all()
    # the gated score: the reference's combine on standardised components
    cmed = np.array([np.median(ref[k][use]) for k in m.layout.names], np.float32)
    cinv = np.array([1 / (np.std(ref[k][use]) + 0.1) for k in m.layout.names], np.float32)
    zc = {k: (ref[k] - cmed[i]) * cinv[i] for i, k in enumerate(m.layout.names)}
    want = np.where(use, m.combine(zc), 0)
    score = fused.components(b, a, sb, sa, use, m.layout, cell=cell, row=row, col=col, comp_stats=(cmed, cinv))
    np.testing.assert_allclose(score, want, rtol=1e-5, atol=5e-5)
    np.testing.assert_allclose(fused.combine(got, (cmed, cinv), use), want, rtol=1e-5, atol=5e-5)
    assert score.max() > 0  # the changed site scores


def test_threshold_and_u16_conversion_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    score = rng.random((40, 50), dtype=np.float32)
    use = rng.random((40, 50)) > 0.3
    np.testing.assert_array_equal(fused.threshold(score, 0.5, use), ((score > 0.5) & use).astype(np.uint8))
    dn = rng.integers(0, 65536, (3, 40, 50), dtype=np.uint16)
    dn[0, 0, 0], dn[2, 1, 1], dn[1, 2, 2] = 0, 65535, 0
    out = np.full((4, 40, 50), -1, np.float32)
    valid = np.ones((40, 50), bool)
    fused.convert_u16(dn, out, [0, 2, 3], valid, nodata=0, mask_max=True, scale=1e-4)
    np.testing.assert_array_equal(out[[0, 2, 3]], dn.astype(np.float32) * np.float32(1e-4))
    assert (out[1] == -1).all()
    np.testing.assert_array_equal(valid, np.all(dn != 0, axis=0) & np.all(dn < 65535, axis=0))


def test_a_kernel_compiles_in_memory_when_the_cache_cannot_be_written(monkeypatch) -> None:
    def add(a, b):
        return a + b

    k = jit.Kernel(add)
    real = k._compile
    seen = []

    def no_locator(cache):
        seen.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'add': no locator available for file 'x.py'")
        return real(cache)

    monkeypatch.setattr(k, "_compile", no_locator)
    assert k(1, 2) == 3
    assert seen == [True, False]

    k2 = jit.Kernel(add)

    class Unwritable:
        def __call__(self, *a):
            raise PermissionError(13, "read-only file system")

    calls = []

    def cached_fails(cache):
        calls.append(cache)
        return Unwritable() if cache else real(cache)

    monkeypatch.setattr(k2, "_compile", cached_fails)
    assert k2(2, 3) == 5
    assert calls == [True, False]


@pytest.mark.parametrize("size", [3, 5, 9, 11])
def test_median_rows_equal_opencv_on_any_rows(size: int) -> None:
    """The background's sliding-histogram median is OpenCV's ``medianBlur`` (edges replicated) row for row,
    on arrays smaller than the window too, whatever rows are asked for and in whatever order."""
    import cv2

    rng = np.random.default_rng(size)
    shapes = [(271, 271), (40, 7), (1, 1), (3, 50), (50, 2)]
    for h, w in shapes:
        for q in (rng.integers(0, 256, (h, w), dtype=np.uint8),  # every value, ties and extremes
                  np.clip(128 + rng.normal(0, 4, (h, w)).cumsum(axis=1), 0, 255).astype(np.uint8),
                  np.full((h, w), 255, np.uint8)):
            rows = np.concatenate([np.arange(h), rng.integers(0, h, 5), [h - 1, 0]]).astype(np.int64)
            out = np.full((rows.size, w), 7, np.uint8)
            fused._median_rows_k(q, size, rows, out)
            np.testing.assert_array_equal(out, cv2.medianBlur(q, size)[rows], err_msg=f"{h}×{w}")
