"""Compliance analysis (合规性分析): patches × project scopes × divisions × previous round.

Pure library: GeoDataFrames in, a columnar result out; no database, web or CLI imports.
The heavy modules load lazily, so ``import tuban.analysis`` stays cheap::

    from tuban.analysis import analyse, explain
    result = analyse(patches, scopes, divisions, previous)
    frame = result.to_geodataframe()          # every input patch + BYD, EAREA, QDTYPE, XZQDM, …
    zh, en = explain(frame.iloc[0], lang="zh"), explain(frame.iloc[0], lang="en")

Modules: ``rules`` (versioned thresholds), ``geometry`` (CRS and geometry policy),
``overlay`` (R1–R5), ``divisions`` (XZQDM), ``change`` (QDTYPE), ``explanations``
(sentences), ``core`` (``analyse`` and the result), ``postgis`` (the same rules in SQL).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnalysisResult", "RuleSet", "analyse", "explain", "load_rules"]

_LAZY = {
    "AnalysisResult": "tuban.analysis.core",
    "analyse": "tuban.analysis.core",
    "explain": "tuban.analysis.explanations",
    "RuleSet": "tuban.analysis.rules",
    "load_rules": "tuban.analysis.rules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tuban.analysis' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
