"""label_polygons gives rasterio's (GDAL's) polygons of 4-connected labels: same shapes, same WKB."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import pytest
import shapely
from affine import Affine
from numpy.typing import ArrayLike
from rasterio import features

from tuban import jit
from tuban.raster.vectorize import label_polygons

IDENTITY = Affine.identity()
UTM = Affine(10.0, 0.0, 500_020.0, 0.0, -10.0, 4_100_030.0)  # 10 m pixels, north-up, offset origin


def _runs(m: np.ndarray, gap: int = 16) -> list[tuple[int, int, int, int]]:
    """Row runs of nonzero pixels cropped to their columns (as tuban.detect.kernel._runs)."""
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return []
    out = []
    for rr in np.split(rows, np.flatnonzero(np.diff(rows) > gap) + 1):
        r0, r1 = int(rr[0]), int(rr[-1]) + 1
        cols = np.flatnonzero(m[r0:r1].any(axis=0))
        out.append((r0, r1, int(cols[0]), int(cols[-1]) + 1))
    return out


def _label(m: ArrayLike) -> np.ndarray:
    return cv2.connectedComponents(np.asarray(m, np.uint8), connectivity=4, ltype=cv2.CV_32S)[1]


def _random_labels(seed: int, h: int = 60, w: int = 80) -> np.ndarray:
    """Random masks (noise of density 0.2–0.7, or smoothed noise: blobs) labelled 4-connected; odd seeds
    also put labels of two classes side by side (labels touching labels)."""
    rng = np.random.default_rng(seed)
    if seed % 3 == 2:
        z = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
        m = z > np.quantile(z, rng.uniform(0.3, 0.8))
    else:
        m = rng.random((h, w)) < rng.uniform(0.2, 0.7)
    lab = _label(m)
    if seed % 2:
        other = _label(~m & (rng.random((h, w)) < 0.6))
        lab[other > 0] = other[other > 0] + lab.max()
    return lab


def _check(lab: np.ndarray, transform: Affine = IDENTITY, windows: list[tuple[int, int, int, int]] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """label_polygons against rasterio.features.shapes, label by label; returns label_polygons' answer."""
    lab = np.asarray(lab, np.int32)
    geoms, labels = label_polygons(lab, _runs(lab) if windows is None else windows, tuple(transform)[:6])
    ref: dict[int, list] = {}
    for geom, value in features.shapes(lab, mask=lab > 0, connectivity=4, transform=transform):
        ref.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    assert labels.tolist() == sorted(ref)  # one polygon per label, in label order
    assert len(geoms) == len(labels)
    assert shapely.is_valid(geoms).all()
    for g, v in zip(geoms, labels, strict=True):
        assert len(ref[v]) == 1  # a 4-connected label is one polygon for GDAL too
        r = ref[v][0]
        assert shapely.symmetric_difference(g, r).area == 0
        assert g.area == r.area
        assert shapely.equals(g, r)
        assert shapely.to_wkb(g) == shapely.to_wkb(r)  # same vertices, order and ring order
    return geoms, labels


def test_numba_is_there() -> None:
    if not jit.available():
        pytest.fail("numba is part of the test environment (the detect extra)")


@pytest.mark.parametrize("seed", range(12))
def test_random_labels_equal_rasterio(seed: int) -> None:
    lab = _random_labels(seed)
    geoms, _ = _check(lab)
    assert len(geoms) > 5
    if seed == 0:
        assert sum(len(g.interiors) for g in geoms) > 0


def test_blobs_with_holes_islands_and_saddles() -> None:
    lab = np.zeros((24, 30), np.int32)
    lab[1:12, 1:14] = 1  # a square with a background hole holding an island of another label
    lab[3:10, 3:12] = 0
    lab[5:8, 5:10] = 2
    lab[6, 7] = 0  # a hole in the island holding a nested island
    lab[6, 7] = 3
    lab[6, 6] = 0
    lab[12, 14] = 4  # a pixel touching label 1 only at its corner
    lab[2, 16:28] = 5  # a 1-pixel-wide line
    lab[3:20, 27] = 5  # ... bending down along the array's right side
    lab[14:24, 0:10] = 6  # a square on the array's corner, its hole touching the shell at one corner
    lab[20, 5] = 0
    lab[21, 6] = 0  # ... and a second hole pixel touching the first at a corner
    lab[23, 9] = 0
    lab[22, 8] = 0  # a notch touching the outside at a corner: a hole pinched at one vertex
    lab[16, 20] = 7  # single pixels
    lab[18, 22] = 8
    geoms, labels = _check(lab)
    assert labels.tolist() == list(range(1, 9))
    assert [len(g.interiors) for g in geoms[:3]] == [1, 1, 0]
    assert len(geoms[5].interiors) >= 3


