"""A worker ``kill -9``'d with its detection job in hand (reliability.md #45): once its lease has run out the next
``tuban worker`` takes the job, and the output is the one a direct run gives, published once, with nothing
partial left visible. Real worker processes on both backends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tuban.workflow import jobs
from tuban.workflow.rounds import actor_for

#: a `tuban worker --once` whose detection, once written under its hidden name, touches a file and hangs
#: before publishing it: the test kills it there, the worst moment (a whole result not yet published)
HANGING_WORKER = """
import pathlib, sys, time
import tuban.detect.output as out
real = out.write_patches
def write_then_hang(result, path):
    real(result, path)
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(600)
out.write_patches = write_then_hang
from tuban.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def _wait(what: str, cond: Any, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_the_job_of_a_killed_worker_is_finished_by_the_next(store: Any, personas: dict[str, int],
                                                            tiny_scene: Any, tmp_path: Path) -> None:
    import geopandas as gpd

    from tuban.detect.engine import detect
    from tuban.store.models import AuditEntry
    from tuban.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), ws.imagery_dir / date)
    ws.detection_dir.mkdir()
    job = jobs.submit_job(store, actor_for(store, personas["p_admin"]), imagery_dir=ws.imagery_dir,
                          detection_dir=ws.detection_dir, output="crash", params={"before": "before", "after": "after"})
    env = {**os.environ, "TUBAN_DATABASE_URL": store.url}
    args = ["worker", "--once", "--lease", "2", "-w", str(ws.root)]
    signal_file = tmp_path / "written"
    first = subprocess.Popen([sys.executable, "-c", HANGING_WORKER, str(signal_file), *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait("the first worker's result", lambda: signal_file.exists() or first.poll() is not None)
        assert first.poll() is None, first.stdout.read().decode() if first.stdout else ""
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    held = jobs.get_job(store, job["id"])
    assert held["state"] == "running"
    assert held["attempts"] == 1
    assert not (ws.detection_dir / "crash.gpkg").exists()  # its result is written, hidden, and never published
    assert len(list((ws.detection_dir / ".jobs").glob(f"{job['id']}-*.gpkg"))) == 1
    assert not list(ws.detection_dir.glob("crash.*"))
    assert jobs.claim_job(store, "early", lease_s=30) is None  # the dead worker's lease still holds

    _wait("the dead worker's lease to run out",
          lambda: datetime.fromisoformat(jobs.get_job(store, job["id"])["lease_until"]) < datetime.now(UTC))
    second = subprocess.run([sys.executable, "-m", "tuban", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    done = jobs.get_job(store, job["id"])
    assert done["state"] == "done", done["error"]
    assert done["attempts"] == 2
    with store.session() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.entity == "detection_job",
                                                       AuditEntry.entity_id == str(job["id"]))
                              .order_by(AuditEntry.id)))
    assert [r.action for r in rows] == ["detection_job.submit", "detection_job.claim", "detection_job.claim",
                                        "detection_job.done"]
    assert rows[2].after["lease_lost_by"] == held["worker"]  # the second claim names the worker that lost it
    assert sorted(p.name for p in ws.detection_dir.iterdir()) == [".jobs", "crash.after.tif", "crash.before.tif",
                                                                   "crash.gpkg"]
    assert list((ws.detection_dir / ".jobs").iterdir()) == []  # the dead worker's hidden file is gone too

    ref = detect(str(ws.imagery_dir / "before"), str(ws.imagery_dir / "after")).patches
    got = gpd.read_file(ws.detection_dir / "crash.gpkg", layer="patches")
    assert len(got) == len(ref) == done["result"]["patches"] > 0
    assert sorted(g.wkb for g in got.geometry.normalize()) == sorted(g.wkb for g in ref.geometry.normalize())
