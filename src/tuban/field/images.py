"""Safe inspection of uploaded photos (照片文件检查): format, pixel flood, EXIF, hashes, display copy.

The original bytes are never changed (they are stored byte for byte under their sha256);
this module only *reads* them:

* the format comes from the magic bytes and must decode with an allowlisted Pillow
  plugin (JPEG, PNG, WEBP by default): a ``.jpg`` that is really HTML, SVG or PNG-in-
  disguise is refused (reliability.md B #25);
* the declared pixel count is checked right after the header is read and *before*
  anything is decoded (pixel flood, B #26); multi-frame files (MPO, animated) are refused;
* EXIF GPS is parsed defensively: ``0/0`` rationals, NaN, ``lat=123``, a missing N/S or
  E/W ref or a broken GPS IFD all give ``gps_valid=False`` with the reason — never (0, 0)
  (B #27); EXIF times are kept raw and parsed, with a flag when there is no time zone (B #28).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from tuban.errors import LimitExceededError, UnsafeInputError

__all__ = [
    "ExifInfo",
    "ImageInfo",
    "display_copy",
    "inspect_image",
    "parse_exif",
    "perceptual_hash",
    "probe_image",
    "sniff_format",
]

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION, _TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_TAG_DATETIME_ORIGINAL, _TAG_OFFSET_ORIGINAL = 0x9003, 0x9011


def sniff_format(data: bytes) -> str | None:
    """The format named by the magic bytes (``JPEG``, ``PNG``, ``WEBP``) or ``None``."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


