"""A dask.distributed scheduler and workers as separate processes on 127.0.0.1, as a cluster's machines run
them (``dask scheduler``, ``dask worker``), for tests that start, kill and restart them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path


class DaskProcesses:
    """A scheduler on a free local port and its workers, each a process; everything still running is stopped
    by :meth:`close` (a context manager)."""

    def __init__(self, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._bin = Path(sys.executable).parent / "dask"
        self._env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self._log = open(log, "a")  # noqa: SIM115 (closed by close())
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def __enter__(self) -> DaskProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(self._bin), *args], stdout=self._log, stderr=self._log, env=self._env)

    def start_scheduler(self, *, timeout: float = 60) -> None:
        """The scheduler, once it accepts connections."""
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def start_workers(self, n: int, *, wait: bool = True) -> None:
        """``n`` single-threaded workers (each with its nanny), by default once all have joined."""
        before = len(self.workers)
        for _ in range(n):
            self.workers.append(self._start("worker", self.address, "--nworkers", "1", "--nthreads", "1",
                                            "--no-dashboard", "--host", "127.0.0.1"))
        if wait:
            from distributed import Client

            with Client(self.address, timeout=30) as client:
                client.wait_for_workers(before + n, timeout=60)

    def kill_scheduler(self) -> None:
        """``kill -9`` the scheduler (its workers then close themselves)."""
        assert self.scheduler is not None
        self.scheduler.kill()
        self.scheduler.wait()

    def kill_workers(self) -> None:
        """``kill -9`` every worker process and its nanny (the process tree ``dask worker`` started)."""
        import psutil

        for p in self.workers:
            with suppress(psutil.NoSuchProcess):
                for child in psutil.Process(p.pid).children(recursive=True):
                    with suppress(psutil.NoSuchProcess):
                        child.kill()
            p.kill()
            p.wait()

    def close(self) -> None:
        procs = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self._log.close()

