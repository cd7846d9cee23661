"""Official field codes (domain.md §3): map a file's columns to them and validate every value.

:func:`to_official` turns what :func:`tuban.io.read_vector` read into a GeoDataFrame with
exactly the official columns of :mod:`tuban.fields` (UPPERCASE, in spec order, absent
ones null) plus ``geometry``. Column names match case-insensitively; other columns are
dropped (listed in ``attrs["tuban_dropped_columns"]``). Values:

* ``text``: stripped strings within ``max_len`` characters (integral numbers, e.g. a
  county code read as a number, become their digits);
* ``code``: validated through ``codelists().validate``; a code list's Chinese label is
  accepted for its code (``公路工程`` → ``XMLX-01``), and ASCII parentheses for full-width;
* ``real`` (QAREA/EAREA, hectares): finite, non-negative floats; a missing QAREA is filled
  with the geometry's area in hectares (:func:`tuban.crs.area_ha`);
* ``flag``: ``'1'``/``'0'`` (also 1/0, true/false, 是/否, Y/N);
* ``date`` (RP_TIME): ISO ``YYYY-MM-DD`` strings (also ``YYYY/MM/DD``, ``YYYYMMDD``,
  ``YYYY年M月D日`` and date/datetime values).

Divisions: the code and name fields are auto-detected (``XZQDM``/``adcode``/``行政区划代码``/
``code`` …, ``XZQMC``/``name``/``名称`` …) unless ``code_field``/``name_field`` are given;
codes must be 6, 9 or 12 digits. Required fields must be present and non-empty; QDNM
(patches) and XZQDM (divisions) must be unique. All problems are collected and raised as
one :class:`FieldError` listing the first 10.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from tuban.codes import codelists
from tuban.crs import CGCS2000, area_ha
from tuban.errors import FieldError, UsageError
from tuban.fields import DIVISION_FIELDS, PATCH_FIELDS, PROJECT_FIELDS, FieldSpec

__all__ = ["DIVISION_CODE_CANDIDATES", "DIVISION_NAME_CANDIDATES", "Kind", "to_official"]

Kind = Literal["patches", "projects", "divisions"]

SPECS: dict[str, dict[str, FieldSpec]] = {
    "patches": PATCH_FIELDS,
    "projects": PROJECT_FIELDS,
    "divisions": DIVISION_FIELDS,
}
DIVISION_CODE_CANDIDATES = (
    "XZQDM",
    "ADCODE",
    "行政区划代码",
    "区划代码",
    "CODE",
    "代码",
    "XZQHDM",
    "PAC",
    "GB",
)
DIVISION_NAME_CANDIDATES = (
    "XZQMC",
    "NAME",
    "名称",
    "行政区划名称",
    "区划名称",
    "XZQHMC",
    "MC",
    "县名",
    "COUNTY",
)
DROPPED_KEY = "tuban_dropped_columns"
_SHOW = 10
_DIVISION_CODE_RE = re.compile(r"^\d{6}(\d{3}){0,2}$")
_TRUE = {"1", "true", "t", "y", "yes", "是"}
_FALSE = {"0", "false", "f", "n", "no", "否"}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")


class _BadValueError(ValueError):
    """A value that does not fit its field (collected, not raised to the caller)."""


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _text(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        text = str(int(value))
    elif isinstance(value, (bytes, bytearray)):
        raise _BadValueError("binary value")
    else:
        text = str(value).strip()
    if spec.max_len is not None and len(text) > spec.max_len:
        raise _BadValueError(f"{len(text)} characters, above the limit of {spec.max_len}")
    return text


def _code(value: Any, spec: FieldSpec) -> str:
    assert spec.codelist is not None
    text = _text(value, spec)
    lists = codelists()
    if lists.is_valid(spec.codelist, text):
        return text
    for candidate in (text.replace("(", "（").replace(")", "）"),):
        if lists.is_valid(spec.codelist, candidate):
            return candidate
    for item in lists[spec.codelist].items:
        if text in (item.zh, item.en):
            return item.code
    lists.validate(spec.codelist, text)  # raises FieldError with the allowed codes
    raise _BadValueError("not in the code list")  # pragma: no cover - validate raised


def _flag(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value) in (0.0, 1.0):
        return "1" if float(value) == 1.0 else "0"
    text = str(value).strip().lower()
    if text in _TRUE:
        return "1"
    if text in _FALSE:
        return "0"
    raise _BadValueError("not a flag; use '1' or '0'")


def _real(value: Any, spec: FieldSpec) -> float:
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _BadValueError("not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _BadValueError("not a finite, non-negative number")
    return number


def _date(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    text = re.sub(r"[T ]00:00(:00(\.0+)?)?$", "", text)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise _BadValueError("not a date; use YYYY-MM-DD")


_CONVERT: dict[str, Callable[[Any, FieldSpec], Any]] = {
    "text": _text,
    "code": _code,
    "flag": _flag,
    "real": _real,
    "date": _date,
}


def _column_index(gdf: gpd.GeoDataFrame) -> dict[str, str]:
    """Upper-cased column name → the column's real name (refusing case-only duplicates)."""
    index: dict[str, str] = {}
    geom = gdf.geometry.name if isinstance(gdf, gpd.GeoDataFrame) else None
    for col in gdf.columns:
        if col == geom:
            continue
        key = str(col).strip().upper()
        if key in index:
            raise FieldError(
                f"columns {index[key]!r} and {col!r} differ only in case",
                hint="rename or remove one of them",
            )
        index[key] = str(col)
    return index


