"""The per-patch finishing steps (holes under the MMU, patches under it, simplification) and the serial run's
parking of tile results: whole patches finished by their tile equal the same patches finished at the end."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.detect import engine, kernel


def _square(x0: float, y0: float, size: float, holes: tuple[tuple[float, float, float], ...] = ()) -> shapely.Polygon:
    ring = [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size)]
    return shapely.Polygon(ring, [[(hx, hy), (hx + s, hy), (hx + s, hy + s), (hx, hy + s)] for hx, hy, s in holes])


def test_finish_patches_fills_small_holes_drops_small_patches_and_simplifies() -> None:
    steps = [(60, 0), (60, 1), (59, 1), (59, 2), (58, 2), (58, 3), (57, 3), (57, 4), (56, 4), (56, 5)]
    stair = shapely.Polygon([(50, 0), *steps, (50, 5)])
    geoms = np.asarray([
        _square(0, 0, 10, holes=((2, 2, 1), (5, 5, 3))),  # a 1-unit hole (filled) and a 9-unit one (kept)
        _square(20, 0, 1.5),  # 2.25 units: under the MMU, dropped
        shapely.MultiPolygon([_square(30, 0, 3, holes=((31, 1, 1),)), _square(40, 0, 3)]),
        stair,
    ], dtype=object)
    done, keep = kernel.finish_patches(geoms, min_area=4.0, tolerance=0.6)
    assert keep.tolist() == [True, False, True, True]
    assert len(done) == 3
    assert len(done[0].interiors) == 1
    assert done[0].area == 100 - 9
    assert all(len(p.interiors) == 0 for p in done[1].geoms)  # the hole of a multipolygon's part too
    assert shapely.get_num_coordinates(done[2]) < shapely.get_num_coordinates(geoms[3])  # simplified
    assert shapely.is_valid(done).all()
    # no tolerance: the same patches, unsimplified
    plain, keep0 = kernel.finish_patches(geoms, min_area=4.0, tolerance=0.0)
    assert keep0.tolist() == keep.tolist()
    assert shapely.equals(plain[2], geoms[3])
    # only the patches of ``which``: the others come back as they were (a seam piece is finished after merging)
    some, keep_some = kernel.finish_patches(geoms, min_area=4.0, tolerance=0.6, which=np.array([False, True, True,
                                                                                                  False]))
    assert keep_some.tolist() == [True, False, True, True]
    assert some[0] is geoms[0]  # untouched: its 1-unit hole is still there
    assert len(some[0].interiors) == 2
    assert shapely.equals(some[1], done[1])
    assert some[2] is geoms[3]  # not simplified
    empty, k = kernel.finish_patches(np.zeros(0, object), 4.0, 0.5)
    assert len(empty) == 0
    assert len(k) == 0


def test_spill_gives_every_result_back_by_key() -> None:
    results = {k: {"geoms": np.asarray([_square(k, 0, 1)], dtype=object), "sums": np.full((1, 6), k, float),
                   "seam": np.asarray([k % 2 == 0]), "unobservable_px": k, "pixels": 100} for k in range(5)}
    with engine._Spill() as spill:
        for k in (3, 0, 4, 1, 2):  # the visiting order is not the tiles' order
            spill.put(k, results[k])
        back = spill.take(5)
    for k, r in enumerate(back):
        assert shapely.equals(r["geoms"][0], results[k]["geoms"][0])
        np.testing.assert_array_equal(r["sums"], results[k]["sums"])
        assert r["seam"].tolist() == results[k]["seam"].tolist()
        assert r["unobservable_px"] == k


class _FillsUp:
    """A temporary file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        import io

        self._buf, self.room = io.BytesIO(), room

    def write(self, b: bytes) -> int:
        import errno

        if self._buf.tell() + len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._buf.write(b)

    def __getattr__(self, name: str):
        return getattr(self._buf, name)


def test_spill_keeps_results_in_memory_when_the_temporary_directory_cannot_take_them(monkeypatch) -> None:
    import tempfile

    results = [{"geoms": np.asarray([_square(k, 0, 1)], dtype=object), "sums": np.full((1, 6), k, float),
                "seam": np.zeros(1, bool), "unobservable_px": k, "pixels": 100} for k in range(6)]

    def unavailable(*a, **kw):
        raise PermissionError(13, "Permission denied", "/tmp")

    for make, parked in ((unavailable, 0), (lambda *a, **kw: _FillsUp(room=1500), 2)):  # no file; a disk filling
        monkeypatch.setattr(tempfile, "TemporaryFile", make)
        with engine._Spill() as spill:
            for k in (5, 2, 0, 4, 1, 3):
                spill.put(k, results[k])
            assert len(spill._at) == parked  # the scenario happened: that many parked before the file failed
            back = spill.take(6)
        assert [r["unobservable_px"] for r in back] == list(range(6))
        for k, r in enumerate(back):
            assert shapely.equals(r["geoms"][0], results[k]["geoms"][0])


def test_write_patches_replaces_the_layer_all_or_nothing(tmp_path, monkeypatch) -> None:
    """The patches layer is replaced, the file's other layers kept; a write that fails midway leaves the file as
    it was and no temporary file behind."""
    from types import SimpleNamespace

    import geopandas as gpd
    import pyogrio

    from tuban.detect.output import write_patches

    def frame(n: int) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"QAREA": np.arange(n, dtype=float)}, geometry=[_square(k, 0, 1) for k in range(n)],
                                crs="EPSG:32650")

    out = tmp_path / "run" / "patches.gpkg"  # the folder is created
    write_patches(SimpleNamespace(patches=frame(3)), out)
    frame(1).to_file(out, layer="scopes", driver="GPKG")  # another layer the user keeps in the same file
    write_patches(SimpleNamespace(patches=frame(5)), out)
    assert sorted(row[0] for row in pyogrio.list_layers(out)) == ["patches", "scopes"]
    assert len(gpd.read_file(out, layer="patches")) == 5
    before = out.read_bytes()

    def dies_midway(self, path, **kw):
        with open(path, "ab") as f:  # half a write, then the failure
            f.write(b"\0" * 4096)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", dies_midway)
    with pytest.raises(OSError, match="No space"):
        write_patches(SimpleNamespace(patches=frame(7)), out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["patches.gpkg"]
