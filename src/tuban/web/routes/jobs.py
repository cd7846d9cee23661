"""Detection jobs (检测任务): scenes of the server's imagery folder in, a detection output out; imagery jobs
(复核影像任务): a scene in, a true-colour image for the review map out. Both run by ``tuban worker``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuban.web.deps import require
from tuban.workflow import jobs
from tuban.workflow.access import Actor

router = APIRouter(prefix="/api", tags=["api"])


class _Queued(BaseModel):
    """What every submission takes besides its own parameters: attempts and priority."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=10)
    priority: int = Field(default=0, ge=0, le=jobs.MAX_PRIORITY, description="0 ordinary … 9 urgent: claimed first")


class JobBody(_Queued):
    """What ``tuban detect`` takes, with scenes named inside the imagery folder."""

    output: str = Field(min_length=1, max_length=125, description="NAME (.gpkg added) in the detection folder")
    before: str = Field(min_length=1, max_length=520, description="a name from GET /api/imagery")
    after: str = Field(min_length=1, max_length=520)
    baseline: str | None = Field(default=None, max_length=520, description="an earlier date (seasonal change)")
    sensor: str | None = Field(default=None, max_length=32)
    bands: str | None = Field(default=None, max_length=200, description="blue,green,red,nir,… in file order")
    method: str | None = Field(default=None, max_length=32)
    mmu_ha: float = Field(default=0.04, ge=0, le=100)
    threshold: float | None = None
    water: bool = False


class ImageryJobBody(_Queued):
    """A scene of the imagery folder to make a true-colour image of (``true-colour/NAME.tif`` there)."""

    output: str = Field(min_length=1, max_length=124, description="NAME (.tif added) in the imagery folder's true-colour/")
    scene: str = Field(min_length=1, max_length=520, description="a name from GET /api/imagery")
    sensor: str | None = Field(default=None, max_length=32)
    bands: str | None = Field(default=None, max_length=200, description="blue,green,red,nir,… in file order")


class PriorityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int = Field(ge=0, le=jobs.MAX_PRIORITY, description="0 ordinary … 9 urgent")


@router.get("/imagery", summary="Scenes in the server's imagery folder a detection job may name")
def imagery(request: Request, actor: Annotated[Actor, require("detect.run")]) -> list[dict[str, Any]]:
    return jobs.imagery_entries(request.app.state.settings.imagery_dir)


@router.post("/detection-jobs", status_code=201, summary="Queue a detection (run by `tuban worker`)")
def submit(request: Request, body: JobBody, actor: Annotated[Actor, require("detect.run")]) -> dict[str, Any]:
    settings = request.app.state.settings
    params = body.model_dump(exclude={"output", "max_attempts", "priority"}, exclude_none=True)
    return jobs.submit_job(request.app.state.store, actor, imagery_dir=settings.imagery_dir,
                           detection_dir=settings.detection_dir, output=body.output, params=params,
                           max_attempts=body.max_attempts, priority=body.priority)


@router.post("/imagery-jobs", status_code=201,
             summary="Queue a true-colour image of a scene for the review map (run by `tuban worker`)")
def submit_imagery(request: Request, body: ImageryJobBody, actor: Annotated[Actor, require("detect.run")]
                   ) -> dict[str, Any]:
    params = body.model_dump(exclude={"output", "max_attempts", "priority"}, exclude_none=True)
    return jobs.submit_imagery_job(request.app.state.store, actor, imagery_dir=request.app.state.settings.imagery_dir,
                                   output=body.output, params=params, max_attempts=body.max_attempts,
                                   priority=body.priority)


@router.get("/detection-jobs", summary="Detection and imagery jobs, newest first")
def list_jobs(request: Request, actor: Annotated[Actor, require("detect.run")],
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    return jobs.list_jobs(request.app.state.store, limit=limit)


@router.get("/detection-jobs/{job_id}", summary="One detection job: state, progress, result or error")
def get_job(request: Request, job_id: int, actor: Annotated[Actor, require("detect.run")]) -> dict[str, Any]:
    return jobs.get_job(request.app.state.store, job_id)


@router.post("/detection-jobs/{job_id}/cancel", summary="Cancel a queued job, or stop a running one")
def cancel(request: Request, job_id: int, actor: Annotated[Actor, require("detect.run")]) -> dict[str, Any]:
    return jobs.cancel_job(request.app.state.store, actor, job_id)


@router.post("/detection-jobs/{job_id}/priority", summary="Change a queued job's priority (0 ordinary … 9 urgent)")
def set_priority(request: Request, job_id: int, body: PriorityBody, actor: Annotated[Actor, require("detect.run")]
                 ) -> dict[str, Any]:
    return jobs.set_priority(request.app.state.store, actor, job_id, body.priority)
