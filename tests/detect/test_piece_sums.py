"""Per-piece sums of the numba pass equal the numpy reference (same float64 sums, bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

from tuban.raster import fused


def _block(rng: np.random.Generator, u16: bool, roles: tuple[str, ...]):
    import cv2

    from tuban.detect.kernel import Block, _runs, _Scaled
    from tuban.raster.grid import Window

    win, core = Window(90, 40, 70, 80), Window(95, 47, 60, 66)
    raw = {}
    for key in ("b", "a"):
        v = rng.random((len(roles), win.height, win.width), dtype=np.float32) * 0.5
        if u16:
            raw[key] = _Scaled(np.rint(v * 10000).astype(np.uint16), roles, 1e-4)
        else:
            v[0, :3, :3] = 0  # a zero denominator
            v[1, :3, :3] = 0
            raw[key] = _Scaled(v, roles, 1.0)
    unobs = rng.random((win.height, win.width)) > 0.8
    blk = Block(raw, {k: r.data for k, r in raw.items()}, ~unobs, unobs, win, core)
    m = (rng.random((core.height, core.width)) > 0.55).astype(np.uint8)
    m[:, -1] = 1  # pieces on the core's edge
    m[10:40] = 0  # two runs
    n_lab, lab = cv2.connectedComponents(m, connectivity=4, ltype=cv2.CV_32S)
    score = rng.random(m.shape, dtype=np.float32) * 5
    return blk, core, lab, n_lab, score, _runs(m)


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
@pytest.mark.parametrize("u16", [False, True])
@pytest.mark.parametrize("idx", ["ndvi", "vari"])
def test_piece_sums_fused_equal_numpy(u16: bool, idx: str) -> None:
    from tuban.detect.kernel import _piece_sums_fused, _piece_sums_numpy

    roles = ("blue", "green", "red", "nir") if idx == "ndvi" else ("red", "green", "blue")
    blk, core, lab, n_lab, score, runs = _block(np.random.default_rng(7), u16, roles)
    assert len(runs) == 2
    assert n_lab > 20
    want = _piece_sums_numpy(blk, core, lab, n_lab, score, runs, idx)
    got = _piece_sums_fused(blk, core, lab, n_lab, score, runs, idx)
    assert want[1:, 4].sum() > 0
    np.testing.assert_array_equal(got, want)
