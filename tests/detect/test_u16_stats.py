"""uint16 reads and the statistics split over chunks of sample windows give the same numbers as before."""

from __future__ import annotations

import numpy as np
import pytest

from tuban.raster import fused


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
def test_read_block_keep_u16_equals_the_float32_read(pair) -> None:
    from tuban.raster.grid import Window, analysis_grid, read_block
    from tuban.raster.scene import open_scene

    before, after, _ = pair
    sb = open_scene(str(before), sensor="sentinel2")
    grid = analysis_grid(sb, open_scene(str(after), sensor="sentinel2"))
    roles = tuple(sb.roles)
    win = Window(10, 20, 100, 120)
    f, ok_f = read_block(sb, roles, grid, win)
    u, ok_u = read_block(sb, roles, grid, win, keep_u16=True)
    assert f.dtype == np.float32
    assert u.dtype == np.uint16
    np.testing.assert_array_equal(u * np.float32(sb.scale), f)
    np.testing.assert_array_equal(ok_u, ok_f)


def test_statistics_from_chunks_of_sample_windows_equal_scene_stats(pair) -> None:
    from tuban.detect import kernel
    from tuban.detect.engine import plan
    from tuban.detect.tiles import sample_windows

    before, after, _ = pair
    job = plan(before, after, sensor="sentinel2").job
    samples = sample_windows(job.grid, max_pixels=40_000, size=64)  # several small sample windows
    assert len(samples) >= 3
    ref = kernel.scene_stats(job, [kernel.sample_block(job, w) for w in samples])
    chunks = [kernel.sample_blocks(job, samples[i : i + 2]) for i in range(0, len(samples), 2)]
    st = kernel.stats_from_values([kernel.sample_band_values(job, b) for b in chunks])
    st = kernel.stats_from_values([], [kernel.sample_component_values(job, b, st) for b in chunks], stats=st)
    st = kernel.stats_from_values([], None, [kernel.sample_score_values(job, b, st) for b in chunks], stats=st)
    assert st.bands == ref.bands
    assert st.components == ref.components
    assert st.threshold == ref.threshold
    assert np.isfinite(st.threshold)
