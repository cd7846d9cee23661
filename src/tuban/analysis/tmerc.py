"""Transverse Mercator (Gauss–Krüger 高斯-克吕格) forward projection in numpy.

The Krüger series to sixth order in the third flattening (Karney 2011, "Transverse
Mercator with an accuracy of a few nanometers", J. Geodesy 85), the same accuracy class
as PROJ's default ``tmerc`` (Poder/Engsager): both agree to well under a micrometre
within a zone. Used for the common case — geographic CGCS2000 to a CGCS2000 Gauss–Krüger
zone — where it is several times faster than a PROJ call on millions of vertices and
splits across threads (numpy releases the GIL). :func:`tmerc_params` says when it applies;
everything else goes through pyproj.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyproj

__all__ = ["TmercParams", "tmerc_forward", "tmerc_params"]


@dataclass(frozen=True, slots=True)
class TmercParams:
    a: float  # semi-major axis (m)
    f: float  # flattening
    lon0: float  # central meridian (degrees)
    k0: float
    x0: float  # false easting (m)
    y0: float  # false northing (m)


_PARAM = {
    "Latitude of natural origin": "lat0",
    "Longitude of natural origin": "lon0",
    "Scale factor at natural origin": "k0",
    "False easting": "x0",
    "False northing": "y0",
}


def tmerc_params(src: pyproj.CRS, dst: pyproj.CRS) -> TmercParams | None:
    """Parameters when *src* is a geographic CRS (degrees) and *dst* a Transverse Mercator on
    the same geodetic CRS with latitude of origin 0 and metre units; ``None`` otherwise."""
    try:
        if not src.is_geographic or not dst.is_projected or dst.geodetic_crs is None:
            return None
        if not dst.geodetic_crs.equals(src, ignore_axis_order=True):
            return None
        op = dst.coordinate_operation
        if op is None or op.method_name != "Transverse Mercator":
            return None
        values: dict[str, float] = {}
        for p in op.params:
            key = _PARAM.get(p.name)
            if key is None:
                return None
            unit = (p.unit_name or "").lower()
            if key in ("lat0", "lon0") and unit != "degree":
                return None
            if key in ("x0", "y0") and unit != "metre":
                return None
            values[key] = float(p.value)
        axes = dst.axis_info
        if len(values) != 5 or values["lat0"] != 0.0 or any(ax.unit_name != "metre" for ax in axes):
            return None
        ell = dst.ellipsoid
        if ell is None or not ell.inverse_flattening:
            return None
        return TmercParams(a=float(ell.semi_major_metre), f=1.0 / float(ell.inverse_flattening),
                           lon0=values["lon0"], k0=values["k0"], x0=values["x0"], y0=values["y0"])
    except (pyproj.exceptions.CRSError, AttributeError):
        return None


def _alpha(n: float) -> tuple[float, ...]:
    n2, n3, n4, n5, n6 = n**2, n**3, n**4, n**5, n**6
    return (
        n / 2 - 2 * n2 / 3 + 5 * n3 / 16 + 41 * n4 / 180 - 127 * n5 / 288 + 7891 * n6 / 37800,
        13 * n2 / 48 - 3 * n3 / 5 + 557 * n4 / 1440 + 281 * n5 / 630 - 1983433 * n6 / 1935360,
        61 * n3 / 240 - 103 * n4 / 140 + 15061 * n5 / 26880 + 167603 * n6 / 181440,
        49561 * n4 / 161280 - 179 * n5 / 168 + 6601661 * n6 / 7257600,
        34729 * n5 / 80640 - 3418889 * n6 / 1995840,
        212378941 * n6 / 319334400,
    )


CHUNK = 1 << 16  # points per step: the temporaries stay in cache


def tmerc_forward(lon: np.ndarray, lat: np.ndarray, p: TmercParams, *,
                  out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Easting and northing (m) of geographic *lon*, *lat* (degrees; |lon − lon0| < 90°).

    Written with the cheap numpy functions (tan, arctan, arctanh, sinh, arcsinh, sqrt): the
    double angles come from algebra instead of sin/cos/hypot/arctan2. *out* may be
    ``(lon, lat)`` themselves: each block is read before it is written.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    x, y = out if out is not None else (np.empty_like(lon), np.empty_like(lat))
    n = p.f / (2 - p.f)
    e = math.sqrt(p.f * (2 - p.f))
    scale = p.k0 * p.a / (1 + n) * (1 + n**2 / 4 + n**4 / 64 + n**6 / 256)
    alp = _alpha(n)
    half = math.pi / 360.0
    for s in range(0, len(lon), CHUNK):
        sl = slice(s, s + CHUNK)
        tau = np.tan(np.radians(lat[sl]))
        sec = np.sqrt(1.0 + tau * tau)
        sig = np.sinh(e * np.arctanh(e * tau / sec))
        taup = tau * np.sqrt(1.0 + sig * sig) - sig * sec  # tan of the conformal latitude
        th = np.tan((lon[sl] - p.lon0) * half)  # tan(λ/2)
        den = 1.0 / (1.0 + th * th)
        cl, snl = (1.0 - th * th) * den, 2.0 * th * den  # cos λ, sin λ
        r2 = taup * taup + cl * cl
        xip = np.arctan(taup / cl)
        q = snl / np.sqrt(r2)  # sinh η'
        etap = np.arcsinh(q)
        s0, c0 = 2.0 * taup * cl / r2, (cl * cl - taup * taup) / r2  # sin 2ξ', cos 2ξ'
        sh0, ch0 = 2.0 * q * np.sqrt(1.0 + q * q), 1.0 + 2.0 * q * q  # sinh 2η', cosh 2η'
        ar, ai = 2 * c0 * ch0, -2 * s0 * sh0  # 2 cos(2ζ'), Clenshaw on the complex series
        y0r = np.zeros_like(xip)
        y0i = np.zeros_like(xip)
        y1r = np.zeros_like(xip)
        y1i = np.zeros_like(xip)
        for k in (6, 4, 2):
            y1r, y1i = ar * y0r - ai * y0i - y1r + alp[k - 1], ar * y0i + ai * y0r - y1i
            y0r, y0i = ar * y1r - ai * y1i - y0r + alp[k - 2], ar * y1i + ai * y1r - y0i
        sr, si = s0 * ch0, c0 * sh0  # sin(2ζ')
        y[sl] = p.y0 + scale * (xip + sr * y0r - si * y0i)
        x[sl] = p.x0 + scale * (etap + sr * y0i + si * y0r)
    return x, y
