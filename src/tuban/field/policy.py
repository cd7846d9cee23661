"""The photo policy (照片规则) as data: how many photos, which kinds, the check thresholds.

The packaged default lives in ``tuban/field/data/photo_policy.json`` (domain.md §6: at
least 3 photos — overview, close-up, disturbance — within 100 m of the patch or with the
camera's view cone on it). A deployment passes its own file or mapping to
:func:`load_policy`; unknown keys are refused so a typo never silently keeps a default.

>>> p = load_policy()
>>> p.min_photos, p.required_kinds, p.max_distance_m
(3, ('overview', 'closeup', 'disturbance'), 100.0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from tuban.errors import ConfigError

__all__ = ["PhotoPolicy", "load_policy"]


@dataclass(frozen=True, slots=True)
class PhotoPolicy:
    """Thresholds of the photo checks (all distances in metres)."""

    version: str = "default"
    min_photos: int = 3
    required_kinds: tuple[str, ...] = ("overview", "closeup", "disturbance")
    kinds: Mapping[str, Mapping[str, str]] | None = None
    max_distance_m: float = 100.0
    camera_fov_deg: float = 60.0
    view_range_m: float = 300.0
    max_accuracy_m: float = 30.0
    max_exif_disagreement_m: float = 100.0
    near_duplicate_max_hamming: int = 4
    field_window_timezone: str = "Asia/Shanghai"
    field_window_grace_days: int = 0
    max_clock_skew_s: float = 600.0
    max_photo_bytes: int = 30 * 1024 * 1024
    max_pixels: int = 60_000_000
    display_max_px: int = 1280
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    outline_max_vertices: int = 500
    outline_max_shift_m: float = 300.0
    held_max_days: float = 14.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["required_kinds"] = list(self.required_kinds)
        out["allowed_formats"] = list(self.allowed_formats)
        out["kinds"] = dict(self.kinds or {})
        return out


_KNOWN = {f.name for f in fields(PhotoPolicy)} | {"source"}


def _from_mapping(data: Mapping[str, Any], origin: str) -> PhotoPolicy:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"photo policy {origin}: unknown keys {unknown}",
                          hint=f"known keys: {', '.join(sorted(_KNOWN))}")
    kwargs = {k: v for k, v in data.items() if k != "source"}
    for key in ("required_kinds", "allowed_formats"):
        if key in kwargs:
            kwargs[key] = tuple(str(v) for v in kwargs[key])
    for key in ("max_distance_m", "camera_fov_deg", "view_range_m", "max_accuracy_m", "max_exif_disagreement_m",
                "max_clock_skew_s", "outline_max_shift_m", "held_max_days"):
        if key in kwargs and isinstance(kwargs[key], int) and not isinstance(kwargs[key], bool):
            kwargs[key] = float(kwargs[key])
    try:
        policy = PhotoPolicy(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(f"photo policy {origin}: {exc}") from exc
    numeric = ("max_distance_m", "camera_fov_deg", "view_range_m", "max_accuracy_m", "max_exif_disagreement_m",
               "max_photo_bytes", "max_pixels", "display_max_px", "outline_max_vertices", "outline_max_shift_m",
               "held_max_days")
    for name in numeric:
        value = getattr(policy, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"photo policy {origin}: {name}={value!r} must be a positive number")
    if not 0 < policy.camera_fov_deg <= 180:
        raise ConfigError(f"photo policy {origin}: camera_fov_deg={policy.camera_fov_deg} must be in (0, 180]")
    if policy.min_photos < len(policy.required_kinds):
        raise ConfigError(f"photo policy {origin}: min_photos={policy.min_photos} is fewer than the "
                          f"{len(policy.required_kinds)} required kinds")
    return policy


def load_policy(source: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> PhotoPolicy:
    """The packaged policy, or one from a JSON file path or a mapping (overriding the defaults)."""
    text = resources.files("tuban.field").joinpath("data/photo_policy.json").read_text("utf-8")
    base: dict[str, Any] = json.loads(text)
    if source is None:
        return _from_mapping(base, "(packaged)")
    if isinstance(source, Mapping):
        return _from_mapping({**base, **source}, "(mapping)")
    path = Path(source)
    try:
        override = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"photo policy file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"photo policy file {path} is not valid JSON: {exc}") from exc
    if not isinstance(override, dict):
        raise ConfigError(f"photo policy file {path} must hold a JSON object")
    return _from_mapping({**base, **override}, str(path))
