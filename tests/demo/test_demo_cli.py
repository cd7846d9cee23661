from __future__ import annotations

import pytest

from tuban.cli import main


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["demo", "--workspace", str(ws), "--size", "tiny", "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "patches by county" in out
    assert "round patches vs truth" in out
    assert "province" in out
    assert "county_reviewer" in out
    assert "field_inspector" in out
    assert (ws / "tuban.sqlite").exists()
    # the scene's dates are offered to detection jobs
    assert sorted(p.name.split("_", 1)[1] for p in (ws / "imagery").iterdir()) == ["after", "baseline", "before"]
    from sqlalchemy import func, select

    from tuban.store import open_store
    from tuban.store.models import Decision, Task

    with open_store(f"sqlite:///{ws / 'tuban.sqlite'}") as store:
        divs = store.divisions_frame()
        patches = store.patches_frame("2024-1")
        with store.session() as s:
            task_counties = set(s.scalars(select(Task.division_code)))
            suspected = s.scalar(select(func.count()).select_from(Decision).where(Decision.kind == "suspected"))
    assert len(divs) == 10
    # the round is issued to its lead counties and analysed in the store (rule + sentence per patch)
    lead = {str(v).split(",")[0] for v in patches["XZQDM"].dropna() if v}
    assert task_counties == lead
    assert suspected == len(patches)
    assert len(patches) > 0
    # several counties get work
    counties = {c for v in patches["XZQDM"].dropna() for c in str(v).split(",") if c}
    assert len(counties) >= 2


def test_divisions_are_cgcs2000_and_shifted_from_gcj02():
    from importlib import resources

    import geopandas as gpd

    from tuban.demo import load_divisions

    d = load_divisions()
    assert d.crs.to_epsg() == 4490
    assert set(d["XZQDM"]) >= {"410802", "410811", "410821"}
    raw = gpd.read_file(resources.files("tuban.demo") / "data" / "410811.geojson")
    shift = raw.geometry.iloc[0].centroid.distance(d.set_index("XZQDM").geometry["410811"].centroid)
    assert 0.003 < shift < 0.01  # ~550 m in degrees: the GCJ-02 offset was removed


def test_serve_hook_uses_the_web_entry_point(tmp_path, monkeypatch):
    """``tuban demo`` serves through tuban.web.serve (what ``tuban serve`` runs), on the demo workspace."""
    import tuban.web.serve as web_serve
    from tuban.demo import serve_hook
    from tuban.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws", name="demo")
    calls = []
    monkeypatch.setattr(web_serve, "serve", lambda settings, *, host, port, worker: calls.append(
        (settings, host, port, worker)))
    assert serve_hook(ws.root, port=8123) is True
    settings, host, port, worker = calls[0]
    assert (host, port, worker) == ("127.0.0.1", 8123, True)  # with a worker for the web's detection jobs
    assert str(ws.root) in settings.database_url
