"""Helpers shared by migrations (frozen: a change here must keep every migration's result).

Migrations never import the models or the app's helpers, whose behaviour moves on; what two
migrations share lives here instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

__all__ = ["backfill_geojson_sqlite"]


def backfill_geojson_sqlite(column: str, render: Callable[[Any], Any], *, batch: int = 5000) -> None:
    """Fill ``patches.<column>`` from each patch's geometry on SQLite, in batches by id.

    *render* maps an array of non-empty shapely geometries to their GeoJSON texts.
    """
    import numpy as np
    import shapely

    if not column.isidentifier():
        raise ValueError(f"not a column name: {column!r}")
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, geometry FROM patches WHERE id > :last AND geometry IS NOT NULL "
                                    "ORDER BY id LIMIT :batch"), {"last": last, "batch": batch}).all()
        if not rows:
            return
        last = rows[-1][0]
        geoms = shapely.from_wkb(np.array([bytes(r[1]) for r in rows], dtype=object))
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        texts = np.full(len(rows), None, dtype=object)
        if ok.any():
            texts[ok] = render(geoms[ok])
        bind.execute(sa.text(f"UPDATE patches SET {column} = :g WHERE id = :id"),
                     [{"g": None if t is None else str(t), "id": r[0]} for r, t in zip(rows, texts, strict=True)])
