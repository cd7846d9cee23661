"""``engine.warm()`` (run by benchmarks and on every Dask worker) compiles every specialisation a run uses: where
the kernels cannot be cached (a read-only install) a specialisation left out is compiled by each process's
first tile instead (the patches' sums were: 2.4 CPU-s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synth import scene_arrays, write_stack

CHECK = """
import json, sys
from tuban import jit
from tuban.detect import engine
from tuban.raster import fused, vectorize
engine.warm()
kernels = {n: k for m in (fused, vectorize) for n, k in vars(m).items() if isinstance(k, jit.Kernel)}
counts = lambda: {n: len(k._disp.signatures) if k._disp is not None else 0 for n, k in kernels.items()}
warmed = counts()
result = engine.detect(sys.argv[1], sys.argv[2])
print(json.dumps({"warmed": warmed, "after_run": counts(), "patches": len(result.patches)}))
"""


@pytest.mark.slow
def test_warm_compiles_every_specialisation_a_run_uses(tmp_path: Path) -> None:
    before, after, _ = scene_arrays((300, 320), seed=4)
    b = write_stack(tmp_path / "b.tif", before[:4], block=128)
    a = write_stack(tmp_path / "a.tif", after[:4], block=128)
    out = subprocess.run([sys.executable, "-c", CHECK, str(b), str(a)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["patches"] > 0  # the run reached the patches' sums
    assert all(n > 0 for n in got["warmed"].values()), got["warmed"]  # every kernel compiled or loaded
    assert got["after_run"] == got["warmed"]  # and the run needed no other specialisation
