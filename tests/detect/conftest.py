from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synth import scene_arrays, write_stack


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    d = tmp_path_factory.mktemp("pair")
    before, after, truth = scene_arrays()
    return write_stack(d / "before.tif", before), write_stack(d / "after.tif", after), truth
