"""Creating rounds from a patch file or a detection run, and (re)running their analysis."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from tuban.errors import LimitExceededError, UsageError
from tuban.web.deps import require
from tuban.workflow import intake, jobs, rounds
from tuban.workflow.access import Actor, load_round
from tuban.workflow.service import perform

router = APIRouter(prefix="/api", tags=["api"])


class AnalyseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    previous_round: str | None = Field(default=None, max_length=64)


def _limits(request: Request) -> intake.IntakeLimits:
    return intake.IntakeLimits(max_features=request.app.state.settings.max_import_features)


def _save_upload(upload: UploadFile, folder: Path, max_bytes: int) -> Path:
    """Copy the upload to *folder* under a safe name with its (allowed) suffix, at most *max_bytes*."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in intake.PATCH_FILE_SUFFIXES:
        raise UsageError(f"a patch file must be one of {', '.join(intake.PATCH_FILE_SUFFIXES)}, "
                         f"got {upload.filename!r}", hint="zip a Shapefile with its .dbf/.shx/.prj/.cpg")
    target = folder / f"upload{suffix}"
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise LimitExceededError(f"the patch file is over {max_bytes} bytes",
                                         hint="import large rounds with `tuban import patches`")
            out.write(chunk)
    return target


@router.get("/detection-runs", summary="Detection outputs on the server a round can be created from")
def detection_runs(request: Request, actor: Annotated[Actor, require("round.create")]) -> list[dict[str, Any]]:
    return intake.detection_runs(request.app.state.settings.detection_dir)


@router.post("/rounds/import", status_code=201,
             summary="Create a round from a patch file (upload) or a detection run, then analyse it")
def import_round(
    request: Request,
    actor: Annotated[Actor, require("round.create")],
    name: Annotated[str, Form(min_length=1, max_length=64)],
    period: Annotated[str | None, Form(max_length=16)] = None,
    previous_round: Annotated[str | None, Form(max_length=64)] = None,
    analyse: Annotated[bool, Form()] = True,
    crs: Annotated[str | None, Form(max_length=32, description="CRS when the file has none: "
                                    "gcj02|bd09|wgs84|cgcs2000|EPSG:n")] = None,
    run: Annotated[str | None, Form(max_length=140, description="a name from GET /api/detection-runs")] = None,
    file: Annotated[UploadFile | None, File(description=".zip (Shapefile), .gpkg, .geojson, .kml")] = None,
) -> dict[str, Any]:
    """Exactly one of ``file`` (the province's patch file: patches issued) and ``run`` (a
    detector's output: patches ``detected``, QDNM numbered) is given."""
    settings = request.app.state.settings
    if (file is None) == (run is None):
        raise UsageError("give either a patch file (file) or a detection run (run), not both or neither")
    store = request.app.state.store
    opts: dict[str, Any] = {"period": period or None, "previous_round": previous_round or None,
                            "run_analysis": analyse, "limits": _limits(request), "crs": crs or None}
    if run is not None:
        path = intake.resolve_detection_run(settings.detection_dir, run)
        return intake.create_round_from_file(store, actor, name, path, state="detected",
                                             source=f"detection run {run}", imagery=intake.detection_imagery(path),
                                             **opts)
    assert file is not None
    folder = Path(tempfile.mkdtemp(prefix="tuban-upload-"))
    try:
        path = _save_upload(file, folder, settings.max_body_bytes)
        return intake.create_round_from_file(store, actor, name, path, state="issued",
                                             source=f"upload {Path(file.filename or '').name}"[:200], **opts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class ImageryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str = Field(min_length=1, max_length=520, description="an image file from GET /api/imagery")
    after: str = Field(min_length=1, max_length=520)


@router.put("/rounds/{round_id}/imagery", summary="Set the round's before/after review imagery (影像) from the "
                                                 "server's imagery folder")
def set_round_imagery(request: Request, round_id: int, body: ImageryBody,
                      actor: Annotated[Actor, require("round.create")]) -> dict[str, Any]:
    folder = request.app.state.settings.imagery_dir
    before, after = jobs.imagery_file(folder, body.before), jobs.imagery_file(folder, body.after)
    rnd = perform(request.app.state.store, actor, rounds.set_imagery, round_id, before=str(before), after=str(after))
    return {"id": rnd.id, "imagery": {"before": body.before, "after": body.after}}


@router.post("/rounds/{round_id}/analyse", summary="(Re)run the compliance analysis of a round")
def analyse_round(request: Request, round_id: int, body: AnalyseBody,
                  actor: Annotated[Actor, require("round.create")]) -> dict[str, Any]:
    store = request.app.state.store
    with store.session() as s:
        name = load_round(s, actor, round_id, "round.create").name
    return intake.analyse(store, actor, name, previous_round=body.previous_round)