@pytest.mark.parametrize("pattern", ["ring_saddle", "checker_in_frame", "diagonal_holes", "spiral", "stairs"])
def test_saddles_give_valid_polygons_as_gdal(pattern: str) -> None:
    """Pixels of one label touching at a corner only: the enclosed part becomes a hole touching the shell (or
    another hole) at one vertex, never a self-touching ring."""
    if pattern == "ring_saddle":  # GDAL: shell through (2, 2) once, a hole through it once
        lab = _label([[1, 1, 1], [1, 0, 1], [1, 1, 0]])
    elif pattern == "checker_in_frame":
        m = np.ones((11, 11), bool)
        m[1:-1, 1:-1] = (np.add.outer(np.arange(9), np.arange(9)) % 2) == 0
        lab = _label(m)
    elif pattern == "diagonal_holes":
        m = np.ones((8, 8), bool)
        m[np.arange(1, 7), np.arange(1, 7)] = False
        m[np.arange(1, 6), np.arange(6, 1, -1)] = False
        lab = _label(m)
    elif pattern == "spiral":
        m = np.zeros((13, 13), bool)
        m[0, :] = m[:, 12] = m[12, :] = m[2:, 0] = True
        m[2, 0:11] = m[2:11, 10] = m[10, 2:11] = m[4:10, 2] = True
        m[4, 2:9] = m[4:9, 8] = m[8, 4:9] = True
        m[1, 1] = True  # a corner contact inside the spiral
        lab = _label(m)
    else:
        m = np.zeros((10, 10), bool)
        for k in range(9):
            m[k, k] = m[k, k + 1] = True
        m[9, :] = True
        m[:, 0] = True
        lab = _label(m)
    geoms, _ = _check(lab)
    assert shapely.is_valid(geoms).all()


def test_north_up_transform_maps_like_rasterio() -> None:
    lab = _random_labels(3)
    geoms, _ = _check(lab, UTM)
    g = geoms[0]
    x0, y0, x1, y1 = g.bounds
    assert x0 >= 500_020.0
    assert y1 <= 4_100_030.0
    assert (x1 - x0) % 10 == 0
    assert (y1 - y0) % 10 == 0
    assert shapely.is_ccw(g.exterior)  # north-up: shells counter-clockwise, as GDAL gives them
    assert all(not shapely.is_ccw(i) for gg in geoms for i in gg.interiors)
    # GDAL's order of operations in the affine: the same floats with shear and fractional origins too
    _check(lab, Affine(2.5, 0.25, 1000.7, -0.125, -2.5, 2000.1))


def test_window_tile_transform_equals_a_shapes_call_per_window() -> None:
    """The tile loop's way: shapes of each window's sub-array with the window's transform."""
    m = np.random.default_rng(5).random((70, 50)) < 0.45
    m[20:40] = False  # two runs
    lab = _label(m)
    runs = _runs(lab)
    assert len(runs) == 2
    geoms, labels = label_polygons(lab, runs, tuple(UTM)[:6])
    ref = {}
    for r0, r1, c0, c1 in runs:
        sub = lab[r0:r1, c0:c1]
        for geom, v in features.shapes(sub, mask=sub > 0, connectivity=4, transform=UTM * Affine.translation(c0, r0)):
            ref[int(v)] = shapely.to_wkb(shapely.geometry.shape(geom))
    assert sorted(ref) == labels.tolist()
    assert [ref[v] for v in labels.tolist()] == list(shapely.to_wkb(geoms))


def test_only_the_windows_are_read() -> None:
    lab = _label(np.eye(6, dtype=bool) | np.eye(6, k=1, dtype=bool))
    outside = lab.copy()
    outside[5, 0] = 99  # not in any window: never read
    _, labels = label_polygons(outside, [(0, 5, 0, 6)], tuple(IDENTITY)[:6])
    assert labels.tolist() == [1]
    geoms, labels = label_polygons(np.zeros((5, 5), np.int32), [], tuple(IDENTITY)[:6])
    assert len(geoms) == len(labels) == 0


_PURE_PYTHON = """
import sys
import numpy as np
import shapely
from tuban.raster import vectorize
labs = np.load(sys.argv[1])
assert not vectorize.jit.available() and not hasattr(vectorize._ring, "py_func")  # the plain functions
for k in sorted(labs):
    geoms, labels = vectorize.label_polygons(labs[k], [(0, labs[k].shape[0], 0, labs[k].shape[1])], UTM)
    print(k, " ".join(f"{v}:{w.hex()}" for v, w in zip(labels.tolist(), shapely.to_wkb(geoms))))
"""


def test_without_numba_the_python_kernel_gives_the_same_polygons(tmp_path) -> None:
    """TUBAN_FUSED=0 from the start (a fresh process): the kernel runs as plain Python, same polygons."""
    labs: dict[str, Any] = {f"lab{s}": _random_labels(s, 40, 50) for s in (0, 1, 2)}
    labs["saddle"] = _label([[1, 1, 1], [1, 0, 1], [1, 1, 0]])
    np.savez(tmp_path / "labs.npz", **labs)
    env = {**os.environ, "TUBAN_FUSED": "0"}
    out = subprocess.run([sys.executable, "-c", _PURE_PYTHON.replace("UTM", repr(tuple(UTM)[:6])),
                          str(tmp_path / "labs.npz")], env=env, capture_output=True, text=True, check=True).stdout
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert sorted(got) == sorted(labs)
    for k, lab in labs.items():
        geoms, labels = label_polygons(lab, _runs(lab), tuple(UTM)[:6])
        assert got[k] == " ".join(f"{v}:{w.hex()}" for v, w in zip(labels.tolist(), shapely.to_wkb(geoms), strict=True))


def test_threads_give_the_serial_result() -> None:
    labs = [_random_labels(s, 60, 80) for s in range(6)]
    serial = [shapely.to_wkb(label_polygons(lab, _runs(lab), tuple(UTM)[:6])[0]).tolist() for lab in labs]
    with ThreadPoolExecutor(2) as ex:
        threaded = list(ex.map(lambda lab: shapely.to_wkb(label_polygons(lab, _runs(lab), tuple(UTM)[:6])[0]).tolist(),
                               labs))
    assert threaded == serial
