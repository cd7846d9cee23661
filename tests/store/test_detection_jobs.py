"""Detection jobs in the store (reliability.md #45): submission checks, exclusive claims, leases that run out,
bounded attempts, cancellation, and one ``done`` per job whatever the workers do. Both backends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tuban.errors import (
    ConflictError,
    InputNotFoundError,
    LeaseLostError,
    PermissionDeniedError,
    UnsafeInputError,
    UsageError,
)
from tuban.workflow import jobs
from tuban.workflow.rounds import actor_for


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    imagery, detections = tmp_path / "imagery", tmp_path / "detections"
    (imagery / "2024" / "before").mkdir(parents=True)
    (imagery / "2024" / "after.tif").write_bytes(b"II*\0")  # existence is all a submission checks
    (imagery / "2024" / "before" / "B02.tif").write_bytes(b"II*\0")
    detections.mkdir()
    return imagery, detections


def _submit(store: Any, personas: dict[str, int], folders: tuple[Path, Path], output: str = "run-1", **kw: Any
            ) -> dict[str, Any]:
    imagery, detections = folders
    params = {"before": "2024/before", "after": "2024/after.tif", **kw.pop("params", {})}
    return jobs.submit_job(store, actor_for(store, personas["p_admin"]), imagery_dir=imagery,
                           detection_dir=detections, output=output, params=params, **kw)


def _audit(store: Any, job_id: int) -> list[str]:
    from tuban.store.models import AuditEntry

    with store.session() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "detection_job",
                                                              AuditEntry.entity_id == str(job_id))
                              .order_by(AuditEntry.id)))


def test_a_submission_names_scenes_inside_the_imagery_folder(store: Any, personas: dict[str, int],
                                                            folders: tuple[Path, Path], tmp_path: Path) -> None:
    imagery, _ = folders
    (tmp_path / "secret.tif").write_bytes(b"II*\0")
    (imagery / "link.tif").symlink_to(tmp_path / "secret.tif")
    for bad in ("../secret.tif", "/etc/passwd", "2024/../../secret.tif", ".hidden", "2024/.x", "link.tif",
                "a/b/c/d/e.tif", "2024\\..\\..\\secret.tif"):
        with pytest.raises(UnsafeInputError):
            _submit(store, personas, folders, params={"after": bad})
    with pytest.raises(InputNotFoundError, match="no scene"):
        _submit(store, personas, folders, params={"after": "2024/missing.tif"})
    with pytest.raises(UsageError, match="unknown detection parameters: tile_size"):
        _submit(store, personas, folders, params={"tile_size": 16})
    with pytest.raises(UsageError, match="unknown method"):
        _submit(store, personas, folders, params={"method": "magic"})
    with pytest.raises(UsageError, match="not an output name"):
        _submit(store, personas, folders, output="../x")
    with pytest.raises(PermissionDeniedError):  # a county reviewer does not run detections
        jobs.submit_job(store, actor_for(store, personas["a_staff"]), imagery_dir=imagery,
                        detection_dir=folders[1], output="x", params={"before": "2024/before", "after": "2024/after.tif"})
    job = _submit(store, personas, folders, params={"method": "construction", "mmu_ha": 0.1, "bands": "blue,green"})
    assert job["state"] == "queued"
    assert job["output"] == "run-1.gpkg"
    assert job["attempts"] == 0
    assert job["params"] == {"before": "2024/before", "after": "2024/after.tif", "method": "construction",
                             "mmu_ha": 0.1, "bands": ["blue", "green"], "water": False}
    assert _audit(store, job["id"]) == ["detection_job.submit"]
    with pytest.raises(ConflictError, match=r"writing 'run-1\.gpkg' already"):  # the same output, queued
        _submit(store, personas, folders)
    (folders[1] / "run-2.gpkg").write_bytes(b"")
    with pytest.raises(ConflictError, match="exists already"):
        _submit(store, personas, folders, output="run-2.gpkg")
    assert [j["id"] for j in jobs.list_jobs(store)] == [job["id"]]  # the refused ones left nothing


def test_a_lost_lease_passes_the_job_to_the_next_worker_and_the_job_is_done_once(
        store: Any, personas: dict[str, int], folders: tuple[Path, Path]) -> None:
    _, detections = folders
    job = _submit(store, personas, folders)
    a = jobs.claim_job(store, "worker-a", lease_s=0.5)
    assert a is not None
    assert a.attempt == 1
    assert a.params["before"] == "2024/before"
    assert jobs.claim_job(store, "worker-b", lease_s=30) is None  # held
    assert jobs.renew_lease(store, job["id"], "worker-b", 30) == "lost"
    assert jobs.renew_lease(store, job["id"], "worker-a", 0.5, "tiles 1/4") == "ok"
    assert jobs.get_job(store, job["id"])["progress"] == "tiles 1/4"
    time.sleep(0.7)  # worker-a stops renewing: its lease runs out
    b = jobs.claim_job(store, "worker-b", lease_s=30)
    assert b is not None
    assert b.id == job["id"]
    assert b.attempt == 2
    assert jobs.renew_lease(store, job["id"], "worker-a", 0.5) == "lost"
    written_a, written_b = detections / "a.part", detections / "b.part"
    written_a.write_text("a")
    written_b.write_text("b")
    with pytest.raises(LeaseLostError, match="held by worker-b"):
        jobs.finish_job(store, job["id"], "worker-a", [(written_a, detections / "run-1.gpkg")], {"patches": 1})
    assert not (detections / "run-1.gpkg").exists()
    assert written_a.exists()
    assert jobs.fail_job(store, job["id"], "worker-a", "late", retry=True) == "lost"  # and cannot requeue it
    jobs.finish_job(store, job["id"], "worker-b", [(written_b, detections / "run-1.gpkg")], {"patches": 2})
    assert (detections / "run-1.gpkg").read_text() == "b"
    assert not written_b.exists()
    done = jobs.get_job(store, job["id"])
    assert done["state"] == "done"
    assert done["result"] == {"patches": 2}
    assert done["attempts"] == 2
    assert _audit(store, job["id"]) == ["detection_job.submit", "detection_job.claim", "detection_job.claim",
                                        "detection_job.done"]
    with pytest.raises(LeaseLostError, match="ended"):  # b again: done is final
        jobs.finish_job(store, job["id"], "worker-b", [(written_a, detections / "run-1.gpkg")], {})
    assert jobs.claim_job(store, "worker-c", lease_s=30) is None


def test_attempts_are_bounded_and_failures_are_kept(store: Any, personas: dict[str, int],
                                                     folders: tuple[Path, Path]) -> None:
    job = _submit(store, personas, folders, max_attempts=2)
    for owner in ("w1", "w2"):
        assert jobs.claim_job(store, owner, lease_s=0.2) is not None
        time.sleep(0.3)
    assert jobs.claim_job(store, "w3", lease_s=30) is None  # the second lease ran out: failed, not claimed
    failed = jobs.get_job(store, job["id"])
    assert failed["state"] == "failed"
    assert "stopped renewing the lease" in failed["error"]
    assert "2 attempts" in failed["error"]
    assert failed["finished_at"]
    assert _audit(store, job["id"])[-1] == "detection_job.fail"
    # a run that fails: queued again while attempts remain, then failed with its message
    other = _submit(store, personas, folders, output="run-2", max_attempts=2)
    assert jobs.claim_job(store, "w1", lease_s=30) is not None
    assert jobs.fail_job(store, other["id"], "w1", "ClusterError: gone", retry=True) == "queued"
    assert jobs.claim_job(store, "w2", lease_s=30) is not None
    assert jobs.fail_job(store, other["id"], "w2", "ClusterError: gone again", retry=True) == "failed"
    assert jobs.get_job(store, other["id"])["error"] == "ClusterError: gone again"
    third = _submit(store, personas, folders, output="run-3")
    assert jobs.claim_job(store, "w1", lease_s=30) is not None
    assert jobs.fail_job(store, third["id"], "w1", "BandError: no nir", retry=False) == "failed"  # at once
    assert _audit(store, other["id"]) == ["detection_job.submit", "detection_job.claim", "detection_job.retry",
                                          "detection_job.claim", "detection_job.fail"]


def test_cancelling_a_queued_and_a_running_job(store: Any, personas: dict[str, int],
                                               folders: tuple[Path, Path]) -> None:
    p_admin = actor_for(store, personas["p_admin"])
    queued = _submit(store, personas, folders)
    assert jobs.cancel_job(store, p_admin, queued["id"])["state"] == "cancelled"
    assert jobs.claim_job(store, "w", lease_s=30) is None
    with pytest.raises(ConflictError, match="cancelled already"):
        jobs.cancel_job(store, p_admin, queued["id"])
    running = _submit(store, personas, folders, output="run-2")
    assert jobs.claim_job(store, "w", lease_s=30) is not None
    view = jobs.cancel_job(store, p_admin, running["id"])
    assert view["state"] == "running"
    assert view["cancel_requested"]
    assert jobs.renew_lease(store, running["id"], "w", 30) == "cancel"
    assert jobs.fail_job(store, running["id"], "w", "cancelled", retry=False, cancelled=True) == "cancelled"
    assert _audit(store, running["id"]) == ["detection_job.submit", "detection_job.claim", "detection_job.cancel",
                                            "detection_job.cancelled"]
    with pytest.raises(PermissionDeniedError):
        jobs.cancel_job(store, actor_for(store, personas["a_admin"]), running["id"])


def test_workers_claiming_at_once_never_share_a_job(store: Any, personas: dict[str, int],
                                                     folders: tuple[Path, Path]) -> None:
    ids = {_submit(store, personas, folders, output=f"run-{i}")["id"] for i in range(6)}
    start = threading.Barrier(4)

    def claim_all(k: int) -> list[int]:
        start.wait()
        mine = []
        while (c := jobs.claim_job(store, f"w{k}", lease_s=60)) is not None:
            mine.append(c.id)
        return mine

    with ThreadPoolExecutor(4) as pool:  # a worker's error is raised here
        got = [i for claimed in pool.map(claim_all, range(4)) for i in claimed]
    assert sorted(got) == sorted(ids)  # every job once
    for i in ids:
        assert _audit(store, i).count("detection_job.claim") == 1


def test_a_worker_outlives_a_store_it_cannot_reach_and_a_stopped_worker_requeues(
        store: Any, personas: dict[str, int], folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from tuban.errors import StoreError

    imagery, detections = folders
    worker = jobs.Worker(store, imagery_dir=imagery, detection_dir=detections, lease_s=30)
    stop = threading.Event()
    calls: list[int] = []

    def flaky_run_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("database error: server closed the connection")
        stop.set()

    monkeypatch.setattr(worker, "run_once", flaky_run_once)
    worker.run(poll_s=0.01, stop=stop)
    assert len(calls) == 2  # looked again after the failure
    monkeypatch.undo()

    job = _submit(store, personas, folders)

    def interrupted(claim: Any, lease: Any, written: Path) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(worker, "_detect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker.run_once()
    back = jobs.get_job(store, job["id"])
    assert back["state"] == "queued"  # at once, not when the lease would have run out
    assert back["error"] == "its worker was stopped"
    assert _audit(store, job["id"])[-1] == "detection_job.retry"


def test_one_active_job_per_output_even_when_two_submissions_race(store: Any, personas: dict[str, int],
                                                                  folders: tuple[Path, Path]) -> None:
    from tuban.errors import IntegrityError
    from tuban.store.models import DetectionJob

    first = _submit(store, personas, folders)

    def insert_same_output() -> None:  # what a racing submission's insert does after its check passed
        with store.transaction(actor="p_admin") as tx:
            tx.session.add(DetectionJob(state="queued", output=first["output"], params={}, attempts=0,
                                        max_attempts=3, cancel_requested=False, created_by="p_admin"))

    with pytest.raises(IntegrityError):
        insert_same_output()
    assert jobs.claim_job(store, "w", lease_s=30) is not None
    with pytest.raises(IntegrityError):  # running counts as active too
        insert_same_output()
    jobs.fail_job(store, first["id"], "w", "BandError: no nir", retry=False)
    insert_same_output()  # a failed job's name may be used again


def test_the_worker_checks_the_submitter_and_the_job_again_before_running_it(
        store: Any, personas: dict[str, int], folders: tuple[Path, Path], tmp_path: Path) -> None:
    """reliability.md #9: a job runs only while its submitter may still run jobs (not deactivated, role not
    taken away since), and only with an output and parameters a submission could have written: a row changed
    in the database cannot lead the worker's writes out of its folders."""
    from tuban.store.models import DetectionJob, RoleAssignment, User

    imagery, detections = folders
    worker = jobs.Worker(store, imagery_dir=imagery, detection_dir=detections, lease_s=30)

    def run(job: dict[str, Any]) -> dict[str, Any]:
        ended = worker.run_once()
        assert ended is not None
        assert ended["id"] == job["id"]
        return ended

    def change(fn: Any) -> None:  # as someone with the database's password would
        with store.transaction(actor="dba") as tx:
            fn(tx.session)

    uid = personas["p_admin"]
    job = _submit(store, personas, folders, output="deactivated")
    change(lambda s: setattr(s.get(User, uid), "active", False))
    ended = run(job)
    assert ended["state"] == "failed"
    assert ended["error"] == "its submitter p_admin is no longer an active user: the job was not run"
    assert ended["attempts"] == 1  # not queued again
    assert _audit(store, job["id"]) == ["detection_job.submit", "detection_job.claim", "detection_job.fail"]
    change(lambda s: setattr(s.get(User, uid), "active", True))

    job = _submit(store, personas, folders, output="demoted")
    change(lambda s: [setattr(a, "role", "viewer") for a in s.scalars(select(RoleAssignment).where(
        RoleAssignment.user_id == uid))])
    ended = run(job)
    assert ended["state"] == "failed"
    assert "p_admin may no longer run detection or imagery jobs" in ended["error"]
    change(lambda s: [setattr(a, "role", "province_admin") for a in s.scalars(select(RoleAssignment).where(
        RoleAssignment.user_id == uid))])

    outside = tmp_path / "escape.gpkg"
    for tampered in ({"output": "../escape.gpkg"}, {"params": {"before": "2024/before", "after": "2024/after.tif",
                                                                "command": "rm -rf /"}}):
        job = _submit(store, personas, folders, output="tampered")
        change(lambda s, t=tampered, i=job["id"]: [setattr(s.get(DetectionJob, i), k, v) for k, v in t.items()])
        ended = run(job)
        assert ended["state"] == "failed"
        assert "not those of a submission" in ended["error"]
    assert not outside.exists()
    assert not (imagery / "true-colour").exists()
    assert sorted(p.name for p in detections.iterdir()) == []  # nothing read or written for any of them


