"""Detection jobs through the web app: a province analyst queues a detection of two scenes of the server's
imagery folder, a worker runs it, and its output becomes a round (检测任务 → 自动提取结果 → 新建期次)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tuban.workflow.jobs import Worker


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
    assert sorted(p.name for p in detection_dir.iterdir()) == [".jobs", "2024-auto.gpkg"]
    assert list((detection_dir / ".jobs").iterdir()) == []

    made = p_admin.post("/api/rounds/import", data={"name": "2024-auto", "run": "2024-auto.gpkg",
                                                     "analyse": "false"})
    assert made.status_code == 201, made.text
    assert made.json()["patches"] == ended["result"]["patches"]
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
