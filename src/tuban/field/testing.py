"""Helpers for tests, the demo and benchmarks: generated photos with EXIF (测试照片).

>>> data = make_jpeg(lon=113.24, lat=35.22, seed=1)
>>> data[:3] == b"\\xff\\xd8\\xff"
True
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

__all__ = ["dms", "make_jpeg"]


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as EXIF degree/minute/second rationals."""
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = (value - d - m / 60) * 3600
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 1000), 1000)


def make_jpeg(*, width: int = 320, height: int = 240, lon: float | None = None, lat: float | None = None,
              taken_at: dt.datetime | None = None, seed: int = 0, gps: dict[int, Any] | None = None,
              quality: int = 85, target_bytes: int | None = None, make: str = "tuban-test") -> bytes:
    """A JPEG of a random landscape-ish picture with EXIF GPS and time.

    *gps* replaces the GPS IFD entirely (to write broken values: ``{2: (IFDRational(0, 0), …)}``).
    *target_bytes* grows the picture with noise until the file is about that size.
    """
    rng = np.random.default_rng(seed)
    if target_bytes:
        # this picture as a q=85 JPEG is ≈ 0.33 bytes a pixel; pick a size near the target
        px = max(target_bytes / 0.33, 64 * 64)
        width = int((px * 4 / 3) ** 0.5)
        height = int(width * 3 / 4)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([
        (xx * (0.5 + rng.random()) + rng.integers(0, 255)) % 256,
        (yy * (0.5 + rng.random()) + rng.integers(0, 255)) % 256,
        ((xx + yy) * rng.random() + rng.integers(0, 255)) % 256,
    ], axis=-1)
    coarse = rng.integers(0, 256, size=(6, 8, 3))
    blocks = coarse[(yy * 6) // height, (xx * 8) // width]
    base = (base * 0.3 + blocks * 0.7)
    noise = rng.integers(0, 60 if target_bytes else 12, size=base.shape)
    arr = np.clip(base + noise, 0, 255).astype("uint8")
    img = Image.fromarray(arr, "RGB")
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = "synthetic"
    when = taken_at or dt.datetime(2024, 9, 1, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    if when.tzinfo is not None:
        off = when.utcoffset() or dt.timedelta(0)
        minutes = int(off.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        sub[0x9011] = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    elif lon is not None and lat is not None:
        exif.get_ifd(0x8825).update({
            0: b"\x02\x02\x00\x00",
            1: "N" if lat >= 0 else "S", 2: dms(lat),
            3: "E" if lon >= 0 else "W", 4: dms(lon),
        })
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()
