"""Masks (掩膜): clouds, cloud shadows, saturation and water, from reflectance arrays.

Kernels take arrays and return boolean arrays. The spectral cloud test is a Fmask-like "bright and white"
test without thermal bands, keeping only cloud-sized blobs (single bright roofs are not clouds) and dilating
them. It needs reflectance (a known scale); with DN only, callers skip it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cloud_mask", "qa_cloud_mask", "saturation_mask", "shadow_mask", "water_mask"]


def _blobs(mask: np.ndarray, *, min_px: int, dilate: int) -> np.ndarray:
    import cv2

    m: np.ndarray = mask.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
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


def water_mask(green: np.ndarray, nir: np.ndarray, swir1: np.ndarray | None = None) -> np.ndarray:
    """Open water: NDWI > 0 (and MNDWI > 0.2 when SWIR is there)."""
    from tuban.raster.indices import normalized_difference

    w = normalized_difference(green, nir) > 0
    if swir1 is not None:
        w &= normalized_difference(green, swir1) > 0.2
    return w


def saturation_mask(dn: np.ndarray, *, max_value: float) -> np.ndarray:
    """Pixels saturated (≥ ``max_value``) in any band of a (bands, h, w) DN array."""
    return np.any(dn >= max_value, axis=0)


def qa_cloud_mask(qa: np.ndarray) -> np.ndarray:
    """Landsat Collection-2 ``QA_PIXEL``: dilated cloud (bit 1), cirrus (2), cloud (3), shadow (4)."""
    q = qa.astype(np.uint32)
    return ((q >> 1) & 1 | (q >> 2) & 1 | (q >> 3) & 1 | (q >> 4) & 1).astype(bool)
