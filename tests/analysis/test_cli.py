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
