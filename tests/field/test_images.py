"""Photo files: allowlisted formats by magic bytes, pixel flood, multi-frame, broken EXIF (reliability B #24–#28)."""

from __future__ import annotations

import datetime as dt
import io
import struct

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as R

from tuban.errors import LimitExceededError, UnsafeInputError
from tuban.field.checks import hamming
from tuban.field.images import display_copy, inspect_image, sniff_format
from tuban.field.testing import make_jpeg


def _nan3() -> tuple[R, R, R]:
    return (R(0, 0), R(0, 0), R(0, 0))


def test_good_exif_gps_and_time() -> None:
    data = make_jpeg(lon=113.2405, lat=35.2196, seed=2)
    info = inspect_image(data)
    assert info.format == "JPEG"
    assert info.mime == "image/jpeg"
    assert info.exif.gps_valid
    assert info.exif.gps_lon == pytest.approx(113.2405, abs=1e-6)
    assert info.exif.gps_lat == pytest.approx(35.2196, abs=1e-6)
    assert info.exif.datetime_has_tz
    assert info.exif.datetime == dt.datetime(2024, 9, 1, 2, tzinfo=dt.UTC)
    assert len(info.sha256) == 64
    assert len(info.phash or "") == 16


def test_southern_western_hemisphere() -> None:
    info = inspect_image(make_jpeg(lon=-70.5, lat=-33.25))
    assert (info.exif.gps_lon, info.exif.gps_lat) == pytest.approx((-70.5, -33.25), abs=1e-6)


@pytest.mark.parametrize(("gps", "problem"), [
    ({1: "N", 2: _nan3(), 3: "E", 4: _nan3()}, "not a number"),
    ({1: "N", 2: (R(123, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(113, 1), R(0, 1), R(0, 1))}, "out of range"),
    ({2: (R(35, 1), R(0, 1), R(0, 1)), 4: (R(113, 1), R(0, 1), R(0, 1))}, "reference"),
    ({1: "N", 2: (R(0, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(0, 1), R(0, 1), R(0, 1))}, "0,0"),
    ({1: "N", 2: (R(35, 1), R(75, 1), R(0, 1)), 3: "E", 4: (R(113, 1), R(0, 1), R(0, 1))}, "not a number"),
    ({1: "N", 3: "E", 4: (R(113, 1), R(0, 1), R(0, 1))}, "missing"),
])
def test_broken_exif_gps_is_invalid_never_zero(gps: dict, problem: str) -> None:
    data = make_jpeg(gps=gps)
    info = inspect_image(data)  # accepted: no exception
    assert not info.exif.gps_valid
    assert info.exif.gps_lon is None
    assert info.exif.gps_lat is None
    assert problem in (info.exif.gps_problem or "")


def test_gps_ifd_pointing_outside_the_file() -> None:
    data = bytearray(make_jpeg(lon=113.24, lat=35.22))
    tiff = data.find(b"Exif\x00\x00") + 6
    bo = "<" if data[tiff:tiff + 2] == b"II" else ">"
    ifd0 = tiff + struct.unpack(bo + "I", data[tiff + 4:tiff + 8])[0]
    n = struct.unpack(bo + "H", data[ifd0:ifd0 + 2])[0]
    for k in range(n):
        entry = ifd0 + 2 + 12 * k
        if struct.unpack(bo + "H", data[entry:entry + 2])[0] == 0x8825:
            data[entry + 8:entry + 12] = struct.pack(bo + "I", 0x7FFFFF00)
            break
    else:  # pragma: no cover
        pytest.fail("no GPS pointer written")
    info = inspect_image(bytes(data))
    assert not info.exif.gps_valid
    assert info.exif.gps_lon is None


def test_exif_time_without_zone_is_flagged() -> None:
    info = inspect_image(make_jpeg(taken_at=dt.datetime(2031, 1, 1, 8, 0)))
    assert info.exif.datetime_raw == "2031:01:01 08:00:00"
    assert info.exif.datetime_has_tz is False
    assert info.exif.datetime is not None
    assert info.exif.datetime.tzinfo is None


def _pixel_flood() -> bytes:
    """A ~1 KB JPEG whose SOF header declares 65535×65535 pixels."""
    img = Image.new("RGB", (8, 8), (120, 80, 40))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65535, 65535)
    return bytes(data)


def test_pixel_flood_refused_before_decoding() -> None:
    data = _pixel_flood()
    assert len(data) < 2048
    with pytest.raises(UnsafeInputError, match="pixels"):
        inspect_image(data)
    with pytest.raises(UnsafeInputError):
        display_copy(data)


def test_multi_frame_mpo_refused() -> None:
    a, b = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    buf = io.BytesIO()
    a.save(buf, "MPO", save_all=True, append_images=[b])
    with pytest.raises(UnsafeInputError, match="multi-frame"):
        inspect_image(buf.getvalue())


@pytest.mark.parametrize("payload", [
    b"<html><script>alert(1)</script></html>",
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    b"GIF89a\x01\x00\x01\x00",
    b"\xff\xd8\xff\xe0 truncated jpeg then <html>",
    b"",
])
def test_not_an_allowed_image(payload: bytes) -> None:
    with pytest.raises(UnsafeInputError):
        inspect_image(payload)


def test_png_disguised_as_jpeg_is_detected_by_magic() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG")
    assert sniff_format(buf.getvalue()) == "PNG"
    with pytest.raises(UnsafeInputError, match="PNG"):
        inspect_image(buf.getvalue(), formats=("JPEG",))


def test_size_limit() -> None:
    with pytest.raises(LimitExceededError):
        inspect_image(make_jpeg(), max_bytes=100)


def test_display_copy_and_near_duplicate_hash() -> None:
    data = make_jpeg(width=1600, height=1200, seed=5)
    small = display_copy(data, max_px=400)
    with Image.open(io.BytesIO(small)) as img:
        assert max(img.size) == 400
        assert not img.getexif()  # no metadata (no GPS) in the display copy
    original, resized = inspect_image(data), inspect_image(small)
    assert hamming(original.phash or "", resized.phash or "") <= 4
    other = inspect_image(make_jpeg(width=1600, height=1200, seed=6))
    assert hamming(original.phash or "", other.phash or "") > 4
