"""The Jiaozuo (焦作市) demo region and the ``tuban demo`` pipeline.

::

    from tuban.demo import run_demo, format_summary
    result = run_demo("demo-workspace", size="small")
    print(format_summary(result))
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_CENTRE", "DemoResult", "format_summary", "load_divisions", "run_demo", "serve_hook"]

_LAZY = {
    "DEMO_CENTRE": "tuban.demo.region",
    "load_divisions": "tuban.demo.region",
    "DemoResult": "tuban.demo.pipeline",
    "format_summary": "tuban.demo.pipeline",
    "run_demo": "tuban.demo.pipeline",
    "serve_hook": "tuban.demo.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tuban.demo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