def _pick(index: dict[str, str], given: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if given is not None:
        key = given.strip().upper()
        if key not in index:
            raise FieldError(
                f"the {what} field {given!r} is not in the file; columns: {', '.join(index.values())}",
                hint=f"choose one of the columns with --{what}-field",
            )
        return index[key]
    for cand in candidates:
        if cand.upper() in index:
            return index[cand.upper()]
    return None


def _labels(frame: pd.DataFrame, qdnm: str | None) -> list[str]:
    rows = [f"row {i + 1}" for i in range(len(frame))]
    if qdnm is None:
        return rows
    return [rows[i] if _is_null(v) else f"QDNM={v}" for i, v in enumerate(frame[qdnm])]


def to_official(
    gdf: gpd.GeoDataFrame,
    kind: Kind,
    *,
    code_field: str | None = None,
    name_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Map and validate *gdf*'s columns to the official fields of *kind* (module doc).

    Parameters
    ----------
    gdf
        as read by :func:`tuban.io.read_vector` (EPSG:4490).
    kind
        ``"patches"``, ``"projects"`` or ``"divisions"``.
    code_field, name_field
        divisions only: the columns holding the division code and name.

    Returns
    -------
    geopandas.GeoDataFrame
        the official columns (UPPERCASE, spec order) and ``geometry``, EPSG:4490.

    Raises
    ------
    FieldError
        listing the bad rows and values (first 10) and the fix.
    """
    if kind not in SPECS:
        raise UsageError(f"unknown kind {kind!r}", hint="use patches, projects or divisions")
    if kind != "divisions" and (code_field or name_field):
        raise UsageError("--code-field/--name-field apply to divisions only")
    specs = SPECS[kind]
    if gdf.crs is not None and gdf.crs.to_epsg() != 4490:
        gdf = gdf.to_crs(CGCS2000)
    index = _column_index(gdf)
    mapping: dict[str, str | None] = {name: index.get(name) for name in specs}
    if kind == "divisions":
        mapping["XZQDM"] = _pick(index, code_field, DIVISION_CODE_CANDIDATES, "code")
        mapping["XZQMC"] = _pick(index, name_field, DIVISION_NAME_CANDIDATES, "name")
    missing = [name for name, spec in specs.items() if spec.required and mapping[name] is None]
    if missing:
        flag = " (or name them with --code-field/--name-field)" if kind == "divisions" else ""
        raise FieldError(
            f"required field(s) {', '.join(missing)} missing from the {kind} file; "
            f"columns found: {', '.join(index.values()) or '(none)'}",
            hint=f"rename the columns to the official codes{flag}",
        )

    labels = _labels(gdf, mapping.get("QDNM") if kind == "patches" else None)
    problems: list[str] = []
    allowed_hints: dict[str, str] = {}
    out: dict[str, list[Any]] = {}
    for name, spec in specs.items():
        column = mapping[name]
        values: list[Any] = []
        source = gdf[column].tolist() if column is not None else [None] * len(gdf)
        for i, raw in enumerate(source):
            if _is_null(raw):
                if spec.required:
                    problems.append(f"{labels[i]}: {name} is empty")
                values.append(None)
                continue
            try:
                values.append(_CONVERT[spec.kind](raw, spec))
            except _BadValueError as exc:
                problems.append(f"{labels[i]}: {name}={str(raw)[:40]!r} {exc}")
                values.append(None)
            except FieldError as exc:
                problems.append(f"{labels[i]}: {name}={str(raw)[:40]!r} not in code list {spec.codelist}")
                if exc.hint:
                    allowed_hints[name] = f"{name}: {exc.hint}"
                values.append(None)
        out[name] = values

    if kind == "divisions":
        for i, code in enumerate(out["XZQDM"]):
            if code is not None and not _DIVISION_CODE_RE.match(code):
                problems.append(f"{labels[i]}: XZQDM={code!r} is not a 6, 9 or 12 digit division code")
    unique = {"patches": "QDNM", "divisions": "XZQDM"}.get(kind)
    if unique:
        seen: dict[str, int] = {}
        for i, value in enumerate(out[unique]):
            if value is None:
                continue
            if value in seen:
                problems.append(f"{labels[i]}: {unique}={value!r} repeats {labels[seen[value]]}")
            else:
                seen[value] = i
    if problems:
        more = f" … and {len(problems) - _SHOW} more" if len(problems) > _SHOW else ""
        fix = "; ".join(allowed_hints.values()) or "fix these values in the source file and import again"
        raise FieldError(
            f"{len(problems)} invalid value(s) in the {kind} file: {'; '.join(problems[:_SHOW])}{more}",
            hint=fix,
        )

    frame = pd.DataFrame(out, index=gdf.index)
    for name, spec in specs.items():
        frame[name] = frame[name].astype("float64" if spec.kind == "real" else object)
    result = gpd.GeoDataFrame(frame, geometry=gdf.geometry.values, crs=gdf.crs or CGCS2000)
    if kind == "patches":
        empty = result["QAREA"].isna().to_numpy()
        if empty.any():
            result.loc[empty, "QAREA"] = area_ha(result.geometry.values[empty], CGCS2000)
    result.attrs.update(gdf.attrs)
    used = {c for c in mapping.values() if c is not None}
    result.attrs[DROPPED_KEY] = [c for c in index.values() if c not in used]
    return result
