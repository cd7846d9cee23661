"""``tuban import`` / ``tuban export`` end to end on an SQLite workspace."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from tuban.cli import main
from tuban.crs import area_ha
from tuban.fields import PATCH_FIELDS
from tuban.io import read_vector, to_official, write_vector


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("TUBAN_DATABASE_URL", raising=False)
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    return ws


@pytest.mark.shared_data
def test_import_divisions_refuses_missing_crs_then_loads_gcj02(
    workspace: Path, shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shp = shared_data_dir / "admin" / "garybikini_shp_2020" / "焦作市.shp"
    assert main(["import", "divisions", str(shp), "-w", str(workspace)]) == 4
    err = capsys.readouterr().err
    assert "has no CRS" in err
    assert "--crs" in err
    assert "Traceback" not in err
    assert main(["import", "divisions", str(shp), "--crs", "gcj02", "-w", str(workspace)]) == 0
    assert "imported 10 divisions" in capsys.readouterr().out
    out = tmp_path / "d.geojson"
    assert main(["export", "divisions", "-o", str(out), "-w", str(workspace)]) == 0
    back = to_official(read_vector(out), "divisions")
    assert len(back) == 10
    assert "山阳区" in back["XZQMC"].tolist()
    total = area_ha(back.geometry.values).sum() / 100
    direct = area_ha(read_vector(shp, crs="gcj02").geometry.values).sum() / 100
    assert total == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "geojson"])
def test_patches_import_export_import_unchanged(
    workspace: Path, patches: gpd.GeoDataFrame, tmp_path: Path, fmt: str
) -> None:
    src = write_vector(to_official(patches, "patches"), tmp_path / f"in.{fmt}")
    assert main(["import", "patches", str(src), "--round", "2024-1", "-w", str(workspace)]) == 0
    out = tmp_path / f"out.{fmt}"
    assert main(["export", "patches", "-o", str(out), "--round", "2024-1", "-w", str(workspace)]) == 0
    want = to_official(patches, "patches").sort_values("QDNM").reset_index(drop=True)
    got = to_official(read_vector(out), "patches").sort_values("QDNM").reset_index(drop=True)
    for name, spec in PATCH_FIELDS.items():
        if spec.kind == "real":
            assert got[name].tolist() == pytest.approx(want[name].tolist(), rel=1e-9), name
        else:
            assert got[name].tolist() == want[name].tolist(), name
    ga, gw = area_ha(got.geometry.values), area_ha(want.geometry.values)
    assert abs(ga - gw).max() <= 1e-6 * gw.min()


def test_bad_patch_file_imports_nothing(
    workspace: Path, patches: gpd.GeoDataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patches.loc[2, "BYD"] = "违法"
    src = tmp_path / "bad.gpkg"
    patches.to_file(src)
    assert main(["import", "patches", str(src), "--round", "2024-1", "-w", str(workspace)]) == 4
    assert "BYD='违法'" in capsys.readouterr().err
    out = tmp_path / "out.gpkg"
    assert main(["export", "patches", "-o", str(out), "-w", str(workspace)]) == 0
    assert "exported 0 patches" in capsys.readouterr().out


def test_projects_import_and_export(workspace: Path, projects: gpd.GeoDataFrame, tmp_path: Path) -> None:
    src = write_vector(to_official(projects, "projects"), tmp_path / "pr.gpkg")
    assert main(["import", "projects", str(src), "-w", str(workspace)]) == 0
    out = tmp_path / "pr_out.shp"
    assert main(["export", "projects", "-o", str(out), "-w", str(workspace)]) == 0
    back = to_official(read_vector(out), "projects")
    assert back["PRO_NAME"].tolist() == ["焦作市某道路工程"]
    assert back["RP_TIME"].tolist() == ["2023-05-06"]


def test_export_round_only_for_patches(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["export", "divisions", "-o", str(tmp_path / "d.gpkg"), "--round", "x", "-w", str(workspace)])
        == 2
    )
    assert "--round applies to patches only" in capsys.readouterr().err
