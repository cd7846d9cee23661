"""Cloud, shadow and water masks of band stacks (one fused pass) equal the numpy masks of float32 bands."""

from __future__ import annotations

import numpy as np
import pytest

from tuban.raster import fused, masks


def _stacks(seed: int):
    """uint16 DN of two dates (blue, green, red, nir, swir1 / after in another band order) with cloud and
    shadow blobs of several sizes, some candidates on the thresholds' edges."""
    rng = np.random.default_rng(seed)
    h, w = 90, 130
    b = rng.integers(200, 4000, (5, h, w)).astype(np.uint16)
    a = b.copy()
    a[:, 10:40, 20:60] = rng.integers(3200, 3600, (5, 30, 40))  # a bright, white cloud on the after date
    a[:, 50:53, 5:8] = 3400  # a cloud too small to count
    b[3:5, 60:80, 70:110] = rng.integers(100, 400, (2, 20, 40))  # dark NIR and SWIR on the before date
    a[3:5, 60:80, 70:110] = rng.integers(2500, 3000, (2, 20, 40))
    a[3, 5:20, 100:125] = 700  # after-date shadow, NIR exactly at 0.07
    a[:, 85:, :] = rng.integers(2990, 3010, (5, 5, w))  # brightness right at the 0.3 threshold
    perm = [3, 0, 4, 1, 2]  # the after stack in another order: nir, blue, swir1, green, red
    return b, a[perm], {"blue": 0, "green": 1, "red": 2, "nir": 3, "swir1": 4}, \
        {"nir": 0, "blue": 1, "swir1": 2, "green": 3, "red": 4}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_float", [False, True])
def test_stack_masks_equal_the_band_masks(seed: int, as_float: bool) -> None:
    b, a, rb, ra = _stacks(seed)
    scale = 1e-4
    fb, fa = b * np.float32(scale), a * np.float32(scale)  # reflectance as the float32 reads give it
    sb = sa = scale
    if as_float:
        b, a, sb, sa = fb, fa, 1.0, 1.0
    for stack, ref, roles, s in ((b, fb, rb, sb), (a, fa, ra, sa)):
        want = masks.cloud_mask(ref[roles["blue"]], ref[roles["green"]], ref[roles["red"]])
        np.testing.assert_array_equal(masks.cloud_mask_stack(stack, roles, scale=s), want)
    assert masks.cloud_mask_stack(a, ra, scale=sa).any()
    for swir in (None, (rb["swir1"], ra["swir1"])):
        want = masks.shadow_mask(fb[rb["nir"]], fa[ra["nir"]], *((fb[rb["swir1"]], fa[ra["swir1"]]) if swir else ()))
        got = masks.shadow_mask_stack(b, a, (rb["nir"], ra["nir"]), swir, scale_b=sb, scale_a=sa)
        np.testing.assert_array_equal(got, want)
        assert got.any()


def test_stack_masks_without_the_fused_kernels(monkeypatch) -> None:
    b, a, rb, ra = _stacks(2)
    with_kernels = (masks.cloud_mask_stack(a, ra, scale=1e-4),
                    masks.shadow_mask_stack(b, a, (rb["nir"], ra["nir"]), scale_b=1e-4, scale_a=1e-4))
    monkeypatch.setattr(fused, "available", lambda: False)
    np.testing.assert_array_equal(masks.cloud_mask_stack(a, ra, scale=1e-4), with_kernels[0])
    np.testing.assert_array_equal(
        masks.shadow_mask_stack(b, a, (rb["nir"], ra["nir"]), scale_b=1e-4, scale_a=1e-4), with_kernels[1])


def test_no_candidate_gives_an_empty_mask() -> None:
    assert not masks.cloud_mask(*(np.full((3, 40, 50), 0.05, np.float32))).any()
    assert masks.cloud_mask(*(np.full((3, 40, 50), 0.05, np.float32))).shape == (40, 50)


def test_qa_flags_that_hide_the_ground() -> None:
    """Landsat QA_PIXEL: dilated cloud, cirrus, cloud, cloud shadow and snow bits; clear land, water and the
    confidence bits alone do not hide it. Sentinel-2 SCL: classes 1, 3 and 8–11."""
    from tuban.raster.masks import qa_cloud_mask, scl_cloud_mask

    clear_land, water = 21824, 21952  # bits 6 (clear) or 7 (water) with low confidences
    flagged = [clear_land | 1 << b for b in (1, 2, 3, 4, 5)]
    qa = np.array([clear_land, water, 1 << 8 | 1 << 10, *flagged], np.uint16)
    assert qa_cloud_mask(qa).tolist() == [False, False, False, True, True, True, True, True]
    scl = np.arange(12, dtype=np.uint8)
    assert np.flatnonzero(scl_cloud_mask(scl)).tolist() == [1, 3, 8, 9, 10, 11]


def _water_stack(seed: int) -> np.ndarray:
    """uint16 DN (green, nir, swir1) with open water, land, and pixels on NDWI's 0 and MNDWI's 0.2 (green =
    nir; green = 1.5 × swir1), and zeros (NDWI's 0 ÷ 0)."""
    rng = np.random.default_rng(seed)
    h, w = 60, 70
    d = rng.integers(0, 5000, (3, h, w)).astype(np.uint16)
    d[1, :20] = d[0, :20]  # NDWI exactly 0
    d[0, 20:40] = rng.integers(1, 3000, (20, w)) * 3  # MNDWI at 0.2, in integers
    d[2, 20:40] = d[0, 20:40] // 3 * 2
    d[1, 20:40] = d[0, 20:40] // 4  # and NDWI > 0 there
    d[:, 40:45, :10] = 0
    return d


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_float", [False, True])
@pytest.mark.parametrize("swir", [False, True])
def test_water_of_a_stack_equals_the_band_mask(seed: int, as_float: bool, swir: bool) -> None:
    """``water_mask_stack`` (one pass over uint16 DN × scale or float32 reflectance) gives the pixels of
    ``water_mask`` on the float32 reflectance the bands convert to, on the thresholds' edges too."""
    d = _water_stack(seed)
    scale = 2.75e-5
    ref = d * np.float32(scale)
    roles = {"green": 0, "nir": 1, **({"swir1": 2} if swir else {})}
    want = masks.water_mask(ref[0], ref[1], ref[2] if swir else None)
    stack, s = (ref, 1.0) if as_float else (d, scale)
    got = masks.water_mask_stack(stack, roles, scale=s)
    np.testing.assert_array_equal(got, want)
    assert got.any()
    assert not got.all()
    out = np.ones(d.shape[1:], bool)
    assert masks.water_mask_stack(stack, roles, scale=s, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_water_of_a_stack_without_the_fused_kernels(monkeypatch) -> None:
    d = _water_stack(3)
    roles = {"green": 0, "nir": 1, "swir1": 2}
    with_kernels = masks.water_mask_stack(d, roles, scale=1e-4)
    monkeypatch.setattr(fused, "available", lambda: False)
    np.testing.assert_array_equal(masks.water_mask_stack(d, roles, scale=1e-4), with_kernels)
    out = np.zeros(d.shape[1:], bool)
    np.testing.assert_array_equal(masks.water_mask_stack(d, roles, scale=1e-4, out=out), with_kernels)
    np.testing.assert_array_equal(out, with_kernels)
