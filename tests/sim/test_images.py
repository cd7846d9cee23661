"""Saves true-colour PNGs of before/after under artifacts/ for a person to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "sim"


def _rgb(paths: list[Path], band_index: list[int]) -> np.ndarray:
    chans = []
    for p, i in zip(paths, band_index, strict=True):
        with rasterio.open(p) as ds:
            chans.append(ds.read(i).astype(np.float32) / 10000.0)
    rgb = np.stack(chans, axis=-1)
    return np.clip(rgb / 0.3 * 255.0, 0, 255).astype(np.uint8)


def test_true_colour_pngs(tiny_scene, tmp_path):
    from tuban.sim import make_scene

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = tiny_scene
    saved = []
    for date in ("before", "after"):
        rgb = _rgb([s.band_path(date, b) for b in ("B04", "B03", "B02")], [1, 1, 1])
        path = ARTIFACTS / f"s2_tiny_seed0_{date}.png"
        Image.fromarray(rgb).resize((512, 512), Image.NEAREST).save(path)
        saved.append((path, rgb))
    g = make_scene(tmp_path / "gf2", seed=0, size=640, sensor="gf2", resolution=4.0)
    for date in ("before", "after"):
        rgb = _rgb([g.after if date == "after" else g.before] * 3, [3, 2, 1])
        path = ARTIFACTS / f"gf2_4m_seed0_{date}.png"
        Image.fromarray(rgb).save(path)
        saved.append((path, rgb))
    for path, rgb in saved:
        assert path.stat().st_size > 10_000
        # imagery, not flat colour or noise: strong spatial structure, neighbours correlated
        grey = rgb.mean(axis=-1)
        assert grey.std() > 8
        corr = np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0, 1]
        assert corr > 0.6
    # the two dates differ (harvest, sites), but not everywhere
    b, a = saved[0][1].astype(int), saved[1][1].astype(int)
    changed = np.abs(a - b).sum(axis=-1) > 60
    assert 0.05 < changed.mean() < 0.8
