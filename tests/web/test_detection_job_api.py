"""Detection jobs through the web app: a province analyst queues a detection of two scenes of the server's
imagery folder, a worker runs it, and its output becomes a round (检测任务 → 自动提取结果 → 新建期次)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tuban.workflow.jobs import Worker


def _tile_over(scene: Any) -> Any:
    """The web-mercator tile at zoom 15 over the middle of a synthetic scene."""
    import morecantile
    from pyproj import Transformer

    a, _, c, _, e, f = tuple(scene.transform)[:6]
    x, y = c + a * scene.width / 2, f + e * scene.height / 2
    lon, lat = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 15)


def test_a_queued_detection_becomes_a_round(client_for, world, tiny_scene: Any, imagery_dir: Path,
                                            detection_dir: Path) -> None:
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), imagery_dir / "s2" / date)
    p_admin = client_for("p_admin")
    listed = p_admin.get("/api/imagery").json()
    assert {"name": "s2/before", "kind": "folder"} in listed
    assert {"name": "after.tif", "kind": "file"} in listed
    r = p_admin.post("/api/detection-jobs", json={"output": "2024-auto", "before": "s2/before",
                                                  "after": "s2/after", "mmu_ha": 0.04})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued"
    assert job["output"] == "2024-auto.gpkg"
    assert p_admin.get("/api/detection-runs").json() == []  # nothing to pick before the job is done

    ended = Worker(world.store, imagery_dir=imagery_dir, detection_dir=detection_dir, lease_s=30).run_once()
    assert ended is not None
    assert ended["id"] == job["id"]
    assert ended["state"] == "done", ended["error"]
    assert ended["result"]["patches"] > 0
    assert ended["attempts"] == 1
    assert p_admin.get(f"/api/detection-jobs/{job['id']}").json()["state"] == "done"
    assert [j["id"] for j in p_admin.get("/api/detection-jobs").json()] == [job["id"]]
    runs = p_admin.get("/api/detection-runs").json()
    assert [run["name"] for run in runs] == ["2024-auto.gpkg"]
    assert sorted(p.name for p in detection_dir.iterdir()) == [".jobs", "2024-auto.after.tif", "2024-auto.before.tif",
                                                                "2024-auto.gpkg"]
    assert list((detection_dir / ".jobs").iterdir()) == []

    made = p_admin.post("/api/rounds/import", data={"name": "2024-auto", "run": "2024-auto.gpkg",
                                                     "analyse": "false"})
    assert made.status_code == 201, made.text
    assert made.json()["patches"] == ended["result"]["patches"]
    # the round's review map shows the job's before/after imagery (true colour, on the run's grid)
    tile = _tile_over(tiny_scene)
    for date in ("before", "after"):
        r = p_admin.get(f"/rounds/{made.json()['id']}/tiles/{date}/{tile.z}/{tile.x}/{tile.y}.png")
        assert r.status_code == 200, r.text
        img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
        assert (img[..., 3] > 0).mean() > 0.5  # mostly image, not the transparent tile of "no imagery"
        assert img[..., :3][img[..., 3] > 0].std() > 5  # and not a flat colour
    # the output name is taken now
    again = p_admin.post("/api/detection-jobs", json={"output": "2024-auto", "before": "s2/before", "after": "s2/after"})
    assert again.status_code == 409
    assert "exists already" in again.text


def test_a_job_names_only_scenes_inside_the_imagery_folder(client_for, world, imagery_dir: Path) -> None:
    p_admin = client_for("p_admin")
    for bad in ("../tuban.sqlite", "/etc/passwd", "before.tif/../../x", ".secret"):
        r = p_admin.post("/api/detection-jobs", json={"output": "x", "before": bad, "after": "after.tif"})
        assert r.status_code == 422, (bad, r.text)
        assert "imagery folder" in r.json()["title"]
    r = p_admin.post("/api/detection-jobs", json={"output": "x", "before": "before.tif", "after": "after.tif",
                                                  "tile_size": 64})
    assert r.status_code == 422  # only tuban detect's own options
    assert p_admin.get("/api/detection-jobs").json() == []
    assert client_for("a_admin").get("/api/detection-jobs").status_code == 403
    assert p_admin.get("/api/detection-jobs/999").status_code == 404


def test_a_worker_stops_a_cancelled_run(client_for, world, tiny_scene: Any, imagery_dir: Path,
                                       detection_dir: Path) -> None:
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), imagery_dir / date)
    p_admin = client_for("p_admin")
    job = p_admin.post("/api/detection-jobs", json={"output": "c", "before": "before", "after": "after"}).json()
    worker = Worker(world.store, imagery_dir=imagery_dir, detection_dir=detection_dir, lease_s=3)
    real = worker._detect

    def cancelled_meanwhile(claim, lease, written):  # the analyst cancels while the worker runs it
        assert p_admin.post(f"/api/detection-jobs/{job['id']}/cancel").json()["cancel_requested"]
        lease.outcome = "cancel"  # what the lease thread's next renewal answers
        return real(claim, lease, written)

    worker._detect = cancelled_meanwhile  # type: ignore[method-assign]
    ended = worker.run_once()
    assert ended is not None
    assert ended["state"] == "cancelled"
    assert ended["error"] is None
    assert not (detection_dir / "c.gpkg").exists()
    assert list((detection_dir / ".jobs").iterdir()) == []


def test_serve_with_worker_runs_the_queued_jobs(tiny_scene: Any, tmp_path: Path) -> None:
    """``tuban serve --worker``: one process answers the web and runs the detection jobs (one machine)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from tuban.cli import main
    from tuban.store import open_store
    from tuban.workflow import jobs
    from tuban.workflow.rounds import actor_for
    from tuban.workspace import open_workspace

    root = tmp_path / "ws"
    assert main(["init", str(root)]) == 0
    assert main(["db", "upgrade", "-w", str(root)]) == 0
    ws = open_workspace(root)
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), ws.imagery_dir / date)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "TUBAN_DATABASE_URL"}
    server = subprocess.Popen([sys.executable, "-m", "tuban", "serve", "--worker", "--port", str(port), "-w", str(root)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open_store(ws.database_url) as store:
            uid = store.add_user("analyst", "password-analyst", roles=[("province_analyst", None)], actor="test")
            job = jobs.submit_job(store, actor_for(store, uid), imagery_dir=ws.imagery_dir,
                                  detection_dir=ws.detection_dir, output="served", params={"before": "before",
                                                                                           "after": "after"})
            deadline = time.monotonic() + 240
            while (state := jobs.get_job(store, job["id"])["state"]) in jobs.ACTIVE_STATES:
                assert server.poll() is None, "the server stopped"
                assert time.monotonic() < deadline, "the served worker did not run the job"
                time.sleep(0.2)
            assert state == "done"
            assert (ws.detection_dir / "served.gpkg").is_file()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_round_gets_its_review_imagery_from_the_imagery_folder(client_for, world, imagery_dir: Path,
                                                                tmp_path: Path) -> None:
    p_admin = client_for("p_admin")
    url = f"/api/rounds/{world.round_id}/imagery"
    import rasterio

    with rasterio.open(imagery_dir / "round" / "after.tif") as src:
        profile, data = src.profile, src.read()
    profile.update(count=2, driver="GTiff")
    with rasterio.open(imagery_dir / "two.tif", "w", **profile) as dst:
        dst.write(data[:2])
    refused = {
        "../tuban.sqlite": (422, "not the name of a scene"),
        "round": (422, "is a folder"),
        "before.tif": (422, "before.tif: not an image GDAL can read"),  # the placeholder
        "two.tif": (422, "has 2 bands"),
        "missing.tif": (404, "no scene"),
    }
    for name, (status, why) in refused.items():
        r = p_admin.put(url, json={"before": name, "after": "round/after.tif"})
        assert r.status_code == status, (name, r.text)
        assert why in r.json()["title"], (name, r.json())
        assert str(imagery_dir) not in r.text  # files named as the client named them
    assert client_for("a_admin").put(url, json={"before": "round/before.tif", "after": "round/after.tif"}
                                     ).status_code == 403
    r = p_admin.put(url, json={"before": "round/before.tif", "after": "round/after.tif"})
    assert r.status_code == 200, r.text
    assert r.json()["imagery"] == {"before": "round/before.tif", "after": "round/after.tif"}
    page = p_admin.get(f"/rounds/{world.round_id}")
    assert "before.tif" in page.text
    assert "round-imagery" in page.text
    import morecantile

    tile = morecantile.tms.get("WebMercatorQuad").tile(113.205, 35.205, 15)
    assert p_admin.get(f"/rounds/{world.round_id}/tiles/after/{tile.z}/{tile.x}/{tile.y}.png").status_code == 200
    assert "round-imagery" not in client_for("a_admin").get(f"/rounds/{world.round_id}").text  # county staff


def test_an_imagery_job_makes_a_rounds_review_imagery_from_band_folders(client_for, world, tiny_scene: Any,
                                                                        imagery_dir: Path, detection_dir: Path) -> None:
    """复核影像任务: a round whose patches came from elsewhere gets before/after imagery made from the province's
    Sentinel-2 band folders (no detection run), through the same queue and workers."""
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), imagery_dir / "s2" / date)
    p_admin = client_for("p_admin")
    refused = p_admin.post("/api/imagery-jobs", json={"output": "x", "scene": "before.tif"})  # the placeholder
    assert refused.status_code == 422, refused.text
    assert str(imagery_dir) not in refused.text
    assert client_for("a_admin").post("/api/imagery-jobs", json={"output": "x", "scene": "s2/after"}).status_code == 403
    assert p_admin.post("/api/imagery-jobs", json={"output": "x", "scene": "s2/after", "mmu_ha": 1}).status_code == 422
    queued = [p_admin.post("/api/imagery-jobs", json={"output": f"2024-{date}", "scene": f"s2/{date}"})
              for date in ("before", "after")]
    assert [r.status_code for r in queued] == [201, 201], [r.text for r in queued]
    listed = p_admin.get("/api/detection-jobs").json()
    assert [(j["kind"], j["output"], j["state"]) for j in listed] == [
        ("imagery", "true-colour/2024-after.tif", "queued"), ("imagery", "true-colour/2024-before.tif", "queued")]
    worker = Worker(world.store, imagery_dir=imagery_dir, detection_dir=detection_dir, lease_s=30)
    for _ in queued:
        ended = worker.run_once()
        assert ended is not None
        assert ended["state"] == "done", ended
    assert worker.run_once() is None
    names = {e["name"] for e in p_admin.get("/api/imagery").json()}
    assert {"true-colour/2024-before.tif", "true-colour/2024-after.tif"} <= names
    r = p_admin.put(f"/api/rounds/{world.round_id}/imagery",
                    json={"before": "true-colour/2024-before.tif", "after": "true-colour/2024-after.tif"})
    assert r.status_code == 200, r.text
    # a round's tiles over the scene come from the new images (the world's round lies elsewhere: its tile
    # there is the transparent "outside the image" one, so the check is the scene's own tile)
    tile = _tile_over(tiny_scene)
    img = np.asarray(Image.open(io.BytesIO(p_admin.get(
        f"/rounds/{world.round_id}/tiles/after/{tile.z}/{tile.x}/{tile.y}.png").content)).convert("RGBA"))
    assert (img[..., 3] > 0).mean() > 0.5
    assert img[..., :3][img[..., 3] > 0].std() > 5
