"""Imagery tiles of a round.

* ``/rounds/{round_id}/tiles/{before|after}/{z}/{x}/{y}`` — what the review map loads:
  JPEG where the tile is all image, PNG with transparency at the image's edge;
* ``/rounds/{round_id}/tiles/{before|after}/{z}/{x}/{y}.png`` — always PNG (GIS clients,
  the field app's offline packs).

A tile of a file never changes, so responses carry an ``ETag`` made from the file's size
and modification time: a browser revalidating gets 304 without a render.
"""

from __future__ import annotations

import hashlib
import os
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tuban.web.deps import require
from tuban.web.tiles import TileFormat
from tuban.workflow.access import Actor

router = APIRouter(tags=["imagery"])

CACHE_CONTROL = "private, max-age=3600"


def _tile(request: Request, round_id: int, which: str, z: int, x: int, y: int, fmt: TileFormat) -> Response:
    from tuban.store.models import Round

    with request.app.state.store.session() as s:
        rnd = s.get(Round, round_id)
        path = (rnd.imagery or {}).get(which) if rnd is not None else None
    etag = None
    if path:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None:
            key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{fmt}|{request.app.state.tiles.tile_size}|{z}/{x}/{y}"
            etag = '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'
            if etag in request.headers.get("if-none-match", ""):
                return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    body, media_type = request.app.state.tiles.render_tile(path, z, x, y, fmt=fmt)
    headers = {"Cache-Control": CACHE_CONTROL}
    if etag:
        headers["ETag"] = etag
    return Response(body, media_type=media_type, headers=headers)


@router.get("/rounds/{round_id}/tiles/{which}/{z}/{x}/{y}.png", response_class=Response,
            summary="A before/after imagery tile as PNG (WebMercator XYZ)")
def tile_png(request: Request, round_id: int, which: Literal["before", "after"], z: int, x: int, y: int,
             actor: Annotated[Actor, require("patch.read")]) -> Response:
    return _tile(request, round_id, which, z, x, y, "png")


@router.get("/rounds/{round_id}/tiles/{which}/{z}/{x}/{y}", response_class=Response,
            summary="A before/after imagery tile: JPEG inside the image, PNG with alpha at its edge")
def tile(request: Request, round_id: int, which: Literal["before", "after"], z: int, x: int, y: int,
         actor: Annotated[Actor, require("patch.read")]) -> Response:
    return _tile(request, round_id, which, z, x, y, "auto")
