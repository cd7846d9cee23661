"""The whole detection with the fused kernels equals the numpy reference pipeline."""

from __future__ import annotations

import pytest

from tuban.raster import fused


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
def test_detect_with_and_without_the_fused_kernels_gives_the_same_patches(pair, monkeypatch) -> None:
    import shapely

    from tuban.detect.engine import detect

    before, after, _ = pair
    fast = detect(before, after, sensor="sentinel2", tile_size=128)
    monkeypatch.setenv("TUBAN_FUSED", "0")
    assert not fused.available()
    ref = detect(before, after, sensor="sentinel2", tile_size=128)
    assert fast.threshold == pytest.approx(ref.threshold, rel=1e-4)
    a, b = shapely.union_all(fast.patches.geometry.values), shapely.union_all(ref.patches.geometry.values)
    assert a.area > 0
    assert a.symmetric_difference(b).area <= 1e-3 * a.union(b).area
