"""Photo checks (照片核验): pure functions, shown to the inspector at once and to the reviewer later.

Each check returns a :class:`CheckResult` with a status:

``pass``     the photo satisfies the rule
``fail``     it does not (the message names the values and the limit)
``unknown``  the rule cannot be decided (no position, no bearing, EXIF location invalid …)

Positions are CGCS2000 / WGS84 lon/lat (they agree at the metre level, domain.md §7);
distances come from a local tangent-plane projection around the patch, accurate to
centimetres over the few hundred metres these checks care about.

>>> import shapely
>>> patch = shapely.box(113.2400, 35.2200, 113.2410, 35.2208)
>>> check_location(patch, lon=113.2405, lat=35.2195, bearing=None).status
'pass'
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from tuban.field.policy import PhotoPolicy

__all__ = [
    "CheckResult",
    "PhotoObservation",
    "PriorUse",
    "check_accuracy",
    "check_duplicate",
    "check_exif_position",
    "check_field_window",
    "check_location",
    "check_mock_location",
    "check_photo",
    "check_photo_set",
    "distance_m",
    "hamming",
    "summarize",
    "to_local_xy",
    "view_cone",
]

Status = Literal["pass", "fail", "unknown"]

# GRS80 / CGCS2000 ellipsoid
_A = 6378137.0
_F = 1 / 298.257222101
_E2 = _F * (2 - _F)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``name``, ``status`` and a message naming the values.

    ``message`` is English (logs, the API); ``key`` and ``params`` say the same for a
    translated UI: the web catalogue holds ``check.<key>`` templates with ``{param}``
    placeholders (``tuban/web/i18n/messages.json``).
    """

    name: str
    status: Status
    message: str
    value: float | str | None = None
    limit: float | str | None = None
    key: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PriorUse:
    """A photo already stored: which patch, its sha256 and perceptual hash."""

    patch_id: int
    sha256: str
    phash: str | None = None
    photo_id: int | None = None


@dataclass(frozen=True, slots=True)
class PhotoObservation:
    """What the device and the file say about one photo."""

    lon: float | None
    lat: float | None
    accuracy_m: float | None = None
    bearing: float | None = None
    taken_at: dt.datetime | None = None
    mock_location: bool | None = None
    exif_lon: float | None = None
    exif_lat: float | None = None
    exif_gps_valid: bool = False
    exif_gps_problem: str | None = None
    sha256: str | None = None
    phash: str | None = None
    kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _finite(*values: float | None) -> bool:
    return all(v is not None and isinstance(v, int | float) and math.isfinite(v) for v in values)


def valid_lonlat(lon: float | None, lat: float | None) -> bool:
    """Finite, in range, and not the (0, 0) "null island" a broken GPS reports."""
    if not _finite(lon, lat):
        return False
    assert lon is not None
    assert lat is not None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return False
    return not (lon == 0.0 and lat == 0.0)


