"""Server-rendered pages (页面). Data comes from the JSON API; pages hold no logic."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tuban.web.deps import require
from tuban.workflow import rounds
from tuban.workflow.access import Actor, load_patch, load_round

router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, ctx: dict[str, Any]) -> Response:
    return request.app.state.pages.render(request, name, ctx)


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/rounds", status_code=303)


@router.get("/rounds")
def rounds_page(request: Request, actor: Annotated[Actor, require("round.read")]) -> Response:
    with request.app.state.store.session() as s:
        items = rounds.list_rounds(s, actor)
    can_detect = actor.allows("detect.run") and request.app.state.settings.imagery_dir is not None
    strings = {k: v for k, v in _messages(request).items() if k.startswith("jobs.")} if can_detect else {}
    return _render(request, "rounds.html", {"rounds": items, "can_create": actor.allows("round.create"),
                                            "can_detect": can_detect, "jobs_strings": script_json(strings)})


def _messages(request: Request) -> dict[str, str]:
    """The catalogue in the page's language (its cookie, else the server's default)."""
    lang = request.cookies.get("tuban_lang") or request.app.state.settings.default_lang
    return request.app.state.catalogue.for_lang(lang if lang in ("zh", "en") else "zh")


@router.get("/rounds/{round_id}")
def dashboard_page(request: Request, round_id: int, actor: Annotated[Actor, require("round.read")]) -> Response:
    with request.app.state.store.session() as s:
        data = rounds.dashboard(s, actor, round_id)
    can_image = actor.perms.division_scope("round.create") is None and request.app.state.settings.imagery_dir is not None
    return _render(request, "dashboard.html", {"d": data, "can_issue": actor.perms.division_scope("task.issue") is None,
                                               "can_set_imagery": can_image,
                                               "can_submit": bool(actor.perms.division_scope("round.submit") is None
                                                                  or actor.perms.division_scope("round.submit"))})


@router.get("/rounds/{round_id}/review")
def review_page(request: Request, round_id: int, actor: Annotated[Actor, require("patch.read")]) -> Response:
    from tuban.codes import codelists
    from tuban.workflow.queries import visible_extent

    with request.app.state.store.session() as s:
        rnd = load_round(s, actor, round_id)
        info = {"id": rnd.id, "name": rnd.name, "imagery": sorted((rnd.imagery or {}).keys())}
        extent = visible_extent(s, actor, round_id)
    cl = codelists()
    lang = request.cookies.get("tuban_lang") or request.app.state.settings.default_lang
    messages = _messages(request)
    can = {v: actor.perms.division_scope(v) != frozenset()
           for v in ("patch.edit", "patch.review", "patch.reject", "patch.determine", "round.accept", "case.manage",
                      "patch.split_merge")}
    boot = {"round": info, "lang": lang, "messages": messages, "can": can, "extent": extent,
            "codelists": {n: [[i.code, i.zh if lang != "en" else i.en] for i in cl[n].items]
                          for n in ("BYD", "QTYPE", "QDCS", "QDTYPE", "SEROSION", "FLAG", "REJECT_REASON",
                                    "PATCH_STATE")}}
    return _render(request, "review.html", {"round": info, "boot_json": script_json(boot),
                                            "codelists": boot["codelists"]})


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` escaped, so
    text from the database (a round's name) cannot close the script element."""
    return (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@router.get("/patches/{patch_id}")
def patch_page(request: Request, patch_id: int, actor: Annotated[Actor, require("patch.read")]) -> Response:
    with request.app.state.store.session() as s:
        patch = load_patch(s, actor, patch_id, "patch.read")
        round_id = patch.round_id
    return RedirectResponse(f"/rounds/{round_id}/review#patch={patch_id}", status_code=303)


@router.get("/cases")
def cases_page(request: Request, actor: Annotated[Actor, require("patch.read")]) -> Response:
    from tuban.web.routes.cases import list_cases

    return _render(request, "cases.html", {"cases": list_cases(request, actor),
                                           "can_manage": actor.perms.division_scope("case.manage") != frozenset()})
