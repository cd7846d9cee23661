"""Creating a round from a patch file or a detection run (新建期次: 省级图斑文件 / 自动提取结果).

A province analyst either uploads the province's patch file (Shapefile in a ``.zip``,
GeoPackage, GeoJSON, KML) or picks a detection output (a GeoPackage written by
``tuban detect`` into the server's detection folder). The file is read by
:func:`tuban.io.read_vector` (safe unzip, feature and vertex limits, CRS handling) and
mapped to the official fields by :func:`tuban.io.to_official`; patches without a QDNM
(a detector's output) are numbered ``<round>-00001…``. The round and its patches are
created in ONE audited transaction; then, when asked, the store's compliance analysis
(:func:`tuban.store.analysis.analyse_round`) classifies them in a second one, so a round
whose analysis fails (no divisions loaded yet, say) still exists and can be analysed
again with :func:`analyse`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuban.errors import InputNotFoundError, TubanError, UsageError
from tuban.workflow.access import Actor
from tuban.workflow.service import perform

__all__ = ["IntakeLimits", "analyse", "create_round_from_file", "detection_imagery", "detection_runs",
           "read_patch_file", "resolve_detection_run", "run_imagery"]

#: file types a patch file may have (as :func:`tuban.io.read_vector` reads them)
PATCH_FILE_SUFFIXES = (".zip", ".gpkg", ".geojson", ".json", ".kml")
_RUN_NAME = re.compile(r"^[\w\-. ]{1,128}\.gpkg$")


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """Limits for a patch file read on behalf of a web user."""

    max_features: int = 200_000
    max_vertices: int = 100_000
    zip_uncompressed_bytes: int = 1024 * 1024 * 1024
    zip_ratio: float = 100.0


def read_patch_file(path: str | Path, *, limits: IntakeLimits, qdnm_prefix: str,
                    crs: str | None = None) -> Any:
    """The patches of *path* with official fields (EPSG:4490); QDNM numbered where missing."""
    from pyogrio.errors import DataLayerError, DataSourceError

    from tuban.errors import InputError
    from tuban.io import read_vector, to_official
    from tuban.io.safezip import ZipLimits

    try:
        gdf = read_vector(path, crs=crs, max_features=limits.max_features, max_vertices=limits.max_vertices,
                          zip_limits=ZipLimits(max_total_bytes=limits.zip_uncompressed_bytes,
                                               max_ratio=limits.zip_ratio))
    except (DataSourceError, DataLayerError) as exc:  # a file GDAL cannot open (read_vector lets these through)
        reason = str(exc).split(";")[0].replace(str(path), Path(path).name)  # no server paths to clients
        raise InputError(f"the {Path(path).suffix} file cannot be read: {reason}",
                         hint="check that the file is complete and of the type its name says") from None
    columns = {str(c).upper(): c for c in gdf.columns}
    if "QDNM" not in columns:
        gdf = gdf.copy()
        gdf["QDNM"] = [f"{qdnm_prefix}-{i + 1:05d}" for i in range(len(gdf))]
    return to_official(gdf, "patches")


def detection_runs(folder: Path | None) -> list[dict[str, Any]]:
    """The detection outputs (``*.gpkg``) in the server's detection folder, newest first."""
    if folder is None or not folder.is_dir():
        return []
    runs = []
    for p in folder.glob("*.gpkg"):
        if p.is_file() and _RUN_NAME.match(p.name) and not p.name.startswith("."):  # hidden: still being written
            st = p.stat()
            runs.append({"name": p.name, "bytes": st.st_size, "modified": st.st_mtime})
    return sorted(runs, key=lambda r: (-r["modified"], r["name"]))


def resolve_detection_run(folder: Path | None, name: str) -> Path:
    """The path of the detection output *name*: a plain file name inside *folder*, nothing else."""
    if folder is None:
        raise UsageError("this server has no detection folder", hint="start it with a workspace (tuban serve)")
    if not _RUN_NAME.match(name or "") or Path(name).name != name or name.startswith("."):
        raise UsageError(f"{name!r} is not the name of a detection output (NAME.gpkg)")
    path = folder / name
    if not path.is_file():
        raise InputNotFoundError(f"no detection output {name!r} in the detection folder",
                                 hint="GET /api/detection-runs lists them")
    return path


def run_imagery(run: Path) -> dict[str, Path]:
    """Where the dates' true-colour COGs of a detection output ``NAME.gpkg`` go, beside it: ``NAME.before.tif``,
    ``NAME.after.tif`` (a detection job writes them, :class:`tuban.workflow.jobs.Worker`)."""
    stem = run.name[: -len(".gpkg")]
    return {d: run.with_name(f"{stem}.{d}.tif") for d in ("before", "after")}


def detection_imagery(run: Path) -> dict[str, str]:
    """The true-colour COGs a detection job wrote beside its output (:func:`run_imagery`), for the review map
    of a round made from it; ``{}`` when it has none (a run of ``tuban detect``)."""
    found = run_imagery(run)
    return {d: str(p.resolve()) for d, p in found.items()} if all(p.is_file() for p in found.values()) else {}


def analyse(store: Any, actor: Actor, round_name: str, *, previous_round: str | None = None) -> dict[str, Any]:
    """Run the store's compliance analysis on a round; returns its summary."""
    from tuban.store.analysis import analyse_round

    if not actor.allows("round.create"):
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not analyse rounds")
    result = analyse_round(store, round_name, previous_round=previous_round, actor=actor.username)
    return dict(result.summary())


def create_round_from_file(store: Any, actor: Actor, name: str, path: str | Path, *, period: str | None = None,
                           previous_round: str | None = None, run_analysis: bool = True,
                           state: str = "issued", source: str | None = None,
                           limits: IntakeLimits | None = None, crs: str | None = None,
                           imagery: dict[str, str] | None = None) -> dict[str, Any]:
    """Create round *name* with the patches of *path*, then (optionally) analyse it; *imagery*: the round's
    before/after COGs (a detection job's quicklooks, :func:`detection_imagery`).

    Returns ``{"id", "name", "patches", "analysis", "analysis_error"}``: ``analysis`` is
    the analysis summary, or ``None`` with the reason in ``analysis_error``.
    """
    from tuban.workflow.rounds import create_round_with_patches

    if not actor.allows("round.create"):
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not create rounds")
    name = (name or "").strip()
    gdf = read_patch_file(path, limits=limits or IntakeLimits(), qdnm_prefix=name or "P", crs=crs)
    rnd, count = perform(store, actor, create_round_with_patches, name, gdf, period=period, source=source,
                         state=state, imagery=imagery)
    store.refresh_statistics()  # a bulk load: the planner should see it before the first map view
    out: dict[str, Any] = {"id": rnd.id, "name": rnd.name, "patches": count, "analysis": None,
                           "analysis_error": None}
    if run_analysis and count:
        try:
            out["analysis"] = analyse(store, actor, rnd.name, previous_round=previous_round)
        except TubanError as exc:
            out["analysis_error"] = str(exc)
    return out
