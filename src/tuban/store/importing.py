"""Imports into and frames out of the store (divisions, projects with scopes, patches).

Input frames carry the official UPPERCASE field columns (:mod:`tuban.fields`) and a
geometry column in CGCS2000 (EPSG:4490); reading files, encodings and CRS conversion are
the job of :mod:`tuban.io`. Every import is one transaction with one audit row: a bad
row refuses the whole file, naming the row and the fix.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import ColumnElement, and_, column, func, select, table
from sqlalchemy.orm import Session

from tuban.codes import codelists
from tuban.errors import FieldError, GeometryError, InputError, IntegrityError, UsageError
from tuban.fields import DIVISION_FIELDS, PATCH_FIELDS, PROJECT_FIELDS, FieldSpec
from tuban.store.geometry import SRID
from tuban.store.models import Division, Patch, Project, Round, Scope, field_column

if TYPE_CHECKING:
    import geopandas as gpd

    from tuban.store.store import Transaction

__all__ = [
    "bbox_condition",
    "divisions_frame",
    "import_divisions",
    "import_patches",
    "import_projects",
    "patch_ids_in_bbox",
    "patches_frame",
    "projects_frame",
]

CRS = f"EPSG:{SRID}"
_POLYGONAL = ("Polygon", "MultiPolygon")
_FLAG_WORDS = {"1": "1", "0": "0", "true": "1", "false": "0", "是": "1", "否": "0", "y": "1", "n": "0"}


# -- value cleaning -------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 410811.0 from a numeric DBF column
    if isinstance(value, bytes):
        raise FieldError(f"undecoded bytes {value[:20]!r}", hint="decode the file's text first (tuban.io)")
    return str(value).strip()


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raw = _text(value)
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unreadable date {raw!r}")


def clean_value(spec: FieldSpec, value: Any, *, where: str) -> Any:
    """*value* of official field *spec* checked and normalised, or ``None`` when missing.

    Raises :class:`FieldError` naming the field, the value, *where* and the fix.
    """
    if _is_missing(value):
        if spec.required:
            raise FieldError(f"{spec.name} ({spec.zh}) is required but empty {where}")
        return None
    try:
        if spec.kind == "real":
            out = float(value)
            if not math.isfinite(out):
                raise ValueError("not finite")
            return out
        if spec.kind == "date":
            return _date(value)
        text_value = _text(value)
        if spec.kind == "flag":
            flag = _FLAG_WORDS.get(text_value.lower())
            if flag is None:
                raise ValueError("flags are '1' or '0'")
            return flag
        if spec.kind == "code" and spec.codelist:
            codelists().validate(spec.codelist, text_value, context=where)
        if spec.max_len is not None and len(text_value) > spec.max_len:
            raise FieldError(
                f"{spec.name} ({spec.zh}) {where} has {len(text_value)} characters, above its limit of "
                f"{spec.max_len}",
                hint="shorten the text",
            )
        return text_value
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FieldError):
            raise
        raise FieldError(
            f"{spec.name} ({spec.zh}) {where}: {value!r} is not a valid {spec.kind} ({exc})",
            hint="fix the value in the source file",
        ) from None


def _check_frame(gdf: Any, required: Iterable[str], what: str) -> None:
    if not hasattr(gdf, "geometry"):
        raise UsageError(f"{what} import needs a GeoDataFrame, got {type(gdf).__name__}")
    missing = [c for c in required if c not in gdf.columns]
    if missing:
        raise FieldError(
            f"{what} file lacks the field(s) {', '.join(missing)}; it has {', '.join(map(str, gdf.columns))}",
            hint="rename the columns to the official field codes (or use --code-field/--name-field)",
        )
    if gdf.crs is None:
        raise InputError(f"{what} frame has no CRS", hint=f"convert to {CRS} (CGCS2000) before storing")
    if gdf.crs.to_epsg() != SRID:
        raise InputError(
            f"{what} frame is in {gdf.crs.to_string()}, the store holds {CRS} (CGCS2000)",
            hint="transform with tuban.crs.transform_geometries first",
        )


def _geometry(geom: Any, *, where: str, required: bool) -> shapely.Geometry | None:
    if geom is None or (isinstance(geom, float) and math.isnan(geom)) or geom.is_empty:
        if required:
            raise GeometryError(f"empty or missing geometry {where}", hint="drop the row or draw its polygon")
        return None
    if geom.geom_type not in _POLYGONAL:
        raise GeometryError(
            f"{geom.geom_type} geometry {where}; a Polygon or MultiPolygon is expected",
            hint="convert or drop the feature",
        )
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)  # Z dropped: the store is 2D (documented rule)
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise GeometryError(f"geometry {where} has NaN or infinite coordinates", hint="repair the feature")
    return geom


def _rows(gdf: Any) -> Iterable[tuple[int, dict[str, Any], Any]]:
    geoms = gdf.geometry.array
    records = gdf.drop(columns=gdf.geometry.name).to_dict("records")
    for i, (record, geom) in enumerate(zip(records, geoms, strict=True)):
        yield i, record, geom


def _division_level(code: str) -> tuple[str, str | None]:
    if len(code) == 6 and code.isdigit():
        if code.endswith("0000"):
            return "province", None
        if code.endswith("00"):
            return "city", code[:2] + "0000"
        return "county", code[:4] + "00"
    return "other", None


# -- imports ------------------------------------------------------------------------------


def import_divisions(tx: Transaction, gdf: gpd.GeoDataFrame, *, source: str | None = None) -> int:
    _check_frame(gdf, DIVISION_FIELDS, "divisions")
    s = tx.session
    parsed: dict[str, tuple[str, shapely.Geometry | None]] = {}
    for i, rec, geom in _rows(gdf):
        where = f"in row {i + 1}"
        code = clean_value(DIVISION_FIELDS["XZQDM"], rec["XZQDM"], where=where)
        name = clean_value(DIVISION_FIELDS["XZQMC"], rec["XZQMC"], where=f"{where} (XZQDM {code})")
        if code in parsed:
            raise IntegrityError(f"division code XZQDM {code} appears twice (second time {where})")
        parsed[code] = (name, _geometry(geom, where=f"of division {code} {name}", required=False))
    existing = {d.code: d for d in s.scalars(select(Division).where(Division.code.in_(list(parsed))))}
    inserted = 0
    for code, (name, geom) in parsed.items():
        level, parent = _division_level(code)
        div = existing.get(code)
        if div is None:
            div = Division(code=code)
            s.add(div)
            inserted += 1
        div.name, div.geometry, div.level, div.parent_code, div.source = name, geom, level, parent, source
    s.flush()
    tx.audit(
        "divisions.import",
        "division",
        None,
        after={
            "count": len(parsed),
            "inserted": inserted,
            "updated": len(parsed) - inserted,
            "source": source,
        },
    )
    return len(parsed)


def import_projects(tx: Transaction, gdf: gpd.GeoDataFrame, *, source: str | None = None) -> int:
    _check_frame(gdf, ["PRO_NAME"], "projects")
    s = tx.session
    fields = [f for f in PROJECT_FIELDS.values() if f.name in gdf.columns]
    groups: dict[str, list[tuple[dict[str, Any], str | None, shapely.Geometry | None]]] = {}
    order: list[str] = []
    for i, rec, geom in _rows(gdf):
        where = f"in row {i + 1}"
        values = {f.name: clean_value(f, rec.get(f.name), where=where) for f in fields}
        key = values.get("SWC_P_ID") or f"\0row{i}"  # no id: a project of its own
        scope = _geometry(geom, where=f"of project {values.get('PRO_NAME')} {where}", required=False)
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append((values, values.get("VEC_TYPE"), scope))
    ids = [k for k in order if not k.startswith("\0")]
    existing = {p.swc_p_id: p for p in s.scalars(select(Project).where(Project.swc_p_id.in_(ids)))}
    inserted = 0
    n_scopes = 0
    for key in order:
        rows = groups[key]
        merged: dict[str, Any] = {}
        for values, _, _ in rows:  # first non-empty value of each field wins
            for name, value in values.items():
                if merged.get(name) is None:
                    merged[name] = value
        project = existing.get(key)
        if project is None:
            project = Project()
            s.add(project)
            inserted += 1
        for f in fields:
            if f.name != "VEC_TYPE":
                setattr(project, field_column(f.name), merged.get(f.name))
        project.approved = bool(merged.get("RP_NUM"))
        project.source = source
        project.scopes = [Scope(vec_type=vec, geometry=g) for _, vec, g in rows if g is not None]
        n_scopes += len(project.scopes)
    s.flush()
    tx.audit(
        "projects.import",
        "project",
        None,
        after={"count": len(order), "inserted": inserted, "scopes": n_scopes, "source": source},
    )
    return len(order)


def get_or_create_round(tx: Transaction, round_name: str) -> Round:
    name = (round_name or "").strip()
    if not name or len(name) > 64:
        raise UsageError(f"round name {round_name!r} must be 1–64 characters, e.g. 2024-1")
    rnd = tx.session.scalar(select(Round).where(Round.name == name))
    if rnd is None:
        rnd = Round(name=name, status="open", imagery={})
        tx.session.add(rnd)
        tx.session.flush()
        tx.audit("round.create", "round", rnd.id, after={"name": name}, round_id=rnd.id)
    return rnd


def import_patches(
    tx: Transaction,
    gdf: gpd.GeoDataFrame,
    *,
    round_name: str,
    source: str | None = None,
    state: str = "issued",
) -> int:
    _check_frame(gdf, ["QDNM"], "patches")
    codelists().validate("PATCH_STATE", state, context="import_patches(state=…)")
    s = tx.session
    fields = [f for f in PATCH_FIELDS.values() if f.name in gdf.columns]
    patches: list[Patch] = []
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for i, rec, geom in _rows(gdf):
        where = f"in row {i + 1}"
        values = {f.name: clean_value(f, rec.get(f.name), where=where) for f in fields}
        qdnm = values["QDNM"]
        if qdnm in seen:
            dupes.append(qdnm)
        seen[qdnm] = i
        patch = Patch(state=state, version=1, source=source)
        for name, value in values.items():
            setattr(patch, field_column(name), value)
        patch.geometry = _geometry(geom, where=f"of patch QDNM {qdnm} {where}", required=True)
        codes = (values.get("XZQDM") or "").replace("，", ",").split(",")
        patch.lead_division_code = codes[0].strip() or None
        patches.append(patch)
    if dupes:
        raise IntegrityError(
            f"QDNM must be unique within a round; repeated in the file: {', '.join(sorted(set(dupes))[:20])}",
            hint="give each patch its own QDNM",
        )
    rnd = get_or_create_round(tx, round_name)
    clash = sorted(s.scalars(select(Patch.qdnm).where(Patch.round_id == rnd.id, Patch.qdnm.in_(list(seen)))))
    if clash:
        raise IntegrityError(
            f"round {rnd.name} already holds {len(clash)} of these QDNM: {', '.join(clash[:20])}",
            hint="import into a new round, or remove the duplicates from the file",
        )
    for patch in patches:
        patch.round_id = rnd.id
    s.add_all(patches)
    s.flush()
    tx.audit(
        "patches.import",
        "patch",
        None,
        after={"count": len(patches), "round": rnd.name, "state": state, "source": source},
        round_id=rnd.id,
    )
    return len(patches)


# -- frames -------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]], columns: Sequence[str], geoms: list[Any], specs: dict[str, FieldSpec]):
    import geopandas as gpd

    df = pd.DataFrame(rows, columns=list(columns))
    for name in columns:
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.kind == "real":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        elif spec.kind == "date":
            df[name] = pd.to_datetime(df[name])
        else:
            df[name] = df[name].astype(object).where(df[name].notna(), None)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS).values, crs=CRS)


def divisions_frame(s: Session) -> gpd.GeoDataFrame:
    rows, geoms = [], []
    for d in s.scalars(select(Division).order_by(Division.code)):
        rows.append({"XZQDM": d.code, "XZQMC": d.name})
        geoms.append(d.geometry)
    return _frame(rows, list(DIVISION_FIELDS), geoms, DIVISION_FIELDS)


def projects_frame(s: Session) -> gpd.GeoDataFrame:
    """One row per scope; a project without scope (无红线) is one row with no geometry."""
    from sqlalchemy.orm import selectinload

    rows, geoms = [], []
    cols = list(PROJECT_FIELDS)
    for p in s.scalars(select(Project).options(selectinload(Project.scopes)).order_by(Project.id)):
        base = {n: getattr(p, field_column(n)) for n in cols if n != "VEC_TYPE"}
        scopes: list[Scope | None] = list(p.scopes) or [None]
        for scope in scopes:
            rows.append({**base, "VEC_TYPE": scope.vec_type if scope else None})
            geoms.append(scope.geometry if scope else None)
    return _frame(rows, cols, geoms, PROJECT_FIELDS)


def patches_frame(s: Session, *, round_name: str | None = None, extra: bool = False) -> gpd.GeoDataFrame:
    query = select(Patch, Round.name).join(Round, Round.id == Patch.round_id).order_by(Patch.id)
    if round_name is not None:
        query = query.where(Round.name == round_name)
    cols = list(PATCH_FIELDS)
    extra_cols = ["id", "round", "state", "version"] if extra else []
    rows, geoms = [], []
    for patch, rname in s.execute(query):
        row = {n: getattr(patch, field_column(n)) for n in cols}
        if extra:
            row.update(id=patch.id, round=rname, state=patch.state, version=patch.version)
        rows.append(row)
        geoms.append(patch.geometry)
    return _frame(rows, cols + extra_cols, geoms, PATCH_FIELDS)


# -- spatial lookups ------------------------------------------------------------------------


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise UsageError(f"bbox must be four numbers (minx, miny, maxx, maxy), got {bbox!r}") from None
    if not all(map(math.isfinite, (minx, miny, maxx, maxy))) or minx > maxx or miny > maxy:
        raise UsageError(f"bbox {bbox!r} is not finite or has min > max", hint="use (minx, miny, maxx, maxy)")
    return minx, miny, maxx, maxy


def bbox_condition(model: Any, bbox: Sequence[float], dialect: str) -> ColumnElement[bool]:
    """A WHERE clause: *model*'s envelope meets *bbox* (R*Tree on SQLite, GiST on PostGIS).

    The index narrows the candidates (both index in float32, rounded outwards); the
    exact ``minx…maxy`` columns then give the same answer on both backends.
    """
    minx, miny, maxx, maxy = _check_bbox(bbox)
    exact = and_(model.maxx >= minx, model.minx <= maxx, model.maxy >= miny, model.miny <= maxy)
    if dialect == "sqlite":
        rt = table(
            f"{model.__tablename__}_rtree",
            column("id"),
            *(column(c) for c in ("minx", "miny", "maxx", "maxy")),
        )
        hits = select(rt.c.id).where(
            rt.c.maxx >= minx, rt.c.minx <= maxx, rt.c.maxy >= miny, rt.c.miny <= maxy
        )
        return and_(model.id.in_(hits), exact)
    envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, SRID)
    return and_(model.__table__.c.geometry.op("&&")(envelope), exact)


def patch_ids_in_bbox(s: Session, round_id: int, bbox: Sequence[float]) -> list[int]:
    dialect = s.get_bind().dialect.name
    query = (
        select(Patch.id)
        .where(Patch.round_id == round_id, bbox_condition(Patch, bbox, dialect))
        .order_by(Patch.id)
    )
    return list(s.scalars(query))