def test_one_user_cannot_fill_the_queue(store: Any, personas: dict[str, int], folders: tuple[Path, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_ACTIVE_PER_USER", 3)
    queued = [_submit(store, personas, folders, output=f"run-{i}") for i in range(3)]
    with pytest.raises(ConflictError, match="p_admin has 3 jobs queued or running already"):
        _submit(store, personas, folders, output="run-3")
    jobs.cancel_job(store, actor_for(store, personas["p_admin"]), queued[0]["id"])  # an ended job frees a place
    assert _submit(store, personas, folders, output="run-3")["state"] == "queued"


def test_workers_claim_the_highest_priority_first_then_the_oldest(store: Any, personas: dict[str, int],
                                                                 folders: tuple[Path, Path]) -> None:
    p_admin = actor_for(store, personas["p_admin"])
    with pytest.raises(UsageError, match="priority=10 is outside 0–9"):
        _submit(store, personas, folders, priority=10)
    old = _submit(store, personas, folders, output="old")
    assert old["priority"] == 0
    newer = _submit(store, personas, folders, output="newer")
    urgent = _submit(store, personas, folders, output="urgent", priority=9)
    also = _submit(store, personas, folders, output="also-urgent", priority=9)
    raised = jobs.set_priority(store, p_admin, newer["id"], 5)  # raised while it waits
    assert raised["priority"] == 5
    order = []
    while (claim := jobs.claim_job(store, "w", lease_s=30)) is not None:
        order.append(claim.id)
    assert order == [urgent["id"], also["id"], newer["id"], old["id"]]
    with pytest.raises(ConflictError, match="only a queued job's priority can change"):
        jobs.set_priority(store, p_admin, old["id"], 9)
    with pytest.raises(PermissionDeniedError):
        jobs.set_priority(store, actor_for(store, personas["a_admin"]), old["id"], 1)
    assert _audit(store, newer["id"]) == ["detection_job.submit", "detection_job.priority", "detection_job.claim"]
