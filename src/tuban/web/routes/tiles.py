"""Imagery tiles of a round: ``/rounds/{round_id}/tiles/{before|after}/{z}/{x}/{y}.png``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tuban.web.deps import require
from tuban.workflow.access import Actor

router = APIRouter(tags=["imagery"])


@router.get("/rounds/{round_id}/tiles/{which}/{z}/{x}/{y}.png", response_class=Response,
            summary="A before/after imagery tile (PNG, WebMercator XYZ)")
def tile(request: Request, round_id: int, which: Literal["before", "after"], z: int, x: int, y: int,
         actor: Annotated[Actor, require("patch.read")]) -> Response:
    from tuban.store.models import Round

    with request.app.state.store.session() as s:
        rnd = s.get(Round, round_id)
        path = (rnd.imagery or {}).get(which) if rnd is not None else None
    png = request.app.state.tiles.render(path, z, x, y)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
