"""Real data: OSCD Hong Kong (needs $TUBAN_SHARED_DATA; fails, never skips, under CI=true)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("TUBAN_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
CITY = ROOT / "oscd" / "hongkong"


@pytest.mark.shared_data
@pytest.mark.slow
def test_hong_kong_pixel_f1_reaches_half() -> None:
    if not CITY.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing: {CITY}")
        pytest.skip(f"shared data missing: {CITY} (set TUBAN_SHARED_DATA)")
    from tuban.detect.engine import detect
    from tuban.detect.evaluate import evaluate

    res = detect(CITY / "imgs_1", CITY / "imgs_2", tile_size=256)
    ref = glob.glob(str(CITY / "imgs_1" / "*_B04.tif"))[0]
    m = evaluate(res.patches, CITY / "cm" / "hongkong-cm.tif", change_value=2, grid=ref)
    assert m["pixel"]["f1"] >= 0.50, m["pixel"]
