"""Synthetic but realistic two-date scenes with known truth (模拟影像与真值).

Pure library (no database, web or CLI imports); heavy modules load lazily::

    from tuban.sim import make_scene
    scene = make_scene("out/scene", seed=0, size="tiny", sensor="s2")
    scene.before, scene.after          # band folder (S2) or 4-band COG (GF-2)
    scene.truth, scene.scopes, scene.previous, scene.expected

Modules: ``noise`` (seamless noise), ``spectra`` (surfaces, endmembers, sensors),
``layout`` (vector layout and sites), ``render`` (one tile of one date), ``writer``
(COGs, tile by tile), ``rules`` (reference compliance/change rules), ``registry``
(truth, scopes, previous round), ``scene`` (``make_scene``/``load_scene``), ``fields`` (a plain
change-free or one-site field pair for threshold checks).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SIZES", "Scene", "load_scene", "make_scene"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tuban.sim import scene

        return getattr(scene, name)
    raise AttributeError(f"module 'tuban.sim' has no attribute {name!r}")
