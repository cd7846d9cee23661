"""Change scores (变化强度), as a registry of methods.

A method turns one window of two (or three) dates into a per-pixel score in three steps, so that the
pipeline can normalise every step with statistics of the *whole scene* (making results independent of
the tile size):

1. bands are standardised per date with scene-wide robust statistics (median / 1.4826·MAD);
2. ``components`` computes raw change components (arrays);
3. the components are standardised with scene-wide robust statistics and ``combine`` makes the score.

Methods
-------
``construction`` (default; 施工扰动)
    change-vector magnitude of the standardised bands, *misregistration-tolerant* (for each pixel the
    smallest distance to the other date within a 3×3 neighbourhood, both ways), gated by the direction of
    change: vegetation loss (NDVI drop), brightening of the visible bands, bare-soil gain (BSI increase).
    Pure magnitude without a construction-like direction scores low. With an earlier baseline date, each
    component takes the weaker of the two comparisons (after vs before, after vs baseline), so seasonal and
    farming cycles that were already bare earlier are suppressed.
``cva``
    classical change-vector magnitude of the standardised bands (the baseline).
``rgb``
    the construction method on red/green/blue only (brightening and loss of visible greenness).
``expr:<expression>``
    the standardised increase of a user index, e.g. ``expr:(swir1 - nir) / (swir1 + nir)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tuban.errors import BandError, UsageError
from tuban.raster.indices import INDICES, compile_expression, expression_roles, normalized_difference

__all__ = ["METHODS", "ChangeMethod", "get_method", "neighbourhood_distance"]

SIX = ("blue", "green", "red", "nir", "swir1", "swir2")


def _shift_views(x: np.ndarray, r: int):
    """Views of ``x`` (bands, h, w) shifted by every offset in [-r, r]² (edge padding)."""
    p = np.pad(x, ((0, 0), (r, r), (r, r)), mode="edge")
    h, w = x.shape[1:]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            yield p[:, r + dy : r + dy + h, r + dx : r + dx + w]


def _min_dist(a: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
    best = None
    for s in _shift_views(b, r):
        d = a - s
        d2 = np.einsum("ijk,ijk->jk", d, d)
        best = d2 if best is None else np.minimum(best, d2, out=best)
    return best


def neighbourhood_distance(za: np.ndarray, zb: np.ndarray, *, radius: int = 1) -> np.ndarray:
    """Misregistration-tolerant change magnitude of two standardised stacks (bands, h, w).

    ``max(min_o |zb(p) − za(p+o)|, min_o |za(p) − zb(p+o)|)`` over offsets ``o`` in a (2r+1)² window:
    sub-pixel shifts, building lean and shadow edges no longer look like change, real change does.
    """
    if radius == 0:
        d = zb - za
        return np.sqrt(np.einsum("ijk,ijk->jk", d, d))
    return np.sqrt(np.maximum(_min_dist(zb, za, radius), _min_dist(za, zb, radius)))


@dataclass(frozen=True)
class ChangeMethod:
    """A change-score method (see module docstring)."""

    name: str
    roles: tuple[str, ...]
    halo: int
    smooth: float
    components: Callable[..., dict[str, np.ndarray]]
    combine: Callable[[dict[str, np.ndarray]], np.ndarray]
    description: str = ""


def _gate(m: np.ndarray, direction: np.ndarray) -> np.ndarray:
    # full weight once the direction evidence reaches 2 robust standard deviations
    return m * np.clip(direction / np.float32(2), 0, 1)


def _construction(roles: tuple[str, ...]) -> ChangeMethod:
    vis = [i for i, r in enumerate(roles) if r in ("blue", "green", "red")]
    has_swir = "swir1" in roles

    def components(raw_b: dict, raw_a: dict, za: np.ndarray, zb: np.ndarray, raw_0: dict | None = None,
                   z0: np.ndarray | None = None) -> dict[str, np.ndarray]:
        mag = neighbourhood_distance(za, zb, radius=1)
        ndvi_b, ndvi_a = INDICES["ndvi"][1](raw_b), INDICES["ndvi"][1](raw_a)
        bright = (zb[vis] - za[vis]).mean(axis=0)
        out = {"mag": mag, "veg_loss": ndvi_b - ndvi_a, "bright": bright}
        if has_swir:
            out["soil_gain"] = INDICES["bsi"][1](raw_a) - INDICES["bsi"][1](raw_b)
        if raw_0 is not None and z0 is not None:  # baseline: weaker of the two comparisons
            out["mag"] = np.minimum(mag, neighbourhood_distance(z0, zb, radius=1))
            out["veg_loss"] = np.minimum(out["veg_loss"], INDICES["ndvi"][1](raw_0) - ndvi_a)
            out["bright"] = np.minimum(bright, (zb[vis] - z0[vis]).mean(axis=0))
            if has_swir:
                out["soil_gain"] = np.minimum(out["soil_gain"],
                                              INDICES["bsi"][1](raw_a) - INDICES["bsi"][1](raw_0))
        return out

    def combine(c: dict[str, np.ndarray]) -> np.ndarray:
        direction = np.maximum(c["veg_loss"], c["bright"])
        if "soil_gain" in c:
            direction = np.maximum(direction, c["soil_gain"])
        return _gate(np.maximum(c["mag"], 0), direction)

    return ChangeMethod("construction", roles, 8, 1.0, components, combine,
                        "misregistration-tolerant CVA gated by vegetation loss / brightening / bare-soil gain")


def _rgb(roles: tuple[str, ...]) -> ChangeMethod:
    def components(raw_b: dict, raw_a: dict, za: np.ndarray, zb: np.ndarray, raw_0: dict | None = None,
                   z0: np.ndarray | None = None) -> dict[str, np.ndarray]:
        mag = neighbourhood_distance(za, zb, radius=1)
        green_b, green_a = INDICES["vari"][1](raw_b), INDICES["vari"][1](raw_a)
        out = {"mag": mag, "veg_loss": green_b - green_a, "bright": (zb - za).mean(axis=0)}
        if raw_0 is not None and z0 is not None:
            out["mag"] = np.minimum(mag, neighbourhood_distance(z0, zb, radius=1))
            out["veg_loss"] = np.minimum(out["veg_loss"], INDICES["vari"][1](raw_0) - green_a)
            out["bright"] = np.minimum(out["bright"], (zb - z0).mean(axis=0))
        return out

    def combine(c: dict[str, np.ndarray]) -> np.ndarray:
        return _gate(np.maximum(c["mag"], 0), np.maximum(c["veg_loss"], c["bright"]))

    return ChangeMethod("rgb", roles, 8, 1.0, components, combine, "construction method on RGB only")


def _cva(roles: tuple[str, ...]) -> ChangeMethod:
    def components(raw_b: dict, raw_a: dict, za: np.ndarray, zb: np.ndarray, raw_0: dict | None = None,
                   z0: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"mag": neighbourhood_distance(za, zb, radius=0)}

    return ChangeMethod("cva", roles, 0, 0.0, components, lambda c: c["mag"], "change-vector magnitude (baseline)")


def _expr(text: str) -> ChangeMethod:
    fn = compile_expression(text)
    roles = expression_roles(text)

    def components(raw_b: dict, raw_a: dict, za: np.ndarray, zb: np.ndarray, raw_0: dict | None = None,
                   z0: np.ndarray | None = None) -> dict[str, np.ndarray]:
        d = fn(raw_a) - fn(raw_b)
        if raw_0 is not None:
            d = np.minimum(d, fn(raw_a) - fn(raw_0))
        return {"increase": d}

    return ChangeMethod(f"expr:{text}", roles, 0, 1.0, components, lambda c: c["increase"],
                        "standardised increase of a user index")


#: method name → factory of the roles a scene pair offers
METHODS: dict[str, Callable[[tuple[str, ...]], ChangeMethod]] = {
    "construction": _construction,
    "rgb": _rgb,
    "cva": _cva,
}


def get_method(name: str | None, available: tuple[str, ...]) -> ChangeMethod:
    """The change method ``name`` (``None``/``auto``: construction, or rgb for RGB-only pairs)."""
    avail = set(available)
    if name and name.startswith("expr:"):
        m = _expr(name[5:])
        missing = set(m.roles) - avail
        if missing:
            raise BandError(f"expression needs band role(s) {sorted(missing)} the scenes lack; they have {sorted(avail)}")
        return m
    if name in (None, "", "auto"):
        name = "construction" if {"blue", "green", "red", "nir"} <= avail else "rgb"
    if name not in METHODS:
        raise UsageError(f"unknown change method {name!r}", hint=f"use one of {sorted(METHODS)} or expr:<expression>")
    if name == "rgb":
        need: tuple[str, ...] = ("red", "green", "blue")
        roles = need
    else:
        need = ("blue", "green", "red", "nir")
        roles = tuple(r for r in SIX if r in avail)
    missing = [r for r in need if r not in avail]
    if missing:
        raise BandError(f"method {name!r} needs band role(s) {missing}; the scenes have {sorted(avail)}",
                        hint="use --method rgb for RGB-only imagery or name bands with --bands")
    return METHODS[name](roles)


def robust_stats(sample: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826·MAD of a 1-D sample (MAD floored to avoid division by zero)."""
    s = sample[np.isfinite(sample)]
    if s.size == 0:
        return 0.0, 1.0
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) * 1.4826
    if mad <= 1e-12:
        mad = float(np.std(s)) or 1.0
    return med, mad


def otsu_threshold(sample: np.ndarray, *, bins: int = 512) -> float:
    """Otsu's threshold of ``sample`` with its extreme 0.1 % tails clipped (outliers do not steer it)."""
    s = sample[np.isfinite(sample)]
    if s.size == 0:
        return float("inf")
    lo, hi = np.percentile(s, [0.1, 99.9])
    if hi <= lo:
        return float(hi)
    hist, edges = np.histogram(np.clip(s, lo, hi), bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centers)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def brightness_ratio(raw_b: dict, raw_a: dict) -> np.ndarray:  # pragma: no cover - helper for users
    """After/before visible brightness ratio."""
    return normalized_difference(INDICES["brightness"][1](raw_a), INDICES["brightness"][1](raw_b))
