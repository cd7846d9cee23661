"""The fused kernels fed uint16 DN (scaled inside) equal the same kernels fed float32 reflectance, bit for bit."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tuban.raster import fused
from tuban.raster.change import get_method

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")

CASES = [  # method, roles, shape, cell, row, col
    ("construction", ("blue", "green", "red", "nir"), (61, 83), 8, 13, 21),
    ("construction", ("blue", "green", "red", "nir", "swir1", "swir2"), (70, 64), 5, 0, 3),
    ("construction", ("blue", "green", "red", "nir", "swir1"), (1, 40), 4, 7, 0),
    ("rgb", ("red", "green", "blue"), (57, 66), 6, 2, 9),
]


@pytest.mark.parametrize(("name", "avail", "shape", "cell", "row", "col"), CASES)
@pytest.mark.parametrize("mixed", [False, True])
def test_uint16_input_equals_float32_reflectance_exactly(name, avail, shape, cell, row, col, mixed) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((name, shape, cell)).encode()))
    m = get_method(name, avail)
    assert m.layout is not None
    nb = len(m.roles)
    dn_b = rng.integers(300, 3000, (nb, *shape), dtype=np.uint16)
    dn_a = rng.integers(300, 3000, (nb, *shape), dtype=np.uint16)
    dn_a[:, : shape[0] // 2, : shape[1] // 3] += 2000  # a changed site
    sc_b, sc_a = 1e-4, 2.5e-5
    f_b = dn_b.astype(np.float32) * np.float32(sc_b)  # what the float32 reads gave
    f_a = dn_a.astype(np.float32) * np.float32(sc_a)
    st_b = (np.median(f_b, axis=(1, 2)).astype(np.float32), np.full(nb, 20, np.float32))
    st_a = (np.median(f_a, axis=(1, 2)).astype(np.float32), np.full(nb, 60, np.float32))
    use = rng.random(shape) > 0.15
    kw = {"cell": cell, "row": row, "col": col}
    ref = fused.components(f_b, f_a, st_b, st_a, use, m.layout, **kw)
    in_b = f_b if mixed else dn_b  # mixed: one date float32, the other uint16
    got = fused.components(in_b, dn_a, st_b, st_a, use, m.layout, scale_b=sc_b, scale_a=sc_a, **kw)
    np.testing.assert_array_equal(got, ref)
    cs = (np.median(ref, axis=(1, 2)).astype(np.float32), np.ones(len(ref), np.float32))
    np.testing.assert_array_equal(
        fused.components(in_b, dn_a, st_b, st_a, use, m.layout, comp_stats=cs, scale_b=sc_b, scale_a=sc_a, **kw),
        fused.components(f_b, f_a, st_b, st_a, use, m.layout, comp_stats=cs, **kw))


def test_valid_u16_flags_nodata_and_saturation_like_convert_u16() -> None:
    rng = np.random.default_rng(3)
    dn = rng.integers(0, 65536, (3, 17, 23), dtype=np.uint16)
    dn[1, 2, 3] = 0
    dn[2, 5, 5] = 65535
    for nodata, mask_max in ((0, True), (None, True), (0, False), (7.5, True)):
        a, b = np.ones((17, 23), bool), np.ones((17, 23), bool)
        fused.convert_u16(dn, np.empty((3, 17, 23), np.float32), [0, 1, 2], a, nodata=nodata, mask_max=mask_max,
                          scale=1.0)
        fused.valid_u16(dn, b, nodata=nodata, mask_max=mask_max)
        np.testing.assert_array_equal(a, b)
        assert not b.all()