def to_local_xy(lon: Any, lat: Any, *, lon0: float, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """Metres east/north of ``(lon0, lat0)`` on the GRS80 ellipsoid's tangent plane (vectorized)."""
    phi = math.radians(lat0)
    s = math.sin(phi)
    w = math.sqrt(1 - _E2 * s * s)
    n = _A / w  # prime vertical radius of curvature
    m = _A * (1 - _E2) / w**3  # meridional radius of curvature
    x = np.radians(np.asarray(lon, dtype="float64") - lon0) * n * math.cos(phi)
    y = np.radians(np.asarray(lat, dtype="float64") - lat0) * m
    return x, y


def _local_geometry(geom: shapely.Geometry, lon0: float, lat0: float) -> shapely.Geometry:
    def project(coords: np.ndarray) -> np.ndarray:
        x, y = to_local_xy(coords[:, 0], coords[:, 1], lon0=lon0, lat0=lat0)
        return np.column_stack([x, y])

    return shapely.transform(geom, project)


def distance_m(geom: shapely.Geometry, lon: float, lat: float) -> float:
    """Metres from ``(lon, lat)`` to *geom* (0 inside a polygon)."""
    c = shapely.centroid(geom)
    lon0, lat0 = float(shapely.get_x(c)), float(shapely.get_y(c))
    local = _local_geometry(geom, lon0, lat0)
    x, y = to_local_xy(lon, lat, lon0=lon0, lat0=lat0)
    return float(shapely.distance(local, shapely.Point(float(x), float(y))))


def view_cone(x: float, y: float, bearing: float, *, fov_deg: float, range_m: float,
              steps: int = 16) -> shapely.Polygon:
    """The camera's horizontal view as a circular sector in local metres.

    *bearing* is the compass direction (方位角) in degrees clockwise from north.
    """
    half = fov_deg / 2.0
    angles = np.radians(bearing + np.linspace(-half, half, steps + 1))
    xs = x + range_m * np.sin(angles)
    ys = y + range_m * np.cos(angles)
    ring = [(x, y), *zip(xs.tolist(), ys.tolist(), strict=True), (x, y)]
    return shapely.Polygon(ring)


def check_location(patch: shapely.Geometry, *, lon: float | None, lat: float | None, bearing: float | None,
                   max_distance_m: float = 100.0, fov_deg: float = 60.0, view_range_m: float = 300.0
                   ) -> CheckResult:
    """Taken within *max_distance_m* of the patch, or the camera's view cone intersects it."""
    if not valid_lonlat(lon, lat):
        return CheckResult("location", "unknown", f"no valid device position (lon={lon}, lat={lat})",
                           key="location.no_position", params={"lon": str(lon), "lat": str(lat)})
    if patch is None or patch.is_empty:
        return CheckResult("location", "unknown", "the patch has no outline", key="location.no_outline")
    assert lon is not None
    assert lat is not None
    c = shapely.centroid(patch)
    lon0, lat0 = float(shapely.get_x(c)), float(shapely.get_y(c))
    local = _local_geometry(patch, lon0, lat0)
    x, y = (float(v) for v in to_local_xy(lon, lat, lon0=lon0, lat0=lat0))
    dist = float(shapely.distance(local, shapely.Point(x, y)))
    if dist <= max_distance_m:
        return CheckResult("location", "pass", f"taken {dist:.0f} m from the patch (limit {max_distance_m:.0f} m)",
                           value=round(dist, 1), limit=max_distance_m, key="location.near",
                           params={"dist": round(dist), "limit": round(max_distance_m)})
    if _finite(bearing):
        assert bearing is not None
        cone = view_cone(x, y, bearing % 360.0, fov_deg=fov_deg, range_m=view_range_m)
        if shapely.intersects(cone, local):
            return CheckResult(
                "location", "pass",
                f"taken {dist:.0f} m away, but the camera (bearing {bearing:.0f}°, field of view {fov_deg:.0f}°, "
                f"range {view_range_m:.0f} m) looks at the patch", value=round(dist, 1), limit=max_distance_m,
                key="location.looks_at", params={"dist": round(dist), "bearing": round(bearing), "fov": round(fov_deg),
                                                 "range": round(view_range_m)})
        return CheckResult(
            "location", "fail",
            f"taken {dist:.0f} m from the patch (limit {max_distance_m:.0f} m) and the camera (bearing "
            f"{bearing:.0f}°) does not look at it", value=round(dist, 1), limit=max_distance_m,
            key="location.looks_away", params={"dist": round(dist), "limit": round(max_distance_m),
                                               "bearing": round(bearing)})
    return CheckResult("location", "fail",
                       f"taken {dist:.0f} m from the patch (limit {max_distance_m:.0f} m), no compass bearing",
                       value=round(dist, 1), limit=max_distance_m, key="location.far_no_bearing",
                       params={"dist": round(dist), "limit": round(max_distance_m)})


def check_field_window(taken_at: dt.datetime | None, start: dt.date | None, end: dt.date | None, *,
                       timezone: str = "Asia/Shanghai", grace_days: int = 0) -> CheckResult:
    """Taken on a local date inside the round's field window ``[start, end]`` (inclusive)."""
    if start is None and end is None:
        return CheckResult("field_window", "unknown", "the round has no field window", key="field_window.none")
    if taken_at is None:
        return CheckResult("field_window", "unknown", "the photo has no time", key="field_window.no_time")
    if taken_at.tzinfo is None:
        return CheckResult("field_window", "unknown", f"photo time {taken_at.isoformat()} has no time zone",
                           key="field_window.no_zone", params={"time": taken_at.isoformat()})
    local = taken_at.astimezone(ZoneInfo(timezone)).date()
    grace = dt.timedelta(days=grace_days)
    window = f"{start or '…'} – {end or '…'}"
    if start is not None and local < start - grace:
        return CheckResult("field_window", "fail", f"taken on {local}, before the field window {window}",
                           value=local.isoformat(), limit=window, key="field_window.before",
                           params={"date": local.isoformat(), "window": window})
    if end is not None and local > end + grace:
        return CheckResult("field_window", "fail", f"taken on {local}, after the field window {window}",
                           value=local.isoformat(), limit=window, key="field_window.after",
                           params={"date": local.isoformat(), "window": window})
    return CheckResult("field_window", "pass", f"taken on {local}, inside the field window {window}",
                       value=local.isoformat(), limit=window, key="field_window.inside",
                       params={"date": local.isoformat(), "window": window})


def check_accuracy(accuracy_m: float | None, *, max_accuracy_m: float = 30.0) -> CheckResult:
    """The device's reported horizontal accuracy is at most *max_accuracy_m*."""
    if not _finite(accuracy_m) or (accuracy_m is not None and accuracy_m < 0):
        return CheckResult("accuracy", "unknown", f"no usable GPS accuracy ({accuracy_m!r})", key="accuracy.none",
                           params={"value": repr(accuracy_m)})
    assert accuracy_m is not None
    if accuracy_m <= max_accuracy_m:
        return CheckResult("accuracy", "pass", f"GPS accuracy {accuracy_m:.0f} m (limit {max_accuracy_m:.0f} m)",
                           value=accuracy_m, limit=max_accuracy_m, key="accuracy.ok",
                           params={"value": round(accuracy_m), "limit": round(max_accuracy_m)})
    return CheckResult("accuracy", "fail", f"GPS accuracy {accuracy_m:.0f} m is worse than {max_accuracy_m:.0f} m",
                       value=accuracy_m, limit=max_accuracy_m, key="accuracy.poor",
                       params={"value": round(accuracy_m), "limit": round(max_accuracy_m)})


def check_mock_location(mock: bool | None) -> CheckResult:
    """The device did not report a mock (simulated) location."""
    if mock is None:
        return CheckResult("mock_location", "unknown", "the device did not say whether the location is simulated",
                           key="mock_location.unknown")
    if mock:
        return CheckResult("mock_location", "fail", "the device reported a mock (simulated) location",
                           key="mock_location.yes")
    return CheckResult("mock_location", "pass", "no mock location reported", key="mock_location.no")


def check_exif_position(*, exif_lon: float | None, exif_lat: float | None, exif_valid: bool,
                        lon: float | None, lat: float | None, problem: str | None = None,
                        max_disagreement_m: float = 100.0) -> CheckResult:
    """The EXIF GPS position agrees with the device position within *max_disagreement_m*.

    An invalid EXIF position (``0/0`` rationals, NaN, out of range, missing N/S ref …) is
    never read as (0, 0): the check is ``unknown`` and names the problem.
    """
    if not exif_valid or not valid_lonlat(exif_lon, exif_lat):
        why = problem or "no GPS position in EXIF"
        return CheckResult("exif_position", "unknown", f"EXIF location invalid or missing: {why}",
                           key="exif_position.invalid", params={"why": why})
    if not valid_lonlat(lon, lat):
        return CheckResult("exif_position", "unknown", "no device position to compare the EXIF position with",
                           key="exif_position.no_device")
    assert exif_lon is not None
    assert exif_lat is not None
    assert lon is not None
    assert lat is not None
    d = distance_m(shapely.Point(lon, lat), exif_lon, exif_lat)
    status: Status = "pass" if d <= max_disagreement_m else "fail"
    verb = "agrees with" if status == "pass" else "disagrees with"
    return CheckResult("exif_position", status,
                       f"EXIF position {verb} the device position by {d:.0f} m (limit {max_disagreement_m:.0f} m)",
                       value=round(d, 1), limit=max_disagreement_m,
                       key="exif_position.agrees" if status == "pass" else "exif_position.disagrees",
                       params={"dist": round(d), "limit": round(max_disagreement_m)})


def hamming(a: str, b: str) -> int:
    """Bit difference of two equal-length hex hashes."""
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


def check_duplicate(*, sha256: str | None, phash: str | None, patch_id: int | None,
                    prior: Iterable[PriorUse], max_hamming: int = 4) -> CheckResult:
    """The same photo (identical bytes or a near-duplicate picture) is not used for another patch."""
    same, near = [], []
    for use in prior:
        if patch_id is not None and use.patch_id == patch_id:
            continue
        if sha256 and use.sha256 == sha256:
            same.append(use)
        elif phash and use.phash and len(use.phash) == len(phash) and hamming(phash, use.phash) <= max_hamming:
            near.append(use)
    if same:
        ids = sorted({u.patch_id for u in same})
        return CheckResult("duplicate", "fail", f"the same file is already a photo of patch(es) {ids}",
                           value=",".join(map(str, ids)), key="duplicate.same_file",
                           params={"ids": ", ".join(map(str, ids))})
    if near:
        ids = sorted({u.patch_id for u in near})
        return CheckResult("duplicate", "fail",
                           f"a near-identical picture (perceptual hash within {max_hamming} bits) is already a "
                           f"photo of patch(es) {ids}", value=",".join(map(str, ids)), limit=max_hamming,
                           key="duplicate.near", params={"ids": ", ".join(map(str, ids)), "bits": max_hamming})
    if not sha256 and not phash:
        return CheckResult("duplicate", "unknown", "no hash to compare", key="duplicate.no_hash")
    return CheckResult("duplicate", "pass", "not used for another patch", key="duplicate.ok")


def check_photo(obs: PhotoObservation, patch: shapely.Geometry | None, *, policy: PhotoPolicy,
                field_start: dt.date | None = None, field_end: dt.date | None = None,
                patch_id: int | None = None, prior: Sequence[PriorUse] = ()) -> list[CheckResult]:
    """All single-photo checks of the policy, in a fixed order."""
    return [
        check_location(patch, lon=obs.lon, lat=obs.lat, bearing=obs.bearing, max_distance_m=policy.max_distance_m,
                       fov_deg=policy.camera_fov_deg, view_range_m=policy.view_range_m),
        check_field_window(obs.taken_at, field_start, field_end, timezone=policy.field_window_timezone,
                           grace_days=policy.field_window_grace_days),
        check_accuracy(obs.accuracy_m, max_accuracy_m=policy.max_accuracy_m),
        check_mock_location(obs.mock_location),
        check_exif_position(exif_lon=obs.exif_lon, exif_lat=obs.exif_lat, exif_valid=obs.exif_gps_valid,
                            lon=obs.lon, lat=obs.lat, problem=obs.exif_gps_problem,
                            max_disagreement_m=policy.max_exif_disagreement_m),
        check_duplicate(sha256=obs.sha256, phash=obs.phash, patch_id=patch_id, prior=prior,
                        max_hamming=policy.near_duplicate_max_hamming),
    ]


def check_photo_set(kinds: Iterable[str | None], *, policy: PhotoPolicy) -> CheckResult:
    """The patch has at least ``min_photos`` photos and one of each required kind."""
    kinds = list(kinds)
    missing = [k for k in policy.required_kinds if k not in kinds]
    n = len(kinds)
    if n >= policy.min_photos and not missing:
        return CheckResult("photo_set", "pass", f"{n} photos, all required kinds present", value=n,
                           limit=policy.min_photos, key="photo_set.ok", params={"n": n})
    parts = []
    if n < policy.min_photos:
        parts.append(f"{n} photos, at least {policy.min_photos} needed")
    if missing:
        parts.append(f"missing kinds: {', '.join(missing)}")
    key = "photo_set." + "_".join(k for k, on in (("too_few", n < policy.min_photos), ("missing", bool(missing)))
                                  if on)
    return CheckResult("photo_set", "fail", "; ".join(parts), value=n, limit=policy.min_photos, key=key,
                       params={"n": n, "min": policy.min_photos, "kinds": list(missing)})


def summarize(results: Iterable[CheckResult]) -> Status:
    """``fail`` if any failed, else ``unknown`` if any is unknown, else ``pass``."""
    statuses = {r.status for r in results}
    if "fail" in statuses:
        return "fail"
    if "unknown" in statuses:
        return "unknown"
    return "pass"