@dataclass(frozen=True, slots=True)
class ExifInfo:
    """What the EXIF block says, with validity flags (raw values kept as text)."""

    gps_lon: float | None = None
    gps_lat: float | None = None
    gps_valid: bool = False
    gps_problem: str | None = "no GPS IFD"
    datetime_raw: str | None = None
    datetime: dt.datetime | None = None
    datetime_has_tz: bool = False
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps_raw: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["datetime"] = self.datetime.isoformat() if self.datetime else None
        return out


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The result of :func:`inspect_image` (no pixel data)."""

    format: str
    mime: str
    width: int
    height: int
    size: int
    sha256: str
    phash: str | None
    exif: ExifInfo


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text[:200] or None


def _ratio(value: Any) -> float:
    """An EXIF rational (IFDRational, tuple or number) as a float; NaN when ``x/0``."""
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if float(den) != 0 else math.nan
    try:
        den = getattr(value, "denominator", 1)
        if den == 0:
            return math.nan
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


def _dms(value: Any) -> float:
    if isinstance(value, tuple | list) and len(value) == 3:
        d, m, s = (_ratio(v) for v in value)
        if any(math.isnan(v) or v < 0 for v in (d, m, s)) or m >= 60 or s >= 60:
            return math.nan
        return d + m / 60.0 + s / 3600.0
    if isinstance(value, tuple | list) and len(value) == 1:
        return _ratio(value[0])
    return _ratio(value)


def _gps(gps: dict[int, Any]) -> tuple[float | None, float | None, bool, str | None]:
    if not gps:
        return None, None, False, "no GPS IFD"
    lat_ref, lat_v, lon_ref, lon_v = (gps.get(k) for k in (1, 2, 3, 4))
    if lat_v is None or lon_v is None:
        return None, None, False, "GPS latitude or longitude missing"
    lat_ref, lon_ref = _text(lat_ref), _text(lon_ref)
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return None, None, False, f"GPS reference missing or invalid (lat ref {lat_ref!r}, lon ref {lon_ref!r})"
    lat, lon = _dms(lat_v), _dms(lon_v)
    if math.isnan(lat) or math.isnan(lon) or math.isinf(lat) or math.isinf(lon):
        return None, None, False, "GPS value is not a number (0/0 or NaN rational)"
    if lat > 90 or lon > 180:
        return None, None, False, f"GPS value out of range (lat {lat:.4f}, lon {lon:.4f})"
    if lat == 0 and lon == 0:
        return None, None, False, "GPS position 0,0 (no fix)"
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    return lon, lat, True, None


def _parse_time(raw: str | None, offset: str | None) -> tuple[dt.datetime | None, bool]:
    if not raw:
        return None, False
    try:
        naive = dt.datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, False
    if offset:
        try:
            sign = -1 if offset.startswith("-") else 1
            hh, mm = offset.lstrip("+-").split(":")
            tz = dt.timezone(sign * dt.timedelta(hours=int(hh), minutes=int(mm)))
            return naive.replace(tzinfo=tz), True
        except (ValueError, OverflowError):
            return naive, False
    return naive, False


def parse_exif(img: Image.Image) -> ExifInfo:
    """EXIF of an opened image; every broken part becomes a flag, never an exception."""
    try:
        exif = img.getexif()
    except Exception as exc:
        return ExifInfo(gps_problem=f"EXIF unreadable: {type(exc).__name__}")
    try:
        gps_ifd = dict(exif.get_ifd(_GPS_IFD))
    except Exception as exc:
        gps_ifd = {}
        gps_err: str | None = f"GPS IFD unreadable: {type(exc).__name__}"
    else:
        gps_err = None
    try:
        sub = dict(exif.get_ifd(_EXIF_IFD))
    except Exception:
        sub = {}
    lon, lat, valid, problem = _gps(gps_ifd)
    if gps_err:
        problem = gps_err
    raw_time = _text(sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME))
    when, has_tz = _parse_time(raw_time, _text(sub.get(_TAG_OFFSET_ORIGINAL)))
    orientation = exif.get(_TAG_ORIENTATION)
    return ExifInfo(
        gps_lon=lon, gps_lat=lat, gps_valid=valid, gps_problem=problem,
        datetime_raw=raw_time, datetime=when, datetime_has_tz=has_tz,
        make=_text(exif.get(_TAG_MAKE)), model=_text(exif.get(_TAG_MODEL)),
        orientation=orientation if isinstance(orientation, int) else None,
        gps_raw={str(k): (_text(v) or "")[:80] for k, v in list(gps_ifd.items())[:32]},
    )


def _open(data: bytes, *, formats: tuple[str, ...], max_pixels: int) -> Image.Image:
    declared = sniff_format(data)
    if declared is None or declared not in formats:
        raise UnsafeInputError(
            f"the file is not an allowed image (magic bytes say {declared or 'unknown'})",
            hint=f"upload a photo in one of: {', '.join(formats)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[declared])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeInputError(f"image declares too many pixels: {exc}",
                               hint=f"the limit is {max_pixels} pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsafeInputError(f"the {declared} file cannot be read: {exc}") from exc
    w, h = img.size
    if w <= 0 or h <= 0 or w * h > max_pixels:
        img.close()
        raise UnsafeInputError(f"image declares {w}×{h} = {w * h} pixels, more than the limit {max_pixels}",
                               hint="a pixel flood is refused before decoding; send the camera original")
    n = int(getattr(img, "n_frames", 1))
    if n > 1:
        img.close()
        raise UnsafeInputError(f"multi-frame image ({n} frames) refused", hint="send a single-frame photo")
    return img


def perceptual_hash(img: Image.Image) -> str:
    """A 64-bit difference hash (dHash) of the picture, as 16 hex digits."""
    small = img.copy()
    small.draft("L", (64, 64))
    gray = ImageOps.exif_transpose(small).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    px = gray.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return f"{bits:016x}"


def inspect_image(data: bytes, *, formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP"),
                  max_pixels: int = 60_000_000, max_bytes: int = 30 * 1024 * 1024) -> ImageInfo:
    """Check and describe an uploaded photo (no change to *data*).

    Raises
    ------
    LimitExceededError
        More than *max_bytes*.
    UnsafeInputError
        Not an allowlisted format by magic bytes and decoder, a pixel flood, multi-frame, or
        undecodable.
    """
    if len(data) > max_bytes:
        raise LimitExceededError(f"photo is {len(data)} bytes, the limit is {max_bytes}")
    img = _open(data, formats=formats, max_pixels=max_pixels)
    try:
        exif = parse_exif(img)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                phash = perceptual_hash(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise UnsafeInputError(f"the {img.format} file is truncated or corrupt: {exc}") from exc
        fmt = img.format or "?"
        return ImageInfo(format=fmt, mime=Image.MIME.get(fmt, "application/octet-stream"), width=img.size[0],
                         height=img.size[1], size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         phash=phash, exif=exif)
    finally:
        img.close()


def probe_image(data: bytes, *, formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP"), max_pixels: int = 60_000_000,
                max_bytes: int = 30 * 1024 * 1024) -> tuple[str, str, int, int]:
    """The cheap checks (magic bytes, allowlisted decoder, pixel count, one frame) without decoding pixels.

    Returns ``(format, mime, width, height)``. This is what a photo must pass before it is
    acknowledged; EXIF, the perceptual hash and the display copy come after the commit.
    """
    if len(data) > max_bytes:
        raise LimitExceededError(f"photo is {len(data)} bytes, the limit is {max_bytes}")
    img = _open(data, formats=formats, max_pixels=max_pixels)
    try:
        fmt = img.format or "?"
        return fmt, Image.MIME.get(fmt, "application/octet-stream"), img.size[0], img.size[1]
    finally:
        img.close()


def display_copy(data: bytes, *, max_px: int = 1280, formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP"),
                 max_pixels: int = 60_000_000, quality: int = 82) -> bytes:
    """A JPEG at most *max_px* on its long side, upright (EXIF orientation applied), no metadata."""
    img = _open(data, formats=formats, max_pixels=max_pixels)
    try:
        img.draft("RGB", (max_px, max_px))
        out = ImageOps.exif_transpose(img).convert("RGB")
        out.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=quality, optimize=False)
        return buf.getvalue()
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnsafeInputError(f"cannot make a display copy: {exc}") from exc
    finally:
        img.close()
