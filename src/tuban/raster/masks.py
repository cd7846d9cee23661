"""Masks (掩膜): clouds, cloud shadows, saturation and water, from reflectance arrays.

Kernels take arrays and return boolean arrays. The spectral cloud test is a Fmask-like "bright and white"
test without thermal bands, keeping only cloud-sized blobs (single bright roofs are not clouds) and dilating
them. It needs reflectance (a known scale); with DN only, callers skip it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tuban.raster.profiles import CLASSI_ROLES

__all__ = ["cloud_flags", "cloud_mask", "cloud_mask_stack", "flag_cloud_mask", "qa_cloud_mask", "saturation_mask", "scl_cloud_mask", "shadow_mask", "shadow_mask_stack",
           "water_mask", "water_mask_stack"]


def _band(data: np.ndarray, i: int, scale: float) -> np.ndarray:
    """Band ``i`` of a stack as float32 reflectance: uint16 DN × ``scale`` (in float32, as the reads give it),
    other stacks as they are."""
    return data[i] * np.float32(scale) if data.dtype == np.uint16 else data[i]


def _blobs(mask: np.ndarray, *, min_px: int, dilate: int) -> np.ndarray:
    import cv2

    m: np.ndarray = mask if mask.dtype == np.uint8 else mask.astype(np.uint8)
    if not m.any():  # the usual case (no cloud / shadow candidate): the labelling below costs ~7 ms per Mpx
        return np.zeros(m.shape, bool)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if not m.any():
        return np.zeros(m.shape, bool)
    _n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    out = keep[lab].astype(np.uint8)
    if dilate and out.any():
        k = 2 * dilate + 1
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return out.astype(bool)


def cloud_mask(blue: np.ndarray, green: np.ndarray, red: np.ndarray, *, min_px: int = 100,
               dilate: int = 5, brightness: float = 0.3) -> np.ndarray:
    """Clouds from top-of-atmosphere / surface reflectance (0–1).

    Bright (mean visible reflectance > ``brightness``), white (spectrally flat, whiteness < 0.7) and hazy
    (HOT = blue − 0.5·red − 0.08 > 0) pixels, in blobs of at least ``min_px`` pixels, dilated by ``dilate``.
    """
    vis = (blue + green + red) / np.float32(3)
    safe = np.maximum(vis, np.float32(1e-6))
    white = (np.abs(blue - vis) + np.abs(green - vis) + np.abs(red - vis)) / safe
    cand = (vis > brightness) & (white < 0.7) & (blue - 0.5 * red - 0.08 > 0)
    return _blobs(cand, min_px=min_px, dilate=dilate)


def shadow_mask(nir_before: np.ndarray, nir_after: np.ndarray, swir_before: np.ndarray | None = None,
                swir_after: np.ndarray | None = None, *, dark: float = 0.08, min_px: int = 100,
                dilate: int = 3) -> np.ndarray:
    """Cloud shadows of either date: NIR (and SWIR) dark and far darker than on the other date, in blobs."""
    cand_a = (nir_after < dark) & (nir_after < 0.5 * nir_before)
    cand_b = (nir_before < dark) & (nir_before < 0.5 * nir_after)
    if swir_before is not None and swir_after is not None:
        cand_a &= swir_after < 0.6 * swir_before
        cand_b &= swir_before < 0.6 * swir_after
    return _blobs(cand_a, min_px=min_px, dilate=dilate) | _blobs(cand_b, min_px=min_px, dilate=dilate)


def cloud_mask_stack(data: np.ndarray, roles: dict[str, int], *, scale: float = 1.0, min_px: int = 100,
                     dilate: int = 5, brightness: float = 0.3) -> np.ndarray:
    """:func:`cloud_mask` of a band stack (bands, h, w): uint16 DN × ``scale`` or float32 reflectance
    (scale 1); ``roles`` gives the index of ``blue``, ``green``, ``red``. Same result, computed in one
    pass without float32 copies when the fused kernels are available."""
    from tuban.raster import fused

    ib, ig, ir = roles["blue"], roles["green"], roles["red"]
    if fused.available():
        return _blobs(fused.cloud_candidates(data, ib, ig, ir, scale=scale, brightness=brightness),
                      min_px=min_px, dilate=dilate)
    b, g, r = (_band(data, i, scale) for i in (ib, ig, ir))
    return cloud_mask(b, g, r, min_px=min_px, dilate=dilate, brightness=brightness)


def shadow_mask_stack(before: np.ndarray, after: np.ndarray, nir: tuple[int, int], swir: tuple[int, int] | None = None,
                      *, scale_b: float = 1.0, scale_a: float = 1.0, dark: float = 0.08, min_px: int = 100,
                      dilate: int = 3) -> np.ndarray:
    """:func:`shadow_mask` of two band stacks (uint16 DN × scale, or float32 reflectance); ``nir`` (and
    ``swir``): the band's index in the before and in the after stack. Same result, one pass when the fused
    kernels are available."""
    from tuban.raster import fused

    if fused.available():
        ca, cb = fused.shadow_candidates(before, after, nir, swir, scale_b=scale_b, scale_a=scale_a, dark=dark)
        return _blobs(ca, min_px=min_px, dilate=dilate) | _blobs(cb, min_px=min_px, dilate=dilate)

    sb, sa = (_band(before, swir[0], scale_b), _band(after, swir[1], scale_a)) if swir is not None else (None, None)
    return shadow_mask(_band(before, nir[0], scale_b), _band(after, nir[1], scale_a), sb, sa, dark=dark,
                       min_px=min_px, dilate=dilate)


def water_mask(green: np.ndarray, nir: np.ndarray, swir1: np.ndarray | None = None) -> np.ndarray:
    """Open water: NDWI > 0 (and MNDWI > 0.2 when SWIR is there)."""
    from tuban.raster.indices import normalized_difference

    w = normalized_difference(green, nir) > 0
    if swir1 is not None:
        w &= normalized_difference(green, swir1) > 0.2
    return w


def water_mask_stack(data: np.ndarray, roles: dict[str, int], *, scale: float = 1.0,
                     out: np.ndarray | None = None) -> np.ndarray:
    """:func:`water_mask` of a band stack (bands, h, w): uint16 DN × ``scale`` or float32 reflectance (scale
    1); ``roles`` gives the index of ``green``, ``nir`` and, when there, ``swir1``. Same pixels, in one pass
    without float32 copies of the bands when the fused kernels are available (into ``out``, a bool array of
    (h, w), when given)."""
    from tuban.raster import fused

    ig, inir, isw = roles["green"], roles["nir"], roles.get("swir1")
    if fused.available():
        return fused.water(data, ig, inir, isw, scale=scale, out=out)
    w = water_mask(_band(data, ig, scale), _band(data, inir, scale), None if isw is None else _band(data, isw, scale))
    if out is None:
        return w
    np.copyto(out, w)
    return out


def saturation_mask(dn: np.ndarray, *, max_value: float) -> np.ndarray:
    """Pixels saturated (≥ ``max_value``) in any band of a (bands, h, w) DN array."""
    return np.any(dn >= max_value, axis=0)


#: Landsat Collection-2 ``QA_PIXEL`` bits that hide the ground: dilated cloud (1), cirrus (2), cloud (3), cloud
#: shadow (4), snow (5)
QA_PIXEL_HIDDEN = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5)
#: Sentinel-2 L2A scene classification (SCL) classes that hide the ground: saturated or defective pixels (1),
#: cloud shadows (3), cloud of medium (8) and high (9) probability, thin cirrus (10), snow or ice (11)
SCL_HIDDEN = (1, 3, 8, 9, 10, 11)


def qa_cloud_mask(qa: np.ndarray) -> np.ndarray:
    """Landsat Collection-2 ``QA_PIXEL``: pixels flagged as cloud (dilated), cirrus, cloud shadow or snow
    (:data:`QA_PIXEL_HIDDEN`); snow hides the ground from a comparison of dates as clouds do."""
    return (qa.astype(np.uint32) & QA_PIXEL_HIDDEN) != 0


def scl_cloud_mask(scl: np.ndarray) -> np.ndarray:
    """Sentinel-2 L2A scene classification: pixels of the classes in :data:`SCL_HIDDEN` (clouds, their
    shadows, cirrus, snow)."""
    return np.isin(scl, SCL_HIDDEN)


def cloud_flags(roles: Iterable[str]) -> tuple[str, ...]:
    """The flag roles a date's clouds are read from, of those it has (``roles``), in order of preference:
    Landsat ``QA_PIXEL``; Sentinel-2 L2A's scene classification (it also flags shadows); Sentinel-2's
    ``MSK_CLASSI`` layers (L1C from processing baseline 04.00: opaque clouds, cirrus, snow; no shadows).
    Empty: none (the spectral test, when the scene allows it)."""
    have = set(roles)
    if "qa" in have:
        return ("qa",)
    if "scl" in have:
        return ("scl",)
    return tuple(r for r in CLASSI_ROLES if r in have)


def flag_cloud_mask(flags: tuple[str, ...], data: np.ndarray) -> np.ndarray:
    """Pixels hidden by clouds, their shadows or snow according to the flag bands ``data`` (one per role of
    ``flags``, as :func:`cloud_flags` chose them, read nearest onto the grid)."""
    if flags == ("qa",):
        return qa_cloud_mask(data[0])
    if flags == ("scl",):
        return scl_cloud_mask(data[0])
    if flags and set(flags) <= set(CLASSI_ROLES):
        return np.any(data != 0, axis=0)
    raise ValueError(f"no cloud flags among {flags}")
