"""A real server process on 127.0.0.1 that tests can SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCRIPT = Path(__file__).with_name("_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, db_url: str, blob_dir: Path, secret: str, *, port: int | None = None,
                 log: Path | None = None) -> None:
        self.db_url, self.blob_dir, self.secret = db_url, blob_dir, secret
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), self.db_url, str(self.blob_dir), str(self.port), self.secret],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start on port {self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, like a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def login(base: str, username: str) -> httpx.Client:
    """An httpx client with the session and CSRF cookies of *username*."""
    c = httpx.Client(base_url=base, timeout=30)
    c.get("/login")
    r = c.post("/api/session", json={"username": username, "password": f"password-{username}"},
               headers={"X-CSRF-Token": c.cookies.get("tuban_csrf") or ""})
    r.raise_for_status()
    c.headers["X-CSRF-Token"] = c.cookies.get("tuban_csrf") or ""
    return c
