from __future__ import annotations

import pytest

from tuban.sim import make_scene


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """Seed 0 tiny S2 scene: every registry scenario appears in it."""
    return make_scene(tmp_path_factory.mktemp("scene") / "s", seed=0, size="tiny")
