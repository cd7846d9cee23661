"""``tuban analyse`` end to end on small GeoPackages."""

from __future__ import annotations

import json

import pyogrio
import pytest

from tuban.cli import main

from . import layouts as lay


@pytest.fixture
def files(tmp_path):
    p = lay.patches([lay.box(0, 0, 100, 100), lay.box(300, 0, 400, 100), lay.box(5000, 5000, 5020, 5020)])
    p["QTYPE"] = "其他扰动"
    s = lay.scopes([lay.box(-10, -10, 110, 110), lay.box(300, 0, 380, 100)])
    prev = lay.patches([lay.box(0, 0, 100, 100), lay.box(7000, 7000, 7100, 7100)], ["Q1", "Q2"])
    out = {}
    for name, frame in {"patches": p, "scopes": s, "divisions": lay.divisions(), "previous": prev}.items():
        out[name] = tmp_path / f"{name}.gpkg"
        frame.to_file(out[name], engine="pyogrio")
    out["out"] = tmp_path / "out.gpkg"
    return out


def test_analyse_writes_every_patch_with_the_analysis_columns(files, capsys):
    rc = main(["analyse", str(files["patches"]), "--scopes", str(files["scopes"]), "--divisions",
               str(files["divisions"]), "--previous", str(files["previous"]), "-o", str(files["out"])])
    assert rc == 0
    assert "3 patches analysed" in capsys.readouterr().out
    layers = {name for name, _ in pyogrio.list_layers(files["out"])}
    assert layers == {"patches", "completed", "lineage"}
    out = pyogrio.read_dataframe(files["out"], layer="patches")
    assert list(out["QDNM"]) == ["T1", "T2", "T3"]
    assert list(out["QTYPE"]) == ["其他扰动"] * 3
    assert list(out["RULE_ID"]) == ["R1", "R2", "R5"]
    assert list(out["BYD"]) == ["合规", "疑似超出防治责任范围", "疑似未批先建"]
    assert list(out["QDTYPE"]) == ["续建（范围不变）", "新增", "新增"]
    assert out["EAREA"][1] == pytest.approx(0.2, abs=1e-6)
    assert list(out["PRID"][:2]) == ["P01", "P02"]
    assert json.loads(out["NUMBERS"][1])["outside_pct"] == pytest.approx(20, abs=1e-3)
    assert "超出项目 P02" in out["EXPLAIN_ZH"][1]
    assert "1,000 m³" in out["EXPLAIN_EN"][2]
    completed = pyogrio.read_dataframe(files["out"], layer="completed")
    assert list(completed["QDNM"]) == ["Q2"]
    assert list(completed["QDTYPE"]) == ["完工"]
    lineage = pyogrio.read_dataframe(files["out"], layer="lineage", read_geometry=False)
    assert list(zip(lineage["QDNM"], lineage["PREV_QDNM"], strict=True)) == [("T1", "Q1")]


def test_analyse_refuses_a_non_gpkg_output(files, capsys):
    rc = main(["analyse", str(files["patches"]), "--scopes", str(files["scopes"]), "--divisions",
               str(files["divisions"]), "-o", str(files["out"].with_suffix(".shp"))])
    assert rc == 2
    assert "GeoPackage" in capsys.readouterr().err


def test_analyse_names_missing_fields(files, tmp_path, capsys):
    bad = lay.divisions().rename(columns={"XZQDM": "CODE"})
    path = tmp_path / "bad.gpkg"
    bad.to_file(path, engine="pyogrio")
    rc = main(["analyse", str(files["patches"]), "--scopes", str(files["scopes"]), "--divisions", str(path),
               "-o", str(files["out"])])
    assert rc == 4
    assert "XZQDM" in capsys.readouterr().err


def test_analyse_round_in_the_workspace_store(tmp_path, monkeypatch, capsys):
    from sqlalchemy import select

    from tuban.store import open_store
    from tuban.store.models import Patch
    from tuban.workspace import init_workspace

    monkeypatch.delenv("TUBAN_DATABASE_URL", raising=False)
    ws = init_workspace(tmp_path / "ws")
    with open_store(ws.database_url) as store:
        store.upgrade()
        store.import_divisions(lay.divisions(), actor="t")
        store.import_projects(lay.scopes([lay.box(-10, -10, 110, 110), lay.box(300, 0, 380, 100)]), actor="t")
        store.import_patches(lay.patches([lay.box(0, 0, 100, 100), lay.box(7000, 7000, 7100, 7100)], ["Q1", "Q2"]),
                             round_name="2023-1", actor="t")
        store.import_patches(lay.patches([lay.box(0, 0, 100, 100), lay.box(300, 0, 400, 100)]),
                             round_name="2024-1", actor="t")
    rc = main(["analyse", "--round", "2024-1", "--previous-round", "2023-1", "--workspace", str(ws.root),
               "--workers", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "round 2024-1: 2 patches analysed (shapely" in out
    assert "R1 1, R2 1" in out
    assert "completed (完工): 1" in out
    with open_store(ws.database_url) as store, store.session() as s:
        got = {p.qdnm: (p.byd, p.qdtype) for p in s.scalars(select(Patch).where(Patch.qdnm.in_(["T1", "T2"])))}
    assert got == {"T1": ("合规", "续建（范围不变）"), "T2": ("疑似超出防治责任范围", "新增")}


def test_analyse_round_refuses_file_arguments(files, tmp_path, capsys):
    rc = main(["analyse", str(files["patches"]), "--round", "2024-1", "--workspace", str(tmp_path)])
    assert rc == 2
    assert "PATCHES cannot be used with it" in capsys.readouterr().err
    rc = main(["analyse", str(files["patches"]), "--scopes", str(files["scopes"])])
    assert rc == 2
    assert "needs --divisions, -o" in capsys.readouterr().err
