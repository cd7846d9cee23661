"""Imagery jobs (复核影像任务) in the store: a scene of the imagery folder becomes a true-colour COG in
``true-colour/`` through the detection jobs' queue, leases and workers. Both backends."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from sqlalchemy import select

from tuban.errors import BandError, ConflictError, PermissionDeniedError, UnsafeInputError, UsageError
from tuban.raster.quicklook import true_colour
from tuban.workflow import jobs
from tuban.workflow.rounds import actor_for


@pytest.fixture
def imagery(tmp_path: Path, tiny_scene: Any) -> Path:
    """An imagery folder with a Sentinel-2 band folder per date and a folder holding only a NIR band."""
    folder = tmp_path / "imagery"
    for date in ("before", "after"):
        shutil.copytree(getattr(tiny_scene, date), folder / "s2" / date)
    (folder / "nir-only").mkdir()
    nir = next(p for p in (folder / "s2" / "after").iterdir() if p.name.endswith("_B08.tif"))
    shutil.copyfile(nir, folder / "nir-only" / nir.name)
    return folder


def _submit(store: Any, personas: dict[str, int], imagery: Path, output: str = "after-rgb", who: str = "p_admin",
            **params: Any) -> dict[str, Any]:
    return jobs.submit_imagery_job(store, actor_for(store, personas[who]), imagery_dir=imagery, output=output,
                                   params={"scene": "s2/after", **params})


def _audit(store: Any, job_id: int) -> list[str]:
    from tuban.store.models import AuditEntry

    with store.session() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "detection_job",
                                                              AuditEntry.entity_id == str(job_id))
                              .order_by(AuditEntry.id)))


def test_a_submission_is_checked_before_it_is_queued(store: Any, personas: dict[str, int], imagery: Path) -> None:
    for bad in ("../s2/after", "/etc", ".hidden", "s2/../../x"):
        with pytest.raises(UnsafeInputError):
            _submit(store, personas, imagery, scene=bad)
    with pytest.raises(BandError, match="'nir-only' has no red, green, blue band") as err:
        _submit(store, personas, imagery, scene="nir-only")
    assert str(imagery) not in str(err.value)  # the scene as the job named it, not the server's path
    with pytest.raises(UsageError, match="unknown imagery parameters: mmu_ha"):
        _submit(store, personas, imagery, mmu_ha=0.1)
    with pytest.raises(UsageError, match="unknown sensor"):
        _submit(store, personas, imagery, sensor="hubble")
    with pytest.raises(UsageError, match="not an output name"):
        _submit(store, personas, imagery, output="../x")
    with pytest.raises(PermissionDeniedError):  # a county reviewer does not make province imagery
        _submit(store, personas, imagery, who="a_staff")
    job = _submit(store, personas, imagery, output="after-rgb.tif")
    assert (job["kind"], job["state"], job["output"]) == ("imagery", "queued", "true-colour/after-rgb.tif")
    assert job["params"] == {"kind": "imagery", "scene": "s2/after"}
    with pytest.raises(ConflictError, match="is writing"):  # one active job per output, across both kinds
        _submit(store, personas, imagery)
    assert _audit(store, job["id"]) == ["detection_job.submit"]


def test_a_worker_writes_the_true_colour_image_where_rounds_take_it(store: Any, personas: dict[str, int],
                                                                   imagery: Path, tmp_path: Path) -> None:
    job = _submit(store, personas, imagery)
    detections = tmp_path / "detections"
    ended = jobs.Worker(store, imagery_dir=imagery, detection_dir=detections, lease_s=30).run_once()
    assert ended is not None
    assert ended["id"] == job["id"]
    assert ended["state"] == "done", ended["error"]
    made = imagery / "true-colour" / "after-rgb.tif"
    assert ended["result"]["file"] == "true-colour/after-rgb.tif"
    assert list((imagery / "true-colour" / ".jobs").iterdir()) == []  # nothing half-written left
    assert not detections.exists() or not any(detections.iterdir())  # detections untouched
    # the same pixels as true_colour() of the scene, as a 3-band COG on the scene's own grid
    direct = true_colour(imagery / "s2" / "after", tmp_path / "direct.tif")
    with rasterio.open(made) as got, rasterio.open(direct) as want:
        assert (got.count, got.width, got.height) == (3, want.width, want.height)
        assert (ended["result"]["width"], ended["result"]["height"]) == (want.width, want.height)
        assert got.crs == want.crs
        assert got.profile["tiled"]
        assert got.compression.name == "deflate"
        np.testing.assert_array_equal(got.read(), want.read())
    # offered as review imagery: listed, and taken for a round's before/after
    offered = jobs.imagery_entries(imagery)
    assert {"name": "true-colour/after-rgb.tif", "kind": "file"} in offered
    assert "true-colour" not in {e["name"] for e in offered}  # the folder itself is no scene
    assert jobs.imagery_file(imagery, "true-colour/after-rgb.tif") == made
    assert _audit(store, job["id"]) == ["detection_job.submit", "detection_job.claim", "detection_job.done"]
    with pytest.raises(ConflictError, match="exists already"):
        _submit(store, personas, imagery)


def test_a_cancelled_imagery_job_stops_at_its_next_strip(store: Any, personas: dict[str, int], imagery: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _submit(store, personas, imagery)
    p_admin = actor_for(store, personas["p_admin"])
    from tuban.raster import quicklook

    real = quicklook.true_colour

    def cancelling(*args: Any, progress: Any = None, **kw: Any) -> Path:
        def step(label: str, i: int, n: int) -> None:
            jobs.cancel_job(store, p_admin, job["id"])  # asked while the image is being written
            worker.lease_outcome_now()
            progress(label, i, n)

        return real(*args, progress=step, rows=64, **kw)

    monkeypatch.setattr(quicklook, "true_colour", cancelling)
    worker = _Worker(store, imagery_dir=imagery, detection_dir=tmp_path / "d", lease_s=30)
    ended = worker.run_once()
    assert ended is not None
    assert ended["state"] == "cancelled"
    assert not (imagery / "true-colour" / "after-rgb.tif").exists()
    assert list((imagery / "true-colour" / ".jobs").iterdir()) == []
    assert _audit(store, job["id"])[-1] == "detection_job.cancelled"


class _Worker(jobs.Worker):
    """A worker whose lease renews when asked (the test's clock), not every third of the lease."""

    lease: Any = None

    def lease_outcome_now(self) -> None:
        lease = self.lease
        lease.outcome = jobs.renew_lease(self.store, lease.claim.id, self.owner, self.lease_s)

    def _true_colour(self, claim: Any, lease: Any, written: Path) -> dict[str, Any]:
        self.lease = lease
        return super()._true_colour(claim, lease, written)


def test_a_folder_the_server_cannot_write_is_said_at_submission(store: Any, personas: dict[str, int], imagery: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An imagery share mounted read-only: refused with the folder's role, not queued to fail in a worker.
    (The tests run as root, whom file modes do not stop: ``os.access`` stands in for a read-only mount.)"""
    from tuban.errors import ConfigError

    real = jobs.os.access
    denied: list[Path] = []

    def access(path: Any, mode: int) -> bool:
        if Path(path) == imagery and mode & jobs.os.W_OK:
            denied.append(Path(path))
            return False
        return real(path, mode)

    monkeypatch.setattr(jobs.os, "access", access)
    with pytest.raises(ConfigError, match=r"cannot write into the imagery folder, so a job could not save "
                                          r"'true-colour/after-rgb.tif'") as err:
        _submit(store, personas, imagery)
    assert str(imagery) not in str(err.value)
    assert "write access" in (err.value.hint or "")
    assert denied == [imagery]  # true-colour/ does not exist yet: the worker would create it in the folder
    assert jobs.list_jobs(store) == []  # nothing queued
    (imagery / "true-colour").mkdir()  # once it exists, that folder is what must be writable
    job = _submit(store, personas, imagery)
    assert job["state"] == "queued"
