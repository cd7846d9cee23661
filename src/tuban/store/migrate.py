"""Alembic configured in code: migrations ship inside the package."""

from __future__ import annotations

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["alembic_config", "current_revision", "head_revision"]

SCRIPT_LOCATION = "tuban.store:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`Config` for the packaged migrations (no ``alembic.ini``)."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:  # pragma: no cover - a packaging bug
        raise RuntimeError(f"tuban migrations must have one head, found {heads}")
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
