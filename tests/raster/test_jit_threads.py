"""First use of the compiled kernels from several threads at once (a serial detection's date readers)."""

from __future__ import annotations

import subprocess
import sys


def test_first_use_from_many_threads_at_once_compiles_once() -> None:
    # a fresh interpreter: nothing compiled yet, every thread arrives at the first use together
    code = """
import threading
from tuban.analysis import pairwise
from tuban.raster import fused
barrier = threading.Barrier(8)
errors = []
def first_use():
    barrier.wait()
    try:
        assert fused.available()
        assert fused._HELPERS.compile()
        assert pairwise._HELPERS.compile()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_use) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
