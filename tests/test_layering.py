"""The pure layers import no database, web or CLI code (style.md: layering).

Each module is imported in a fresh interpreter and the loaded modules are inspected,
so an indirect import is caught as well as a direct one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

PURE = ["tuban.crs", "tuban.raster", "tuban.detect", "tuban.analysis", "tuban.sim", "tuban.codes", "tuban.fields"]
FORBIDDEN = ("sqlalchemy", "fastapi", "starlette", "tuban.store", "tuban.web", "tuban.cli", "tuban.workflow")


def _loaded_after_import(module: str) -> list[str]:
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", PURE)
def test_pure_layer_imports_no_outer_layer(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is part of the architecture but missing")
    loaded = _loaded_after_import(module)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN or any(m.startswith(f + ".") or m == f for f in FORBIDDEN)]
    assert bad == [], f"{module} pulls in outer layers: {bad[:10]}"


def test_package_init_is_light() -> None:
    loaded = _loaded_after_import("tuban")
    heavy = [m for m in ("numpy", "rasterio", "sqlalchemy", "fastapi", "geopandas") if m in loaded]
    assert heavy == []
