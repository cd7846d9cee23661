"""Sample windows for the scene statistics: inside single source blocks when the files are tiled."""

from __future__ import annotations

from tuban.detect.tiles import sample_windows
from tuban.raster.grid import Grid


def _blocks_touched(w, block, halo):
    bh, bw = block
    r0, r1 = max(0, w.row - halo) // bh, (w.row + w.height + halo - 1) // bh
    c0, c1 = max(0, w.col - halo) // bw, (w.col + w.width + halo - 1) // bw
    return (r1 - r0 + 1) * (c1 - c0 + 1)


def test_sample_windows_with_their_context_sit_in_one_block_each() -> None:
    grid = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 4096, 4000)
    wins = sample_windows(grid, max_pixels=1_500_000, size=256, block=(512, 512))
    assert len(wins) == 16
    assert len(set(wins)) == len(wins)
    for w in wins:
        assert (w.height, w.width) == (256, 256)
        assert 0 <= w.row <= grid.height - 256
        assert 0 <= w.col <= grid.width - 256
        assert _blocks_touched(w, (512, 512), halo=61) == 1  # 256 + 2 × 61 ≤ 512
    # spread over the scene: every block row and column of the 4 × 4 pattern is distinct
    assert len({w.row for w in wins}) == 4
    assert len({w.col for w in wins}) == 4


def test_sample_windows_fall_back_to_fixed_fractions() -> None:
    grid = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 1300, 1300)
    # too few blocks for a 4 × 4 pattern, blocks smaller than a window, no block shape: same windows
    plain = sample_windows(grid, max_pixels=1_500_000, size=256)
    assert sample_windows(grid, max_pixels=1_500_000, size=256, block=(512, 512)) == plain
    assert sample_windows(grid, max_pixels=1_500_000, size=256, block=(128, 128)) == plain
    assert sample_windows(grid, max_pixels=1_500_000, size=256, block=(1, 1300)) == plain
    small = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 600, 500)
    assert sample_windows(small, max_pixels=1_500_000, block=(512, 512)) == sample_windows(small, max_pixels=1_500_000)


def test_block_shape_of_tiled_files_on_the_grid(tmp_path) -> None:
    import numpy as np
    import rasterio
    from affine import Affine

    from tuban.raster.grid import analysis_grid, block_shape
    from tuban.raster.scene import open_scene

    def write(name: str, **opts) -> str:
        p = tmp_path / name
        with rasterio.open(p, "w", driver="GTiff", width=64, height=48, count=4, dtype="uint16",
                           crs="EPSG:32650", transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0),
                           **opts) as dst:
            dst.write(np.ones((4, 48, 64), np.uint16))
        return str(p)

    tiled = open_scene(write("t.tif", tiled=True, blockxsize=32, blockysize=16), bands=("blue", "green", "red", "nir"))
    strips = open_scene(write("s.tif"), bands=("blue", "green", "red", "nir"))
    grid = analysis_grid(tiled, strips)
    assert block_shape(tiled, grid) == (16, 32)
    assert block_shape(strips, grid)[1] == 64  # strips: whole rows
    coarser = analysis_grid(tiled, strips, resolution=20.0)
    assert block_shape(tiled, coarser) is None  # not on the grid: resampled reads
