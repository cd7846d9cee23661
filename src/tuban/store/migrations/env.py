"""Alembic environment for tuban's packaged migrations.

Alembic is configured in code (:func:`tuban.store.migrate.alembic_config`); the caller
passes an open connection in ``config.attributes["connection"]``, so no ``alembic.ini``
is needed and ``tuban db upgrade`` works from an installed package.
"""

from __future__ import annotations

from alembic import context

from tuban.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations through `tuban db upgrade` (tuban.store.Store.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    transactional_ddl=True,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
